"""What every command shares: errors, JSON output, option parsing, the price book."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import click

from thrifty.core.pricing import PriceBook
from thrifty.core.redact import redact_text, redact_url, url_secrets
from thrifty.errors import ThriftyError

__all__ = [
    "COUNT",
    "CliError",
    "Count",
    "config_option",
    "default_ledger_url",
    "emit_json",
    "json_option",
    "needs_value",
    "parse_when",
    "price_book",
    "prices_option",
    "read_input",
    "require_existing",
    "resolve_ledger",
    "say_store",
    "store_error",
    "usd",
]

F = TypeVar("F", bound=Callable[..., Any])


def store_error(what: str, url: str, error: Exception) -> CliError:
    """A store that cannot be opened, said in one line, with no password of its URL in it."""
    detail = redact_text(f"{type(error).__name__}: {error}", url_secrets(url)).splitlines()[0]
    return CliError(f"cannot open {what} {redact_url(url)}: {detail}")


class CliError(ThriftyError, click.ClickException):
    """Bad input: reported on one line, exit status 2. The CLI's member of ``thrifty.errors``'
    hierarchy (defined here, beside click, because it is click's ``ClickException`` too)."""

    exit_code = 2


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def prices_option(func: F) -> F:
    return click.option(
        "--prices",
        "prices_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="THRIFTY_PRICES",
        help="Price overrides (YAML or JSON) on top of the catalogue. Env: THRIFTY_PRICES.",
    )(func)


def price_book(prices_file: Path | None) -> PriceBook:
    from thrifty.config.files import ConfigError
    from thrifty.config.prices import load_price_book

    try:
        return load_price_book(prices_file)
    except ConfigError as error:
        raise CliError(str(error)) from None


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=None, separators=(",", ":"), default=_json_default))


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        from thrifty.core.pricing import format_usd

        return format_usd(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def usd(amount: Decimal) -> str:
    """For people: ``$500.00``, ``$0.004625``, ``$1,234.5678`` -- at least cents, at most 8 places.
    Money in JSON output stays an exact decimal string instead."""
    text = format(amount.quantize(Decimal("1e-8")), "f")
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}${int(whole.lstrip('-')):,}.{frac}"


def parse_when(value: str | None, option: str) -> datetime | None:
    """``2025-06-01`` (midnight UTC) or an ISO 8601 time; no zone means UTC."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_decimal(value: str, option: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CliError(f"{option}: {value!r} is not a number") from None
    if not number.is_finite() or (minimum is not None and number < minimum):
        raise CliError(f"{option}: must be a number >= {minimum}, got {value}")
    return number


_SUFFIXES = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}


class Count(click.ParamType):  # type: ignore[type-arg]  # click's stubs make ParamType generic
    """A whole number of things (requests, tokens) >= 0: ``100000``, ``100_000``, ``100k``,
    ``2.5k``, ``1M``, ``1B``. Anything else is refused on one line naming the option."""

    name = "count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = _count_value(value)
        if number is None:
            raise CliError(f"{_option_name(param)}: {value!r} is not a whole number (e.g. 100000, 100k, 2.5k, 1M)")
        if number < 0:
            raise CliError(f"{_option_name(param)}: must be >= 0, got {value}")
        return number


def _count_value(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().replace("_", "")
    factor = _SUFFIXES.get(text[-1:].lower(), 1)
    digits = text[:-1] if factor != 1 else text
    if not digits.lstrip("+-").replace(".", "", 1).isdigit():
        return None
    try:
        number = Decimal(digits) * factor
    except InvalidOperation:
        return None
    return int(number) if number == number.to_integral_value() else None


COUNT = Count()


def _option_name(param: click.Parameter | None) -> str:
    if param is None:
        return "value"
    return max(param.opts, key=len) if param.opts else str(param.name)


def needs_value(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse another option taken as this option's value (``--user --usd 5``: click would make
    ``--usd`` the user's name)."""
    if isinstance(value, str) and value.startswith("-"):
        names = {name for p in ctx.command.params for name in (*p.opts, *p.secondary_opts)}
        if value.split("=", 1)[0] in names:
            raise CliError(f"{_option_name(param)} needs a value (it was followed by the option {value})")
    return value


def read_input(source: str | None) -> str:
    """The text of FILE, or of standard input for ``-`` (or no FILE when input is piped)."""
    if source is None or source == "-":
        if source is None and sys.stdin.isatty():
            raise CliError("no input: give a FILE, or pipe the input into '-'")
        data = sys.stdin.buffer.read()
        where = "standard input"
    else:
        path = Path(source)
        if path.is_dir():
            raise CliError(f"{source}: is a directory, not a file")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CliError(f"{source}: no such file") from None
        except OSError as error:
            raise CliError(f"{source}: cannot be read: {error.strerror}") from None
        where = source
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not content
    except UnicodeDecodeError as error:
        raise CliError(f"{where}: not UTF-8 text (invalid byte at offset {error.start})") from None


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="THRIFTY_CONFIG",
        default=None,
        help="A gateway config: its storage.ledger is the store (env: THRIFTY_CONFIG; before --ledger).",
    )(func)


def resolve_ledger(config_path: Path | None, ledger_url: str | None) -> tuple[str, str]:
    """The ledger a command acts on, and where that came from. One rule for every command:
    ``--config``/``THRIFTY_CONFIG`` first (its relative paths anchored at the file's folder), then
    ``--ledger``/``THRIFTY_LEDGER_URL``, then the embedded default."""
    if config_path is not None:
        from thrifty.config.files import ConfigError
        from thrifty.config.gateway import load_gateway_config

        try:
            return load_gateway_config(config_path).storage.ledger, f"the config {config_path}"
        except ConfigError as error:
            raise CliError(str(error)) from None
    if ledger_url:
        return ledger_url, "--ledger"
    if os.environ.get("THRIFTY_LEDGER_URL"):
        return default_ledger_url(), "THRIFTY_LEDGER_URL"
    return default_ledger_url(), "the embedded default"


def require_existing(url: str, source: str) -> None:
    """A read-only command never creates a database: a SQLite file that is not there is an error."""
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise CliError(f"no ledger at {path} (from {source}): nothing has been recorded there")


def say_store(url: str, source: str, *, quiet: bool = False) -> None:
    """Which store a command used, on standard error (standard output stays the command's); not
    with ``--json`` (``quiet``), whose reader wants one document."""
    if not quiet:
        click.echo(f"thrifty: using {redact_url(url)} (from {source})", err=True)


def demo_home() -> Path:
    """Where the demos keep their data: ``$THRIFTY_HOME`` (default ``.thrifty``)."""
    return Path(os.environ.get("THRIFTY_HOME", ".thrifty"))


def demo_ledger_url() -> str:
    """The demos' own store, ``.thrifty/demo.db``: simulated calls never mix with real spend in
    the default ledger (nor in ``THRIFTY_LEDGER_URL``'s); ``thrifty report --demo`` reads it."""
    return f"sqlite:///{demo_home() / 'demo.db'}"


def default_ledger_url() -> str:
    """``THRIFTY_LEDGER_URL``, else the embedded default: ``.thrifty/thrifty.db`` here."""
    url = os.environ.get("THRIFTY_LEDGER_URL")
    if url:
        return url
    home = Path(os.environ.get("THRIFTY_HOME", ".thrifty"))
    return f"sqlite:///{home / 'thrifty.db'}"
