"""The admin HTTP API: budgets, the same as ``thrifty budgets`` but over HTTP.

    GET    /admin/budgets               the budget definitions (stored, and the plans' own)
    PUT    /admin/budgets               create or replace one (JSON: scope, value, usd|tokens, window, ...)
    DELETE /admin/budgets?id=ID         delete one (also DELETE /admin/budgets/ID, the id URL-encoded)
    GET    /admin/budgets/status        spend, reserved, remaining and reset time of each
    POST   /admin/reload                re-read the config file (see ``gateway.serving``)

Off unless ``admin.token_env`` names an environment variable that holds a token; every request
must present it (``Authorization: Bearer TOKEN`` or ``x-thrifty-admin-token``), else 401.
"""

from __future__ import annotations

import hmac
import os
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson
from pydantic import ValidationError

from thrifty.config.budgets import BudgetSpec
from thrifty.config.files import describe_validation_error
from thrifty.core.budgets import budget_to_doc
from thrifty.errors import AuthError, InvalidRequest, NotFound, ThriftyError, error_response
from thrifty.gateway.runtime import Runtime
from thrifty.pipeline.budgets.status import budget_status
from thrifty.stores.budgets import StoreUnavailable
from thrifty.web.asgi import BodyTooLarge, Receive, Scope, Send, header, json_response, read_body, send_response

__all__ = ["admin_token", "handle_admin", "refusal"]

_MAX_BODY = 64 * 1024


def admin_token(runtime: Runtime) -> str | None:
    limits = runtime.limits
    name = limits.admin.token_env if limits is not None else None
    token = os.environ.get(name) if name else None
    return token or None


def _presented(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value is not None:
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    value = header(scope, b"x-thrifty-admin-token")
    return value.decode("latin-1").strip() if value is not None else None


async def _error(send: Send, error: ThriftyError, extra: list[tuple[bytes, bytes]]) -> None:
    """In OpenAI's error shape, as the rest of the gateway's non-Anthropic routes."""
    status, body = error_response(error, "openai")
    await send_response(send, status, body, extra, b"application/json")


def refusal(runtime: Runtime, scope: Scope) -> ThriftyError | None:
    """Why this request may not use the admin API (it is off, or the token is missing or wrong);
    None when it may. Every admin route checks this before it reads the body."""
    token = admin_token(runtime)
    if token is None or runtime.limits is None:
        return NotFound("the admin API is off: set admin.token_env to a variable holding a token")
    presented = _presented(scope)
    if presented is None or not hmac.compare_digest(presented.encode(), token.encode()):
        return AuthError("a valid admin token is required (Authorization: Bearer TOKEN)")
    return None


async def handle_admin(runtime: Runtime, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
    ids = [(b"x-thrifty-request-id", request_id.encode())]
    refused = refusal(runtime, scope)
    if refused is not None or runtime.limits is None:
        await _error(send, refused or NotFound("the admin API is off"), ids)
        return
    engine = runtime.limits.engine
    path: str = scope["path"].rstrip("/")
    method: str = scope["method"]
    try:
        if path == "/admin/budgets/status" and method == "GET":
            rows = await budget_status(engine.store, [*engine.budgets, *engine.plan_budgets()])
            await json_response(send, 200, {"budgets": [row.as_json() for row in rows]}, ids)
        elif path == "/admin/budgets" and method == "GET":
            docs = await engine.store.definitions()
            plans = [budget_to_doc(b) for b in engine.plan_budgets()]
            await json_response(send, 200, {"budgets": docs, "plan_budgets": plans}, ids)
        elif path == "/admin/budgets" and method in ("PUT", "POST"):
            await _put(runtime, scope, receive, send, ids)
        elif path.startswith("/admin/budgets") and method == "DELETE":
            budget_id = unquote(path.removeprefix("/admin/budgets").lstrip("/"))
            if not budget_id:
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                budget_id = (query.get("id") or [""])[0]
            if not budget_id:
                await _error(send, InvalidRequest("", "name the budget: DELETE /admin/budgets?id=ID"), ids)
                return
            if await engine.store.delete_definition(budget_id):
                await engine.refresh()
                await json_response(send, 200, {"deleted": budget_id}, ids)
            else:
                await _error(send, NotFound(f"no budget {budget_id!r}"), ids)
        else:
            await _error(send, NotFound(f"no admin route {method} {path}"), ids)
    except StoreUnavailable as error:
        await _error(send, error, ids)


async def _put(runtime: Runtime, scope: Scope, receive: Receive, send: Send, ids: list[tuple[bytes, bytes]]) -> None:
    assert runtime.limits is not None
    engine = runtime.limits.engine
    try:
        raw = await read_body(receive, _MAX_BODY)
    except BodyTooLarge as error:
        await _error(send, error, ids)
        return
    try:
        document: Any = orjson.loads(raw)
        spec = BudgetSpec.model_validate(document)
        budget = spec.budget(runtime.config.budgets.timezone, source="admin")
    except orjson.JSONDecodeError as error:
        await _error(send, InvalidRequest("", f"the body is not JSON: {error}"), ids)
        return
    except ValidationError as error:
        await _error(send, InvalidRequest("", describe_validation_error(error, "budget")), ids)
        return
    except ValueError as error:
        await _error(send, InvalidRequest("", str(error)), ids)
        return
    if budget.downgrade_to is not None and runtime.routes.get(budget.downgrade_to) is None:
        await _error(send, InvalidRequest("downgrade_to", f"no model named {budget.downgrade_to!r}"), ids)
        return
    doc = budget_to_doc(budget)
    await engine.store.put_definition(budget.id, doc)
    await engine.refresh()
    await json_response(send, 200, {"budget": doc}, ids)
