"""Sampling parameters a provider would refuse are refused before any upstream call, in the
caller's error shape, naming the field and the documented range: Anthropic's temperature and
top_p within 0-1, OpenAI's temperature within 0-2, penalties within -2..2, n within 1-128, and so
on; booleans never pass as numbers. On the gateway and the in-process client alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import thrifty
from tests.support.gateway import RunningGateway, running_gateway
from thrifty.simulator import BackgroundSimulator

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with BackgroundSimulator() as simulator:  # its own: its request count is this module's
        yield simulator.url


@pytest.fixture(scope="module")
def gateway(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with running_gateway(upstream, tmp_path_factory.mktemp("ranges")) as running:
        yield running


def upstream_calls(upstream: str) -> int:
    return int(httpx2.get(f"{upstream}/_simulator/stats").json()["total"])


ANTHROPIC_CASES = [
    ({"temperature": 1.5}, "temperature", "between 0 and 1"),
    ({"temperature": -0.1}, "temperature", "between 0 and 1"),
    ({"top_p": 1.01}, "top_p", "between 0 and 1"),
    ({"top_k": -1}, "top_k", "at least 0"),
    ({"temperature": True}, "temperature", "expected a number"),
]
OPENAI_CASES = [
    ({"temperature": 2.5}, "temperature", "between 0 and 2"),
    ({"top_p": -1}, "top_p", "between 0 and 1"),
    ({"frequency_penalty": 3}, "frequency_penalty", "between -2 and 2"),
    ({"presence_penalty": -2.5}, "presence_penalty", "between -2 and 2"),
    ({"n": 0}, "n", "at least 1"),
    ({"n": 129}, "n", "between 1 and 128"),
    ({"top_logprobs": 21}, "top_logprobs", "between 0 and 20"),
    ({"logprobs": 1}, "logprobs", "expected true or false"),
    ({"n": True}, "n", "expected a whole number"),
]


@pytest.mark.parametrize(("extra", "field", "why"), ANTHROPIC_CASES)
def test_the_gateway_refuses_out_of_range_anthropic_sampling(
    gateway: RunningGateway, upstream: str, extra: dict[str, Any], field: str, why: str
) -> None:
    before = upstream_calls(upstream)
    client = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="claude-haiku-4-5", messages=HELLO, max_tokens=5, extra_body=extra)  # type: ignore[arg-type]
    body: Any = refused.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert field in body["error"]["message"] and why in body["error"]["message"]
    assert upstream_calls(upstream) == before


@pytest.mark.parametrize(("extra", "field", "why"), OPENAI_CASES)
def test_the_gateway_refuses_out_of_range_openai_sampling(
    gateway: RunningGateway, upstream: str, extra: dict[str, Any], field: str, why: str
) -> None:
    before = upstream_calls(upstream)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5, extra_body=extra)  # type: ignore[arg-type]
    message = refused.value.body["message"]  # type: ignore[index]
    assert field in message and why in message
    assert upstream_calls(upstream) == before


def test_in_range_values_pass_on_both_apis(gateway: RunningGateway) -> None:
    openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="gpt-4o-mini",
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=5,
        temperature=2,
        top_p=0,
        presence_penalty=-2,
        n=2,
    )
    anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0).messages.create(
        model="claude-haiku-4-5",
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=5,
        extra_body={"temperature": 1, "top_p": 0.5, "top_k": 40},
    )


def test_the_in_process_client_refuses_them_too(upstream: str, tmp_path: Path) -> None:
    runtime = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'l.db'}", journal_dir=tmp_path / "journal")
    try:
        before = upstream_calls(upstream)
        claude = runtime.wrap(anthropic.Anthropic(base_url=upstream, api_key="x"))
        with pytest.raises(anthropic.BadRequestError, match=r"temperature: must be between 0 and 1"):
            claude.messages.create(
                model="claude-haiku-4-5",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
                extra_body={"temperature": 1.7},
            )
        gpt = runtime.wrap(openai.OpenAI(base_url=f"{upstream}/v1", api_key="x"))
        with pytest.raises(openai.BadRequestError, match=r"n: must be between 1 and 128"):
            gpt.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5, n=200)  # type: ignore[arg-type]
        assert upstream_calls(upstream) == before
    finally:
        runtime.close()
