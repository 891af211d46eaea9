"""Routing's pure parts: rules, the cheapest capable model, answer checks, the learned router,
the evaluation metrics, and the router step's policies with a stand-in for the rest of the
pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from thrifty.core.messages import ChatRequest, ImagePart, Message, TextPart, Tool
from thrifty.core.routing.checks import BUILTIN_CHECKS, answer_from_body, run_checks, schema_error
from thrifty.core.routing.decision import Decision, Escalation
from thrifty.core.routing.embedding import HashedNgrams
from thrifty.core.routing.evaluate import Outcome, evaluate_router, split_rows
from thrifty.core.routing.features import RequestFacts, has_code
from thrifty.core.routing.learned import LearnedRouter, train_router
from thrifty.core.routing.outcomes import OutcomesError, parse_outcomes
from thrifty.core.routing.rules import Rule, RuleSet
from thrifty.core.routing.tiers import ModelOption, TierTable
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.call import Attribution, Call, Result
from thrifty.pipeline.steps.routing import ClassifierSettings, Pricer, RouterStep

COUNTER = TokenCounter()


def facts(
    text: str, *, tools: bool = False, image: bool = False, feature: str | None = None, **extra: Any
) -> RequestFacts:
    parts: tuple[Any, ...] = (TextPart(text),)
    if image:
        parts += (ImagePart(url="https://example.com/cat.png"),)
    request = ChatRequest(
        model="gpt-4o",
        messages=(Message("system", (TextPart("Be helpful."),)), Message("user", parts)),
        tools=(Tool("lookup", parameters={"type": "object"}),) if tools else (),
        extra=extra,
    )
    return RequestFacts(
        request,
        body_size=len(text) + 100,
        count_text=lambda t: COUNTER.count_text(t, "gpt-4o").input_tokens,
        count_request=lambda r: COUNTER.count_request(r, "gpt-4o").input_tokens,
        feature=feature,
        tags=("beta",),
    )


# -- rules and facts --------------------------------------------------------------------------


def test_code_is_recognised_fenced_or_by_its_lines() -> None:
    assert has_code("Fix this:\n```python\nprint(1)\n```")
    assert has_code("def f(x):\n    return x + 1\n")
    assert has_code("int main() {\n  return 0;\n}")
    assert not has_code("What is the capital of France? It is a city; a big one.")


def test_requested_capabilities_come_from_the_request() -> None:
    assert facts("hi", tools=True).needs == frozenset({"tools"})
    assert facts("hi", image=True).needs == frozenset({"vision"})
    assert facts("hi", response_format={"type": "json_object"}).needs == frozenset({"json"})


def test_rules_match_in_order_on_each_condition() -> None:
    rules = RuleSet(
        [
            Rule.build("code", 2, has_code=True),
            Rule.build("words", 1, keywords=["step by step", "prove"]),
            Rule.build("regex", 1, regex=[r"(?i)\bSQL\b"]),
            Rule.build("support", 0, features=["support"]),
            Rule.build("tagged", 1, tags=["beta"], min_prompt_tokens=50),
            Rule.build("vision", 2, capabilities=["vision"]),
            Rule.build("short", 0, max_prompt_tokens=8),
        ]
    )

    def matched(f: RequestFacts) -> str | None:
        rule = rules.match(f)
        return rule.name if rule is not None else None

    assert matched(facts("```\nx = 1\n```")) == "code"
    assert matched(facts("Please think Step By Step about this")) == "words"
    assert matched(facts("stepbystep is not the phrase, it is a longer statement")) is None
    assert matched(facts("write me a query in sql for the sales table")) == "regex"
    assert matched(facts("my order is late, where is it and what happened to it", feature="support")) == "support"
    assert matched(facts("word " * 60)) == "tagged"
    assert matched(facts("look at this picture and tell me", image=True)) == "vision"
    assert matched(facts("hi there")) == "short"
    assert matched(facts("a question that is neither short nor special in any way at all")) is None


KEYWORD_TEXT = st.text(alphabet=st.sampled_from(list("Proveab SteBy-_.\u0130\u0131\u00dfk\u212a")), max_size=40)


@given(KEYWORD_TEXT, st.lists(KEYWORD_TEXT.filter(str.strip), min_size=1, max_size=3))
def test_the_keyword_precheck_never_changes_a_match(text: str, keywords: list[str]) -> None:
    rule = Rule.build("k", 1, keywords=keywords)
    assert rule.keywords is not None
    assert rule.matches(facts(text)) == (rule.keywords.search(text) is not None)


def test_token_bounds_count_only_when_the_byte_size_cannot_decide() -> None:
    counted: list[str] = []
    request = ChatRequest(model="gpt-4o", messages=(Message("user", (TextPart("tiny"),)),))
    f = RequestFacts(
        request,
        body_size=50,
        count_text=lambda t: counted.append(t) or 1,  # type: ignore[func-returns-value]
        count_request=lambda r: 10_000,
    )
    assert Rule.build("short", 0, max_prompt_tokens=100).matches(f)
    assert not Rule.build("long", 1, min_prompt_tokens=100).matches(f)
    assert not Rule.build("big", 1, min_context_tokens=1000).matches(f)  # 50 bytes: fewer than 1000 tokens
    assert counted == []
    assert Rule.build("mid", 1, min_prompt_tokens=1).matches(f)
    assert counted == ["tiny"]


# -- tiers ------------------------------------------------------------------------------------


def option(
    name: str, tier: int, inp: str, out: str, caps: set[str] | None = None, window: int | None = None
) -> ModelOption:
    return ModelOption(
        name,
        tier,
        frozenset(caps if caps is not None else {"tools", "vision", "json"}),
        window,
        Decimal(inp),
        Decimal(out),
    )


TABLE = TierTable(
    ["small", "medium", "large"],
    [
        option("mini", 0, "0.15", "0.6", caps={"json"}, window=1000),
        option("haiku", 0, "1", "5"),
        option("mid", 1, "0.4", "1.6"),
        option("big", 2, "2.5", "10"),
        option("huge-window", 2, "3", "15", window=1_000_000),
    ],
)


def choose(
    tier: int,
    needs: set[str] = frozenset(),
    ceiling: int = 2,
    bound: int = 200,
    tokens: int = 50,
    out: int | None = None,
) -> str | None:  # type: ignore[assignment]
    choice = TABLE.choose(
        tier,
        ceiling,
        frozenset(needs),
        input_bound=bound,
        input_tokens=lambda: tokens,
        max_output=out,
        expected_output=500,
    )
    return choice.model.name if choice is not None else None


def test_the_cheapest_capable_model_of_the_tier_or_above_wins() -> None:
    assert choose(0) == "mini"
    assert choose(0, {"tools"}) == "mid"  # mid (tier 1) is cheaper than haiku (tier 0)
    assert choose(0, {"vision"}, ceiling=0) == "haiku"
    assert choose(1) == "mid"
    assert choose(2) == "big"
    assert choose(0, {"audio"}) is None
    # Too big for mini's window of 1000 tokens: counted, then the next cheapest.
    assert choose(0, bound=5000, tokens=2000) == "mid"
    assert choose(0, bound=5000, tokens=900, out=200) == "mid"  # 900 in + 200 out > 1000
    assert choose(0, bound=5000, tokens=700, out=200) == "mini"


def test_tier_lookup() -> None:
    assert TABLE.tier_of("mid") == 1
    assert TABLE.tier_of("nope") is None
    assert TABLE.index("large") == 2
    assert TABLE.middle == 1


# -- decisions and checks ---------------------------------------------------------------------


def test_a_decision_describes_itself_for_the_ledger_and_the_header() -> None:
    decision = Decision("rules", "gpt-4o", "gpt-4o-mini", "rule short", "small")
    assert decision.describe() == "rules: small -> gpt-4o-mini (rule short)"
    escalated = decision.escalated(Escalation("gpt-4o", "large", "finish_reason length", "gpt-4o-mini"))
    assert escalated.served == "gpt-4o"
    assert escalated.describe().endswith("; escalated: large -> gpt-4o (finish_reason length)")
    shadow = Decision("learned", "gpt-4o", "gpt-4o-mini", "score 0.1", "small", shadow=True)
    assert shadow.describe().startswith("shadow learned:") and shadow.describe().endswith("served gpt-4o")
    assert not shadow.applied and decision.applied
    assert (
        Decision("off", "gpt-4o", "gpt-4o", "x-thrifty-route: off").describe() == "off: gpt-4o (x-thrifty-route: off)"
    )


def openai_body(content: str | None, finish: str = "stop", **message: Any) -> bytes:
    return orjson.dumps(
        {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content, **message}, "finish_reason": finish}
            ]
        }
    )


CHECKS = list(BUILTIN_CHECKS.values())


def failure(body: bytes, api: str = "openai", **kwargs: Any) -> str | None:
    answer = answer_from_body(body, api, **kwargs)
    assert answer is not None
    return run_checks(answer, CHECKS)


def test_answers_that_fail_the_builtin_checks() -> None:
    assert failure(openai_body("Paris is the capital.")) is None
    assert failure(openai_body("")) == "empty answer"
    assert failure(openai_body("The answer is", "length")) == "finish_reason length"
    assert failure(openai_body("I'm sorry, but I can't help with that request.")) == "refusal"
    assert failure(openai_body(None, refusal="No.")) == "refusal"
    assert failure(openai_body("Sure! I can't believe how easy this is: 4.")) is None
    assert failure(openai_body("{not json"), json_requested=True) == "invalid JSON"
    assert failure(openai_body('{"a": 1}'), json_requested=True) is None
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a", "b"]}
    assert "missing required property 'b'" in (
        failure(openai_body('{"a": 1}'), json_requested=True, json_schema=schema) or ""
    )
    anthropic = orjson.dumps({"content": [{"type": "text", "text": "Half an answ"}], "stop_reason": "max_tokens"})
    assert failure(anthropic, "anthropic") == "finish_reason length"


def test_tool_calls_are_checked_against_their_schema() -> None:
    tools = {"weather": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

    def call(name: str, arguments: str) -> bytes:
        return openai_body(
            None,
            "tool_calls",
            tool_calls=[{"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}],
        )

    assert failure(call("weather", '{"city": "Oslo"}'), tools=tools) is None
    assert (
        failure(call("weather", '{"town": "Oslo"}'), tools=tools)
        == "tool call weather: $: missing required property 'city'"
    )
    assert failure(call("weather", '{"city": 3}'), tools=tools) == "tool call weather: $.city: expected string"
    assert failure(call("weather", "{oops"), tools=tools) == "tool call weather: arguments are not JSON"
    assert failure(call("stocks", "{}"), tools=tools) == "tool call to unknown tool 'stocks'"


def test_a_user_check_that_raises_fails_the_answer() -> None:
    def broken(answer: Any) -> str | None:
        raise RuntimeError("bug")

    answer = answer_from_body(openai_body("fine"), "openai")
    assert answer is not None
    assert run_checks(answer, [broken]) == "check broken raised RuntimeError: bug"


def test_schema_keywords() -> None:
    assert schema_error([1, 2], {"type": "array", "items": {"type": "integer"}, "maxItems": 2}) is None
    assert schema_error([1, "x"], {"type": "array", "items": {"type": "integer"}}) == "$[1]: expected integer"
    assert schema_error("b", {"enum": ["a"]}) == "$: not one of the allowed values"
    assert schema_error({"x": 1}, {"type": "object", "additionalProperties": False}) == "$: unexpected property 'x'"
    assert schema_error(5, {"anyOf": [{"type": "string"}, {"type": "integer"}]}) is None
    assert schema_error(5, {"type": "number", "maximum": 4}) == "$: above the maximum 4"


# -- the learned router -----------------------------------------------------------------------


def synthetic(n: int) -> tuple[list[str], list[float], list[float]]:
    """Prompts about proofs need the strong model; prompts about greetings do not."""
    prompts, weak, strong = [], [], []
    for i in range(n):
        hard = i % 2 == 0
        prompts.append(f"prove theorem {i} about integrals carefully" if hard else f"say hello to friend number {i}")
        weak.append(0.0 if hard else 1.0)
        strong.append(1.0)
    return prompts, weak, strong


def test_the_learned_router_learns_and_survives_a_round_trip() -> None:
    embedder = HashedNgrams(256)
    prompts, weak, strong = synthetic(60)
    router = train_router(embedder, prompts, weak, strong, iterations=150)
    hard = router.score(embedder.embed_one("prove the theorem about integrals"), "prove the theorem about integrals")
    easy = router.score(embedder.embed_one("say hello to my friend"), "say hello to my friend")
    assert hard > 0.5 > easy
    again = LearnedRouter.from_document(json.loads(json.dumps(router.to_document())))
    assert again.score(embedder.embed_one("prove it"), "prove it") == pytest.approx(
        router.score(embedder.embed_one("prove it"), "prove it"), abs=1e-5
    )
    assert router.tier(1.0, [router.threshold], 2) == 1
    assert router.tier(0.0, [router.threshold], 2) == 0
    assert 0 < router.threshold < 1
    assert router.tier(0.0, [0.3, 0.6], 3) == 0
    assert router.tier(0.5, [0.3, 0.6], 3) == 1
    assert router.tier(0.9, [0.5], 3) == 2


def test_hashed_embeddings_are_unit_length_and_deterministic() -> None:
    embedder = HashedNgrams(1024)
    a, b = embedder.embed(["the same text", "the same text"])
    assert float((a * a).sum()) == pytest.approx(1.0)
    assert (a == b).all()
    assert embedder.name == "hashed-ngrams-v1:1024"
    assert not embedder.embed([""]).any()


# -- evaluation -------------------------------------------------------------------------------


def rows(pairs: list[tuple[float, float]]) -> list[Outcome]:
    return [Outcome(f"p{i}", w, s, Decimal("0.001"), Decimal("0.01")) for i, (w, s) in enumerate(pairs)]


def test_a_router_that_scores_everything_alike_is_the_random_router() -> None:
    data = rows([(0, 1), (1, 1), (0, 0), (1, 0), (0, 1), (1, 1)] * 5)
    report = evaluate_router("random", [0.0] * len(data), data)
    assert report.apgr == pytest.approx(0.5)
    assert report.cpt50 == pytest.approx(0.5)
    assert report.cpt80 == pytest.approx(0.8)


def test_a_perfect_router_recovers_the_gap_with_the_fewest_strong_calls() -> None:
    data = rows([(0, 1)] * 2 + [(1, 1)] * 8)  # weak 0.8, strong 1.0
    perfect = [1.0, 1.0] + [0.0] * 8
    report = evaluate_router("perfect", perfect, data)
    assert report.cpt50 == pytest.approx(0.1)
    assert report.cpt80 == pytest.approx(0.16)
    assert report.apgr == pytest.approx(0.9)
    # 95% of 1.0 needs 0.95 quality: 1.5 of the 2 gaining calls, 15% of calls to the strong model.
    assert report.share_at_target == pytest.approx(0.15)
    expected = 1 - (Decimal("0.001") * 10 + Decimal("0.009") * Decimal("1.5")) / Decimal("0.1")
    assert report.saving_at_target == pytest.approx(float(expected))
    worst = evaluate_router("backwards", [-s for s in perfect], data)
    assert worst.apgr is not None and worst.apgr < 0.5


def test_a_split_is_seeded_and_complete() -> None:
    train, test = split_rows(100, 0.7, 3)
    assert len(train) == 70 and len(test) == 30 and not set(train) & set(test)
    assert split_rows(100, 0.7, 3) == (train, test)
    assert split_rows(100, 0.7, 4) != (train, test)


def test_outcomes_in_the_routellm_format() -> None:
    header = ["prompt", "big", "small", "big_response"]
    data = [
        {"prompt": "q1", "big": "True", "small": "False", "big_response": "a"},
        {"prompt": "q2", "big": "1", "small": "0.5"},
    ]
    table = parse_outcomes(header, data)
    assert (table.weak_model, table.strong_model) == ("small", "big")
    assert table.weak == (0.0, 0.5) and table.strong == (1.0, 1.0)
    assert table.strong_responses == ("a", "") and table.weak_responses is None
    with pytest.raises(OutcomesError, match="exactly two models"):
        parse_outcomes(["prompt", "a"], [{"prompt": "q", "a": "True"}])
    with pytest.raises(OutcomesError, match="not True/False or a number"):
        parse_outcomes(header, [{"prompt": "q", "big": "maybe", "small": "1"}], weak="small", strong="big")


# -- the router step, with a stand-in for what follows it --------------------------------------


def make_call(text: str, model: str = "big", **hints: str) -> Call:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    request = ChatRequest(model=model, messages=(Message("user", (TextPart(text),)),))
    return Call(
        request_id="req_1",
        client_api="openai",
        body=body,
        request=request,
        model=model,
        stream=False,
        attribution=Attribution(),
        ts=datetime.now(UTC),
        started=0.0,
        hints=dict(hints),
    )


class Recording:
    """The router step, noting the calls of the rows it made (``Result.records``: a classifier's
    call, an escalated attempt) as the record step would record them."""

    def __init__(self, step: RouterStep, recorded: list[Call]) -> None:
        self.step, self.recorded = step, recorded

    async def __call__(self, call: Call, next_step: Callable[[Call], Any]) -> Result:
        result = await self.step(call, next_step)
        self.recorded.extend(row for row, _ in result.records)
        return result


def router_step(recorded: list[Call], **kwargs: Any) -> Recording:
    table = TierTable(
        ["small", "medium", "large"],
        [option("mini", 0, "0.1", "0.4"), option("mid", 1, "1", "4"), option("big", 2, "5", "20")],
    )
    settings: dict[str, Any] = {
        "tiers": table,
        "policies": ["rules"],
        "rules": RuleSet([Rule.build("hard", 2, keywords=["prove"])]),
        "default_tier": 0,
        "shadow": False,
        "upgrade": False,
        "pinned": frozenset({"pinned-model"}),
        "expected_output_tokens": 100,
        "counter": COUNTER,
        "pricer": Pricer.__new__(Pricer),
        "priced_as": lambda name: "gpt-4o",
    }
    settings.update(kwargs)
    return Recording(RouterStep(**settings), recorded)


def answer_with(text: Callable[[Call], str]) -> Callable[[Call], Any]:
    async def next_step(call: Call) -> Result:
        return Result(status=200, body=openai_body(text(call)), served_model=call.model)

    return next_step


def run(step: Recording, call: Call, text: Callable[[Call], str] = lambda c: "fine") -> Result:
    return asyncio.run(step(call, answer_with(text)))


def test_the_router_step_routes_by_rule_and_default() -> None:
    step = router_step([])
    call = make_call("hello")
    result = run(step, call)
    assert call.model == "big" and result.served_model == "mini"  # as asked; the routed copy went on
    assert call.route == "default: small -> mini (no rule matched)"
    assert (b"x-thrifty-route", call.route.encode()) in result.headers
    hard = make_call("prove it")
    assert run(step, hard).served_model == "big" and hard.route == "rules: large -> big (rule hard)"


def test_escape_hatches() -> None:
    step = router_step([])
    off = make_call("hello", route="off")
    assert run(step, off).served_model == "big" and off.route == "off: big (x-thrifty-route: off)"
    tier = make_call("hello", tier="medium")
    assert run(step, tier).served_model == "mid" and tier.route == "header: medium -> mid (x-thrifty-tier)"
    bad = make_call("hello", tier="gigantic")
    assert run(step, bad).status == 400
    pinned = make_call("hello", model="pinned-model")
    assert (
        run(step, pinned).served_model == "pinned-model"
        and pinned.route is not None
        and pinned.route.startswith("pinned")
    )
    shadow = make_call("hello", route="shadow")
    assert (
        run(step, shadow).served_model == "big"
        and shadow.route == "shadow default: small -> mini (no rule matched); served big"
    )
    # The requested model's tier is the ceiling: asking for mid never gets big.
    capped = make_call("prove it", model="mid")
    assert run(step, capped).served_model == "mid" and "capped at the requested model's tier" in (capped.route or "")


def test_a_failed_check_escalates_one_tier_and_records_the_failed_attempt() -> None:
    recorded: list[Call] = []
    step = router_step(recorded, checks=list(BUILTIN_CHECKS.values()))
    call = make_call("hello")
    result = run(step, call, lambda c: "" if c.model == "mini" else "a real answer")
    assert call.model == "big" and result.served_model == "mid"
    assert call.route == "default: small -> mini (no rule matched); escalated: medium -> mid (empty answer)"
    (attempt,) = recorded
    assert attempt.model == "mini" and attempt.details["routing"]["failed_check"] == "empty answer"
    assert attempt.request.model == "big"
    # The attempt is an extra call: its whole cost counts against routing.
    from thrifty.core.pricing import Cost

    for listener in attempt.cost_listeners:
        listener(Cost(output=Decimal("0.002")), None)  # type: ignore[arg-type]
    assert attempt.savings == {"routing": Decimal("-0.002")}


def test_the_classifier_names_a_tier_or_the_middle_tier_is_used() -> None:
    recorded: list[Call] = []
    settings = ClassifierSettings("mini", "Tiers: {tiers}", 5, 1000)
    step = router_step(recorded, policies=["classifier"], classifier=settings)

    def answers(reply: str) -> Callable[[Call], str]:
        return lambda c: reply if c.details.get("purpose") == "routing classifier" else "ok"

    for reply, model in (("small", "mini"), ("Large.", "big"), ("I think medium", "mid"), ("no idea", "mid")):
        call = make_call("hello")
        assert run(step, call, answers(reply)).served_model == model, reply
    assert len(recorded) == 4
    assert recorded[0].model == "mini" and recorded[0].body["messages"][0]["content"] == "Tiers: small, medium, large"
    assert recorded[0].hints["route"] == "internal"
