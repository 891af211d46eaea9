"""``thrifty count``: input tokens of a text or a chat request, and where they go."""

from __future__ import annotations

import json
from pathlib import Path

import click

from thrifty.cli.common import CliError, emit_json, json_option, price_book, prices_option, read_input
from thrifty.core.messages import RequestError
from thrifty.core.pricing import PriceBook, UnknownModelError
from thrifty.core.tokens.counter import TokenCount, TokenCounter
from thrifty.core.tokens.schemes import normalise_model_name
from thrifty.wire.any_shape import parse_chat_document

_LABELS = {
    "system": "system prompt",
    "tools": "tool definitions",
    "history": "earlier turns",
    "last_user_message": "last user message",
    "other": "other (reply priming)",
}


@click.command()
@click.option("--model", "-m", required=True, help="The model whose tokenizer to count with.")
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["auto", "text", "json"]),
    default="auto",
    show_default=True,
    help="auto: JSON when the input parses as JSON, else plain text.",
)
@json_option
@prices_option
@click.argument("source", required=False, metavar="[FILE|-]")
def count(model: str, input_format: str, as_json: bool, prices_file: Path | None, source: str | None) -> None:
    """Count the input tokens of FILE (or standard input).

    The input is plain text, a JSON list of chat messages, or an object
    {"messages": [...], "tools": [...]} in OpenAI or Anthropic shape. OpenAI models are counted
    exactly; other models are estimated and flagged approximate.
    """
    book = price_book(prices_file)
    unpriced = unknown_model_problem(book, model)
    if unpriced is not None:  # counting needs no price: say so, and count (cl100k for unknown families)
        click.echo(f"thrifty: note: {unpriced}; counted anyway", err=True)
    text = read_input(source)
    counter = TokenCounter()
    document, mode = _decode(text, input_format)
    if mode == "text":
        result = counter.count_text(text, model)
    else:
        try:
            result = counter.count_request(parse_chat_document(document, model))
        except RequestError as error:
            raise CliError(f"input: {error}") from None
    if as_json:
        emit_json(_as_json(result, mode))
    else:
        _print(result, mode)


def check_known_model(book: PriceBook, model: str) -> None:
    """A model is known when it has a price, or is a fine-tune (``ft:BASE:...``) or a provider-
    prefixed name (``openai/BASE``) of a model that has one. Otherwise: an error with suggestions."""
    problem = unknown_model_problem(book, model)
    if problem is not None:
        raise CliError(problem)


def unknown_model_problem(book: PriceBook, model: str) -> str | None:
    """Why ``model`` has no price (with close matches), or None when it has one."""
    try:
        book.quote(model)
    except UnknownModelError as error:
        base = normalise_model_name(model)
        if base != model.strip().lower():
            try:
                book.quote(base)
            except UnknownModelError:
                pass
            else:
                return None
        return str(error)
    return None


def _decode(text: str, input_format: str) -> tuple[object, str]:
    if input_format == "text":
        return None, "text"
    stripped = text.lstrip()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if input_format == "json":
            raise CliError(f"input: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
        if stripped.startswith(("[", "{")):
            click.echo(
                f"thrifty: warning: the input looks like JSON but is not valid (line {error.lineno}, "
                f"column {error.colno}: {error.msg}); counted as plain text",
                err=True,
            )
        return None, "text"
    if isinstance(document, list | dict):
        return document, "messages"
    if input_format == "json":
        raise CliError("input: expected a JSON list of messages or an object with 'messages'")
    return None, "text"


def _as_json(result: TokenCount, mode: str) -> dict[str, object]:
    return {
        "model": result.model,
        "input": mode,
        "input_tokens": result.input_tokens,
        "approximate": result.approximate,
        "encoding": result.encoding,
        "method": result.method,
        "breakdown": result.breakdown.as_dict(),
        "approximate_because": list(result.reasons),
    }


def _print(result: TokenCount, mode: str) -> None:
    kind = "approximate" if result.approximate else "exact"
    click.echo(f"{result.model}: {result.input_tokens:,} input tokens ({kind}, {result.encoding})")
    if mode != "text":
        for key, value in result.breakdown.as_dict().items():
            click.echo(f"  {_LABELS[key]:<24}{value:>10,}")
    for reason in result.reasons:
        click.echo(f"  approximate: {reason}")
