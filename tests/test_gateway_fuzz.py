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
        "metadata": json_values,
        "user": json_values,
        "n": json_values,
        "top_p": json_values,
        "top_k": json_values,
        "stop": json_values,
        "stop_sequences": json_values,
        "tool_choice": json_values,
        "response_format": json_values,
        "seed": json_values,
        "frequency_penalty": json_values,
        "presence_penalty": json_values,
        "max_completion_tokens": json_values,
    },
)
VALID = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


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


def _check(response: httpx2.Response, path: str) -> None:
    assert response.status_code < 500 or response.status_code in (502, 503), response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        payload = response.json()
        assert payload["error"]["message"]
        if path == "/v1/messages":
            assert payload["type"] == "error"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    depth=st.integers(1, 1200),
    field=st.sampled_from(["metadata", "tools", "response_format", "messages", "extra", "tool_choice"]),
    brackets=st.sampled_from([("[", "]"), ('{"a":', "}")]),
    path=st.sampled_from(["/v1/chat/completions", "/v1/messages"]),
)
def test_nesting_of_any_depth_in_any_field_is_never_a_server_error(
    gateway: RunningGateway, depth: int, field: str, brackets: tuple[str, str], path: str
) -> None:
    model = "gpt-4o-mini" if path == "/v1/chat/completions" else "claude-haiku-4-5"
    opening, closing = brackets
    nested = opening * depth + "1" * (opening != "[") + closing * depth
    document = {**VALID, "model": model, field: None}
    raw = orjson.dumps(document).decode().replace(f'"{field}":null', f'"{field}":{nested}')
    response = httpx2.post(
        f"{gateway.url}{path}", content=raw.encode(), headers={"content-type": "application/json"}, timeout=30
    )
    _check(response, path)
    if depth > 254:
        assert response.status_code == 400


@pytest.mark.parametrize("metadata", [1, "x", [1], True, 2.5])
def test_a_metadata_that_is_not_an_object_is_a_400_naming_it(gateway: RunningGateway, metadata: Any) -> None:
    body = {**VALID, "model": "claude-haiku-4-5", "metadata": metadata}
    response = httpx2.post(f"{gateway.url}/v1/messages", json=body)
    assert response.status_code == 400, response.text
    assert "metadata" in response.json()["error"]["message"]


def test_too_deep_a_body_is_a_400_naming_the_field(gateway: RunningGateway) -> None:
    nested = "[" * 300 + "]" * 300
    raw = (
        orjson.dumps({**VALID, "model": "gpt-4o-mini", "tools": None})
        .decode()
        .replace('"tools":null', f'"tools":{nested}')
    )
    response = httpx2.post(f"{gateway.url}/v1/chat/completions", content=raw.encode())
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("tools[0][0]") and "nested deeper than 254 levels" in message
