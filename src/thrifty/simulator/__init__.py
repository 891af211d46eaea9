"""thrifty's simulated upstream: a SIMULATOR that speaks OpenAI's and Anthropic's public wire
formats (chat completions, messages, embeddings, files and batches) with deterministic answers,
exact usage (prompt caching included), rate-limit headers and injectable faults, so tests, the
demo and benchmarks need no keys and no network. No real model is behind it.

    from thrifty.simulator import BackgroundSimulator, SimulatorConfig, create_app

    app = create_app(SimulatorConfig(answer_max_tokens=50))  # an ASGI app; all its state lives in it

    with BackgroundSimulator() as sim:  # uvicorn on a thread, on a free port
        client = openai.OpenAI(base_url=sim.openai_base_url, api_key="unused")

Faults: the ``x-simulator-fault`` request header (``429;retry-after=0.2``, ``500``, ``529``,
``delay=150``, ``chunk-delay=20``, ``drop-after=3``, ``timeout``, ``quota``), the admin queue
``POST /_simulator/faults`` and per-model ``faults`` in the config; ``GET /_simulator/stats``.
"""

from thrifty.simulator.app import SimulatorApp, create_app
from thrifty.simulator.config import FaultSpec, RateLimits, SimulatorConfig, load_simulator_config
from thrifty.simulator.server import BackgroundSimulator

__all__ = [
    "BackgroundSimulator",
    "FaultSpec",
    "RateLimits",
    "SimulatorApp",
    "SimulatorConfig",
    "create_app",
    "load_simulator_config",
]
