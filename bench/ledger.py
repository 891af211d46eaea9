"""Ledger ingest into SQLite: the journaled batch writer against a bare executemany.

Run: .venv/bin/python bench/ledger.py
Target (issue 2): at least 20,000 rows per second into SQLite, batched.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from thrifty.core.ledger import LedgerRecord
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


def through_writer(batch: list[LedgerRecord], folder: Path, journal: bool, chunk: int) -> float:
    store = open_ledger(f"sqlite:///{folder / 'writer.db'}")
    writer = LedgerWriter(store, journal_dir=folder / "journal" if journal else None)
    writer.start()
    start = time.perf_counter()
    if chunk == 1:
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
    variants = {
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
                    times.append(through_writer(batch, path, journal=journal, chunk=chunk))
    floor = statistics.median(results["bare executemany"])
    print(f"{ROWS:,} rows into SQLite (WAL), median of 5 runs; submit -> flushed to disk")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:<34}{ROWS / median:>10,.0f} rows/s   {median / floor:>5.2f}x the bare floor's time")
    print("target: >= 20,000 rows/s through the writer")


if __name__ == "__main__":
    main()
