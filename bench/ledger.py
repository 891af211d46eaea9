"""Ledger ingest into SQLite: the journaled batch writer against a bare executemany; and what
the write-ahead intent of a call costs the gateway's serving thread.

Run: .venv/bin/python bench/ledger.py
Target (issue 2): at least 20,000 rows per second into SQLite, batched.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from thrifty.core.ledger import LedgerRecord, new_record_id
from thrifty.core.pricing.rates import Cost
from thrifty.core.usage import Usage
from thrifty.stores.ledger import LedgerWriter, open_ledger
from thrifty.stores.ledger.sqlite import SQLiteLedger

ROWS = 50_000


def records(n: int) -> list[LedgerRecord]:
    ts = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        LedgerRecord(
            requested_model="gpt-4o",
            served_model="gpt-4o-2024-08-06",
            ts=ts,
            request_id=f"req-{i}",
            user=f"user-{i % 50}",
            feature="chat",
            provider="openai",
            usage=Usage(input_tokens=1500, cache_read_tokens=1024, output_tokens=200),
            cost=Cost(uncached_input=Decimal("0.0011900"), cache_read=Decimal("0.00128"), output=Decimal("0.002")),
            latency_ms=812.0,
            details={"finish_reason": "stop"},
        )
        for i in range(n)
    ]


def intents(batch: list[LedgerRecord]) -> list[LedgerRecord]:
    """Each call's write-ahead intent, as the dispatcher journals it: same id, interrupted, its input
    priced as a lower bound."""
    return [
        replace(
            r,
            status="interrupted",
            usage=Usage(input_tokens=r.usage.input_tokens),
            cost=Cost(uncached_input=r.cost.uncached_input if r.cost else Decimal(0)),
            latency_ms=None,
            details={"cost_lower_bound": True},
        )
        for r in batch
    ]


def through_writer(
    batch: list[LedgerRecord], folder: Path, journal: bool, chunk: int, ahead: list[LedgerRecord] | None = None
) -> float:
    store = open_ledger(f"sqlite:///{folder / 'writer.db'}")
    writer = LedgerWriter(store, journal_dir=folder / "journal" if journal else None)
    writer.start()
    start = time.perf_counter()
    if ahead is not None:  # write-ahead: the intent before the call, the row after it
        for intent, record in zip(ahead, batch, strict=True):
            writer.intend(intent)
            writer.submit(record)
    elif chunk == 1:
        for record in batch:
            writer.submit(record)
    else:
        for i in range(0, len(batch), chunk):
            writer.submit_many(batch[i : i + chunk])
    writer.flush()
    elapsed = time.perf_counter() - start
    writer.close()
    assert store.count() == len(batch)
    store.close()
    return elapsed


def bare_executemany(batch: list[LedgerRecord], folder: Path) -> float:
    store = open_ledger(f"sqlite:///{folder / 'bare.db'}")
    assert isinstance(store, SQLiteLedger)
    start = time.perf_counter()
    store.insert_rows([r.to_row() for r in batch])
    elapsed = time.perf_counter() - start
    assert store.count() == len(batch)
    store.close()
    return elapsed


def main() -> None:
    batch = records(ROWS)
    ahead = intents(batch)
    variants = {
        "intend + submit (write-ahead)": (True, 0),
        "submit (1 journal write a row)": (True, 1),
        "submit_many (100 rows a write)": (True, 100),
        "submit, journal off": (False, 1),
    }
    results: dict[str, list[float]] = {name: [] for name in [*variants, "bare executemany"]}
    for _ in range(5):
        for name, times in results.items():
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder)
                if name == "bare executemany":
                    times.append(bare_executemany(batch, path))
                else:
                    journal, chunk = variants[name]
                    write_ahead = ahead if chunk == 0 else None
                    times.append(through_writer(batch, path, journal=journal, chunk=chunk, ahead=write_ahead))
    floor = statistics.median(results["bare executemany"])
    print(f"{ROWS:,} rows into SQLite (WAL), median of 5 runs; submit -> flushed to disk")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:<34}{ROWS / median:>10,.0f} rows/s   {median / floor:>5.2f}x the bare floor's time")
    print("target: >= 20,000 rows/s through the writer")


def serving_thread_cost(calls: int = 20_000) -> None:
    """Microseconds a call costs the gateway's serving thread in the ledger: its final row
    (``JournalWriter.submit``), and with write-ahead its intent first (``AttemptLedger.intend``:
    counting the request's input, pricing it, one journal write). Median of 5 runs."""
    from thrifty.core.pricing import PriceBook
    from thrifty.core.tokens.counter import TokenCounter
    from thrifty.pipeline.attempts import AttemptLedger
    from thrifty.pipeline.call import Attribution, Call
    from thrifty.pipeline.steps.dispatch import Route
    from thrifty.providers.upstream import Upstream
    from thrifty.stores.ledger.journal_writer import JournalWriter
    from thrifty.wire.openai_chat import parse_openai_request

    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me about the number 17."}]}
    request = parse_openai_request(body)
    upstream = Upstream("openai", "openai", "http://127.0.0.1:9/v1", {})
    route = Route("gpt-4o-mini", upstream, "gpt-4o-mini", "gpt-4o-mini", None, None, (), frozenset())
    template = records(1)[0]
    prices, counter = PriceBook(), TokenCounter()
    prices.price(template.usage, "gpt-4o-mini", at=template.ts)  # the catalogue and vocabulary loaded
    counter.count_request(request, "gpt-4o-mini")
    figures: dict[str, list[float]] = {"submit": [], "intend + submit": []}
    for _ in range(5):
        for name, times in figures.items():
            with tempfile.TemporaryDirectory() as folder:
                writer = JournalWriter(Path(folder) / "journal", f"sqlite:///{folder}/j.db")
                writer.start()
                attempts = AttemptLedger(prices, writer, counter)
                made = [
                    Call("r", "openai", body, request, "gpt-4o-mini", False, Attribution(), template.ts, 0.0)
                    for _ in range(calls)
                ]
                start = time.perf_counter()
                for call in made:
                    if name != "submit":
                        attempts.intend(call, route)
                    # The record step's row, under the intent's id when there is one.
                    writer.submit(replace(template, id=call.record_id or new_record_id()))
                times.append((time.perf_counter() - start) / calls * 1e6)
                assert writer.flush(timeout=60)
                writer.close()
                store = open_ledger(f"sqlite:///{folder}/j.db")
                assert store.count() == calls  # the intents superseded: one row a call
                store.close()
    print(f"\nthe gateway's serving thread, per call (JournalWriter, {calls:,} calls, median of 5 runs)")
    for name, times in figures.items():
        print(f"  {name:<34}{statistics.median(times):>8.1f} us")


if __name__ == "__main__":
    main()
    serving_thread_cost()
