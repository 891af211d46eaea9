"""thrifty marks the stable prefix of Anthropic requests so the provider caches it."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
from hypothesis import given
from hypothesis import strategies as st

from tests.support.gateway import RunningGateway, running_gateway
from thrifty.core.prompt_cache import add_breakpoints, minimum_cacheable


def words(n: int) -> str:
    return "policy " * n


def count(text: str) -> int:
    return len(text.split())


def test_long_system_and_history_are_marked_without_moving_content() -> None:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "system": words(1500),
        "messages": [
            {"role": "user", "content": words(300)},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "user", "content": "and now?"},
        ],
    }
    original = copy.deepcopy(body)
    marked = add_breakpoints(body, "claude-sonnet-4-5", count)
    assert marked == ["system", "history"]
    assert body["system"] == [{"type": "text", "text": words(1500), "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][2] == original["messages"][2]  # the changing last turn is never marked
    assert original["messages"][1]["content"][-1] == {"type": "text", "text": "ok"}  # caller's objects untouched


def test_short_prefixes_and_requests_with_breakpoints_are_left_alone() -> None:
    short = {"system": words(100), "messages": [{"role": "user", "content": "hi"}]}
    assert add_breakpoints(short, "claude-sonnet-4-5", count) == []
    assert short["system"] == words(100)
    marked = {
        "system": [{"type": "text", "text": words(5000), "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": [{"role": "user", "content": "hi"}],
    }
    before = copy.deepcopy(marked)
    assert add_breakpoints(marked, "claude-sonnet-4-5", count) == []
    assert marked == before


def test_per_model_minimums() -> None:
    assert minimum_cacheable("claude-sonnet-4-5-20250929") == 1024
    assert minimum_cacheable("claude-haiku-4-5") == 4096
    assert minimum_cacheable("claude-3-5-haiku-latest") == 2048
    body = {"system": words(3000), "messages": [{"role": "user", "content": "hi"}]}
    assert add_breakpoints(copy.deepcopy(body), "claude-haiku-4-5", count) == []  # 3000 < 4096
    assert add_breakpoints(copy.deepcopy(body), "claude-sonnet-4-5", count) == ["system"]


@given(st.lists(st.sampled_from(["user", "assistant"]), min_size=1, max_size=6), st.integers(0, 3000))
def test_marking_never_changes_the_text(roles: list[str], system_words: int) -> None:
    messages = [{"role": r, "content": words(400)} for r in roles] + [{"role": "user", "content": "q"}]
    body: dict[str, Any] = {"system": words(system_words), "messages": messages}
    before = copy.deepcopy(body)
    add_breakpoints(body, "claude-sonnet-4-5", count)

    def texts(b: dict[str, Any]) -> list[str]:
        system = b["system"] if isinstance(b["system"], str) else "".join(x["text"] for x in b["system"])
        out = [system]
        for m in b["messages"]:
            c = m["content"]
            out.append(c if isinstance(c, str) else "".join(x["text"] for x in c))
        return out

    assert texts(body) == texts(before)
    assert sum(str(body).count("cache_control") for _ in [0]) <= 4


def test_repeated_long_prompts_to_claude_are_cached_and_priced_at_the_read_rate(gateway: RunningGateway) -> None:
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    system = "You follow the house style guide. " * 250  # no cache_control: thrifty adds it
    first = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, system=system, messages=[{"role": "user", "content": "hi"}]
    )
    second = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, system=system, messages=[{"role": "user", "content": "hi"}]
    )
    assert (first.usage.cache_creation_input_tokens or 0) > 1024
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    one, two = gateway.records(2)
    assert one.details["prompt_cache_breakpoints"] == ["system"]
    assert two.cost is not None
    assert two.cost.cache_read == Decimal(two.usage.cache_read_tokens) * Decimal("0.3") / 1_000_000
    assert two.savings["prompt_cache"] > 0  # the read was cheaper than plain input
    assert one.savings["prompt_cache"] < 0  # writing costs 1.25x: recorded, not hidden
    assert two.counterfactual_cost == two.cost.total + two.savings["prompt_cache"]


def test_openai_clients_calling_claude_get_the_breakpoints_too(gateway: RunningGateway) -> None:
    gpt = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "system", "content": "Long fixed context. " * 400}, {"role": "user", "content": "hi"}]
    gpt.chat.completions.create(model="claude-sonnet-4-5", messages=messages, max_tokens=5)  # type: ignore[arg-type]
    second = gpt.chat.completions.create(model="claude-sonnet-4-5", messages=messages, max_tokens=5)  # type: ignore[arg-type]
    assert second.usage.prompt_tokens_details.cached_tokens > 1024  # type: ignore[union-attr]


def test_breakpoints_can_be_turned_off(simulator_url: str, tmp_path: Path) -> None:
    with running_gateway(simulator_url, tmp_path, cache={"prompt": {"anthropic_breakpoints": False}}) as gateway:
        claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
        system = "You follow the house style guide. " * 250
        for _ in range(2):
            message = claude.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, system=system, messages=[{"role": "user", "content": "hi"}]
            )
        assert not message.usage.cache_read_input_tokens
