"""Routing, escalation, shadow mode, the escape hatches, compression and output caps in-process:
``Thrifty(optimise=...)`` runs the same steps as the gateway around the official SDK clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import thrifty
from thrifty.core.ledger import LedgerRecord
from thrifty.core.routing import Answer
from thrifty.stores.ledger import open_ledger

SHORT = [{"role": "user", "content": "What is the capital of France?"}]
OPTIMISE: dict[str, Any] = {
    "tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]},
    "routing": {"policy": "rules", "rules": [{"name": "code", "has_code": True, "tier": "large"}]},
    "compression": {"whitespace": {}},
    "output_caps": {"plans": {"free": 7}, "users": {"ann": "free"}},
}


def mini_says_nothing_useful(answer: Answer) -> str | None:
    """A user's own check: the small model's answers are not trusted for this feature."""
    return "distrusted model" if answer.model == "gpt-4o-mini" else None


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[thrifty.Thrifty]:
    instance = thrifty.Thrifty(
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
        journal_dir=tmp_path / "journal",
        optimise=OPTIMISE,
        checks=[mini_says_nothing_useful],
    )
    yield instance
    instance.close()


def records(runtime: thrifty.Thrifty, tmp_path: Path, expected: int) -> list[LedgerRecord]:
    runtime.runtime.writer.flush(timeout=10)
    store = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        rows = sorted(store.records(limit=100), key=lambda r: r.id)
    finally:
        store.close()
    assert len(rows) == expected, [r.route for r in rows]
    return rows


def test_routing_and_a_user_check_escalate_in_process(
    runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path
) -> None:
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=SHORT, max_tokens=300)  # type: ignore[arg-type]
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    route = "default: small -> gpt-4o-mini (no rule matched); escalated: large -> gpt-4o (distrusted model)"
    assert raw.headers["x-thrifty-route"] == route
    attempt, final = records(runtime, tmp_path, 2)
    assert (attempt.requested_model, attempt.served_model) == ("gpt-4o", "gpt-4o-mini")
    assert attempt.details["routing"]["failed_check"] == "distrusted model"
    assert attempt.cost is not None and attempt.savings == {"routing": -attempt.cost.total}
    assert (final.served_model, final.route) == ("gpt-4o", route)


def test_shadow_mode_and_the_escape_hatch_in_process(
    runtime: thrifty.Thrifty, simulator_url: str, tmp_path: Path
) -> None:
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
    shadow = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=SHORT,
        max_tokens=300,
        extra_headers={"x-thrifty-route": "shadow"},  # type: ignore[arg-type]
    )
    assert shadow.headers["x-thrifty-model"] == "gpt-4o"
    assert shadow.headers["x-thrifty-route"] == "shadow default: small -> gpt-4o-mini (no rule matched); served gpt-4o"
    off = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=SHORT,
        max_tokens=300,
        extra_headers={"x-thrifty-route": "off"},  # type: ignore[arg-type]
    )
    assert off.headers["x-thrifty-route"] == "off: gpt-4o (x-thrifty-route: off)"
    first, second = records(runtime, tmp_path, 2)
    assert first.route is not None and first.route.startswith("shadow ") and first.served_model == "gpt-4o"
    assert second.route == "off: gpt-4o (x-thrifty-route: off)"


def test_a_tier_header_and_a_bad_one_in_process(runtime: thrifty.Thrifty, simulator_url: str) -> None:
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test", max_retries=0))
    code = [{"role": "user", "content": "Why?\n```python\nprint(1/0)\n```"}]
    forced = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=code,  # type: ignore[arg-type]
        max_tokens=300,
        extra_headers={"x-thrifty-tier": "small", "x-thrifty-route": "shadow"},
    )
    assert forced.headers["x-thrifty-route"] == "shadow header: small -> gpt-4o-mini (x-thrifty-tier); served gpt-4o"
    with pytest.raises(openai.BadRequestError, match="x-thrifty-tier: no tier 'tiny'; tiers: small, large"):
        client.chat.completions.create(model="gpt-4o", messages=SHORT, extra_headers={"x-thrifty-tier": "tiny"})  # type: ignore[arg-type]


def test_a_routed_call_is_priced_at_the_served_model_with_its_saving(tmp_path: Path, simulator_url: str) -> None:
    instance = thrifty.Thrifty(
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}", journal_dir=tmp_path / "journal", optimise=OPTIMISE
    )
    try:
        client = instance.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), user="ann")
        stream = client.chat.completions.create(model="gpt-4o", messages=SHORT, max_tokens=300, stream=True)  # type: ignore[arg-type]
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text
        (row,) = records(instance, tmp_path, 1)
    finally:
        instance.close()
    assert row.served_model == "gpt-4o-mini" and row.stream
    assert row.usage.output_tokens == 7  # ann's plan caps max_tokens at 7
    assert row.details["output_cap"]["plan"] == "free"
    assert row.savings["routing"] > 0


def test_an_anthropic_client_routes_in_process(tmp_path: Path, simulator_url: str) -> None:
    optimise = {
        "tiers": {"small": ["claude-haiku-4-5"], "large": ["claude-opus-4-6"]},
        "routing": {"policy": "cheapest"},
    }
    instance = thrifty.Thrifty(
        ledger=f"sqlite:///{tmp_path / 'ledger.db'}", journal_dir=tmp_path / "journal", optimise=optimise
    )
    try:
        client = instance.wrap(anthropic.Anthropic(base_url=simulator_url, api_key="sk-test"))
        raw = client.messages.with_raw_response.create(model="claude-opus-4-6", max_tokens=300, messages=SHORT)  # type: ignore[arg-type]
        assert raw.parse().content
        assert raw.headers["x-thrifty-model"] == "claude-haiku-4-5"
        (row,) = records(instance, tmp_path, 1)
    finally:
        instance.close()
    assert row.requested_model == "claude-opus-4-6" and row.served_model == "claude-haiku-4-5"
    assert row.savings["routing"] > 0
