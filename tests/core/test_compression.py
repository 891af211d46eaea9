"""Compression and output caps: each technique on its own, then the invariants on generated
conversations of both APIs (hypothesis): the system prompt and the last user message are never
dropped or altered, a tool call is never separated from its result, the result is a valid request."""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thrifty.core.compression.caps import PlanTable, add_instruction, apply_cap
from thrifty.core.compression.compress import CompressionSettings, compress_body, finish, prepare
from thrifty.core.compression.history import SUMMARY_INTRO
from thrifty.core.compression.retrieval import CHUNK_KEY, lexical_score, prune_chunks
from thrifty.core.compression.validity import request_problem
from thrifty.core.compression.whitespace import normalise_whitespace
from thrifty.core.compression.wire import tool_call_ids, tool_result_ids


def count(text: str) -> int:
    return len(text) // 4 + 1


_WS = re.compile(r"\s+")


def squeeze(text: str) -> str:
    return _WS.sub("", text)


# -- whitespace -------------------------------------------------------------------------------


def test_whitespace_is_normalised_outside_code_quotes_and_data() -> None:
    text = "Hello   world.  \n\n\n\nNext   paragraph.   \n"
    assert normalise_whitespace(text) == "Hello world.\n\nNext paragraph."
    code = "Look:\n```python\nx  =  1\n\n\n\ny = 2\n```\nDone   now."
    assert normalise_whitespace(code) == "Look:\n```python\nx  =  1\n\n\n\ny = 2\n```\nDone now."
    assert normalise_whitespace('He said "a    b"   twice') == 'He said "a    b"   twice'
    assert normalise_whitespace('{"a":    [1,   2]}') == '{"a":    [1,   2]}'
    assert normalise_whitespace("name,  age\nann,  31\nbob,  42") == "name,  age\nann,  31\nbob,  42"
    assert normalise_whitespace("    indented   code line\nprose   here") == "    indented   code line\nprose here"
    assert normalise_whitespace("| a  | b |\n|---|---|") == "| a  | b |\n|---|---|"
    assert normalise_whitespace("   ") == "   "  # never emptied


TEXT = st.text(alphabet=st.sampled_from(list('ab1 .,;|{}[]"`~\t\n#')), max_size=120)


@given(TEXT)
def test_whitespace_normalisation_changes_only_whitespace_and_is_idempotent(text: str) -> None:
    out = normalise_whitespace(text)
    assert squeeze(out) == squeeze(text)
    assert normalise_whitespace(out) == out


@given(TEXT, TEXT, TEXT)
def test_code_blocks_and_quoted_strings_come_out_verbatim(before: str, inside: str, after: str) -> None:
    inside = inside.replace("`", "").replace("~", "")
    text = f"{before.replace('`', '').replace('~', '')}\n```\n{inside}\n```\n{after}"
    assert f"```\n{inside}\n```" in normalise_whitespace(text)
    quoted = inside.replace('"', "").replace("\n", "").replace("\\", "")
    assert f'"{quoted}"' in normalise_whitespace(f'say "{quoted}"   now')


# -- retrieval pruning ------------------------------------------------------------------------


def chunk(text: str, score: Any = True) -> dict[str, Any]:
    return {"type": "text", "text": text, CHUNK_KEY: score}


def test_chunks_below_the_threshold_or_over_the_budget_are_dropped_and_marks_stripped() -> None:
    messages = [
        {"role": "user", "content": [chunk("alpha " * 20, 0.9), chunk("beta " * 20, 0.1), chunk("gamma " * 20, 0.5)]},
        {"role": "user", "content": "What about alpha?"},
    ]
    kept = prune_chunks(messages, "openai", min_score=0.3, max_tokens=None, count=count)
    assert [b["text"].split()[0] for b in kept.messages[0]["content"]] == ["alpha", "gamma"]
    assert kept.dropped == 1 and kept.tokens_saved == count("beta " * 20)
    assert all(CHUNK_KEY not in b for b in kept.messages[0]["content"])
    budget = prune_chunks(messages, "openai", min_score=0.0, max_tokens=count("alpha " * 20), count=count)
    assert [b["text"].split()[0] for b in budget.messages[0]["content"]] == ["alpha"]
    assert budget.messages[1] == messages[1]


def test_unscored_chunks_are_scored_against_the_question() -> None:
    assert lexical_score("how do rockets reach orbit", "rockets reach orbit by burning fuel") > 0.5
    assert lexical_score("how do rockets reach orbit", "a recipe for banana bread") == 0.0
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Question: how do rockets reach orbit?"},
                chunk("Rockets reach orbit by accelerating sideways fast enough."),
                chunk("Banana bread needs ripe bananas."),
            ],
        }
    ]
    kept = prune_chunks(messages, "openai", min_score=0.2, max_tokens=None, count=count)
    texts = [b["text"] for b in kept.messages[0]["content"]]
    assert texts == [
        "Question: how do rockets reach orbit?",
        "Rockets reach orbit by accelerating sideways fast enough.",
    ]


def test_a_message_is_never_emptied_and_a_whole_message_chunk_that_is_last_stays() -> None:
    messages = [{"role": "user", "content": [chunk("noise", 0.0)]}, {"role": "assistant", "content": "ok"}]
    messages += [{"role": "user", "content": "Answer from the context.", CHUNK_KEY: 0.0}]
    kept = prune_chunks(messages, "anthropic", min_score=0.5, max_tokens=None, count=count)
    assert kept.messages == [
        {"role": "user", "content": [{"type": "text", "text": "noise"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Answer from the context."},
    ]


# -- history ----------------------------------------------------------------------------------


def conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i} " + "words " * 30})
        messages.append({"role": "assistant", "content": f"answer {i} " + "words " * 30})
    messages.append({"role": "user", "content": "the last question"})
    return messages


def test_a_window_keeps_the_system_prompt_and_the_last_turns() -> None:
    body = {"model": "gpt-4o", "messages": conversation(10)}
    out, prepared = compress_body(body, "openai", CompressionSettings(history=True, max_turns=3), count)
    contents = [m["content"][:11] for m in out["messages"]]
    assert contents == ["You are ter", "question 8 ", "answer 8 wo", "question 9 ", "answer 9 wo", "the last qu"]
    assert prepared.notes["messages_dropped"] == 16 and prepared.saved["history"] > 0


def test_a_token_budget_keeps_as_many_recent_turns_as_fit() -> None:
    body = {"model": "gpt-4o", "messages": conversation(10)}
    per_turn = 2 * (count("question 0 " + "words " * 30) + 4)
    budget = count("You are terse.") + 4 + count("the last question") + 4 + 2 * per_turn + 5
    out, _ = compress_body(body, "openai", CompressionSettings(history=True, max_tokens=budget), count)
    assert len(out["messages"]) == 1 + 4 + 1


def test_dropped_turns_can_be_replaced_by_a_summary() -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 100, "system": "Be brief.", "messages": conversation(5)[1:]}
    out, _ = compress_body(
        body, "anthropic", CompressionSettings(history=True, max_turns=2), count, summary="They asked 0-3."
    )
    assert out["system"] == "Be brief."
    assert out["messages"][0] == {"role": "user", "content": SUMMARY_INTRO + "They asked 0-3."}
    assert out["messages"][1]["role"] == "assistant"
    assert request_problem(out, "anthropic") is None


def test_turns_outside_the_window_are_not_normalised_and_nothing_else_changes() -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be   terse."}]
    for i in range(12):
        messages.append({"role": "user", "content": f"question   {i}  " + "words   " * 9})
        messages.append({"role": "assistant", "content": f"answer {i}.\n\n\n\n" + "more   words " * 9})
    messages.append({"role": "user", "content": "the   last   question"})
    body = {"model": "gpt-4o", "messages": messages}
    seen: list[str] = []

    def normalise(text: str) -> str:
        seen.append(text)
        return normalise_whitespace(text)

    both = CompressionSettings(whitespace=True, history=True, max_turns=3, max_tokens=10_000)
    prepared = prepare(body, "openai", both, count, normalise=normalise)
    out = finish(prepared)
    assert len(seen) == 4  # the two turns kept before the last (the last user message is never touched)
    # The same as normalising everything first and trimming the history of the result.
    first, _ = compress_body(body, "openai", CompressionSettings(whitespace=True), count)
    reference, _ = compress_body(first, "openai", CompressionSettings(history=True, max_turns=3), count)
    assert out == reference
    total = sum(count(m["content"]) + 4 for m in messages) - sum(count(m["content"]) + 4 for m in out["messages"])
    assert prepared.saved["whitespace"] + prepared.saved["history"] == total
    # The summariser sees the dropped turns as the client sent them.
    assert prepared.dropped_messages() == messages[1:-5]


def test_tool_calls_stay_with_their_results_when_turns_are_dropped() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        }
    )
    messages.append({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    messages.append({"role": "assistant", "content": "It is sunny."})
    messages.append({"role": "user", "content": "and tomorrow?"})
    out, _ = compress_body(
        {"model": "gpt-4o", "messages": messages}, "openai", CompressionSettings(history=True, max_turns=1), count
    )
    assert out["messages"] == [{"role": "user", "content": "and tomorrow?"}]


# -- output caps ------------------------------------------------------------------------------


PLANS = PlanTable(
    plans={"free": 200, "pro": 1000},
    default_plan="pro",
    keys={},
    users={"ann": "free"},
    teams={},
    features={},
    urgency={"low": 0.5, "normal": 1.0, "high": 2.0},
)


def test_plans_and_urgency_set_the_cap() -> None:
    assert PLANS.plan_for(key_id=None, user="ann", team=None, feature=None) == "free"
    assert PLANS.plan_for(key_id=None, user="bob", team=None, feature=None) == "pro"
    assert PLANS.plan_for(key_id=None, user="ann", team=None, feature=None, asked="pro") == "pro"
    assert PLANS.cap("free", None) == 200 and PLANS.cap("free", "high") == 400 and PLANS.cap("pro", "low") == 500


def test_a_cap_lowers_max_tokens_but_never_raises_it() -> None:
    assert apply_cap({"model": "gpt-4o", "max_tokens": 4000}, "openai", 200).body["max_tokens"] == 200
    untouched = apply_cap({"model": "gpt-4o", "max_tokens": 50}, "openai", 200)
    assert not untouched.applied and untouched.body["max_tokens"] == 50
    assert apply_cap({"model": "gpt-4o"}, "openai", 200).body["max_tokens"] == 200
    assert apply_cap({"model": "o3"}, "openai", 200).body["max_completion_tokens"] == 200
    capped = apply_cap({"model": "o3", "max_completion_tokens": 900}, "openai", 200)
    assert capped.body == {"model": "o3", "max_completion_tokens": 200} and capped.before == 900
    assert apply_cap({"model": "claude", "max_tokens": 4096}, "anthropic", 300).body["max_tokens"] == 300


def test_the_concise_instruction_is_added_beside_the_system_prompt() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]}
    out = add_instruction(body, "openai", "Be concise.")
    assert out["messages"] == [body["messages"][0], {"role": "system", "content": "Be concise."}, body["messages"][1]]
    anthropic = {"model": "c", "max_tokens": 5, "system": "S", "messages": [{"role": "user", "content": "Q"}]}
    assert add_instruction(anthropic, "anthropic", "Be concise.")["system"] == [
        {"type": "text", "text": "S"},
        {"type": "text", "text": "Be concise."},
    ]


# -- invariants on generated conversations ----------------------------------------------------

WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta", "  ", "\n\n\n", "```x  = 1```", '"a  b"', "\t", "{ }"])
TEXTS = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)
SCORES = st.one_of(st.just(True), st.floats(0, 1), st.fixed_dictionaries({"score": st.floats(0, 1)}))


@st.composite
def user_content(draw: st.DrawFn, chunks: bool) -> Any:
    if not chunks or draw(st.booleans()):
        if draw(st.booleans()):
            return draw(TEXTS)
        return [{"type": "text", "text": draw(TEXTS)}]
    parts: list[dict[str, Any]] = []
    if draw(st.booleans()):
        parts.append({"type": "text", "text": draw(TEXTS)})
    parts += [{"type": "text", "text": draw(TEXTS), CHUNK_KEY: draw(SCORES)} for _ in range(draw(st.integers(1, 3)))]
    return parts


@st.composite
def conversations(draw: st.DrawFn, api: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = draw(st.one_of(st.none(), TEXTS))
    if api == "openai" and system is not None:
        messages.append({"role": draw(st.sampled_from(["system", "developer"])), "content": system})
    if api == "openai" and draw(st.booleans()):
        messages.append({"role": "assistant", "content": draw(TEXTS)})  # a greeting before the first user turn
    turns = draw(st.integers(1, 7))
    call_number = 0
    for turn in range(turns):
        last_turn = turn == turns - 1
        messages.append({"role": "user", "content": draw(user_content(chunks=True))})
        if last_turn and draw(st.booleans()):
            break
        for _ in range(draw(st.integers(0, 2))):  # tool rounds
            ids = [f"call_{call_number + i}" for i in range(draw(st.integers(1, 2)))]
            call_number += len(ids)
            if api == "openai":
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": i, "type": "function", "function": {"name": "f", "arguments": '{"q":  1}'}}
                            for i in ids
                        ],
                    }
                )
                messages += [{"role": "tool", "tool_call_id": i, "content": draw(TEXTS)} for i in ids]
            else:
                messages.append(
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": i, "name": "f", "input": {"q": 1}} for i in ids],
                    }
                )
                messages.append(
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": i, "content": draw(TEXTS)} for i in ids],
                    }
                )
        if not last_turn or draw(st.booleans()):
            messages.append({"role": "assistant", "content": draw(TEXTS)})
    body: dict[str, Any] = {"model": "gpt-4o" if api == "openai" else "claude-haiku-4-5", "messages": messages}
    if api == "anthropic":
        body["max_tokens"] = 100
        if system is not None:
            body["system"] = system
    return body


SETTINGS = st.builds(
    CompressionSettings,
    whitespace=st.booleans(),
    retrieval=st.booleans(),
    min_score=st.floats(0, 1),
    chunk_tokens=st.one_of(st.none(), st.integers(1, 40)),
    history=st.booleans(),
    max_turns=st.one_of(st.none(), st.integers(1, 4)),
    max_tokens=st.one_of(st.none(), st.integers(1, 200)),
)


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and CHUNK_KEY in block


def own_content(message: dict[str, Any]) -> Any:
    """A message as the client wrote it, less its retrieved chunks (which pruning may drop)."""
    content = message.get("content")
    if isinstance(content, list):
        content = [b for b in content if not _marked(b)]
    return {k: v for k, v in message.items() if k not in ("content", CHUNK_KEY)}, content


def is_subsequence(items: list[Any], within: list[Any]) -> bool:
    remaining = iter(within)
    return all(any(item == other for other in remaining) for item in items)


def last_user(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in reversed(messages) if m["role"] == "user")


def check_invariants(body: dict[str, Any], api: str, chosen: CompressionSettings, summary: str | None) -> None:
    original = copy.deepcopy(body)
    out, _ = compress_body(body, api, chosen, count, summary=summary)
    assert body == original  # the client's body is never modified in place
    assert request_problem(out, api) is None, request_problem(out, api)
    # The system prompt: never dropped or altered.
    if api == "anthropic":
        assert out.get("system") == original.get("system")
    else:
        systems = [m for m in original["messages"] if m["role"] in ("system", "developer")]
        assert [m for m in out["messages"] if m["role"] in ("system", "developer")] == systems
    # The last user message: never dropped; its own content never altered.
    before, after = last_user(original["messages"]), last_user(out["messages"])
    if (
        (isinstance(before.get("content"), list) and not any(_marked(b) for b in before["content"]))
        or isinstance(before.get("content"), str)
    ) and CHUNK_KEY not in before:
        assert after == before
    assert own_content(after)[0] == own_content(before)[0]
    own_after, own_before = own_content(after)[1], own_content(before)[1]
    if isinstance(own_before, list):
        assert is_subsequence(own_before, own_after)
    else:
        assert own_after == own_before
    # No marks reach the provider.
    assert CHUNK_KEY not in str(out)
    # Every tool call kept has its result right after it, and every result its call.
    calls = [i for m in out["messages"] for i in tool_call_ids(m, api)]  # type: ignore[arg-type]
    results = [i for m in out["messages"] for i in tool_result_ids(m, api)]  # type: ignore[arg-type]
    assert sorted(calls) == sorted(results)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations("openai"), SETTINGS, st.one_of(st.none(), TEXTS))
def test_invariants_openai(body: dict[str, Any], chosen: CompressionSettings, summary: str | None) -> None:
    check_invariants(body, "openai", chosen, summary)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations("anthropic"), SETTINGS, st.one_of(st.none(), TEXTS))
def test_invariants_anthropic(body: dict[str, Any], chosen: CompressionSettings, summary: str | None) -> None:
    check_invariants(body, "anthropic", chosen, summary)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["openai", "anthropic"]), st.data())
def test_caps_never_raise_a_lower_limit_and_keep_the_request_valid(api: str, data: st.DataObject) -> None:
    body = data.draw(conversations(api))
    asked = data.draw(st.one_of(st.none(), st.integers(1, 5000)))
    if asked is not None:
        body["max_tokens"] = asked
    asked = body.get("max_tokens")
    cap = data.draw(st.integers(1, 5000))
    out = apply_cap(body, api, cap).body  # type: ignore[arg-type]
    limit = out.get("max_tokens", out.get("max_completion_tokens"))
    assert limit == (min(asked, cap) if asked is not None else cap)
    concise = add_instruction(out, api, "Be concise.")  # type: ignore[arg-type]
    for key in ("messages",):
        assert last_user(concise[key]) == last_user(body[key])
    stripped = {**concise, "messages": [_strip(m) for m in concise["messages"]]}
    assert request_problem(stripped, api) is None  # type: ignore[arg-type]


def _strip(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != CHUNK_KEY}
    if isinstance(out.get("content"), list):
        out["content"] = [{k: v for k, v in b.items() if k != CHUNK_KEY} for b in out["content"]]
    return out
