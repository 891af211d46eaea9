"""``thrifty estimate``: what a workload will cost a month, model by model."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click

from thrifty.cli.common import (
    COUNT,
    CliError,
    emit_json,
    json_option,
    parse_decimal,
    price_book,
    prices_option,
    read_input,
    usd,
)
from thrifty.cli.tokens import check_known_model
from thrifty.core.messages import ChatRequest, RequestError
from thrifty.core.pricing import PriceBook, UnknownModelError, compute_cost, format_usd
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.wire.any_shape import parse_chat_document


@dataclass(frozen=True, slots=True)
class _Plan:
    model: str
    provider: str | None
    input_tokens: Decimal
    output_tokens: int
    cached_tokens: Decimal
    per_request: Decimal
    monthly: Decimal
    approximate: bool
    notes: tuple[str, ...]


@click.command()
@click.option("--model", "-m", "model_names", multiple=True, required=True, help="Repeat to compare models.")
@click.option("--input-tokens", type=COUNT, help="Input tokens per request.")
@click.option(
    "--sample",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON lines of real requests (messages, or {messages, tools}); their input tokens are counted per model.",
)
@click.option("--output-tokens", type=COUNT, required=True, help="Output tokens per request.")
@click.option("--requests", type=COUNT, required=True, help="Requests per month.")
@click.option("--cached-share", default="0", show_default=True, help="Share of input read from the prompt cache, 0-1.")
@click.option("--batch", is_flag=True, help="At batch-API rates.")
@json_option
@prices_option
def estimate(
    model_names: tuple[str, ...],
    input_tokens: int | None,
    sample: str | None,
    output_tokens: int,
    requests: int,
    cached_share: str,
    batch: bool,
    as_json: bool,
    prices_file: Path | None,
) -> None:
    """Plan a month: cost per request and per month for each model, cheapest first."""
    if (input_tokens is None) == (sample is None):
        raise CliError("give exactly one of --input-tokens or --sample")
    share = parse_decimal(cached_share, "--cached-share")
    if share > 1:
        raise CliError(f"--cached-share: must be between 0 and 1, got {cached_share}")
    book = price_book(prices_file)
    for name in model_names:
        check_known_model(book, name)
    samples = _load_sample(sample) if sample is not None else None
    counter = TokenCounter()
    at = datetime.now(UTC)
    plans = []
    for name in dict.fromkeys(model_names):
        if samples is not None:
            counts, approximate = _input_counts(counter, samples, name)
        else:
            counts, approximate = [input_tokens or 0], False
        plans.append(
            _plan(
                book,
                name,
                input_counts=counts,
                output_tokens=output_tokens,
                share=share,
                requests=requests,
                batch=batch,
                approximate=approximate,
                at=at,
            )
        )
    plans.sort(key=lambda p: p.monthly)
    if as_json:
        emit_json(
            {
                "requests_per_month": requests,
                "models": [_plan_json(p) for p in plans],
                **({"monthly_usd": format_usd(plans[0].monthly)} if len(plans) == 1 else {}),
            }
        )
        return
    click.echo(f"{requests:,} requests a month, {output_tokens:,} output tokens each, cheapest first:")
    click.echo(f"  {'model':<36}{'input/req':>12}{'per request':>16}{'per month':>18}")
    for p in plans:
        mark = "~" if p.approximate else ""
        click.echo(
            f"  {p.model:<36}{mark + format(p.input_tokens.quantize(Decimal(1)), ','):>12}"
            f"{usd(p.per_request):>16}{usd(p.monthly.quantize(Decimal('0.01'))):>18}"
        )
    if any(p.approximate for p in plans):
        click.echo("  ~ approximate token counts (this provider does not publish its tokenizer)")
    for p in plans:
        for note in p.notes:
            click.echo(f"  note ({p.model}): {note}")


def _plan(
    book: PriceBook,
    model: str,
    *,
    input_counts: list[int],
    output_tokens: int,
    share: Decimal,
    requests: int,
    batch: bool,
    approximate: bool,
    at: datetime,
) -> _Plan:
    """Each request priced on its own (long-context tiers apply per request), then averaged."""
    try:
        quote = book.quote(model, at=at, batch=batch)
    except UnknownModelError as error:
        raise CliError(str(error)) from None
    total = Decimal(0)
    cached_total = 0
    for tokens in input_counts:
        cached = int(tokens * share)
        cached_total += cached
        usage = Usage(input_tokens=tokens, cache_read_tokens=cached, output_tokens=output_tokens)
        total += compute_cost(usage, quote.rates).total
    n = len(input_counts)
    return _Plan(
        model=model,
        provider=quote.provider,
        input_tokens=Decimal(sum(input_counts)) / n,
        output_tokens=output_tokens,
        cached_tokens=Decimal(cached_total) / n,
        per_request=total / n,
        monthly=total * requests / n,  # multiply before dividing: exact whenever the result is
        approximate=approximate,
        notes=quote.notes,
    )


def _plan_json(p: _Plan) -> dict[str, object]:
    return {
        "model": p.model,
        "provider": p.provider,
        "input_tokens_per_request": format_usd(p.input_tokens),
        "cached_tokens_per_request": format_usd(p.cached_tokens),
        "output_tokens_per_request": p.output_tokens,
        "per_request_usd": format_usd(p.per_request),
        "monthly_usd": format_usd(p.monthly),
        "approximate": p.approximate,
        "notes": list(p.notes),
    }


def _load_sample(source: str) -> list[tuple[int, object]]:
    """(line number, document) for each non-blank line."""
    text = read_input(source)
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            documents.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise CliError(f"{source}: line {number}: not JSON ({error.msg})") from None
    if not documents:
        raise CliError(f"{source}: no requests in the sample")
    return documents


def _input_counts(counter: TokenCounter, documents: list[tuple[int, object]], model: str) -> tuple[list[int], bool]:
    counts = []
    approximate = False
    hidden = not sys.stderr.isatty()
    with click.progressbar(documents, label=f"counting {model}", file=sys.stderr, hidden=hidden) as bar:
        for number, document in bar:
            try:
                request: ChatRequest = parse_chat_document(document, model)
            except RequestError as error:
                raise CliError(f"sample line {number}: {error}") from None
            result = counter.count_request(request)
            counts.append(result.input_tokens)
            approximate = approximate or result.approximate
    return counts, approximate
