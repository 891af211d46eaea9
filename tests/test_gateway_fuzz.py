"""Whatever a client sends, the gateway answers in the client's error shape: never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gateway import RunningGateway, running_gateway

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "function", "wizard"]) | json_values
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles, "content": json_values | st.text(max_size=30)}, optional={"name": json_values}
    ),
    max_size=3,
)
near_valid = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "claude-haiku-4-5"]) | json_values, "messages": messages | json_values},
    optional={
        "max_tokens": json_values,
        "stream": json_values,
        "tools": json_values,
        "stream_options": json_values,
        "system": json_values,
        "temperature": json_values,
    },
)


@pytest.fixture(scope="module")
def gateway(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    with running_gateway(simulator_url, home) as running:
        yield running


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=near_valid | json_values, path=st.sampled_from(["/v1/chat/completions", "/v1/messages"]))
def test_no_input_gets_a_server_error(gateway: RunningGateway, body: Any, path: str) -> None:
    response = httpx2.post(
        f"{gateway.url}{path}",
        content=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code < 500 or response.status_code in (502, 503), response.text
    if response.status_code >= 400:
        payload = response.json()
        if path == "/v1/messages":
            assert payload["type"] == "error" and payload["error"]["message"]
        else:
            assert payload["error"]["message"]
    assert "Traceback" not in response.text
