"""The compression step in the pipeline: what the dropped turns weighed is counted while the
upstream answers, not before the request goes, and the ledger still gets the exact figure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from thrifty.core.compression.compress import CompressionSettings
from thrifty.core.compression.history import MESSAGE_OVERHEAD
from thrifty.core.pricing import PriceBook
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.pipeline.call import Attribution, Call, Result
from thrifty.pipeline.steps.compression import CompressionStep, TextCounter
from thrifty.pipeline.steps.routing import Pricer
from thrifty.wire.openai_chat import parse_openai_request


class WatchedCounter(TextCounter):
    """Remembers every text it was asked to count."""

    def __init__(self) -> None:
        super().__init__(TokenCounter())
        self.asked: set[str] = set()

    def count(self, text: str, model: str) -> int:
        self.asked.add(text)
        return super().count(text, model)


def conversation(turns: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be terse."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"old question number {i} about the weather"})
        messages.append({"role": "assistant", "content": f"old answer number {i}: sunny, then rain"})
    messages.append({"role": "user", "content": "and tomorrow?"})
    return messages


def make_call(messages: list[dict[str, Any]]) -> Call:
    body = {"model": "gpt-4o", "messages": messages}
    return Call(
        request_id="req_1",
        client_api="openai",
        body=body,
        request=parse_openai_request(body),
        model="gpt-4o",
        stream=False,
        attribution=Attribution(),
        ts=datetime.now(UTC),
        started=0.0,
    )


def make_step(counter: TextCounter) -> CompressionStep:
    settings = CompressionSettings(history=True, max_turns=2)
    pricer = Pricer(PriceBook(), lambda model: (model, "openai"))
    return CompressionStep(settings, counter=counter, pricer=pricer, priced_as=str)


USAGE = Usage(input_tokens=40, output_tokens=5)


def settle(call: Call) -> None:
    for listener in call.cost_listeners:
        listener(None, USAGE)


def test_the_dropped_turns_are_counted_after_the_request_goes_and_recorded_exactly() -> None:
    messages = conversation(6)
    dropped = messages[1:11]  # five old turns: a window of two turns keeps the last old one and the new one
    counter = WatchedCounter()
    seen_at_dispatch: set[str] = set()
    after_the_wait: dict[str, Any] = {}
    sent: list[Call] = []

    async def upstream(call: Call) -> Result:
        sent.append(call)  # the compressed copy the step passed on (the call as asked is unchanged)
        seen_at_dispatch.update(counter.asked)
        await asyncio.sleep(0.01)  # the network: the loop is free to count meanwhile
        # What a row written now would carry (an escalated attempt's, recorded before the final one).
        after_the_wait.update(call.details["compression"])
        return Result(status=200, served_model="gpt-4o", usage=USAGE)

    async def run() -> Call:
        call = make_call(messages)
        await make_step(counter)(call, upstream)
        settle(call)
        return call

    call = asyncio.run(run())
    (compressed,) = sent
    assert [m["content"] for m in compressed.body["messages"]][:1] == ["Be terse."]
    assert len(compressed.body["messages"]) == 1 + 2 + 1
    assert call.body["messages"] == messages
    assert not seen_at_dispatch & {m["content"] for m in dropped}, "dropped turns were counted before dispatch"
    tokens = TokenCounter()
    exact = sum(tokens.text_tokens(m["content"], "gpt-4o") + MESSAGE_OVERHEAD for m in dropped)
    details = call.details["compression"]
    assert details["history"] == exact
    assert details["tokens_saved"] == exact
    assert after_the_wait["history"] == exact, "a row recorded after the wait carries the count"
    assert details["messages_dropped"] == len(dropped)
    assert call.savings["compression"] == Decimal("2.50") * exact / 1_000_000


def test_an_answer_faster_than_the_count_still_records_the_exact_figure() -> None:
    messages = conversation(5)
    counter = WatchedCounter()

    async def upstream(call: Call) -> Result:  # answers without ever yielding to the loop
        return Result(status=200, served_model="gpt-4o", usage=USAGE)

    async def run() -> tuple[Call, int]:
        call = make_call(messages)
        await make_step(counter)(call, upstream)
        settle(call)
        await asyncio.sleep(0)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        return call, len(pending)

    call, pending = asyncio.run(run())
    tokens = TokenCounter()
    exact = sum(tokens.text_tokens(m["content"], "gpt-4o") + MESSAGE_OVERHEAD for m in messages[1:9])
    assert call.details["compression"]["history"] == exact
    assert pending == 0, "the counting task is left behind"
