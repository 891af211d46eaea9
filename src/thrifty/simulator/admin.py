"""``/_simulator/*``: the simulator's own controls (not part of any provider's API).

* ``POST /_simulator/faults`` ``{"model": "gpt-4o", "fault": "429;retry-after=0.1", "times": 1}``
  queues a fault for the next ``times`` requests for that model (``model`` omitted or ``*``: any).
* ``GET /_simulator/faults`` lists queued and configured faults; ``DELETE`` clears the queue.
* ``GET /_simulator/stats``: requests seen by model and path, faults injected, cache entries.
* ``POST /_simulator/reset``: forget caches, files, batches, queued faults, stats and rate limits.
* ``GET /_simulator/health``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from thrifty.simulator.common import Reply
from thrifty.simulator.config import FaultSpec, describe_validation_error

if TYPE_CHECKING:
    from thrifty.simulator.state import Simulator

__all__ = ["AdminError", "admin"]


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(payload: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=orjson.dumps(payload))


def admin(sim: Simulator, method: str, path: str, body: bytes) -> Reply:
    """Raises ``AdminError`` for a bad request or an unknown control."""
    if path == "/_simulator/faults":
        if method == "POST":
            return _queue_fault(sim, body)
        if method == "DELETE":
            return _json({"cleared": sim.faults.clear()})
        if method == "GET":
            return _json({"queued": sim.faults.queued(), "configured": sim.faults.configured()})
    elif path == "/_simulator/stats" and method == "GET":
        stats = sim.stats.as_dict()
        stats["queued_faults"] = sim.faults.queued()
        stats["cache_entries"] = len(sim.store)
        stats["files"] = len(sim.files)
        stats["batches"] = len(sim.batches)
        return _json(stats)
    elif path == "/_simulator/reset" and method == "POST":
        sim.reset()
        return _json({"reset": True})
    elif path == "/_simulator/health" and method == "GET":
        return _json({"status": "ok", "simulator": True, "warmed": sim.warmed})
    raise AdminError(404, f"no simulator control {method} {path}")


def _queue_fault(sim: Simulator, body: bytes) -> Reply:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise AdminError(400, f"invalid JSON: {error}") from None
    if not isinstance(data, dict):
        raise AdminError(400, 'expected an object like {"model": "gpt-4o", "fault": "429", "times": 1}')
    unknown = set(data) - {"model", "fault", "times"}
    if unknown:
        raise AdminError(400, f"unknown fields: {', '.join(sorted(unknown))}")
    model = data.get("model", "*")
    if model is None:
        model = "*"
    if not isinstance(model, str) or not model:
        raise AdminError(400, "model: expected a model name, or '*' for any model")
    times = data.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise AdminError(400, "times: expected a whole number of at least 1")
    raw = data.get("fault")
    try:
        if isinstance(raw, str):
            fault = FaultSpec.parse(raw)
        elif isinstance(raw, dict):
            fault = FaultSpec.model_validate(raw)
        else:
            raise AdminError(400, 'fault: expected text like "429;retry-after=0.1" or an object')
    except ValidationError as error:
        raise AdminError(400, describe_validation_error(error, "fault")) from None
    except ValueError as error:
        raise AdminError(400, f"fault: {error}") from None
    sim.faults.enqueue(model, fault, times)
    return _json({"queued": sim.faults.queued()}, 201)
