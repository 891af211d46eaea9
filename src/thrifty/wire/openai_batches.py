"""OpenAI's Files and Batch API shapes: the file and batch objects, lists, an input line checked,
and the output and error lines (field names as the official SDK's ``FileObject``, ``Batch``,
``BatchError`` and ``BatchRequestCounts`` have them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "BATCH_ENDPOINTS",
    "BATCH_STATUSES",
    "LineProblem",
    "batch_object",
    "check_create",
    "error_line",
    "file_object",
    "list_object",
    "output_line",
    "read_input_line",
]

BATCH_ENDPOINTS = ("/v1/chat/completions",)
"""What a batch line may call through thrifty (embeddings and responses: later)."""
BATCH_STATUSES = (
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
)
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class LineProblem(Exception):
    """Why an input line cannot be run, in ``BatchError``'s terms."""

    line: int
    code: str
    message: str
    param: str | None = None

    def as_error(self) -> dict[str, Any]:
        return {"code": self.code, "line": self.line, "message": self.message, "param": self.param}

    def describe(self) -> str:
        return f"line {self.line}: {self.message}"


def file_object(
    file_id: str, size: int, created_at: int, filename: str, purpose: str, expires_at: int | None = None
) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": created_at,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "expires_at": expires_at,
        "status_details": None,
    }


def batch_object(
    *,
    batch_id: str,
    endpoint: str,
    input_file_id: str,
    status: str,
    created_at: int,
    times: Mapping[str, int | None],
    counts: Mapping[str, int],
    metadata: Mapping[str, str] | None,
    model: str | None,
    output_file_id: str | None = None,
    error_file_id: str | None = None,
    errors: Sequence[Mapping[str, Any]] = (),
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "model": model,
        "errors": {"object": "list", "data": list(errors)} if errors else None,
        "input_file_id": input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
        "created_at": created_at,
        "in_progress_at": times.get("in_progress_at"),
        "expires_at": created_at + _DAY,
        "finalizing_at": times.get("finalizing_at"),
        "completed_at": times.get("completed_at"),
        "failed_at": times.get("failed_at"),
        "expired_at": times.get("expired_at"),
        "cancelling_at": times.get("cancelling_at"),
        "cancelled_at": times.get("cancelled_at"),
        "request_counts": {
            "total": counts.get("total", 0),
            "completed": counts.get("completed", 0),
            "failed": counts.get("failed", 0),
        },
        "metadata": dict(metadata) if metadata is not None else None,
        "usage": dict(usage) if usage is not None else None,
    }


def list_object(data: Sequence[Mapping[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": list(data),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def check_create(body: Mapping[str, Any]) -> tuple[str, str, dict[str, str] | None]:
    """``POST /v1/batches``' body: (input_file_id, endpoint, metadata); raises ``ValueError``
    naming the field and what is wrong with it."""
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise ValueError("input_file_id: required, the id of a file uploaded with purpose 'batch'")
    endpoint = body.get("endpoint")
    if endpoint not in BATCH_ENDPOINTS:
        raise ValueError(f"endpoint: {endpoint!r} is not supported here; expected one of {', '.join(BATCH_ENDPOINTS)}")
    if body.get("completion_window") != "24h":
        raise ValueError("completion_window: expected '24h' (the only window the providers offer)")
    metadata = body.get("metadata")
    if metadata is None:
        return file_id, str(endpoint), None
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise ValueError("metadata: expected an object of at most 16 string pairs")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            raise ValueError("metadata: keys of at most 64 characters, string values of at most 512")
    return file_id, str(endpoint), dict(metadata)


def read_input_line(raw: bytes, number: int, endpoint: str) -> tuple[str, dict[str, Any]]:
    """One line of an input file: (custom_id, body); raises ``LineProblem``."""
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineProblem(number, "invalid_json_line", "This line is not parseable as valid JSON.") from None
    if not isinstance(item, dict):
        raise LineProblem(number, "invalid_request", "Each line must be a JSON object.")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise LineProblem(number, "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id")
    if item.get("method") != "POST":
        raise LineProblem(number, "invalid_method", "The only supported method is POST.", "method")
    if item.get("url") != endpoint:
        message = f"The url {item.get('url')!r} does not match the batch's endpoint {endpoint}."
        raise LineProblem(number, "mismatched_endpoint", message, "url")
    body = item.get("body")
    if not isinstance(body, dict):
        raise LineProblem(number, "missing_required_parameter", "Missing required parameter: 'body'.", "body")
    if body.get("stream"):
        raise LineProblem(number, "invalid_request", "A batch line cannot stream: remove body.stream.", "body.stream")
    return custom_id, body


def output_line(line_id: str, custom_id: str, status: int, request_id: str, body: Any) -> bytes:
    """A line of the output (status 200) or error file, as OpenAI writes it."""
    entry = {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }
    return orjson.dumps(entry)


def error_line(line_id: str, custom_id: str, code: str, message: str) -> bytes:
    """A line that got no response at all (expired, cancelled, the provider lost it)."""
    return orjson.dumps(
        {"id": line_id, "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}
    )
