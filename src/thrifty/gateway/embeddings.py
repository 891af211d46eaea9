"""``POST /v1/embeddings``: the request checked and made a ``Call`` for the embeddings pipeline
(``pipeline.embeddings``): priced and recorded, answered from the exact cache when the same input
was embedded before, and held to the same budgets, plans and rate limits as chat: the input's
tokens are counted exactly and reserved before the provider is asked (embeddings bill input only),
then settled to the cost. The in-process client makes its calls with ``embeddings_call`` too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from thrifty.core import _validate as v
from thrifty.core.messages import ChatRequest, RequestError
from thrifty.core.pricing import UnknownModelError
from thrifty.core.tokens.counter import TokenCounter
from thrifty.gateway.intake import Directives, Rejection, cache_headers
from thrifty.pipeline.call import Attribution, Call, CallTrace
from thrifty.pipeline.steps.dispatch import Route

if TYPE_CHECKING:
    from thrifty.gateway.runtime import Runtime

__all__ = ["embeddings_call", "handle_embeddings", "input_tokens"]


_LARGE_INPUT = 256 * 1024
"""Inputs above this many bytes are counted on a worker thread, so the event loop goes on serving."""


def input_tokens(value: Any, counter: TokenCounter, model: str) -> int:
    """The tokens of an embeddings ``input``: a string, strings, a token array or token arrays."""
    if isinstance(value, str):
        return counter.text_tokens(value, model)
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return sum(counter.text_tokens(v, model) for v in value)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return len(value)
        if all(isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v) for v in value):
            return sum(len(v) for v in value)
    raise Rejection(400, "input: expected a non-empty string, array of strings, token array or array of token arrays")


def _dimensions(value: object, path: str) -> object:
    return v.opt_int(value, path, 1)


def _encoding_format(value: object, path: str) -> object:
    if value not in ("float", "base64"):
        raise RequestError(path, f"expected 'float' or 'base64', got {value!r}"[:200])
    return value


# The optional fields of OpenAI's embeddings reference; others pass through unchecked.
_FIELD_CHECKS: dict[str, v.Check] = {"dimensions": _dimensions, "encoding_format": _encoding_format, "user": v.string}


def _generates_text(runtime: Runtime, route: Route) -> bool:
    """A model priced for output tokens is a chat model (OpenAI refuses one for embeddings too;
    served anyway, it would be priced at a chat model's input rate)."""
    try:
        rates = runtime.prices.quote(route.priced_as, provider=route.upstream.provider_id).rates
    except UnknownModelError:
        return False
    return bool(rates.output.at(0))


def embeddings_call(
    body: dict[str, Any],
    route_of: Callable[[str], Route | None],
    counter: TokenCounter,
    request_id: str,
    started: float,
    who: Attribution,
    size: int = 0,
) -> tuple[Call, Route]:
    """The checked request as a ``Call`` for the embeddings pipeline, its input's tokens counted
    (what budgets reserve). Raises ``Rejection`` for a request that cannot be served."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Rejection(400, "model: expected a non-empty string")
    if "input" not in body:
        raise Rejection(400, "input: is required")
    try:
        v.fields(body, _FIELD_CHECKS)
    except RequestError as error:
        raise Rejection(400, str(error)) from None
    route = route_of(model)
    if route is None:
        raise Rejection(404, f"unknown model {model!r}", "not_found_error", "model_not_found")
    if route.upstream.wire != "openai":
        raise Rejection(400, f"{model} is served by an Anthropic-format provider, which has no embeddings endpoint")
    tokens = input_tokens(body["input"], counter, route.priced_as)
    call = Call(
        request_id=request_id,
        client_api="openai",
        body=body,
        request=ChatRequest(model=model, messages=(), max_tokens=0),  # no output to bound
        model=model,
        stream=False,
        attribution=who,
        ts=datetime.now(UTC),
        started=started,
        body_size=size,
        trace=CallTrace(details={"endpoint": "embeddings", "upstream_model": route.upstream_model}),
    )
    call.input_tokens[route.priced_as] = tokens  # what the budget estimate reads
    return call, route


async def handle_embeddings(
    runtime: Runtime,
    directives: Directives,
    body: dict[str, Any],
    request_id: str,
    started: float,
    who: Attribution,
    size: int,
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    asked = runtime.routes.get(body["model"]) if isinstance(body.get("model"), str) else None
    if asked is not None and _generates_text(runtime, asked):
        raise Rejection(
            400,
            f"model: {asked.name} is a chat model; /v1/embeddings takes an embedding model",
            code="model_not_embedding",
        )
    args = (body, runtime.routes.get, runtime.counter, request_id, started, who, size)
    call, route = await asyncio.to_thread(embeddings_call, *args) if size > _LARGE_INPUT else embeddings_call(*args)
    directive, version = cache_headers(directives)
    call = call.replace(cache_directive=directive, cache_version=version)
    pipeline = runtime.embeddings
    assert pipeline is not None, "the gateway has not started"
    result = await pipeline.run(call)
    headers: list[tuple[bytes, bytes]] = [
        (b"x-thrifty-model", route.name.encode()),
        (b"x-thrifty-cache", (result.cache_status or call.cache_status).encode()),
        *result.headers,  # the cost; a refusal's Retry-After
    ]
    return result.status, result.body or b"", headers
