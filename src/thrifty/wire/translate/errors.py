"""Error bodies: OpenAI ``{"error": {...}}`` <-> Anthropic ``{"type": "error", "error": {...}}``.

The HTTP status travels unchanged (both SDKs pick their exception class from it); these only
rewrite the body so the client's SDK can read the message and category. The category comes from
the upstream body when it names one, else from the status.

Anthropic categories are those its SDK knows: invalid_request_error, authentication_error,
billing_error, permission_error, not_found_error, rate_limit_error, timeout_error, api_error,
overloaded_error. On the OpenAI side, categories OpenAI also uses keep their name; server-side
failures become OpenAI's ``server_error`` with the Anthropic category as ``code``; an exhausted
balance becomes OpenAI's ``insufficient_quota``; a rate limit carries ``rate_limit_exceeded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["anthropic_error_to_openai", "openai_error_to_anthropic"]

_ANTHROPIC_BY_STATUS: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        409: "invalid_request_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
        500: "api_error",
        502: "api_error",
        503: "overloaded_error",  # OpenAI's "engine overloaded" status
        504: "timeout_error",
        529: "overloaded_error",
    }
)
_ANTHROPIC_TYPES = frozenset(_ANTHROPIC_BY_STATUS.values())

# OpenAI error codes and types that name an Anthropic category more precisely than the status.
_ANTHROPIC_BY_OPENAI: Mapping[str, str] = MappingProxyType(
    {
        "invalid_api_key": "authentication_error",
        "insufficient_quota": "billing_error",
        "model_not_found": "not_found_error",
        "rate_limit_exceeded": "rate_limit_error",
        "server_error": "api_error",
    }
)

# Anthropic category -> OpenAI (type, code).
_OPENAI_BY_ANTHROPIC: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {
        "invalid_request_error": ("invalid_request_error", None),
        "authentication_error": ("authentication_error", "invalid_api_key"),
        "billing_error": ("insufficient_quota", "insufficient_quota"),
        "permission_error": ("permission_error", None),
        "not_found_error": ("not_found_error", None),
        "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
        "timeout_error": ("server_error", "timeout_error"),
        "api_error": ("server_error", "api_error"),
        "overloaded_error": ("server_error", "overloaded_error"),
    }
)


def _anthropic_type_for_status(status: int) -> str:
    if status in _ANTHROPIC_BY_STATUS:
        return _ANTHROPIC_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _message(error: Mapping[str, Any] | None, body: object, status: int) -> str:
    if error is not None and isinstance(error.get("message"), str) and error["message"]:
        message: str = error["message"]
        return message
    if isinstance(body, str) and body.strip():
        return body.strip()
    if isinstance(body, bytes) and body.strip():
        return body.decode("utf-8", "replace").strip()
    return f"upstream error (HTTP {status})"


def _error_object(body: object) -> Mapping[str, Any] | None:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return error
    return None


def openai_error_to_anthropic(status: int, body: object) -> dict[str, Any]:
    """``body`` is the upstream body as decoded JSON, or its text when it was not JSON."""
    error = _error_object(body)
    kind = _anthropic_type_for_status(status)
    if error is not None:
        for key in ("code", "type"):
            named = error.get(key)
            if isinstance(named, str) and named in _ANTHROPIC_BY_OPENAI:
                kind = _ANTHROPIC_BY_OPENAI[named]
                break
    message = _message(error, body, status)
    param = error.get("param") if error is not None else None
    if isinstance(param, str) and param and param not in message:
        message = f"{message} (parameter: {param})"  # Anthropic bodies have no param field
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_error_to_openai(status: int, body: object) -> dict[str, Any]:
    error = _error_object(body)
    named = error.get("type") if error is not None else None
    kind = named if isinstance(named, str) and named in _ANTHROPIC_TYPES else _anthropic_type_for_status(status)
    openai_type, code = _OPENAI_BY_ANTHROPIC[kind]
    return {"error": {"message": _message(error, body, status), "type": openai_type, "param": None, "code": code}}
