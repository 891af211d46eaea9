"""One builder for every face: the gateway and the in-process client make the same chain, in the
same order, from the same config sections; a step whose section asks for nothing stays out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import gateway_config, shared_parts
from thrifty.client import Thrifty
from thrifty.gateway.runtime import Runtime
from thrifty.pipeline.budgets.step import BudgetStep
from thrifty.pipeline.steps.cache import ExactCacheStep
from thrifty.pipeline.steps.compression import CompressionStep, OutputCapStep
from thrifty.pipeline.steps.embeddings import EmbeddingsCacheStep
from thrifty.pipeline.steps.ratelimit import RateLimitStep
from thrifty.pipeline.steps.record import RecordStep
from thrifty.pipeline.steps.routing import RouterStep

OPTIMISE: dict[str, Any] = {
    "tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]},
    "routing": {"policy": "rules", "rules": [{"max_prompt_tokens": 200, "tier": "small"}]},
    "compression": {"whitespace": {"enabled": True}},
    "output_caps": {"plans": {"free": 100}, "default_plan": "free"},
}
LIMITS: dict[str, Any] = {
    "budgets": {"limits": [{"scope": "global", "usd": "5", "window": "day"}]},
    "rate_limits": {"limits": [{"scope": "global", "requests_per_minute": 600}]},
}
EVERY_STEP = [RecordStep, ExactCacheStep, CompressionStep, OutputCapStep, RouterStep, BudgetStep, RateLimitStep]


def _gateway_steps(tmp_path: Path, simulator_url: str, **sections: Any) -> tuple[list[type], list[type]]:
    import asyncio

    catalogue, encodings = shared_parts()
    config = gateway_config(simulator_url, tmp_path, **sections)
    runtime = Runtime.from_config(config, tmp_path, catalogue=catalogue, encodings=encodings)

    async def steps() -> tuple[list[type], list[type]]:
        await runtime.start()
        try:
            assert runtime.pipeline is not None and runtime.embeddings is not None
            return [type(s) for s in runtime.pipeline.steps], [type(s) for s in runtime.embeddings.steps]
        finally:
            await runtime.stop()

    return asyncio.run(steps())


def _client_steps(tmp_path: Path, **arguments: Any) -> tuple[list[type], list[type]]:
    thrifty = Thrifty(
        ledger=f"sqlite:///{tmp_path / 'client.db'}", journal_dir=tmp_path / "client-journal", **arguments
    )
    try:
        runtime = thrifty.runtime
        return [type(s) for s in runtime.pipeline.steps], [type(s) for s in runtime.embeddings.steps]
    finally:
        thrifty.close()


def test_both_faces_build_every_step_in_the_same_order(tmp_path: Path, simulator_url: str) -> None:
    gateway = _gateway_steps(tmp_path / "gw", simulator_url, **OPTIMISE, **LIMITS)
    client = _client_steps(tmp_path / "cl", optimise=OPTIMISE, limits=LIMITS)
    assert gateway == client
    chat, embeddings = gateway
    assert chat == EVERY_STEP
    assert embeddings == [RecordStep, EmbeddingsCacheStep, BudgetStep, RateLimitStep]


@pytest.mark.parametrize("off", ["cache", "optimise", "limits"])
def test_a_step_whose_section_asks_for_nothing_stays_out_of_both(tmp_path: Path, simulator_url: str, off: str) -> None:
    gateway_sections: dict[str, Any] = {**OPTIMISE, **LIMITS}
    client_arguments: dict[str, Any] = {"optimise": OPTIMISE, "limits": LIMITS}
    if off == "cache":
        gateway_sections["cache"] = client_arguments["cache"] = {"exact": {"enabled": False}}
        gone = {ExactCacheStep, EmbeddingsCacheStep}
    elif off == "optimise":
        for name in OPTIMISE:
            del gateway_sections[name]
        del client_arguments["optimise"]
        gone = {CompressionStep, OutputCapStep, RouterStep}
    else:
        gateway_sections["rate_limits"] = LIMITS["rate_limits"] | {"limits": []}
        client_arguments["limits"] = {"budgets": LIMITS["budgets"]}
        gone = {RateLimitStep}
    gateway = _gateway_steps(tmp_path / "gw", simulator_url, **gateway_sections)
    client = _client_steps(tmp_path / "cl", **client_arguments)
    assert gateway == client
    assert gateway[0] == [step for step in EVERY_STEP if step not in gone]
