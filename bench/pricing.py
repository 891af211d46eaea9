"""Pricing throughput: thrifty's price book against calling genai-prices for every call.

Run: .venv/bin/python bench/pricing.py
Target (issue 2): at least 100,000 calls per second for repeated models.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import genai_prices

from thrifty.core.pricing import PriceBook
from thrifty.core.usage import Usage

MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
]


def workload(n: int) -> list[tuple[str, str, Usage, datetime]]:
    rng = random.Random(1)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    calls = []
    for i in range(n):
        provider, model = MODELS[i % len(MODELS)]
        total = rng.randint(100, 20_000)
        read = rng.randint(0, total // 2)
        calls.append(
            (
                provider,
                model,
                Usage(input_tokens=total, cache_read_tokens=read, output_tokens=rng.randint(1, 2000)),
                start + timedelta(seconds=i * 3),
            )  # a few days of traffic: several price resolutions per model
        )
    return calls


def run_thrifty(book: PriceBook, calls: list[tuple[str, str, Usage, datetime]]) -> float:
    start = time.perf_counter()
    for provider, model, usage, at in calls:
        book.price(usage, model, provider=provider, at=at)
    return time.perf_counter() - start


def run_catalogue(calls: list[tuple[str, str, Usage, datetime]]) -> float:
    start = time.perf_counter()
    for provider, model, usage, at in calls:
        genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=usage.input_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                output_tokens=usage.output_tokens,
            ),
            model,
            provider_id=provider,
            genai_request_timestamp=at,
        )
    return time.perf_counter() - start


def main() -> None:
    calls = workload(200_000)
    book = PriceBook()
    book.price(Usage(input_tokens=1), "gpt-4o", at=calls[0][3])  # load the catalogue outside the timing
    run_catalogue(calls[:1000])
    ours, theirs, ratios = [], [], []
    for _ in range(5):
        a = run_thrifty(book, calls)
        b = run_catalogue(calls[:20_000]) * 10
        ours.append(a)
        theirs.append(b)
        ratios.append(b / a)
    ours.sort()
    theirs.sort()
    ratios.sort()
    n = len(calls)
    print(f"thrifty PriceBook.price       {n / ours[2]:>12,.0f} calls/s")
    print(f"genai_prices.calc_price each  {n / theirs[2]:>12,.0f} calls/s")
    print(f"speed-up (median of 5 rounds) {ratios[2]:>12.1f}x    target: >= 100,000 calls/s")


if __name__ == "__main__":
    main()
