"""Routing and compression speed, each next to a baseline measured in the same run.

Run: .venv/bin/python bench/routing.py [--semantic]
Targets (issue 5): rule routing <= 50 µs a request; learned routing <= 3 ms including its
embedding; history compression of a 50-turn conversation <= 1 ms (summarisation calls excepted).

* rule routing: the router step's decision for a request -- its facts, seven rules, the cheapest
  capable model of three tiers -- over a mix of requests (short, long, code, tools).
* learned routing: embedding the last user message and scoring it, with a router trained on the
  development data (GSM8K outcomes); ``--semantic`` also times the local sentence model, and the
  score alone (what routing adds when the semantic cache has embedded the request already).
* history compression: a 50-turn conversation (101 messages) cut to a window and a token budget,
  whitespace normalised; warm (its messages' token counts remembered, as in a conversation whose
  earlier turns come back with each request) and cold (nothing remembered). What the request waits
  for is the compressed body; the exact tokens of the dropped turns, which only the ledger needs,
  are counted after the request has gone, while the upstream answers: timed on its own row.
* baselines, measured in the same run: parsing the same request from its JSON body, which every
  request pays anyway; and, for the cold history figures, counting each message's tokens once with
  tiktoken.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from _util import fmt_time, per_call_seconds
from thrifty.core.compression.compress import CompressionSettings, Prepared, finish, history_saving, prepare
from thrifty.core.routing.embedding import Embedder, HashedNgrams
from thrifty.core.routing.features import RequestFacts
from thrifty.core.routing.learned import train_router
from thrifty.core.routing.rules import Rule, RuleSet
from thrifty.core.routing.tiers import ModelOption, TierTable
from thrifty.core.tokens.counter import TokenCounter
from thrifty.pipeline.call import Attribution, Call, Result
from thrifty.pipeline.steps.compression import TextCounter
from thrifty.pipeline.steps.routing import Pricer, RouterStep
from thrifty.wire.openai_chat import parse_openai_request

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing-outcomes" / "gsm8k.csv"
ALL = frozenset({"tools", "vision", "json", "streaming"})


def requests() -> list[dict[str, object]]:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    return [
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant for a travel company."},
                {"role": "user", "content": "Plan a three day trip to Lisbon with museums and food. " * 12},
            ],
        },
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "Why does this fail?\n```py\nprint(1/0)\n```"}]},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": [tool]},
    ]


def rules() -> RuleSet:
    return RuleSet(
        [
            Rule.build("code", 2, has_code=True),
            Rule.build("hard-words", 2, keywords=["prove", "step by step", "analyse", "analyze", "debug"]),
            Rule.build("sql", 1, regex=[r"(?i)\bselect\b.+\bfrom\b"]),
            Rule.build("support", 0, features=["support"]),
            Rule.build("beta", 1, tags=["beta"]),
            Rule.build("long-context", 2, min_context_tokens=20_000),
            Rule.build("short", 0, max_prompt_tokens=200),
        ]
    )


def tier_table() -> TierTable:
    def option(name: str, tier: int, inp: str, out: str, window: int) -> ModelOption:
        return ModelOption(name, tier, ALL, window, Decimal(inp), Decimal(out))

    return TierTable(
        ["small", "medium", "large"],
        [
            option("gpt-4o-mini", 0, "0.15", "0.6", 128_000),
            option("claude-haiku-4-5", 0, "1", "5", 200_000),
            option("gpt-4.1-mini", 1, "0.4", "1.6", 1_000_000),
            option("gpt-4o", 2, "2.5", "10", 128_000),
            option("claude-sonnet-4-5", 2, "3", "15", 200_000),
        ],
    )


def make_call(body: dict[str, object]) -> Call:
    request = parse_openai_request(body)
    return Call(
        request_id="req",
        client_api="openai",
        body=body,
        request=request,
        model="gpt-4o",
        stream=False,
        attribution=Attribution(feature="search"),
        ts=datetime.now(UTC),
        started=0.0,
        body_size=len(orjson.dumps(body)),
    )


def bench_rules(counter: TokenCounter) -> tuple[float, float, float]:
    table, ruleset = tier_table(), rules()
    bodies = requests()
    raws = [orjson.dumps(b) for b in bodies]
    calls = [make_call(b) for b in bodies]
    model = "gpt-4o"

    def decide() -> None:
        for call in calls:
            facts = RequestFacts(
                call.request,
                body_size=call.body_size,
                count_text=lambda t: counter.count_text(t, model).input_tokens,
                count_request=lambda r: counter.count_request(r, model).input_tokens,
                feature=call.attribution.feature,
            )
            rule = ruleset.match(facts)
            table.choose(
                rule.tier if rule is not None else 0,
                2,
                facts.needs,
                input_bound=facts.body_size,
                input_tokens=lambda f=facts: f.context_tokens,  # type: ignore[misc]
                max_output=facts.max_output,
                expected_output=500,
            )

    step = RouterStep(
        tiers=table,
        policies=["rules"],
        rules=ruleset,
        default_tier=0,
        shadow=False,
        upgrade=False,
        pinned=frozenset(),
        expected_output_tokens=500,
        counter=counter,
        pricer=Pricer.__new__(Pricer),
        record=lambda call, result: None,
        priced_as=lambda name: name,
    )
    done = Result(status=200, body=b"{}")

    async def answer(call: Call) -> Result:
        return done

    async def through_step(n: int) -> None:
        for _ in range(n):
            for body in bodies:
                await step(make_call(body), answer)

    def parse() -> None:
        for raw in raws:
            parse_openai_request(orjson.loads(raw))

    n = len(bodies)
    decision = per_call_seconds(decide, calls=2000) / n
    baseline = per_call_seconds(parse, calls=2000) / n
    loop = asyncio.new_event_loop()
    rounds = 100  # many calls in one run of the loop: the loop's own start-up is not the step's
    made = per_call_seconds(lambda: loop.run_until_complete(through_step(rounds)), calls=10) / (n * rounds)
    setup = per_call_seconds(lambda: [make_call(b) for _ in range(rounds) for b in bodies], calls=10) / (n * rounds)
    loop.close()
    return decision, made - setup, baseline


def bench_learned(embedders: list[Embedder]) -> list[tuple[str, float, float, float]]:
    csv.field_size_limit(sys.maxsize)
    with GSM8K.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    prompts = [r["prompt"] for r in rows]
    weak = [1.0 if r["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True" else 0.0 for r in rows]
    strong = [1.0 if r["gpt-4-1106-preview"] == "True" else 0.0 for r in rows]
    sample = prompts[:50]
    out = []
    for embedder in embedders:
        router = train_router(embedder, prompts, weak, strong, folds=1)
        index = iter(range(10**9))

        def route(e: Embedder = embedder, r: Any = router, i: Iterator[int] = index) -> None:
            text = sample[next(i) % len(sample)]
            r.score(e.embed([text])[0], text)

        def parse(i: Iterator[int] = index) -> None:
            text = sample[next(i) % len(sample)]
            parse_openai_request({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})

        vectors = embedder.embed(sample)

        def score_only(r: Any = router, v: Any = vectors, i: Iterator[int] = index) -> None:
            k = next(i) % len(sample)
            r.score(v[k], sample[k])

        calls = 300 if isinstance(embedder, HashedNgrams) else 40
        timed = per_call_seconds(route, calls=calls)
        out.append(
            (embedder.name, timed, per_call_seconds(parse, calls=calls), per_call_seconds(score_only, calls=300))
        )
    return out


def row(label: str, seconds: float, baseline: float, target: float) -> None:
    verdict = "ok" if seconds <= target else "MISSED"
    print(
        f"{label:<64} {fmt_time(seconds):>10} {fmt_time(baseline):>10} {seconds / baseline:>8.1f}x"
        f"  <= {fmt_time(target):<8} {verdict}"
    )


def conversation(turns: int) -> dict[str, object]:
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are a careful assistant."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}:  how does   feature {i} work, and why?  "})
        messages.append({"role": "assistant", "content": f"Feature {i} works like this.   " * 8 + "\n\n\n\nDone."})
    messages.append({"role": "user", "content": "Summarise what we said."})
    return {"model": "gpt-4o", "messages": messages}


def bench_history(counter: TokenCounter) -> tuple[float, float, float, float, float]:
    body = conversation(50)
    raw = orjson.dumps(body)
    settings = CompressionSettings(whitespace=True, history=True, max_turns=10, max_tokens=2000)
    warm = TextCounter(counter)

    def compress(texts: TextCounter) -> Prepared:
        prepared = prepare(body, "openai", settings, lambda t: texts.count(t, "gpt-4o"), normalise=texts.normalise)
        finish(prepared, count_history=False)  # as the gateway does: the dropped turns are counted later
        return prepared

    def cold() -> None:
        compress(TextCounter(counter))

    def dropped_cold() -> None:
        history_saving(compress(TextCounter(counter)))

    texts = [str(m["content"]) for m in body["messages"]]  # type: ignore[attr-defined]

    def count_once() -> None:
        for text in texts:
            counter.text_tokens(text, "gpt-4o")

    return (
        per_call_seconds(lambda: compress(warm), calls=200),
        per_call_seconds(cold, calls=30),
        per_call_seconds(dropped_cold, calls=30),
        per_call_seconds(lambda: parse_openai_request(orjson.loads(raw)), calls=200),
        per_call_seconds(count_once, calls=30),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--semantic", action="store_true", help="also time the local sentence model")
    args = parser.parse_args()
    counter = TokenCounter()
    counter.encoding_for("gpt-4o")
    decision, step, parse = bench_rules(counter)
    print(f"{'what':<64} {'time':>10} {'baseline':>10} {'ratio':>9}  target")
    row("rule routing: the decision (facts, 7 rules, 3 tiers)", decision, parse, 50e-6)
    row("rule routing: the whole router step, stub upstream", step, parse, 50e-6)
    embedders: list[Embedder] = [HashedNgrams(4096, char_ngrams=False)]
    if args.semantic:
        from thrifty.semantic.embedder import OnnxEmbedder

        semantic = OnnxEmbedder()
        semantic.load()
        embedders.append(semantic)
    for name, seconds, baseline, scored in bench_learned(embedders):
        row(f"learned routing incl. embedding ({name})", seconds, baseline, 3e-3)
        if not name.startswith("hashed"):  # the semantic cache's embedding, reused: the score alone
            row("  the same, embedding shared with the semantic cache", scored, baseline, 3e-3)
    warm, cold, with_dropped, parse_50, count_50 = bench_history(counter)
    row("history compression, 50 turns (token counts remembered)", warm, parse_50, 1e-3)
    row("history compression, 50 turns (nothing remembered)", cold, parse_50, 1e-3)
    row("  the same, against counting each message once", cold, count_50, 1e-3)
    dropped = with_dropped - cold
    print(
        f"{'  + counting the dropped turns for the ledger, after dispatch':<64} {fmt_time(dropped):>10}"
        f" (total {fmt_time(with_dropped)}, {with_dropped / count_50:.1f}x counting each message once)"
    )
    print("baseline: parsing the same request(s) from JSON (json + thrifty's request parser);")
    print(f"  last row: tiktoken counting each of the 101 messages once, {fmt_time(count_50)} on its own")


if __name__ == "__main__":
    main()
