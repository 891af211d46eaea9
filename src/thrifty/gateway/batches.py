"""``/v1/files`` and ``/v1/batches``, OpenAI's Files and Batch API, through the gateway: a thin
face over ``thrifty.batch`` (files streamed to disk, batches checked, cached, budgeted, priced at
batch rates). A file or batch belongs to the tenant of the key that made it; to any other it
does not exist (404)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from thrifty.batch.service import BatchParts, BatchService
from thrifty.errors import BodyTooLarge, BodyTooSlow, Rejection
from thrifty.gateway.intake import Binding, attribution, build_call, decode_json, directives_of, new_request_id
from thrifty.pipeline.call import Call
from thrifty.web.asgi import Receive, Scope, Send, header, json_response, read_body

if TYPE_CHECKING:
    from thrifty.gateway.runtime import Runtime

__all__ = ["GatewayBatches", "open_batches"]

_CHUNK = 1 << 16
_CREATE_BODY = 64 * 1024


def open_batches(runtime: Runtime) -> BatchService | None:
    """The runtime's batches (None with ``batch.enabled: false``), started: called from
    ``Runtime.start`` once its HTTP pool, ledger writer, cache and budgets are up."""
    config = runtime.config
    if not config.batch.enabled:
        return None
    assert runtime.session is not None, "the runtime has not started"
    storage = config.storage
    folder = Path(config.batch.dir) if config.batch.dir else storage.resolved_journal_dir().parent / "batches"
    parts = BatchParts(
        spec=config.batch,
        folder=folder,
        store_path=storage.local_cache_path(),
        prices=runtime.prices,
        routes=runtime.routes,
        counter=runtime.counter,
        writer=runtime.writer,
        session=runtime.session,
        cache_spec=config.cache,
        response_cache=runtime.response_cache,
        budgets=runtime.limits.engine if runtime.limits is not None else None,
    )
    service = BatchService(parts)
    service.start()
    return service


class GatewayBatches:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, binding: Binding | None, request_id: str
    ) -> None:
        try:
            await self._handle(scope, receive, send, binding, request_id)
        except BodyTooLarge as error:
            raise Rejection(413, f"{error} (batch.max_file_bytes)", kind="request_too_large") from None
        except BodyTooSlow as error:
            raise Rejection(408, f"{error} (server.body_timeout_s)", code="request_timeout") from None

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, binding: Binding | None, request_id: str
    ) -> None:
        service = self.runtime.batches
        if service is None:
            raise Rejection(404, "batches are off on this gateway (batch.enabled: false)", code="unknown_route")
        path: str = scope["path"]
        method: str = scope["method"]
        tenant = (binding.tenant if binding is not None else None) or ""
        headers = [(b"x-thrifty-request-id", request_id.encode())]
        parts = path.strip("/").split("/")  # v1, files|batches, [id], [content|cancel]
        kind, rest = parts[1], parts[2:]
        if kind == "files":
            if not rest and method == "POST":
                reply = await service.upload(tenant, receive, header(scope, b"content-type"))
            elif len(rest) == 1 and method == "GET":
                reply = await service.file_json(tenant, rest[0])
            elif len(rest) == 2 and rest[1] == "content" and method == "GET":
                await _send_file(send, Path((await service.file(tenant, rest[0])).path), headers)
                return
            else:
                raise _unknown(method, path)
        elif not rest and method == "POST":
            body = decode_json(await read_body(receive, _CREATE_BODY, self.runtime.config.server.body_timeout_s))
            directives = directives_of(scope["headers"])
            who = attribution(directives, {}, "openai", binding)

            def make_call(line: dict[str, object]) -> Call:
                return build_call(directives, line, "openai", binding, new_request_id(), time.perf_counter())

            reply = await service.create(tenant, body, make_call, who)
        elif not rest and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            limit = _limit(query.get("limit", ["20"])[0])
            reply = await service.listing(tenant, limit, query.get("after", [None])[0])
        elif len(rest) == 1 and method == "GET":
            reply = await service.get(tenant, rest[0])
        elif len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            reply = await service.cancel(tenant, rest[0])
        else:
            raise _unknown(method, path)
        await json_response(send, 200, reply, headers)


def _limit(raw: str) -> int:
    try:
        limit = int(raw)
    except ValueError:
        raise Rejection(400, "limit: expected a whole number from 1 to 100") from None
    if not 1 <= limit <= 100:
        raise Rejection(400, "limit: expected a whole number from 1 to 100")
    return limit


def _unknown(method: str, path: str) -> Rejection:
    return Rejection(404, f"Invalid URL ({method} {path})", code="unknown_url")


async def _send_file(send: Send, path: Path, headers: list[tuple[bytes, bytes]]) -> None:
    size = path.stat().st_size
    start = [(b"content-length", str(size).encode()), (b"content-type", b"application/octet-stream"), *headers]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    with open(path, "rb") as source:
        while True:
            chunk = source.read(_CHUNK)
            await send({"type": "http.response.body", "body": chunk, "more_body": bool(chunk)})
            if not chunk:
                break
