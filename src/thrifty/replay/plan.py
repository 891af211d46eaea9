"""The steps ``thrifty replay`` and ``thrifty gate`` share: read traffic, state the output
assumption of the calls that recorded no usage, and run it through a config."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from thrifty.config.gateway import GatewayConfig
from thrifty.core.pricing import PriceBook
from thrifty.replay.engine import ReplayRun, replay_traffic
from thrifty.replay.runtime import ReplayRuntime
from thrifty.replay.traffic import Traffic, TrafficError, read_traffic

__all__ = ["assume_output", "read_traffic_file", "run_config"]


def read_traffic_file(path: Path, *, strict: bool = False, model_map: Mapping[str, str] | None = None) -> Traffic:
    try:
        with path.open("rb") as handle:
            return read_traffic(handle, str(path), strict=strict, model_map=model_map)
    except FileNotFoundError:
        raise TrafficError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TrafficError(f"{path}: is a directory, not a file") from None


def assume_output(
    traffic: Traffic, *, output_tokens: int | None = None, averages: Mapping[str, int] | None = None
) -> list[str]:
    """Give every call without recorded usage an output assumption, in place: ``output_tokens``
    (``--output-tokens``), else its feature's observed average (``averages``, from a ledger),
    else its own ``max_tokens``. What was assumed, said in words; ``TrafficError`` for a call
    with none of these."""
    used: Counter[str] = Counter()
    for index, item in enumerate(traffic.items):
        captured = item.call
        outcome = captured.outcome
        if outcome is not None and (outcome.usage is not None or outcome.cached_usage is not None):
            continue
        if captured.output_tokens is not None:
            used["the line's own output_tokens"] += 1
            continue
        assumed: int | None = None
        if output_tokens is not None:
            assumed, why = output_tokens, f"--output-tokens {output_tokens}"
        elif averages and captured.feature in averages:
            assumed = averages[captured.feature or ""]
            why = f"the feature {captured.feature}'s observed average ({assumed}) in the ledger"
        else:
            limit = captured.body.get("max_tokens", captured.body.get("max_completion_tokens"))
            if not isinstance(limit, int) or isinstance(limit, bool):
                raise TrafficError(
                    f"{traffic.source}: line {item.line}: no recorded usage and no max_tokens: "
                    "give --output-tokens N (or output_tokens on the line)"
                )
            assumed, why = limit, "each call's max_tokens"
        traffic.items[index] = replace(item, call=replace(captured, output_tokens=assumed))
        used[why] += 1
    return [f"output tokens of {n} call(s) with no recorded usage: {why}" for why, n in used.items()]


def run_config(
    config: GatewayConfig,
    base_dir: Path,
    traffic: Traffic,
    name: str,
    *,
    prices: PriceBook | None = None,
    semantic: bool = True,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReplayRun:
    """``traffic`` through ``config``'s pipeline, on an event loop of its own."""

    async def run() -> ReplayRun:
        runtime = ReplayRuntime.from_config(config, base_dir, prices=prices, semantic=semantic)
        await runtime.start()
        try:
            return await replay_traffic(runtime, traffic, name, strict=strict, progress=progress)
        finally:
            await runtime.stop()

    return asyncio.run(run())
