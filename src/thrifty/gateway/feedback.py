"""``POST /v1/thrifty/feedback``: a thin face over ``thrifty.pipeline.feedback``. The caller's key
decides whose calls it may judge; the body is ``{"request_id", "verdict": "wrong"|"right",
"note"?}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thrifty.core.feedback import parse_feedback
from thrifty.errors import InvalidRequest, Rejection
from thrifty.gateway.intake import Binding
from thrifty.pipeline.feedback import UnknownRequest

if TYPE_CHECKING:
    from thrifty.gateway.runtime import Runtime

__all__ = ["handle_feedback"]


async def handle_feedback(runtime: Runtime, body: dict[str, Any], binding: Binding | None) -> dict[str, Any]:
    service = runtime.feedback
    if service is None:
        raise Rejection(503, "the gateway has not started", kind="api_error")
    try:
        feedback = parse_feedback(body)
    except InvalidRequest as error:
        raise Rejection(400, str(error), code="invalid_feedback") from None
    try:
        outcome = await service.submit(feedback, binding.tenant if binding is not None else None)
    except UnknownRequest as error:
        raise Rejection(404, str(error), code="unknown_request_id") from None
    return outcome.as_json()
