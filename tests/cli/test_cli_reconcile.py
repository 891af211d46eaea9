"""``thrifty reconcile``: the ledger against a provider's cost export. Through a live gateway with
the official SDKs (plain, streamed, prompt-cached reads and Anthropic cache writes), a bill made
here from the usage the SDKs received, priced independently, agrees to the cent on every day and
model; a seeded drift is found where it is, in each export shape; bad exports are refused with the
line; --max-drift gates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.support.gateway import RunningGateway, expected_cost, running_gateway
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.core.usage import Usage
from thrifty.stores.ledger import open_ledger

LONG = "You are a meticulous assistant for a hardware store. " * 500  # past every provider's cache minimum


@pytest.fixture
def gateway(simulator_url: str, tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(simulator_url, tmp_path, cache={"exact": {"enabled": False}}) as running:
        yield running


def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrifty.cli.main", "reconcile", *args], check=False, capture_output=True, text=True
    )


def openai_page(costs: dict[tuple[str, str], Decimal], model_suffix: str = "") -> dict[str, Any]:
    buckets: dict[str, list[dict[str, Any]]] = {}
    for (day, model), usd in costs.items():
        item = {"object": "organization.costs.result", "amount": {"value": float(usd), "currency": "usd"}}
        buckets.setdefault(day, []).append({**item, "line_item": f"{model}{model_suffix}, input", "project_id": None})
    data = []
    for day, results in sorted(buckets.items()):
        start = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
        data.append({"object": "bucket", "start_time": start, "end_time": start + 86400, "results": results})
    return {"object": "page", "data": data, "has_more": False, "next_page": None}


def test_a_bill_from_what_the_sdks_received_agrees_to_the_cent(gateway: RunningGateway, tmp_path: Path) -> None:
    gpt = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="sk-test", max_retries=0)
    seen: list[tuple[str, Usage]] = []
    for question in ("Which drill for brick?", "Which drill for brick?"):  # the second reads the cached prefix
        reply = gpt.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": LONG}, {"role": "user", "content": question}],
            max_tokens=40,
        )
        assert reply.usage is not None
        details = reply.usage.prompt_tokens_details
        cached = details.cached_tokens or 0 if details is not None else 0
        seen.append(
            (
                "gpt-4o-mini",
                Usage(
                    input_tokens=reply.usage.prompt_tokens,
                    cache_read_tokens=cached,
                    output_tokens=reply.usage.completion_tokens,
                ),
            )
        )
    stream = gpt.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Name three saws."}],
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = list(stream)[-1]
    assert last.usage is not None
    seen.append(("gpt-4o", Usage(input_tokens=last.usage.prompt_tokens, output_tokens=last.usage.completion_tokens)))
    for _ in range(2):  # a cache write, then a read
        message = claude.messages.create(
            model="claude-haiku-4-5",
            system=[{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": "Which drill for brick?"}],
            max_tokens=40,
        )
        u = message.usage
        write, read = u.cache_creation_input_tokens or 0, u.cache_read_input_tokens or 0
        seen.append(
            (
                "claude-haiku-4-5",
                Usage(
                    input_tokens=u.input_tokens + write + read,
                    cache_read_tokens=read,
                    cache_write_5m_tokens=write,
                    output_tokens=u.output_tokens,
                ),
            )
        )
    rows = gateway.records(len(seen))
    assert any(u.cache_read_tokens for m, u in seen if m == "gpt-4o-mini")
    assert any(u.cache_write_5m_tokens for m, u in seen if m.startswith("claude"))
    day = rows[0].ts.date().isoformat()
    openai_bill: dict[tuple[str, str], Decimal] = {}
    anthropic_results = []
    for (model, usage), row in zip(seen, rows, strict=True):
        usd = expected_cost(usage, model, row)
        if model.startswith("claude"):
            anthropic_results.append(
                {"amount": str(usd * 100), "currency": "USD", "model": f"{model}-20251001", "cost_type": "tokens"}
            )
        else:
            openai_bill[(day, model)] = openai_bill.get((day, model), Decimal(0)) + usd
    openai_file = tmp_path / "openai-costs.json"
    openai_file.write_text(json.dumps(openai_page(openai_bill, "-2024-07-18")))
    anthropic_file = tmp_path / "anthropic-costs.json"
    starting = f"{day}T00:00:00Z"
    anthropic_file.write_text(
        json.dumps(
            {
                "data": [{"starting_at": starting, "ending_at": starting, "results": anthropic_results}],
                "has_more": False,
            }
        )
    )
    url = gateway.runtime.config.storage.ledger
    for provider, path, models in (
        ("openai", openai_file, {"gpt-4o-mini", "gpt-4o"}),
        ("anthropic", anthropic_file, {"claude-haiku-4-5"}),
    ):
        out = reconcile("--provider", provider, "--costs", str(path), "--ledger", url, "--json", "--max-drift", "0")
        assert out.returncode == 0, out.stderr
        document = json.loads(out.stdout)
        assert {row["model"] for row in document["days"]} == models
        assert all(row["agrees"] and Decimal(row["drift_usd"]) == 0 for row in document["days"]), document
        assert Decimal(document["provider_usd"]) > 0 and Decimal(document["drift_usd"]) == 0


def seeded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    rows = [
        LedgerRecord(
            requested_model="gpt-4o",
            served_model="gpt-4o-2024-08-06",
            provider="openai",
            ts=datetime(2026, 11, d, 12, tzinfo=UTC),
            cost=Cost(output=Decimal(usd)),
        )
        for d, usd in ((1, "1.00"), (1, "0.50"), (2, "2.00"), (3, "4.00"))
    ]
    rows.append(
        LedgerRecord(
            requested_model="claude-haiku-4-5",
            provider="anthropic",
            ts=datetime(2026, 11, 2, 9, tzinfo=UTC),
            cost=Cost(output=Decimal("9")),
        )
    )
    store = open_ledger(url)
    try:
        store.insert_rows([r.to_values() for r in rows])
    finally:
        store.close()
    return url


def test_a_drift_is_found_where_it_is_in_every_shape(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    bill = {("2026-11-01", "gpt-4o"): Decimal("1.50"), ("2026-11-02", "gpt-4o"): Decimal("2.00")}
    shapes = {
        "page.json": json.dumps(openai_page(bill)),
        "pages.jsonl": json.dumps(openai_page(dict(list(bill.items())[:1])))
        + "\n"
        + json.dumps(openai_page(dict(list(bill.items())[1:])))
        + "\n",
        "bill.csv": "date,model,cost_usd\n2026-11-01,gpt-4o-2024-08-06,1.50\n2026-11-02,gpt-4o,1.60\n",
    }
    for name, text in shapes.items():
        path = tmp_path / name
        path.write_text(text)
        out = reconcile("--provider", "openai", "--costs", str(path), "--ledger", url, "--json")
        assert out.returncode == 0, out.stderr
        document = json.loads(out.stdout)
        rows = {(r["day"], r["model"]): r for r in document["days"]}
        assert set(rows) == {
            ("2026-11-01", "gpt-4o"),
            ("2026-11-02", "gpt-4o"),
        }  # the 3rd is past the export; Claude is not OpenAI's
        assert rows[("2026-11-01", "gpt-4o")]["agrees"] is True
        second = rows[("2026-11-02", "gpt-4o")]
        if name == "bill.csv":  # the provider charged $1.60 where the ledger has $2.00
            assert second["drift_usd"] == "0.4" and second["drift_pct"] == 25.0 and second["agrees"] is False
            gated = reconcile("--provider", "openai", "--costs", str(path), "--ledger", url, "--max-drift", "5")
            assert gated.returncode == 1 and "<-" in gated.stdout
        else:
            assert second["agrees"] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("date,cost_usd\n2026-11-01,1\n", "needs a date, a model and a cost_usd column"),
        ("date,model,cost_usd\n2026-11-01,gpt-4o,lots\n", "line 2"),
        ('{"object": "page"}\n', "no data list"),
        ('{"data": []}\n{oops\n', "line 2: not JSON"),
    ],
)
def test_a_bad_export_is_refused_with_where(tmp_path: Path, text: str, message: str) -> None:
    url = seeded(tmp_path)
    path = tmp_path / "costs.txt"
    path.write_text(text)
    out = reconcile("--provider", "openai", "--costs", str(path), "--ledger", url)
    assert out.returncode == 2 and message in out.stderr, out.stderr
