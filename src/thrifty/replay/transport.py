"""The replay transport: the dispatcher's seam answered from the traffic, so no provider is called.

Each request sent upstream is answered, in the provider's own wire format, with a response
synthesised from what the traffic recorded of the call:

* ``recorded``: the same model was sent the same request (its fingerprint matches): the recorded
  usage, as it is (prompt-cache reads and writes included);
* ``recounted``: the same model, another request (compressed or capped otherwise): input tokens
  counted exactly, the recorded output;
* ``estimated``: another model: input tokens counted exactly for it, the recorded output token
  count as the estimate of its output;
* ``assumed``: nothing recorded (a sample line): input counted exactly, the output assumption
  (the line's ``output_tokens``, its ``max_tokens``, or the run's default);
* ``internal``: a call thrifty made itself (a classifier, a summary): counted, its output
  assumed at its own ``max_tokens``.

A call the provider refused when recorded is refused again with its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.core.capture import CapturedCall, sent_fingerprint
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.pipeline.call import Call
from thrifty.pipeline.steps.dispatch import Route, Routes
from thrifty.providers.sse import encode_event
from thrifty.providers.transport import MemoryResponse, Timeouts, TransportError, UpstreamResponse
from thrifty.wire.anthropic_messages import text_message
from thrifty.wire.formats import wire_format
from thrifty.wire.openai_chat import text_completion

__all__ = ["REPLAYED_TEXT", "ReplayTransport", "Target"]

REPLAYED_TEXT = "(replayed answer: the capture kept no text)"


@dataclass
class Target:
    """What the transport answers for: the traffic's call, and the call as the dispatcher sends it."""

    item: CapturedCall | None = None
    sent: Call | None = None
    default_output_tokens: int | None = None


class ReplayTransport:
    def __init__(self, routes: Routes, counter: TokenCounter, target: Target) -> None:
        self.counter = counter
        self.target = target
        self._routes: dict[tuple[str, str | None], Route] = {}
        for name in routes.names():
            route = routes.get(name)
            assert route is not None
            self._routes.setdefault(self._key(route.upstream.chat_url(route.upstream_model), route), route)

    @staticmethod
    def _key(url: str, route: Route) -> tuple[str, str | None]:
        return url, None if route.upstream.kind == "azure" else route.upstream_model

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeouts: Timeouts) -> UpstreamResponse:
        payload = orjson.loads(body)
        model = payload.get("model") if isinstance(payload, dict) else None
        route = self._routes.get((url, model)) or self._routes.get((url, None))
        call = self.target.sent
        if route is None or call is None:
            raise TransportError(f"replay: no route sends to {url}", timeout=False, may_be_billed=False)
        item = self.target.item
        outcome = item.outcome if item is not None and call.cache_status != "internal" else None
        if outcome is not None and outcome.http_status is not None and outcome.http_status >= 400:
            error = {"error": {"message": "refused when recorded", "type": "api_error"}}
            return MemoryResponse(status=outcome.http_status, body=orjson.dumps(error))
        usage, basis = self.usage_for(call, route)
        call.details["replay_usage"] = basis
        text = outcome.response if outcome is not None and outcome.response else REPLAYED_TEXT
        answer = _answer(route, usage, text)
        if not payload.get("stream"):
            return MemoryResponse(body=orjson.dumps(answer))
        events = wire_format(route.upstream.wire).replay(answer, True)
        chunks = [encode_event(data, name) for name, data in events]
        if route.upstream.wire == "openai":
            chunks.append(b"data: [DONE]\n\n")
        return MemoryResponse(chunks=[b"".join(chunks)])

    def usage_for(self, call: Call, route: Route) -> tuple[Usage, str]:
        item = self.target.item
        counted = self._counted(call, route)
        if call.cache_status == "internal" or item is None:
            return Usage(input_tokens=counted, output_tokens=call.request.max_tokens or 0), "internal"
        outcome = item.outcome
        recorded = None
        if outcome is not None:
            billed = outcome.usage if outcome.usage is not None and outcome.usage.input_tokens else None
            recorded = billed or outcome.cached_usage
        if recorded is None or outcome is None:
            output = item.output_tokens
            if output is None:
                output = call.request.max_tokens or self.target.default_output_tokens or 0
            return Usage(input_tokens=counted, output_tokens=output), "assumed"
        if outcome.upstream_model is not None:
            same = outcome.upstream_model == route.upstream_model
        else:  # a sample line's usage: recorded for the model it names
            same = outcome.served_model == route.name
        if same:
            if outcome.sent is not None and outcome.sent == sent_fingerprint(call.model, call.body):
                return recorded, "recorded"
            read = min(recorded.cache_read_tokens, counted)
            return Usage(
                input_tokens=counted,
                output_tokens=recorded.output_tokens,
                cache_read_tokens=read,
                reasoning_tokens=recorded.reasoning_tokens,
            ), "recounted"
        return Usage(input_tokens=counted, output_tokens=recorded.output_tokens), "estimated"

    def _counted(self, call: Call, route: Route) -> int:
        known = call.input_tokens.get(route.priced_as)
        if known is None:
            known = call.input_tokens[route.priced_as] = self.counter.count_request(
                call.request, route.priced_as
            ).input_tokens
        return known

    async def close(self) -> None:
        return None


def _answer(route: Route, usage: Usage, text: str) -> dict[str, Any]:
    """A whole answer in the provider's format, reporting ``usage``."""
    if route.upstream.wire == "anthropic":
        return text_message(route.upstream_model, text, usage)
    return text_completion(route.upstream_model, text, usage)
