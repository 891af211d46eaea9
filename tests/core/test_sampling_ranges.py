"""Sampling parameters a provider would refuse are refused before any upstream call, in the
caller's error shape, naming the field and the documented range: Anthropic's temperature and
top_p within 0-1, OpenAI's temperature within 0-2, penalties within -2..2, n within 1-128, and so
on; booleans never pass as numbers. On the gateway and the in-process client alike. An OpenAI
request for a Claude model is held to Anthropic's range (temperature 0-1), and routing never picks
a Claude model for a request it would refuse."""

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


def test_an_openai_request_for_claude_is_held_to_anthropics_temperature_range(
    gateway: RunningGateway, upstream: str
) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    before = upstream_calls(upstream)
    for temperature in (1.5, 2):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="claude-haiku-4-5",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
                temperature=temperature,
            )
        body: Any = refused.value.body
        assert body["type"] == "invalid_request_error"
        assert body["message"] == (
            f"temperature: must be between 0 and 1 (Anthropic's range; OpenAI's is 0 to 2), got {temperature:g}"
        )
    assert upstream_calls(upstream) == before  # neither was sent to the provider
    served = client.chat.completions.create(
        model="claude-haiku-4-5",
        messages=HELLO,  # type: ignore[arg-type]
        max_tokens=5,
        temperature=1,
    )
    assert served.choices[0].message.content
    assert upstream_calls(upstream) == before + 1


@pytest.fixture(scope="module")
def routed(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """Routing's cheap tier has only a Claude model; the strong one, an OpenAI model."""
    tiers = {"small": ["claude-haiku-4-5"], "large": ["gpt-4o"]}
    with running_gateway(
        upstream, tmp_path_factory.mktemp("routed"), tiers=tiers, routing={"policy": "rules"}
    ) as running:
        yield running


def test_routing_never_picks_a_claude_model_for_a_temperature_above_1(routed: RunningGateway) -> None:
    client = openai.OpenAI(base_url=f"{routed.url}/v1", api_key="x", max_retries=0)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    routes: dict[float, str] = {}
    for temperature, served in ((0.7, "claude-haiku-4-5"), (1.5, "gpt-4o"), (2, "gpt-4o")):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=question,  # type: ignore[arg-type]
            max_tokens=400,
            temperature=temperature,
        )
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-thrifty-model"] == served, raw.headers["x-thrifty-route"]
        routes[temperature] = raw.headers["x-thrifty-route"]
    assert routes[2] == "default: large -> gpt-4o (no rule matched)"  # the cheap tier had no model for it


def test_the_in_process_client_refuses_wrong_types_and_deep_nesting(upstream: str, tmp_path: Path) -> None:
    runtime = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'l.db'}", journal_dir=tmp_path / "journal")
    try:
        before = upstream_calls(upstream)
        claude = runtime.wrap(anthropic.Anthropic(base_url=upstream, api_key="x"))
        with pytest.raises(anthropic.BadRequestError, match=r"metadata.user_id: expected a string"):
            claude.messages.create(
                model="claude-haiku-4-5",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
                extra_body={"metadata": {"user_id": 42}},
            )
        gpt = runtime.wrap(openai.OpenAI(base_url=f"{upstream}/v1", api_key="x"))
        deep: Any = {}
        for _ in range(200):
            deep = {"a": deep}
        with pytest.raises(openai.BadRequestError, match=r"response_format\.a\.a.*nested deeper than 128 levels"):
            gpt.chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
                response_format=deep,
            )
        with pytest.raises(openai.BadRequestError, match=r"stop\[1\]: expected a string"):
            gpt.chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,  # type: ignore[arg-type]
                max_tokens=5,
                stop=["end", 1],  # type: ignore[list-item]
            )
        assert upstream_calls(upstream) == before
    finally:
        runtime.close()
