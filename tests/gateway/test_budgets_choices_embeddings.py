"""Budgets hold for every priced call: a chat call's reservation covers all ``n`` choices it may
return, and ``/v1/embeddings`` reserves and settles against the same budgets (and rate limits) as
chat. Concurrent calls never spend past the budget; the budget store and the ledger agree."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.gateway.test_gateway_budgets import budgeted, calls, gpt, settled

HELLO = [{"role": "user", "content": "Say hello to the gateway."}]
LONG_INPUT = " ".join(f"word{n}" for n in range(600))  # 1,200 tokens: $0.000024 on text-embedding-3-small
MEDIUM_INPUT = " ".join(f"word{n}" for n in range(200))  # 400 tokens: $0.000008


def _ledger_sum(rows: list[Any]) -> Decimal:
    return sum((r.cost.total for r in rows if r.cost is not None), Decimal(0))


def test_a_reservation_covers_every_choice_of_n(simulator_url: str, tmp_path: Path) -> None:
    # One call of n=16 and max_tokens=20 on gpt-4o-mini may produce 320 output tokens: about
    # $0.000194. The budget fits two such calls; ten at once must not spend past it.
    limits = [{"scope": "user", "value": "nina", "usd": "0.0004", "window": "day"}]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        client = openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, default_headers={"x-thrifty-user": "nina"}
        )

        async def one() -> int | str:
            try:
                reply = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=HELLO,  # type: ignore[arg-type]
                    max_tokens=20,
                    n=16,
                )
            except openai.RateLimitError as error:
                body: Any = error.body
                return int(error.status_code) if body["type"] == "budget_exceeded" else str(body)
            return 200 if len(reply.choices) == 16 else f"{len(reply.choices)} choices"

        async def main() -> list[int | str]:
            return list(await asyncio.gather(*(one() for _ in range(10))))

        statuses = asyncio.run(main())
        assert 1 <= statuses.count(200) <= 2 and statuses.count(429) >= 8
        (row,) = settled(gateway)
        rows = calls(gateway, 10)
        assert Decimal(row["spent"]) <= Decimal("0.0004")
        assert Decimal(row["spent"]) == _ledger_sum(rows)
        ok = [r for r in rows if r.status == "ok"]
        assert all(r.usage.output_tokens > 20 for r in ok)  # the choices' tokens are all billed


def test_a_token_rate_limit_weighs_every_choice(simulator_url: str, tmp_path: Path) -> None:
    rate_limits = {"max_wait_s": 0, "limits": [{"scope": "user", "value": "rita", "tokens_per_minute": 400}]}
    with budgeted(simulator_url, tmp_path, [], rate_limits=rate_limits) as gateway:
        client = gpt(gateway, **{"x-thrifty-user": "rita"})
        # 16 choices of up to 30 tokens: 480 tokens at most, more than the minute allows.
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=30, n=16)  # type: ignore[arg-type]
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=30, n=4)  # type: ignore[arg-type]


def test_embeddings_are_held_to_the_users_budget_after_chat_spent_it(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "user", "value": "emma", "usd": "0.00002", "window": "day"}]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        client = gpt(gateway, **{"x-thrifty-user": "emma"})
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=20)  # type: ignore[arg-type]
        for _ in range(5):  # each would fit the whole budget, not what chat left of it ($0.000006)
            with pytest.raises(openai.RateLimitError) as refused:
                client.embeddings.create(model="text-embedding-3-small", input=MEDIUM_INPUT)
            body: Any = refused.value.body
            assert body["type"] == "budget_exceeded" and "user emma" in body["message"]
            assert "can never fit" not in body["message"]
            assert int(refused.value.response.headers["retry-after"]) > 0
        (row,) = settled(gateway)
        rows = calls(gateway, 7)
        assert Decimal(row["spent"]) == _ledger_sum(rows)
        embedding_rows = [r for r in rows if r.details.get("endpoint") == "embeddings"]
        assert len(embedding_rows) == 5 and all(r.http_status == 429 for r in embedding_rows)


def test_concurrent_embeddings_never_spend_past_the_budget(simulator_url: str, tmp_path: Path) -> None:
    limits = [{"scope": "team", "value": "search", "usd": "0.0001", "window": "day"}]
    with budgeted(simulator_url, tmp_path, limits) as gateway:
        client = openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, default_headers={"x-thrifty-team": "search"}
        )

        async def one(n: int) -> int:
            try:
                await client.embeddings.create(model="text-embedding-3-small", input=[LONG_INPUT, f"query {n}"])
            except openai.RateLimitError:
                return 429
            return 200

        async def main() -> list[int]:
            return list(await asyncio.gather(*(one(n) for n in range(20))))

        statuses = asyncio.run(main())
        assert statuses.count(200) >= 1 and statuses.count(429) >= 1
        (row,) = settled(gateway)
        rows = calls(gateway, 20)
        assert Decimal(row["spent"]) <= Decimal("0.0001")
        assert Decimal(row["spent"]) == _ledger_sum(rows) > 0
        assert sum(1 for r in rows if r.status == "ok") == statuses.count(200)


def test_a_chat_model_is_refused_on_the_embeddings_endpoint(simulator_url: str, tmp_path: Path) -> None:
    with budgeted(simulator_url, tmp_path, []) as gateway:
        with pytest.raises(openai.BadRequestError) as refused:
            gpt(gateway).embeddings.create(model="gpt-4o", input="hello")
        assert "gpt-4o is a chat model" in str(refused.value.body)
        assert gpt(gateway).embeddings.create(model="text-embedding-3-small", input="hello").data
