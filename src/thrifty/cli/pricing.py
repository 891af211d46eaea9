"""``thrifty price`` and ``thrifty models``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from thrifty.cli.common import COUNT, CliError, emit_json, json_option, parse_when, price_book, prices_option, usd
from thrifty.cli.usage_lines import usage_of_line
from thrifty.core.pricing import PriceBook, PricedUsage, PriceQuote, Rates, UnknownModelError, format_usd
from thrifty.core.pricing.catalogue import earliest_known
from thrifty.core.usage import Usage, UsageError


@click.command()
@click.option("--model", "-m", help="Model name, as sent to the provider.")
@click.option("--provider", "-p", help="Provider id (openai, anthropic, ...); guessed from the model if omitted.")
@click.option("--input-tokens", type=COUNT, help="Total input, cache reads and writes included.")
@click.option("--cache-read-tokens", type=COUNT, default=0, show_default=True)
@click.option("--cache-write-tokens", type=COUNT, default=0, show_default=True, help="5-minute TTL.")
@click.option("--cache-write-1h-tokens", type=COUNT, default=0, show_default=True)
@click.option("--output-tokens", type=COUNT, default=0, show_default=True, help="Reasoning included.")
@click.option("--reasoning-tokens", type=COUNT, default=0, show_default=True)
@click.option("--batch", is_flag=True, help="Price at batch-API rates.")
@click.option("--at", "at_text", metavar="DATE", help="Price at the rates in force then (default: now, UTC).")
@click.option(
    "--usage-file",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="JSON lines, one usage each; prints one JSON object per line, in order. "
    "--provider, --batch and --at apply to lines that do not set them.",
)
@json_option
@prices_option
def price(
    model: str | None,
    provider: str | None,
    input_tokens: int | None,
    cache_read_tokens: int,
    cache_write_tokens: int,
    cache_write_1h_tokens: int,
    output_tokens: int,
    reasoning_tokens: int,
    batch: bool,
    at_text: str | None,
    usage_file: Path | None,
    as_json: bool,
    prices_file: Path | None,
) -> None:
    """Price a call's usage exactly, or every usage in a JSON-lines file."""
    book = price_book(prices_file)
    at_option = parse_when(at_text, "--at")
    if usage_file is not None:
        if model is not None or input_tokens is not None:
            raise CliError("--usage-file prices the file's lines; do not combine it with --model or --input-tokens")
        _price_file(book, usage_file, _LineDefaults(provider=provider, batch=batch, at=at_option))
        return
    if model is None:
        raise CliError("missing option --model (or give --usage-file)")
    if input_tokens is None:
        raise CliError("missing option --input-tokens (the total input, cache reads and writes included)")
    at = at_option or datetime.now(UTC)
    try:
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_5m_tokens=cache_write_tokens,
            cache_write_1h_tokens=cache_write_1h_tokens,
            reasoning_tokens=reasoning_tokens,
        )
        priced = book.price(usage, model, provider=provider, at=at, batch=batch)
    except (UsageError, UnknownModelError) as error:
        raise CliError(str(error)) from None
    result = priced_json(priced, usage, at, explicit_at=at_option is not None, book=book)
    if as_json:
        emit_json(result)
        return
    quote = priced.quote
    click.echo(
        f"{quote.model} ({quote.provider or 'any provider'}, {quote.source}{', batch' if batch else ''}) at {at.date()}"
    )
    cost = priced.cost
    for label, amount in (
        ("uncached input", cost.uncached_input),
        ("cache reads", cost.cache_read),
        ("cache writes", cost.cache_write),
        ("output", cost.output),
    ):
        click.echo(f"  {label:<16}{usd(amount):>16}")
    click.echo(f"  {'total':<16}{usd(cost.total):>16}   (exact: {format_usd(cost.total)})")
    for note in result["notes"]:
        click.echo(f"  note: {note}")


def rates_json(rates: Rates, total_input: int) -> dict[str, str]:
    return {
        "input_per_mtok": format_usd(rates.input.at(total_input)),
        "cache_read_per_mtok": format_usd(rates.cache_read.at(total_input)),
        "cache_write_5m_per_mtok": format_usd(rates.cache_write_5m.at(total_input)),
        "cache_write_1h_per_mtok": format_usd(rates.cache_write_1h.at(total_input)),
        "output_per_mtok": format_usd(rates.output.at(total_input)),
    }


def priced_json(
    priced: PricedUsage, usage: Usage, at: datetime, *, explicit_at: bool = False, book: PriceBook | None = None
) -> dict[str, Any]:
    quote = priced.quote
    breakdown = priced.cost.as_dict()
    older = _older_than_known(book, quote, at) if explicit_at and book is not None else None
    return {
        "model": quote.model,
        "provider": quote.provider,
        "model_id": quote.model_id,
        "source": quote.source,
        "batch": quote.batch,
        "at": at.isoformat(),
        "usage": usage.as_dict(),
        "total_usd": breakdown.pop("total_usd"),
        "breakdown": breakdown,
        "rates": rates_json(quote.rates, usage.input_tokens),
        "notes": [*quote.notes, *([older] if older else [])],
    }


def _older_than_known(book: PriceBook, quote: PriceQuote, at: datetime) -> str | None:
    """A date before the earliest the catalogue knows for the model: it has no rate that old, so
    the rates shown are its earliest, not the ones in force then (the model may not have existed)."""
    if quote.source != "catalogue":
        return None
    entry = book.catalogue.find(quote.model_id, quote.provider)
    known = earliest_known(entry) if entry is not None else None
    if known is None or at.date() >= known[0]:
        return None
    first, what = known
    because = "its first dated price" if what == "its first price" else f"its oldest dated version, {what}"
    return (
        f"the catalogue has no rate for {quote.model_id} as old as {at.date().isoformat()}: the earliest it has "
        f"is from {first.isoformat()} ({because}); these are those earliest rates"
    )


@dataclass(frozen=True, slots=True)
class _LineDefaults:
    """--provider, --batch and --at apply to the lines of a usage file that do not say otherwise."""

    provider: str | None
    batch: bool
    at: datetime | None


def _model_row(
    provider: str | None, model: str, name: str | None, window: int | None, source: str, rates: Rates
) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "name": name,
        "context_window": window,
        "source": source,
        **rates_json(rates, 0),
    }


def _price_file(book: PriceBook, path: Path, defaults: _LineDefaults) -> None:
    failures: list[str] = []
    now = datetime.now(UTC)
    for number, line in _lines(path):
        try:
            emit_json(_price_line(book, line, defaults, now))
        except (ValueError, UnknownModelError, UsageError) as error:
            failures.append(f"line {number}: {error}")
            emit_json({"line": number, "error": str(error)})
    if failures:
        raise CliError(f"{len(failures)} line(s) of {path} could not be priced; first: {failures[0]}")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except OSError as error:
        raise CliError(f"{path}: cannot be read: {error.strerror}") from None
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number, line
        except UnicodeDecodeError as error:
            raise CliError(f"{path}: not UTF-8 text (byte {error.start})") from None


def _price_line(book: PriceBook, line: str, defaults: _LineDefaults, now: datetime) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, Mapping):
        raise ValueError("expected a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("'model' must be a non-empty string")
    provider = data.get("provider", defaults.provider)
    if provider is not None and not isinstance(provider, str):
        raise ValueError("'provider' must be a string")
    batch = data.get("batch", defaults.batch)
    if not isinstance(batch, bool):
        raise ValueError("'batch' must be true or false")
    at_value = data.get("at")
    if at_value is not None and not isinstance(at_value, str):
        raise ValueError("'at' must be a date or ISO 8601 time string")
    try:
        at = parse_when(at_value, "at") or defaults.at or now
    except CliError as error:
        raise ValueError(error.format_message()) from None
    usage = usage_of_line(data)
    priced = book.price(usage, model, provider=provider, at=at, batch=batch)
    return priced_json(priced, usage, at, explicit_at=at_value is not None or defaults.at is not None, book=book)


@click.command()
@click.argument("filter_text", required=False, metavar="[FILTER]")
@click.option("--provider", "-p", help="Only this provider's models.")
@click.option("--at", "at_text", metavar="DATE", help="Prices in force on this date (default: now).")
@json_option
@prices_option
def models(
    filter_text: str | None, provider: str | None, at_text: str | None, as_json: bool, prices_file: Path | None
) -> None:
    """Known models with their prices (USD per million tokens) and context windows."""
    book = price_book(prices_file)
    at = parse_when(at_text, "--at") or datetime.now(UTC)
    wanted = (filter_text or "").lower()
    if provider is not None and provider not in book.catalogue.provider_ids():
        raise CliError(f"unknown provider {provider!r}; known: {', '.join(sorted(book.catalogue.provider_ids()))}")
    listed: dict[tuple[str | None, str], dict[str, Any]] = {}
    for entry in book.catalogue.entries():
        if provider is not None and entry.provider_id != provider:
            continue
        if wanted and wanted not in entry.model_id.lower() and wanted not in (entry.name or "").lower():
            continue
        rates = book.catalogue.rates(entry, at, batch=False)
        if rates is not None:
            listed[(entry.provider_id, entry.model_id)] = _model_row(
                entry.provider_id, entry.model_id, entry.name, entry.context_window, "catalogue", rates.rates
            )
    for override in {(o.model, o.provider): o for o in book.overrides if o.in_force(at.date())}.values():
        if wanted and wanted not in override.model.lower():
            continue
        if provider is not None and override.provider not in (None, provider):
            continue
        try:
            quote = book.quote(override.model, provider=override.provider, at=at)
        except UnknownModelError:
            continue  # an override of a model nobody else prices, not in force on this date
        # A correction of a catalogue model replaces its catalogue row rather than adding a second.
        listed[(quote.provider, quote.model_id)] = _model_row(
            quote.provider, override.model, override.note, quote.context_window, quote.source, quote.rates
        )
    rows = list(listed.values())
    if as_json:
        emit_json(rows)
        return
    if not rows:
        raise CliError(f"no model matches {filter_text!r}" if filter_text else "no models")
    width = max(len(str(row["model"])) for row in rows) + 2
    provider_width = max(len(str(row["provider"] or "-")) for row in rows) + 2
    click.echo(
        f"{'provider':<{provider_width}}{'model':<{width}}{'context':>10}"
        f"{'input':>10}{'cached':>10}{'output':>10}  (USD per million tokens)"
    )
    for row in rows:
        window = f"{row['context_window']:,}" if row["context_window"] else "-"
        click.echo(
            f"{row['provider'] or '-':<{provider_width}}{row['model']:<{width}}{window:>10}"
            f"{row['input_per_mtok']:>10}{row['cache_read_per_mtok']:>10}{row['output_per_mtok']:>10}"
        )
