"""``thrifty demo`` (a simulated workload, then its report); ``thrifty report`` lives in cli/report.py."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import click

from thrifty.cli.common import CliError, demo_ledger_url, emit_json, json_option, price_book, usd
from thrifty.cli.report import report, report_document
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing import format_usd
from thrifty.core.redact import redact_url
from thrifty.core.usage import Usage
from thrifty.stores.ledger import LedgerWriter, open_ledger

__all__ = ["demo", "report"]

_DEMO_MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5")
_DEMO_FEATURES = ("chat", "search", "summarise", "extract")
_DEMO_USERS = ("alice", "bob", "carol", "dave", "erin")


@click.command()
@click.option(
    "--ledger",
    "ledger_url",
    default=None,
    help="Where to record (default: the demos' own store, sqlite:///.thrifty/demo.db; never THRIFTY_LEDGER_URL's).",
)
@click.option("--calls", type=click.IntRange(min=1, max=1_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@json_option
def demo(ledger_url: str | None, calls: int, seed: int, as_json: bool) -> None:
    """Record a simulated day of calls (no provider is contacted), then report on them.

    Each call's usage is what a provider would report, cached prompt tokens included; each is priced
    exactly and written through the journaled ledger writer, as the gateway does. They go to the
    demos' own store (``thrifty report --demo`` reads it), not to the ledger of real calls.
    """
    url = ledger_url or demo_ledger_url()
    book = price_book(None)
    try:
        store = open_ledger(url)
    except ValueError as error:
        raise CliError(str(error)) from None
    journal = Path(url.removeprefix("sqlite:///")).parent / "demo-journal" if url.startswith("sqlite:///") else None
    writer = LedgerWriter(store, journal_dir=journal)
    writer.start()
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=24)
    total = Decimal(0)
    hidden = not sys.stderr.isatty()
    progress = click.progressbar(range(calls), label="recording simulated calls", file=sys.stderr, hidden=hidden)
    with progress as bar:
        for n in bar:
            model = rng.choice(_DEMO_MODELS)
            input_tokens = rng.randint(200, 6000)
            cached = (input_tokens // 128) * 128 if input_tokens >= 1024 and rng.random() < 0.5 else 0
            usage = Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=rng.randint(20, 800))
            at = start + timedelta(seconds=n * 86_400 / calls)
            priced = book.price(usage, model, at=at)
            total += priced.cost.total
            writer.submit(
                LedgerRecord(
                    requested_model=model,
                    served_model=model,
                    provider=priced.quote.provider,
                    ts=at,
                    user=rng.choice(_DEMO_USERS),
                    feature=rng.choice(_DEMO_FEATURES),
                    usage=usage,
                    cost=priced.cost,
                    latency_ms=round(rng.uniform(300, 4000), 1),
                    details={"simulated": True},
                )
            )
    writer.close()
    store.close()
    if as_json:
        document = report_document(url)
        emit_json({"recorded": calls, "cost_usd": format_usd(total), "ledger": redact_url(url), "report": document})
        return
    click.echo(f"recorded {calls:,} simulated calls costing {usd(total)} into {redact_url(url)}\n")
    ctx = click.get_current_context()
    ctx.invoke(
        report,
        ledger_url=ledger_url,
        groups="model,feature,user",
        since_text=None,
        until_text=None,
        as_json=False,
        demo_store=ledger_url is None,  # the demos' own store, said so
    )
