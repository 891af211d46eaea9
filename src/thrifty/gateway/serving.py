"""What ``thrifty serve`` runs: the gateway behind one reference that a reload swaps whole.

A reload (SIGHUP, or ``POST /admin/reload`` with the admin token) re-reads the config file and
checks it as ``thrifty config check`` does. A file with any problem is refused: every problem is
logged (and returned to the admin API's caller) and the running config stays. A good one becomes
a new ``Runtime`` (models, prices, routing, caches, budgets, limits, the upstream pool: everything
``Runtime.from_config`` builds) and a new ``Gateway`` around it; new requests go to it from then
on, while requests already in flight (streams included) finish on the old one, which is stopped
(its ledger rows flushed, its stores closed) once the last of them is done. The price catalogue and
the tokenizers' vocabularies are read-only and shared by both.

What a reload cannot change: the address and port (the socket stays bound) and the connection
limits (``server.max_connections``, ``max_connections_per_client``, ``header_timeout_s``,
``max_header_bytes``, set on the socket's protocol): a changed value is logged as needing a
restart.

While the process drains (SIGTERM, SIGINT), ``/readyz`` answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.config.files import ConfigError
from thrifty.errors import error_body, error_response
from thrifty.gateway.admin import refusal
from thrifty.gateway.app import Gateway
from thrifty.gateway.intake import new_request_id
from thrifty.gateway.runtime import Runtime
from thrifty.web.asgi import Message, Receive, Scope, Send, json_response, send_response

if TYPE_CHECKING:
    from thrifty.config.gateway import GatewayConfig
    from thrifty.core.pricing import Catalogue
    from thrifty.core.tokens.encodings import Encodings

__all__ = ["ConfigSource", "Serving", "read_config"]

log = logging.getLogger("thrifty.gateway")

_RESTART_ONLY = (
    "host",
    "port",
    "max_connections",
    "max_connections_per_client",
    "header_timeout_s",
    "max_header_bytes",
)
"""``server:`` fields fixed when the socket was bound and its protocol made."""

_JSON = b"application/json"


@dataclass(frozen=True)
class ConfigSource:
    """Where a reload reads the config and what it builds the new runtime with."""

    path: Path
    listen_host: str
    """The address the socket is bound to (``--host`` may override the config's)."""
    catalogue: Catalogue
    encodings: Encodings


def read_config(source: ConfigSource) -> tuple[GatewayConfig | None, list[str]]:
    """The config in ``source.path`` and its problems, each a line naming the file and the place
    (what ``thrifty config check`` reports); the config is None unless there are none. A provider
    key variable that is unset is a problem unless the new config says ``allow_missing_keys``
    (then a warning, as at start)."""
    from thrifty.config.gateway import unset_key_variables
    from thrifty.gateway.checks import check_gateway_file

    checked, problems = check_gateway_file(source.path, catalogue=source.catalogue)
    config = checked.config
    if config is not None and config.allow_missing_keys:
        unset = set(unset_key_variables(config.providers))
        for problem in [p for p in problems if p.text() in unset]:
            log.warning("%s: its calls will be refused by the provider", problem.line(str(source.path)))
            problems.remove(problem)
    lines = [problem.line(str(source.path)) for problem in problems]
    if not lines and (checked.kind != "gateway" or config is None):
        lines = [f"{source.path}: not a gateway config (it has no providers: and models:)"]
    return (config if not lines else None), lines


@dataclass(eq=False)
class _Generation:
    """One runtime's gateway and the requests it is serving."""

    app: Gateway
    inflight: int = 0
    retired: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once retired with nothing in flight."""


class Serving:
    """The ASGI app: the current gateway, swapped whole by ``reload``."""

    def __init__(
        self,
        runtime: Runtime,
        source: ConfigSource | None,
        *,
        worker_header: bool = False,
        after_admin_reload: Callable[[], None] | None = None,
    ) -> None:
        """``source``: None when there is no file to reload (``--demo``). ``worker_header``: every
        response says which process served it (``x-thrifty-worker: PID``), for several workers on
        one port. ``after_admin_reload``: called once a reload asked for over HTTP is applied here
        (the supervisor of several workers then reloads the others)."""
        self._current = _Generation(Gateway(runtime))
        self._source = source
        self._worker = [(b"x-thrifty-worker", str(os.getpid()).encode())] if worker_header else None
        self._after_admin_reload = after_admin_reload
        self._reloading = asyncio.Lock()
        self._retiring: set[asyncio.Future[Any]] = set()
        self.draining = False
        """Set when the process stops taking new work: ``/readyz`` answers 503 from then on."""

    @property
    def runtime(self) -> Runtime:
        """The runtime new requests go to."""
        return self._current.app.runtime

    def drain(self) -> None:
        self.draining = True

    def reload_soon(self, reason: str) -> None:
        """``reload`` in the background (from a signal handler, in the loop)."""
        task = asyncio.ensure_future(self.reload(reason))
        self._retiring.add(task)  # held until done, like the retirements (and awaited at shutdown)
        task.add_done_callback(self._retiring.discard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        if self._worker is not None:
            send = self._tagged(send)
        path = scope["path"]
        if path == "/readyz" and self.draining:
            checks = {"started": "ok", "draining": "shutting down: requests in flight are finishing"}
            await json_response(send, 503, {"ready": False, "checks": checks}, [_id(new_request_id())])
            return
        if path == "/admin/reload":
            await self._admin_reload(scope, send)
            return
        generation = self._current  # this request's runtime from start to end, streams included
        generation.inflight += 1
        try:
            await generation.app(scope, receive, send)
        finally:
            generation.inflight -= 1
            if generation.retired and not generation.inflight:
                generation.idle.set()

    def _tagged(self, send: Send) -> Send:
        extra = self._worker
        assert extra is not None

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        return tagged

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                except Exception as error:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _shutdown(self) -> None:
        """Once the server has drained: the retired runtimes (their last requests are done, or
        were cancelled at the drain timeout), then the current one."""
        if self._retiring:
            _, late = await asyncio.wait(list(self._retiring), timeout=10.0)
            for task in late:
                task.cancel()
        await _stop(self.runtime)

    async def reload(self, reason: str) -> list[str]:
        """Re-read the config file and serve new requests with it. The problems that refused it,
        each a line (the file, the place, what is wrong); empty when it was applied."""
        source = self._source
        if source is None:
            problem = "this gateway serves the built-in demo config (--demo): there is no config file to reload"
            log.warning("reload (%s): %s", reason, problem)
            return [problem]
        async with self._reloading:  # one at a time; a second waits for the first and reads the file again
            if self.draining:
                return ["the gateway is shutting down"]
            problems = await self._apply(source, reason)
        if problems:
            for line in problems:
                log.error("reload (%s) refused: %s", reason, line)
            log.error(
                "reload (%s): %s not applied (%d problem(s)); the running config stays",
                reason,
                source.path,
                len(problems),
            )
        return problems

    async def _apply(self, source: ConfigSource, reason: str) -> list[str]:
        config, problems = await asyncio.to_thread(read_config, source)
        if config is None:
            return problems
        try:  # opens the stores and loads the price book: off the loop
            runtime = await asyncio.to_thread(
                Runtime.from_config,
                config,
                source.path.resolve().parent,
                catalogue=source.catalogue,
                encodings=source.encodings,
            )
        except (ConfigError, ValueError, LookupError) as error:
            return [f"{source.path}: {error}"]
        runtime.keys.listen_on(source.listen_host)
        try:
            await runtime.start()
        except Exception as error:
            log.exception("reload (%s): the new config failed to start", reason)
            with contextlib.suppress(Exception):
                await _stop(runtime)
            return [f"{source.path}: the new config failed to start: {error}"]
        old = self._current
        self._current = _Generation(Gateway(runtime))
        old.retired = True
        if not old.inflight:
            old.idle.set()
        task = asyncio.create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        for name in _RESTART_ONLY:
            before, after = getattr(old.app.runtime.config.server, name), getattr(config.server, name)
            if before != after:
                log.warning(
                    "reload (%s): server.%s %r -> %r takes a restart; kept %r", reason, name, before, after, before
                )
        log.info(
            "reload (%s): %s applied; models: %s (%d request(s) finish on the previous config)",
            reason,
            source.path,
            ", ".join(runtime.routes.names()),
            old.inflight,
        )
        return []

    async def _retire(self, generation: _Generation) -> None:
        await generation.idle.wait()
        await _stop(generation.app.runtime)

    async def _admin_reload(self, scope: Scope, send: Send) -> None:
        ids = [_id(new_request_id())]
        refused = refusal(self.runtime, scope)
        if refused is not None:
            status, body = error_response(refused, "openai")
            await send_response(send, status, body, ids, _JSON)
            return
        if scope["method"] != "POST":
            body = error_body("openai", 405, "/admin/reload takes POST", "invalid_request_error")
            await send_response(send, 405, body, ids, _JSON)
            return
        problems = await self.reload("POST /admin/reload")
        if problems:
            message = f"the config was not reloaded ({len(problems)} problem(s)); the running one stays"
            error = {"message": message, "type": "invalid_request_error", "code": "invalid_config", "param": None}
            payload = {"error": {**error, "problems": problems}}
            await send_response(send, 422, orjson.dumps(payload), ids, _JSON)
            return
        if self._after_admin_reload is not None:
            self._after_admin_reload()
        source = self._source
        assert source is not None
        answer = {"reloaded": True, "config": str(source.path), "models": self.runtime.routes.names()}
        await json_response(send, 200, answer, ids)


async def _stop(runtime: Runtime) -> None:
    """Stop a runtime whose requests are done: its ledger rows into the database first, on a
    thread (the loop goes on serving the new runtime meanwhile), then the rest."""
    try:
        if runtime.started:
            await asyncio.to_thread(runtime.writer.flush, 10.0)
        await runtime.stop()
    except Exception:
        log.exception("stopping a runtime failed")


def _id(request_id: str) -> tuple[bytes, bytes]:
    return (b"x-thrifty-request-id", request_id.encode())
