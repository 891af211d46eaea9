"""The in-process client never hangs: a call after ``close()`` fails at once, a client made before
``os.fork()`` works in the child, and the SDK client's ``timeout=`` (or ``Thrifty(timeout=)``)
bounds each attempt. Every wait here has a hard limit, so a regression fails instead of hanging."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

import thrifty
from thrifty.client.runtime import ThriftyClosed
from thrifty.stores.ledger import open_ledger

HELLO = [{"role": "user", "content": "Say hello in-process."}]
HARD_LIMIT_S = 60


def _within_limit(work: Any) -> Any:
    """``work()``'s result or exception, or a test failure if it does not return in time."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HARD_LIMIT_S)
    assert not thread.is_alive(), "the call hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _rows(ledger: str) -> list[Any]:
    store = open_ledger(ledger)
    try:
        return store.records(limit=100)
    finally:
        store.close()


def test_a_call_after_close_fails_at_once_with_a_clear_error(simulator_url: str, tmp_path: Path) -> None:
    runtime = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'l.db'}", journal_dir=tmp_path / "journal")
    client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
    runtime.close()
    with pytest.raises(ThriftyClosed, match="this Thrifty is closed"):
        _within_limit(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5))  # type: ignore[arg-type]


def test_an_async_call_after_close_fails_at_once(simulator_url: str, tmp_path: Path) -> None:
    import asyncio

    runtime = thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'l.db'}", journal_dir=tmp_path / "journal")
    client = runtime.wrap(openai.AsyncOpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
    runtime.close()

    async def call() -> Any:
        return await asyncio.wait_for(
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5),  # type: ignore[arg-type]
            HARD_LIMIT_S,
        )

    with pytest.raises(ThriftyClosed):
        asyncio.run(call())


def _child(client: Any, ledger: str, queue: Any) -> None:
    try:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
        queue.put(("ok", reply.choices[0].message.content, os.getpid()))
    except BaseException as error:  # reported to the parent, which fails the test
        queue.put(("error", repr(error), os.getpid()))


def test_a_client_made_before_fork_works_in_the_child(simulator_url: str, tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    runtime = thrifty.Thrifty(ledger=ledger, journal_dir=tmp_path / "journal")
    try:
        client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), feature="forked")
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        children = [context.Process(target=_child, args=(client, ledger, queue)) for _ in range(2)]
        for child in children:
            child.start()
        results = [queue.get(timeout=HARD_LIMIT_S) for _ in children]
        for child in children:
            child.join(HARD_LIMIT_S)
            assert child.exitcode == 0
        assert [r[0] for r in results] == ["ok", "ok"], results
        # The parent goes on working, and the children's calls reached the ledger.
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        runtime.runtime.writer.flush(timeout=10)
    finally:
        runtime.close()
    rows = _rows(ledger)
    assert len(rows) == 4 and all(r.feature == "forked" and r.status == "ok" for r in rows)


def test_the_sdk_clients_timeout_bounds_each_attempt(simulator_url: str, tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    runtime = thrifty.Thrifty(ledger=ledger, journal_dir=tmp_path / "journal", retry={"attempts": 1})
    try:
        slow = {"x-simulator-fault": "delay=4000"}
        impatient = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test", timeout=0.5))
        with pytest.raises(openai.APIStatusError) as raised:
            _within_limit(
                lambda: impatient.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=HELLO,  # type: ignore[arg-type]
                    max_tokens=5,
                    extra_headers=slow,
                )
            )
        assert raised.value.status_code == 502
        patient = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
        with pytest.raises(openai.APIStatusError):  # the call's own timeout= too
            _within_limit(
                lambda: patient.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=HELLO,  # type: ignore[arg-type]
                    max_tokens=5,
                    extra_headers=slow,
                    timeout=0.5,
                )
            )
    finally:
        runtime.close()


def test_thrifty_takes_retry_and_timeout_settings(simulator_url: str, tmp_path: Path) -> None:
    runtime = thrifty.Thrifty(
        ledger=f"sqlite:///{tmp_path / 'l.db'}", journal_dir=tmp_path / "journal", retry={"attempts": 2}, timeout=0.5
    )
    try:
        client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
        with pytest.raises(openai.APIStatusError):
            _within_limit(
                lambda: client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=HELLO,  # type: ignore[arg-type]
                    max_tokens=5,
                    extra_headers={"x-simulator-fault": "delay=4000"},
                )
            )
        runtime.runtime.writer.flush(timeout=10)
    finally:
        runtime.close()
    rows = _rows(f"sqlite:///{tmp_path / 'l.db'}")
    (row,) = [r for r in rows if r.status == "error"]
    assert len(row.details["attempts"]) == 2  # retry.attempts, each cut at the timeout
    assert sorted(r.status for r in rows) == ["error", "timeout", "timeout"]  # each a row at its lower bound
    with pytest.raises(ValueError, match="attempts"):
        thrifty.Thrifty(ledger=f"sqlite:///{tmp_path / 'm.db'}", retry={"attempts": 0})


def test_a_claude_model_through_an_openai_compatible_host_is_priced_as_anthropics(
    simulator_url: str, tmp_path: Path
) -> None:
    from thrifty.core.pricing import PriceBook
    from thrifty.core.usage import Usage

    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    runtime = thrifty.Thrifty(ledger=ledger, journal_dir=tmp_path / "journal")
    try:
        client = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))
        reply = client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)  # type: ignore[arg-type]
        runtime.runtime.writer.flush(timeout=10)
    finally:
        runtime.close()
    claude, gpt = sorted(_rows(ledger), key=lambda r: r.requested_model)
    assert claude.provider == "anthropic" and gpt.provider == "openai"  # the model's provider, not the host
    assert claude.cost is not None and "price_error" not in claude.details
    usage = Usage.from_openai(reply.usage.model_dump())  # type: ignore[union-attr]
    assert claude.cost.total == PriceBook().price(usage, "claude-haiku-4-5", at=claude.ts).cost.total


def _given_up(simulator_url: str, tmp_path: Path, status: str, **arguments: Any) -> Any:
    """The ledger row of an async in-process call whose caller gave up after 0.3 s (waited for up to
    HARD_LIMIT_S, while the call goes on and is recorded); the call's upstream is slow."""
    import asyncio
    import time as clock

    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    runtime = thrifty.Thrifty(ledger=ledger, journal_dir=tmp_path / "journal")
    client = runtime.wrap(openai.AsyncOpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"))

    async def cancelled() -> None:
        slow = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, **arguments)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow, 0.3)

    try:
        asyncio.run(cancelled())
        deadline = clock.monotonic() + HARD_LIMIT_S
        rows: list[Any] = []
        while not rows and clock.monotonic() < deadline:
            runtime.runtime.writer.flush(timeout=5)
            rows = [r for r in _rows(ledger) if r.status == status]
            clock.sleep(0.1)
    finally:
        runtime.close()
    (row,) = rows
    return row


def test_a_cancelled_in_process_call_that_reached_the_provider_is_recorded(simulator_url: str, tmp_path: Path) -> None:
    slow = {"x-simulator-fault": "delay=1500"}
    row = _given_up(simulator_url, tmp_path, "ok", max_tokens=5, extra_headers=slow)
    assert row.cost is not None and row.cost.total > 0 and row.usage.output_tokens > 0


def test_a_stream_whose_caller_gave_up_before_it_began_is_closed_and_recorded(
    simulator_url: str, tmp_path: Path
) -> None:
    slow = {"x-simulator-fault": "delay=1000"}
    row = _given_up(simulator_url, tmp_path, "client_disconnected", max_tokens=50, stream=True, extra_headers=slow)
    assert row.stream and row.cost is not None and row.cost.total > 0
