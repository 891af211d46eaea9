"""Choosing a request's fault, and the counters ``GET /_simulator/stats`` reports.

A request's fault comes from, in this order: its ``x-simulator-fault`` header; the admin queue
(``POST /_simulator/faults``: each queued fault is consumed by one matching request, so a test can
fail the first attempt and let the retry through); the config's per-model faults (every request,
or the ``rate`` fraction of them, spread evenly).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.simulator.common import ApiError
from thrifty.simulator.config import FaultSpec

__all__ = ["FaultBook", "QueuedFault", "Stats"]

_ANY = "*"


@dataclass(slots=True)
class QueuedFault:
    model: str
    fault: FaultSpec
    remaining: int


class FaultBook:
    def __init__(self, configured: Mapping[str, FaultSpec]) -> None:
        self._configured = dict(configured)
        self._seen: dict[str, int] = {}
        self._queue: deque[QueuedFault] = deque()

    def pick(self, model: str, header_value: bytes | None) -> FaultSpec | None:
        if header_value is not None:
            try:
                return FaultSpec.parse(header_value.decode("latin-1"))
            except ValueError as error:
                raise ApiError(400, f"x-simulator-fault: {error}") from None
        if self._queue:
            for entry in self._queue:
                if entry.model in (model, _ANY):
                    entry.remaining -= 1
                    if entry.remaining <= 0:
                        self._queue.remove(entry)
                    return entry.fault
        if self._configured:
            key = model if model in self._configured else _ANY
            fault = self._configured.get(key)
            if fault is not None:
                if fault.rate >= 1.0:
                    return fault
                n = self._seen.get(key, 0) + 1
                self._seen[key] = n
                if math.floor(n * fault.rate) > math.floor((n - 1) * fault.rate):
                    return fault
        return None

    def enqueue(self, model: str, fault: FaultSpec, times: int) -> None:
        self._queue.append(QueuedFault(model, fault, times))

    def clear(self) -> int:
        count = sum(e.remaining for e in self._queue)
        self._queue.clear()
        return count

    def reset(self) -> None:
        self._queue.clear()
        self._seen.clear()

    def queued(self) -> list[dict[str, Any]]:
        return [{"model": e.model, "fault": e.fault.describe(), "remaining": e.remaining} for e in self._queue]

    def configured(self) -> dict[str, str]:
        return {model: fault.describe() for model, fault in self._configured.items()}


class Stats:
    """Requests seen by model and path, faults injected by model and kind."""

    def __init__(self) -> None:
        self.total = 0
        self.by_model: dict[str, dict[str, int]] = {}
        self.by_path: dict[str, int] = {}
        self.faults: dict[str, dict[str, int]] = {}

    def request(self, model: str, path: str) -> None:
        self.total += 1
        paths = self.by_model.get(model)
        if paths is None:
            paths = self.by_model[model] = {}
        paths[path] = paths.get(path, 0) + 1
        self.by_path[path] = self.by_path.get(path, 0) + 1

    def fault(self, model: str, fault: FaultSpec) -> None:
        kinds = self.faults.setdefault(model, {})
        name = fault.describe()
        kinds[name] = kinds.get(name, 0) + 1

    def reset(self) -> None:
        self.total = 0
        self.by_model.clear()
        self.by_path.clear()
        self.faults.clear()

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_path": dict(self.by_path),
            "by_model": {m: dict(p) for m, p in self.by_model.items()},
            "faults": {m: dict(k) for m, k in self.faults.items()},
        }
