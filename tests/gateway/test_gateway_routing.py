"""Routing, compression and output caps through the gateway, with the official SDKs as clients:
policies, escalation (both calls recorded), shadow mode, the escape hatches, and what each
recorded in the ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.support.gateway import MODELS, RunningGateway, expected_cost, running_gateway
from thrifty.core.ledger import LedgerRecord
from thrifty.core.routing.embedding import HashedNgrams
from thrifty.core.routing.learned import train_router
from thrifty.core.tokens.counter import TokenCounter
from thrifty.stores.ledger import open_ledger
from thrifty.wire.openai_chat import parse_openai_request

TIERS = {"small": ["gpt-4o-mini", "claude-haiku-4-5"], "large": ["gpt-4o", "claude-sonnet-4-5"]}
RULES = [
    {"name": "code", "has_code": True, "tier": "large"},
    {"name": "hard", "keywords": ["prove", "step by step"], "tier": "large"},
]
SHORT = [{"role": "user", "content": "What is the capital of France?"}]
CODE = [{"role": "user", "content": "Why does this fail?\n```python\nprint(1/0)\n```"}]


def rows_for(gateway: RunningGateway, request_id: str, expected: int, timeout: float = 10.0) -> list[LedgerRecord]:
    """The ledger rows of one request (oldest first), once there are ``expected`` of them."""
    deadline = time.monotonic() + timeout
    store = open_ledger(gateway.runtime.config.storage.ledger)
    try:
        while True:
            gateway.runtime.writer.flush(timeout=1.0)
            rows = [r for r in store.records(limit=1000) if r.request_id == request_id]
            if len(rows) >= expected or time.monotonic() > deadline:
                assert len(rows) == expected, [r.route for r in rows]
                return sorted(rows, key=lambda r: r.id)
            time.sleep(0.05)
    finally:
        store.close()


def gpt(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="not-needed", max_retries=0)


@pytest.fixture(scope="module")
def routed(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    home = tmp_path_factory.mktemp("routed")
    routing = {"policy": "rules", "rules": RULES, "pinned_models": ["claude-sonnet-4-5"]}
    with running_gateway(simulator_url, home, tiers=TIERS, routing=routing) as running:
        yield running


def test_rules_send_a_short_question_to_the_cheapest_capable_model(routed: RunningGateway) -> None:
    raw = gpt(routed).chat.completions.with_raw_response.create(model="gpt-4o", messages=SHORT, max_tokens=400)  # type: ignore[arg-type]
    raw.parse()
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    route = "default: small -> gpt-4o-mini (no rule matched)"
    assert raw.headers["x-thrifty-route"] == route
    (row,) = rows_for(routed, raw.headers["x-thrifty-request-id"], 1)
    assert (row.requested_model, row.served_model, row.route) == ("gpt-4o", "gpt-4o-mini", route)
    assert row.details["routing"]["source"] == "default" and row.details["routing"]["applied"]
    assert row.cost is not None
    asked = expected_cost(row.usage, "gpt-4o", row)
    assert row.cost.total == expected_cost(row.usage, "gpt-4o-mini", row)
    assert row.savings["routing"] == asked - row.cost.total > 0
    assert row.counterfactual_cost == asked


def test_a_rule_sends_code_to_the_strong_tier(routed: RunningGateway) -> None:
    raw = gpt(routed).chat.completions.with_raw_response.create(model="gpt-4o", messages=CODE, max_tokens=400)  # type: ignore[arg-type]
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    assert raw.headers["x-thrifty-route"] == "rules: large -> gpt-4o (rule code)"
    (row,) = rows_for(routed, raw.headers["x-thrifty-request-id"], 1)
    assert row.served_model == "gpt-4o" and "routing" not in row.savings


def test_an_anthropic_client_is_served_by_the_cheapest_model_across_providers(routed: RunningGateway) -> None:
    claude = anthropic.Anthropic(base_url=routed.url, api_key="not-needed", max_retries=0)
    raw = claude.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=400, messages=SHORT)  # type: ignore[arg-type]
    message = raw.parse()
    assert message.content[0].text  # type: ignore[union-attr]
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"  # cheaper than haiku, same tier
    (row,) = rows_for(routed, raw.headers["x-thrifty-request-id"], 1)
    assert row.requested_model == "claude-haiku-4-5" and row.served_model == "gpt-4o-mini"
    assert row.savings["routing"] > 0


def test_escape_hatches(routed: RunningGateway) -> None:
    client = gpt(routed)
    off = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=SHORT,
        max_tokens=400,
        extra_headers={"x-thrifty-route": "off"},  # type: ignore[arg-type]
    )
    assert off.headers["x-thrifty-model"] == "gpt-4o"
    assert off.headers["x-thrifty-route"] == "off: gpt-4o (x-thrifty-route: off)"
    tier = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=CODE,
        max_tokens=400,
        extra_headers={"x-thrifty-tier": "small"},  # type: ignore[arg-type]
    )
    assert tier.headers["x-thrifty-model"] == "gpt-4o-mini"
    assert tier.headers["x-thrifty-route"] == "header: small -> gpt-4o-mini (x-thrifty-tier)"
    with pytest.raises(openai.BadRequestError, match="no tier 'medium'"):
        client.chat.completions.create(model="gpt-4o", messages=SHORT, extra_headers={"x-thrifty-tier": "medium"})  # type: ignore[arg-type]
    pinned = client.chat.completions.with_raw_response.create(model="claude-sonnet-4-5", messages=SHORT, max_tokens=400)  # type: ignore[arg-type]
    assert pinned.headers["x-thrifty-model"] == "claude-sonnet-4-5"
    assert pinned.headers["x-thrifty-route"] == "pinned: claude-sonnet-4-5 (a pinned model)"
    shadow = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=SHORT,
        max_tokens=400,
        extra_headers={"x-thrifty-route": "shadow"},  # type: ignore[arg-type]
    )
    assert shadow.headers["x-thrifty-model"] == "gpt-4o"
    (row,) = rows_for(routed, shadow.headers["x-thrifty-request-id"], 1)
    assert row.route == "shadow default: small -> gpt-4o-mini (no rule matched); served gpt-4o"
    assert row.served_model == "gpt-4o" and not row.savings.get("routing")
    assert row.details["routing"] == {
        "source": "default",
        "requested": "gpt-4o",
        "model": "gpt-4o-mini",
        "tier": "small",
        "reason": "no rule matched",
        "applied": False,
        "shadow": True,
    }


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-thrifty-tier": "medium"}, "x-thrifty-tier: no tier 'medium'; tiers: small, large"),
        ({"x-thrifty-route": "of"}, "x-thrifty-route: expected on, off or shadow; got 'of'"),
        ({"x-thrifty-route": "off", "x-thrifty-tier": "huge"}, "x-thrifty-tier: no tier 'huge'"),
    ],
)
def test_a_bad_routing_header_is_a_400_in_the_callers_format(
    routed: RunningGateway, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        gpt(routed).chat.completions.create(model="gpt-4o", messages=SHORT, extra_headers=headers)  # type: ignore[arg-type]
    assert raised.value.status_code == 400
    error = raised.value.body
    assert isinstance(error, dict) and message in error["message"] and error["type"] == "invalid_request_error"
    claude = anthropic.Anthropic(base_url=routed.url, api_key="not-needed", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        # A model in no tier: the header is still checked.
        claude.messages.create(model="tiny-window", max_tokens=20, messages=SHORT, extra_headers=headers)  # type: ignore[arg-type]
    assert refused.value.status_code == 400
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and message in body["error"]["message"]


def test_a_model_in_no_tier_is_served_as_asked(routed: RunningGateway) -> None:
    raw = gpt(routed).chat.completions.with_raw_response.create(model="tiny-window", messages=SHORT, max_tokens=20)  # type: ignore[arg-type]
    assert raw.headers["x-thrifty-route"] == "unrouted: tiny-window (the model is in no tier)"


# -- escalation -------------------------------------------------------------------------------

# Haiku may write 3 tokens at most: an OpenAI client's request without max_tokens gets that as
# Anthropic's required max_tokens, so its answer stops at "max_tokens" (finish_reason length).
CAPPED_MODELS = [{**m, "max_output_tokens": 3} if m["name"] == "claude-haiku-4-5" else m for m in MODELS]


@pytest.fixture(scope="module")
def escalating(simulator_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    home = tmp_path_factory.mktemp("escalating")
    routing = {"policy": "cheapest", "escalation": {"streams": True}}
    tiers = {"small": ["claude-haiku-4-5"], "large": ["gpt-4o"]}
    with running_gateway(simulator_url, home, models=CAPPED_MODELS, tiers=tiers, routing=routing) as running:
        yield running


def test_a_truncated_answer_is_escalated_and_both_calls_are_recorded(escalating: RunningGateway) -> None:
    raw = gpt(escalating).chat.completions.with_raw_response.create(model="gpt-4o", messages=SHORT)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.choices[0].finish_reason == "stop"
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    route = "cheapest: small -> claude-haiku-4-5 (cheapest capable); escalated: large -> gpt-4o (finish_reason length)"
    assert raw.headers["x-thrifty-route"] == route
    first, second = rows_for(escalating, raw.headers["x-thrifty-request-id"], 2)
    assert (first.requested_model, first.served_model) == ("gpt-4o", "claude-haiku-4-5")
    assert first.usage.output_tokens == 3
    assert first.route == route.split("; escalated", maxsplit=1)[0] + "; failed check: finish_reason length; escalated"
    assert first.details["routing"]["failed_check"] == "finish_reason length"
    assert first.cost is not None and first.cost.total > 0
    assert first.savings == {"routing": -first.cost.total}
    assert first.counterfactual_cost == 0  # it would not have happened without routing
    assert (second.requested_model, second.served_model, second.route) == ("gpt-4o", "gpt-4o", route)
    assert second.cost is not None and second.counterfactual_cost == second.cost.total
    assert second.details["routing"]["escalations"] == [
        {"from": "claude-haiku-4-5", "model": "gpt-4o", "tier": "large", "reason": "finish_reason length"}
    ]


def test_a_streamed_answer_is_checked_before_it_is_sent_when_asked(escalating: RunningGateway) -> None:
    with gpt(escalating).chat.completions.with_streaming_response.create(
        model="gpt-4o",
        messages=SHORT,
        stream=True,  # type: ignore[arg-type]
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        assert response.headers["x-thrifty-model"] == "gpt-4o"
        chunks = list(response.parse())
    assert chunks[-1].choices[0].finish_reason == "stop"
    first, second = rows_for(escalating, request_id, 2)
    assert first.served_model == "claude-haiku-4-5" and first.stream and first.usage.output_tokens == 3
    assert second.served_model == "gpt-4o" and second.usage.output_tokens > 3


# -- classifier and learned policies ----------------------------------------------------------


def test_the_classifier_is_a_priced_call_and_an_unexpected_answer_means_the_middle_tier(
    simulator_url: str, tmp_path: Path
) -> None:
    routing = {"policy": "classifier", "classifier": {"model": "gpt-4o-mini"}}
    tiers = {"small": ["gpt-4o-mini"], "medium": ["claude-haiku-4-5"], "large": ["gpt-4o"]}
    with running_gateway(simulator_url, tmp_path, tiers=tiers, routing=routing) as gateway:
        raw = gpt(gateway).chat.completions.with_raw_response.create(model="gpt-4o", messages=SHORT, max_tokens=400)  # type: ignore[arg-type]
        # The simulator answers with filler text, never a tier name: the middle tier serves.
        assert raw.headers["x-thrifty-model"] == "claude-haiku-4-5"
        classifier, call = rows_for(gateway, raw.headers["x-thrifty-request-id"], 2)
    assert classifier.requested_model == classifier.served_model == "gpt-4o-mini"
    assert classifier.details["purpose"] == "routing classifier"
    assert classifier.usage.output_tokens <= 8 and classifier.cost is not None
    assert classifier.savings == {"routing": -classifier.cost.total}
    assert call.route is not None and call.route.startswith(
        "classifier: medium -> claude-haiku-4-5 (unexpected classifier answer"
    )


def test_the_learned_router_routes_without_calling_a_model(simulator_url: str, tmp_path: Path) -> None:
    embedder = HashedNgrams(1024)
    prompts = [f"prove lemma {i} about prime gaps rigorously" for i in range(20)]
    prompts += [f"say hi to my colleague number {i}" for i in range(20)]
    router = train_router(embedder, prompts, [0.0] * 20 + [1.0] * 20, [1.0] * 40, iterations=150)
    (tmp_path / "router.json").write_bytes(orjson.dumps(router.to_document()))
    routing = {"policy": "learned", "learned": {"path": "router.json", "thresholds": [0.5]}}
    with running_gateway(simulator_url, tmp_path, tiers=TIERS, routing=routing) as gateway:
        client = gpt(gateway)
        hard = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "prove the lemma about prime gaps"}],
            max_tokens=400,  # type: ignore[arg-type]
        )
        easy = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "say hi to my colleague"}],
            max_tokens=400,  # type: ignore[arg-type]
        )
        assert hard.headers["x-thrifty-model"] == "gpt-4o"
        assert easy.headers["x-thrifty-model"] == "gpt-4o-mini"
        assert hard.headers["x-thrifty-route"].startswith("learned: large -> gpt-4o (score ")
        (row,) = rows_for(gateway, easy.headers["x-thrifty-request-id"], 1)
        assert row.details["routing"]["source"] == "learned"


# -- compression and output caps --------------------------------------------------------------


def long_conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You   are   a   careful   assistant."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}:   tell me about    topic {i}.\n\n\n\n\nThanks!   "})
        messages.append({"role": "assistant", "content": f"Topic {i}    is    interesting.   " * 20})
    messages.append({"role": "user", "content": "And   finally, the   summary?"})
    return messages


def test_compression_sends_fewer_tokens_and_records_what_it_saved(simulator_url: str, tmp_path: Path) -> None:
    compression = {"whitespace": {}, "history": {"max_turns": 2}}
    with running_gateway(simulator_url, tmp_path, compression=compression) as gateway:
        messages = long_conversation(8)
        raw = gpt(gateway).chat.completions.with_raw_response.create(model="gpt-4o", messages=messages, max_tokens=50)  # type: ignore[arg-type]
        completion = raw.parse()
        (row,) = rows_for(gateway, raw.headers["x-thrifty-request-id"], 1)
    uncompressed = TokenCounter().count_request(
        parse_openai_request({"model": "gpt-4o", "messages": messages}), "gpt-4o"
    )
    assert completion.usage is not None
    sent = completion.usage.prompt_tokens
    details = row.details["compression"]
    assert details["messages_dropped"] == 14 and details["turns"] == 9 and details["turns_kept"] == 2
    assert details["tokens_saved"] == details["history"] + details["whitespace"] > 0
    assert sent + details["tokens_saved"] == pytest.approx(uncompressed.input_tokens, rel=0.03)
    assert row.cost is not None and row.savings["compression"] > 0
    assert row.counterfactual_cost == row.cost.total + row.savings["compression"]


def test_dropped_turns_are_summarised_once(simulator_url: str, tmp_path: Path) -> None:
    compression = {"history": {"max_turns": 1, "summarise": {"model": "gpt-4o-mini", "max_tokens": 60}}}
    with running_gateway(simulator_url, tmp_path, compression=compression) as gateway:
        client = gpt(gateway)
        first = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=long_conversation(3), max_tokens=20
        )  # type: ignore[arg-type]
        summary, call = rows_for(gateway, first.headers["x-thrifty-request-id"], 2)
        second = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=long_conversation(3), max_tokens=20
        )  # type: ignore[arg-type]
        (again,) = rows_for(gateway, second.headers["x-thrifty-request-id"], 1)
    assert summary.details["purpose"] == "history summary" and summary.served_model == "gpt-4o-mini"
    assert summary.route == "compression: summary of dropped turns"
    assert summary.cost is not None and summary.savings == {"compression": -summary.cost.total}
    assert call.details["compression"]["summary"] == "new" and call.details["compression"]["summarised"]
    assert again.details["compression"]["summary"] == "cached"


def test_output_caps_follow_the_plan_and_never_raise_a_lower_limit(simulator_url: str, tmp_path: Path) -> None:
    caps = {"plans": {"free": 5, "pro": 100}, "users": {"ann": "free"}, "default_plan": "pro"}
    with running_gateway(simulator_url, tmp_path, output_caps=caps) as gateway:
        client = gpt(gateway)
        free = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=SHORT,
            max_tokens=400,
            extra_headers={"x-thrifty-user": "ann"},  # type: ignore[arg-type]
        )
        assert free.parse().usage.completion_tokens == 5  # type: ignore[union-attr]
        urgent = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=SHORT,
            max_tokens=400,
            extra_headers={"x-thrifty-user": "ann", "x-thrifty-urgency": "high"},  # type: ignore[arg-type]
        )
        assert urgent.parse().usage.completion_tokens <= 8  # type: ignore[union-attr]
        lower = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=SHORT, max_tokens=3)  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError, match="x-thrifty-urgency: expected one of low, normal, high"):
            client.chat.completions.create(
                model="gpt-4o",
                messages=SHORT,  # type: ignore[arg-type]
                extra_headers={"x-thrifty-urgency": "asap"},
            )
        assert lower.parse().usage.completion_tokens == 3  # type: ignore[union-attr]
        (row,) = rows_for(gateway, free.headers["x-thrifty-request-id"], 1)
        assert row.details["output_cap"] == {
            "plan": "free",
            "urgency": "normal",
            "cap": 5,
            "client_max_tokens": 400,
            "max_tokens": 5,
            "applied": True,
        }
        (row,) = rows_for(gateway, lower.headers["x-thrifty-request-id"], 1)
        assert row.details["output_cap"]["applied"] is False and row.details["output_cap"]["max_tokens"] == 3


def test_retrieved_chunks_are_pruned_and_their_marks_never_reach_the_provider(
    simulator_url: str, tmp_path: Path
) -> None:
    compression = {"retrieval": {"min_score": 0.5}}
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Context follows."},
                {"type": "text", "text": "Relevant: the launch is on Tuesday. " * 10, "thrifty_chunk": 0.9},
                {"type": "text", "text": "Irrelevant: a cake recipe. " * 10, "thrifty_chunk": 0.1},
            ],
        },
        {"role": "user", "content": "When is the launch?"},
    ]
    with running_gateway(simulator_url, tmp_path, compression=compression) as gateway:
        claude = anthropic.Anthropic(base_url=gateway.url, api_key="not-needed", max_retries=0)
        raw = claude.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=30, messages=messages)  # type: ignore[arg-type]
        raw.parse()
        (row,) = rows_for(gateway, raw.headers["x-thrifty-request-id"], 1)
    assert row.details["compression"]["chunks"] == 2 and row.details["compression"]["chunks_dropped"] == 1
    assert row.details["compression"]["retrieval"] > 0 and row.savings["compression"] > 0
    assert row.status == "ok"
    assert Decimal(raw.headers["x-thrifty-cost-usd"]) == row.cost.total  # type: ignore[union-attr]


def test_a_router_on_the_semantic_model_shares_the_semantic_caches_copy(simulator_url: str, tmp_path: Path) -> None:
    from thrifty.semantic.embedder import OnnxEmbedder

    embedder = OnnxEmbedder()
    prompts = [f"prove lemma {i} about prime gaps rigorously" for i in range(8)]
    prompts += [f"say hi to my colleague number {i}" for i in range(8)]
    router = train_router(embedder, prompts, [0.0] * 8 + [1.0] * 8, [1.0] * 16, iterations=150)
    (tmp_path / "router.json").write_bytes(orjson.dumps(router.to_document()))
    routing = {"policy": "learned", "learned": {"path": "router.json", "thresholds": [0.5]}}
    cache = {"semantic": {"enabled": True}}
    with running_gateway(simulator_url, tmp_path, tiers=TIERS, routing=routing, cache=cache) as gateway:
        runtime = gateway.runtime
        assert runtime.semantic is not None and runtime.optimisation is not None
        assert runtime.optimisation.learned is not None
        assert runtime.optimisation.learned.embedder is runtime.semantic.embedder  # one model in memory
        raw = gpt(gateway).chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "say hi to my colleague"}],
            max_tokens=400,  # type: ignore[arg-type]
        )
        assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
        assert raw.headers["x-thrifty-route"].startswith("learned: small -> gpt-4o-mini (score ")
