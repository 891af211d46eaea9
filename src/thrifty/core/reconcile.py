"""Reconciling the ledger with a provider's bill: the cost exports read (OpenAI's Costs API pages,
Anthropic's cost report, or a plain CSV of day, model and cost), and the drift per day and model
between what thrifty recorded and what the provider charged. Pure: the files are read by the CLI,
the ledger's sums come from ``thrifty.stores.ledger.daily``."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from thrifty.errors import ConfigError

__all__ = ["Drift", "ExportError", "Key", "compare", "family", "parse_export"]

_DATED = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")
Key = tuple[str, str]  # (day YYYY-MM-DD, model family)


class ExportError(ConfigError):
    """A cost export that cannot be read: which line or field, and why."""


def family(model: str) -> str:
    """A model's name without its date suffix: ``gpt-4o-mini-2024-07-18`` and ``gpt-4o-mini`` are
    billed as one, as are ``claude-sonnet-4-5-20250929`` and ``claude-sonnet-4-5``."""
    return _DATED.sub("", model.strip())


def parse_export(text: str, provider: str, source: str) -> dict[Key, Decimal]:
    """Cost by (day, model family) in USD, from any of the three shapes (detected)."""
    stripped = text.lstrip()
    if not stripped:
        raise ExportError(f"{source}: the file is empty")
    if stripped[0] in "[{":
        return _from_json(text, provider, source)
    return _from_csv(text, source)


def _from_json(text: str, provider: str, source: str) -> dict[Key, Decimal]:
    pages: list[Any] = []
    try:
        parsed = json.loads(text, parse_float=Decimal)
        pages = parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError:
        for number, line in enumerate(text.splitlines(), start=1):  # JSON Lines: one page a line
            if line.strip():
                try:
                    pages.append(json.loads(line, parse_float=Decimal))
                except json.JSONDecodeError as error:
                    raise ExportError(f"{source}: line {number}: not JSON ({error.msg})") from None
    out: dict[Key, Decimal] = {}
    for index, page in enumerate(pages):
        buckets = page.get("data") if isinstance(page, dict) else None
        if not isinstance(buckets, list):
            raise ExportError(
                f"{source}: page {index + 1}: no data list (an OpenAI costs page or Anthropic cost report)"
            )
        for bucket in buckets:
            day = _bucket_day(bucket, source)
            for result in bucket.get("results") or []:
                model, usd = _openai_result(result) if provider == "openai" else _anthropic_result(result)
                if model is not None:
                    key = (day, family(model))
                    out[key] = out.get(key, Decimal(0)) + usd
    return out


def _bucket_day(bucket: Mapping[str, Any], source: str) -> str:
    if "start_time" in bucket:  # OpenAI: Unix seconds
        return datetime.fromtimestamp(int(bucket["start_time"]), UTC).date().isoformat()
    if "starting_at" in bucket:  # Anthropic: RFC 3339
        return (
            datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00")).astimezone(UTC).date().isoformat()
        )
    raise ExportError(f"{source}: a bucket without start_time or starting_at")


def _openai_result(result: Mapping[str, Any]) -> tuple[str | None, Decimal]:
    """``line_item`` is ``"gpt-4o-mini-2024-07-18, input"`` (with ``group_by=line_item``)."""
    amount = result.get("amount") or {}
    usd = Decimal(str(amount.get("value", 0)))
    line_item = result.get("line_item")
    model = str(line_item).split(",", 1)[0] if line_item else None
    return model, usd


def _anthropic_result(result: Mapping[str, Any]) -> tuple[str | None, Decimal]:
    """``amount`` is in cents, as a decimal string; ``model`` with ``group_by[]=description``."""
    cents = Decimal(str(result.get("amount", "0")))
    return result.get("model"), cents / 100


_DAY = ("date", "day", "usage_date")
_MODEL = ("model", "model_name", "line_item")
_COST = ("cost_usd", "cost", "amount_usd", "amount")


def _from_csv(text: str, source: str) -> dict[Key, Decimal]:
    reader = csv.DictReader(io.StringIO(text))
    fields = {name.strip().lower(): name for name in reader.fieldnames or []}
    day_col = next((fields[c] for c in _DAY if c in fields), None)
    model_col = next((fields[c] for c in _MODEL if c in fields), None)
    cost_col = next((fields[c] for c in _COST if c in fields), None)
    if day_col is None or model_col is None or cost_col is None:
        raise ExportError(
            f"{source}: a CSV export needs a date, a model and a cost_usd column (has: {', '.join(fields)})"
        )
    out: dict[Key, Decimal] = {}
    for number, row in enumerate(reader, start=2):
        try:
            day = datetime.fromisoformat(row[day_col].strip()[:10]).date().isoformat()
            usd = Decimal(row[cost_col].strip().lstrip("$"))
        except (ValueError, InvalidOperation, AttributeError):
            raise ExportError(
                f"{source}: line {number}: {day_col}={row.get(day_col)!r}, {cost_col}={row.get(cost_col)!r}"
            ) from None
        model = (row[model_col] or "").split(",", 1)[0]
        key = (day, family(model))
        out[key] = out.get(key, Decimal(0)) + usd
    return out


@dataclass(frozen=True, slots=True)
class Drift:
    day: str
    model: str
    ledger_usd: Decimal
    provider_usd: Decimal

    @property
    def drift_usd(self) -> Decimal:
        return self.ledger_usd - self.provider_usd

    @property
    def drift_pct(self) -> float | None:
        return None if self.provider_usd == 0 else float(self.drift_usd / self.provider_usd * 100)


def compare(
    ledger: Mapping[Key, Decimal], bill: Mapping[Key, Decimal], days: Iterable[str] | None = None
) -> list[Drift]:
    """Every (day, model) of either side, on the days the bill covers (a ledger day the export
    does not reach is not a drift)."""
    covered = set(days) if days is not None else {day for day, _ in bill}
    keys = {key for key in (*ledger, *bill) if key[0] in covered}
    zero = Decimal(0)
    return [
        Drift(day, model, ledger.get((day, model), zero), bill.get((day, model), zero)) for day, model in sorted(keys)
    ]
