"""The access log: one line per request, once it is over (a stream: when it ends).

What is logged: request id, method, path, status, the model asked and the one that served, cache
status, cost, latency, and the call's attribution (key id, team, user, feature). Never the prompt,
the answer or a key. With ``--log-format json`` each line is one JSON object with these fields
(see ``thrifty.web.logfmt``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from thrifty.core.pricing import Cost, format_usd
from thrifty.core.usage import Usage
from thrifty.pipeline.call import Attribution
from thrifty.web.asgi import Message, Send

__all__ = ["Exchange", "access_log"]

access_log = logging.getLogger("thrifty.access")

_WATCHED = {b"x-thrifty-model": "served", b"x-thrifty-cache": "cache", b"x-thrifty-cost-usd": "cost"}


@dataclass(slots=True)
class Exchange:
    """What one request did, gathered while it runs, logged when it ends."""

    request_id: str
    method: str
    path: str
    started: float
    status: int | None = None
    model: str | None = None
    served: str | None = None
    cache: str | None = None
    cost: Decimal | None = None
    cost_unknown: bool = False
    stream: bool = False
    attribution: Attribution | None = None
    logged: bool = field(default_factory=lambda: access_log.isEnabledFor(logging.INFO))
    """Whether the access log is on: off, the request is not watched at all."""

    def watching(self, send: Send) -> Send:
        """``send``, noting the response's status and thrifty's own headers as they go out."""

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                for name, value in message.get("headers", ()):
                    field = _WATCHED.get(name)
                    if field == "cost":
                        if self.cost is None and not self.cost_unknown:
                            self.cost = Decimal(value.decode())
                    elif field is not None:
                        setattr(self, field, value.decode())
            await send(message)

        return watched

    def cost_listener(self, cost: Cost | None, usage: Usage) -> None:
        """Told each ledger row's cost for this request (an escalated call has two)."""
        if cost is None:
            self.cost_unknown = True
        else:
            self.cost = (self.cost or Decimal(0)) + cost.total

    def fields(self) -> dict[str, Any]:
        who = self.attribution
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "model": self.model,
            "served_model": self.served,
            "cache": self.cache,
            "cost_usd": None if self.cost_unknown or self.cost is None else format_usd(self.cost),
            "stream": self.stream,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 2),
        }
        if who is not None:
            out.update(key_id=who.key_id, team=who.team, user=who.user, feature=who.feature)
        # a priced call whose cost is unknown (an unpriced model) keeps cost_usd, as null
        keep = {"cost_usd"} if self.cost_unknown else set()
        return {name: value for name, value in out.items() if value is not None or name in keep}

    def log(self) -> None:
        if not self.logged:
            return
        fields = self.fields()
        extras = " ".join(
            f"{name}={value}" for name, value in fields.items() if name not in ("method", "path", "status")
        )
        access_log.info("%s %s %s %s", self.method, self.path, self.status, extras, extra={"access": fields})
