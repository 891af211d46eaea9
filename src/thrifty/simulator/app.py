"""The simulator's ASGI app: routing, the request flow (auth, parse, stats, faults, answer) and
``create_app``.

One origin serves both providers: OpenAI clients use ``http://HOST:PORT/v1`` as their base URL,
Anthropic clients ``http://HOST:PORT``; Azure OpenAI's deployment paths are served too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator import anthropic_messages, batches, embeddings, openai_chat
from thrifty.simulator.admin import AdminError, admin
from thrifty.simulator.asgi import (
    BodyTooLarge,
    ClientGone,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_response,
)
from thrifty.simulator.common import Api, ApiError, Reply, error_reply, load_json_object
from thrifty.simulator.config import FaultSpec, SimulatorConfig
from thrifty.simulator.respond import hang, send_reply
from thrifty.simulator.state import Simulator

__all__ = ["SimulatorApp", "create_app"]

_log = logging.getLogger("thrifty.simulator")
_FAULT_HEADER = b"x-simulator-fault"


@dataclass(slots=True)
class Prepared:
    """A parsed, valid request: its model (for stats and faults) and how to answer it."""

    model: str
    respond: Callable[[], Reply]


Prepare = Callable[[Simulator, bytes, Scope, str], Prepared]


@dataclass(frozen=True, slots=True)
class Route:
    api: Api
    label: str
    prepare: Prepare


def _chat(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    key = b"chat\0" + param.encode() + b"\0" + body
    call = sim.remembered(key, lambda: openai_chat.parse_chat(body, param or None))
    return Prepared(call.model, lambda: openai_chat.respond_chat(sim, call))


def _embeddings(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    data = load_json_object(body, "openai")
    if param and data.get("model") is None:
        data["model"] = param
    model = data.get("model")
    return Prepared(model if isinstance(model, str) else "", lambda: embeddings.respond_embeddings(sim, data))


def _messages(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    call = sim.remembered(b"messages\0" + body, lambda: anthropic_messages.parse_messages(body))
    return Prepared(call.model, lambda: anthropic_messages.respond_messages(sim, call))


def _count_tokens(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    model, reply = anthropic_messages.respond_count_tokens(sim, body)
    return Prepared(model, lambda: reply)


def _models(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    def one(name: str) -> dict[str, Any]:
        owner = "anthropic" if name.startswith("claude") else "openai"
        return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": owner}

    if param:
        if param not in sim.config.models:
            raise ApiError(404, f"The model '{param}' does not exist", code="model_not_found", param="model")
        return Prepared("", lambda: Reply(body=orjson.dumps(one(param))))
    listing = {"object": "list", "data": [one(m) for m in sim.config.models]}
    return Prepared("", lambda: Reply(body=orjson.dumps(listing)))


def _files_upload(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    content_type = header(scope, b"content-type")
    return Prepared("", lambda: sim.files.upload(body, content_type))


def _file(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    if scope["method"] == "DELETE":
        return Prepared("", lambda: sim.files.delete(param))
    return Prepared("", lambda: sim.files.retrieve(param))


def _file_content(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    return Prepared("", lambda: sim.files.content(param))


def _files_list(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    return Prepared("", sim.files.listing)


def _batch_create(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    data = load_json_object(body, "openai")
    return Prepared("", lambda: batches.create_batch(sim, data))


def _batch(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    return Prepared("", lambda: batches.retrieve_batch(sim, param))


def _batch_cancel(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    return Prepared("", lambda: batches.cancel_batch(sim, param))


def _batch_list(sim: Simulator, body: bytes, scope: Scope, param: str) -> Prepared:
    return Prepared("", lambda: batches.list_batches(sim))


_EXACT: dict[tuple[str, str], Route] = {
    ("POST", "/v1/chat/completions"): Route("openai", "/v1/chat/completions", _chat),
    ("POST", "/v1/embeddings"): Route("openai", "/v1/embeddings", _embeddings),
    ("GET", "/v1/models"): Route("openai", "/v1/models", _models),
    ("POST", "/v1/files"): Route("openai", "/v1/files", _files_upload),
    ("GET", "/v1/files"): Route("openai", "/v1/files", _files_list),
    ("POST", "/v1/batches"): Route("openai", "/v1/batches", _batch_create),
    ("GET", "/v1/batches"): Route("openai", "/v1/batches", _batch_list),
    ("POST", "/v1/messages"): Route("anthropic", "/v1/messages", _messages),
    ("POST", "/v1/messages/count_tokens"): Route("anthropic", "/v1/messages/count_tokens", _count_tokens),
}


def _route(method: str, path: str) -> tuple[Route, str] | None:
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    route = _EXACT.get((method, path))
    if route is not None:
        return route, ""
    parts = path.split("/")
    # /v1/files/{id}, /v1/files/{id}/content, /v1/batches/{id}, /v1/batches/{id}/cancel, /v1/models/{id}
    if len(parts) >= 4 and parts[1] == "v1" and parts[3]:
        kind, ident, rest = parts[2], parts[3], parts[4:]
        if kind == "files":
            if not rest and method in ("GET", "DELETE"):
                return Route("openai", "/v1/files/{id}", _file), ident
            if rest == ["content"] and method == "GET":
                return Route("openai", "/v1/files/{id}/content", _file_content), ident
        elif kind == "batches":
            if not rest and method == "GET":
                return Route("openai", "/v1/batches/{id}", _batch), ident
            if rest == ["cancel"] and method == "POST":
                return Route("openai", "/v1/batches/{id}/cancel", _batch_cancel), ident
        elif kind == "models" and method == "GET":
            return Route("openai", "/v1/models/{id}", _models), "/".join(parts[3:])
    # Azure OpenAI: /openai/deployments/{deployment}/chat/completions and /embeddings
    if len(parts) >= 5 and parts[1] == "openai" and parts[2] == "deployments" and method == "POST":
        tail = "/".join(parts[4:])
        if tail == "chat/completions":
            return Route("openai", "/openai/deployments/{deployment}/chat/completions", _chat), parts[3]
        if tail == "embeddings":
            return Route("openai", "/openai/deployments/{deployment}/embeddings", _embeddings), parts[3]
    return None


class SimulatorApp:
    """The ASGI callable; ``sim`` holds all of its state."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def warm(self) -> None:
        """Load the vocabularies now (about a second). The ASGI lifespan startup does this; call it
        yourself when the app is mounted where lifespan events do not reach it."""
        self.sim.warm()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.sim.warm()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        if path.startswith("/_simulator/"):
            await self._admin(method, path, receive, send)
            return
        sim = self.sim
        request_id = sim.ids.make("req_", 24)
        found = _route(method, path)
        if found is None:
            await send_reply(send, receive, _not_found(scope, method, path, request_id), None)
            return
        route, param = found
        api = route.api
        started = time.perf_counter()
        fault = None
        try:
            self._authenticate(scope, api)
            body = await read_body(receive, sim.config.max_body_bytes)
            prepared = route.prepare(sim, body, scope, param)
            sim.stats.request(prepared.model or "(none)", route.label)
            fault = sim.faults.pick(prepared.model, header(scope, _FAULT_HEADER))
            if fault is not None and await self._fault(prepared.model, fault, receive):
                return  # the client gave up waiting
            reply = prepared.respond()
        except ApiError as error:
            reply, fault = error_reply(api, error, request_id), None
        except BodyTooLarge as error:
            reply, fault = error_reply(api, ApiError(413, str(error)), request_id), None
        except ClientGone:
            return
        except Exception as error:
            _log.exception("simulator: internal error on %s %s", method, path)
            problem = ApiError(500, f"simulator internal error: {type(error).__name__}")
            reply, fault = error_reply(api, problem, request_id), None
        else:
            if api == "openai":
                elapsed = str(max(1, round((time.perf_counter() - started) * 1000))).encode()
                reply.headers.append((b"x-request-id", request_id.encode()))
                reply.headers.append((b"openai-processing-ms", elapsed))
                reply.headers.append((b"openai-version", b"2020-10-01"))
            else:
                reply.headers.append((b"request-id", request_id.encode()))
        await send_reply(send, receive, reply, fault)

    async def _fault(self, model: str, fault: FaultSpec, receive: Receive) -> bool:
        """Apply a fault's delay, hang or error (raised as ``ApiError``); True when the client
        went away during a hang."""
        self.sim.stats.fault(model or "(none)", fault)
        if fault.delay_ms > 0:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.timeout:
            if await hang(receive, self.sim.config.timeout_fault_max_s):
                return True
            raise ApiError(504, "Request timed out (simulated).")
        status = fault.error_status
        if status is not None:
            raise _fault_error(status, fault.retry_after_s, fault.insufficient_quota)
        return False

    def _authenticate(self, scope: Scope, api: Api) -> None:
        keys = self.sim.config.api_keys
        if not keys:
            return
        bearer = header(scope, b"authorization")
        offered = [
            bearer[7:].decode("latin-1") if bearer is not None and bearer[:7].lower() == b"bearer " else None,
            _text(header(scope, b"x-api-key")),
            _text(header(scope, b"api-key")),
        ]
        if any(key in keys for key in offered if key):
            return
        if api == "anthropic":
            raise ApiError(401, "invalid x-api-key")
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    async def _admin(self, method: str, path: str, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive, 1024 * 1024)
            reply = admin(self.sim, method, path, body)
        except AdminError as error:
            reply = Reply(status=error.status, body=orjson.dumps({"error": {"message": str(error)}}))
        except BodyTooLarge as error:
            reply = Reply(status=413, body=orjson.dumps({"error": {"message": str(error)}}))
        except ClientGone:
            return
        await send_response(send, reply.status, reply.body, reply.headers, content_type=reply.content_type)


def _not_found(scope: Scope, method: str, path: str, request_id: str) -> Reply:
    if path.startswith("/v1/messages") or header(scope, b"anthropic-version") is not None:
        return error_reply("anthropic", ApiError(404, f"Not found: {method} {path}"), request_id)
    return error_reply("openai", ApiError(404, f"Invalid URL ({method} {path})"), request_id)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _fault_error(status: int, retry_after: float | None, quota: bool) -> ApiError:
    headers = [(b"retry-after", f"{retry_after:g}".encode())] if retry_after is not None else []
    if quota:
        return ApiError(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            code="insufficient_quota",
            error_type="insufficient_quota",
            headers=headers,
        )
    if status == 429:
        return ApiError(429, None, code="rate_limit_exceeded", headers=headers)
    return ApiError(status, None, headers=headers)


def create_app(config: SimulatorConfig | None = None, *, counter: TokenCounter | None = None) -> SimulatorApp:
    """A new simulator with its own state. Vocabularies load at ASGI startup (or on first use);
    pass ``counter`` to share one already loaded."""
    return SimulatorApp(Simulator(config if config is not None else SimulatorConfig(), counter))
