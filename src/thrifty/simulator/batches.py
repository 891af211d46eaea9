"""``/v1/batches``: OpenAI's Batch API over the simulated chat completions and embeddings.

A new batch is ``validating``; a poll after ``batch_completion_delay_s`` (default 0: the first
poll) runs every request, writes the output file (one JSON line per request, in input order:
``{"id","custom_id","response":{"status_code","request_id","body"},"error":null}``) and, for
requests that failed, an error file of the same shape, and reports ``completed`` with the
request counts and token usage. Before that a poll reports ``in_progress``. A batch whose input
file is not valid (bad JSON, missing fields, another endpoint) ends ``failed`` with ``errors``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.simulator.batch_record import BatchRecord
from thrifty.simulator.common import ApiError, Reply, error_reply
from thrifty.simulator.embeddings import embeddings_json
from thrifty.simulator.openai_chat import chat_completion, completion_json, parse_chat

if TYPE_CHECKING:
    from thrifty.simulator.state import Simulator

__all__ = ["BatchRecord", "cancel_batch", "create_batch", "list_batches", "retrieve_batch"]

_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")


def create_batch(sim: Simulator, data: dict[str, Any]) -> Reply:
    file_id = data.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise ApiError(400, "Missing required parameter: 'input_file_id'.", param="input_file_id")
    endpoint = data.get("endpoint")
    if endpoint not in _ENDPOINTS:
        expected = ", ".join(_ENDPOINTS)
        raise ApiError(
            400, f"Invalid value for 'endpoint': {endpoint!r}; expected one of {expected}.", param="endpoint"
        )
    if data.get("completion_window") != "24h":
        raise ApiError(400, "Invalid value for 'completion_window': expected '24h'.", param="completion_window")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ApiError(400, "Invalid type for 'metadata': expected an object.", param="metadata")
    stored = sim.files.get(file_id)
    if stored.purpose != "batch":
        raise ApiError(400, f"File {file_id} has purpose {stored.purpose!r}; a batch needs purpose 'batch'.")
    record = BatchRecord(
        id=sim.ids.make("batch_", 24),
        input_file_id=file_id,
        endpoint=str(endpoint),
        completion_window="24h",
        metadata=metadata,
        created_at=int(time.time()),
        started=time.monotonic(),
    )
    record.lines, record.errors = _read_input(stored.data, record.endpoint)
    record.counts["total"] = len(record.lines)
    models = {str(line["body"].get("model")) for line in record.lines}
    record.model = models.pop() if len(models) == 1 else None
    sim.batches[record.id] = record
    return Reply(body=orjson.dumps(record.json()))


def _read_input(data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue

        def problem(code: str, message: str, param: str | None = None, line: int = number) -> None:
            errors.append({"code": code, "message": message, "param": param, "line": line})

        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problem("invalid_json_line", "This line is not parseable as valid JSON.")
            continue
        if not isinstance(item, dict):
            problem("invalid_request", "Each line must be a JSON object.")
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            problem("missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id")
        elif custom_id in seen:
            problem("duplicate_custom_id", f"The custom_id {custom_id!r} is used more than once.", "custom_id")
        elif item.get("method") != "POST":
            problem("invalid_method", "The only supported method is POST.", "method")
        elif item.get("url") != endpoint:
            problem("mismatched_endpoint", f"The url must be {endpoint}, the batch's endpoint.", "url")
        elif not isinstance(item.get("body"), dict):
            problem("missing_required_parameter", "Missing required parameter: 'body'.", "body")
        else:
            seen.add(custom_id)
            lines.append(item)
    if not lines and not errors:
        errors.append({"code": "empty_file", "message": "The input file has no requests.", "param": None, "line": None})
    return lines, errors


def retrieve_batch(sim: Simulator, batch_id: str) -> Reply:
    record = _get(sim, batch_id)
    _advance(sim, record)
    return Reply(body=orjson.dumps(record.json()))


def cancel_batch(sim: Simulator, batch_id: str) -> Reply:
    record = _get(sim, batch_id)
    now = int(time.time())
    if record.status in ("validating", "in_progress"):
        record.status = "cancelling"
        record.times["cancelling_at"] = now
    elif record.status != "cancelling":
        raise ApiError(409, f"Cannot cancel a batch with status {record.status!r}.")
    return Reply(body=orjson.dumps(record.json()))


def list_batches(sim: Simulator) -> Reply:
    data = [r.json() for r in sorted(sim.batches.values(), key=lambda r: r.created_at, reverse=True)]
    payload = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": False,
    }
    return Reply(body=orjson.dumps(payload))


def _get(sim: Simulator, batch_id: str) -> BatchRecord:
    record = sim.batches.get(batch_id)
    if record is None:
        raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
    return record


def _advance(sim: Simulator, record: BatchRecord) -> None:
    now = int(time.time())
    if record.status == "cancelling":
        record.status = "cancelled"
        record.times["cancelled_at"] = now
        return
    if record.status not in ("validating", "in_progress"):
        return
    if record.errors:
        record.status = "failed"
        record.times["failed_at"] = now
        return
    record.times.setdefault("in_progress_at", now)
    if time.monotonic() - record.started < sim.config.batch_completion_delay_s:
        record.status = "in_progress"
        return
    _run(sim, record)
    record.times["finalizing_at"] = now
    record.times["completed_at"] = now
    record.status = "completed"


def _run(sim: Simulator, record: BatchRecord) -> None:
    outputs: list[bytes] = []
    failures: list[bytes] = []
    totals = {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
    for line in record.lines:
        request_id = sim.ids.make("req_", 24)
        body = dict(line["body"])
        body.pop("stream", None)
        body.pop("stream_options", None)
        try:
            if record.endpoint == "/v1/embeddings":
                payload, tokens = embeddings_json(sim, body)
                totals["input"] += tokens
            else:
                completion = chat_completion(sim, parse_chat(body))
                payload = completion_json(completion)
                totals["input"] += completion.prompt_tokens
                totals["cached"] += completion.cached_tokens
                totals["output"] += completion.completion_tokens
                totals["reasoning"] += completion.reasoning_tokens
            status = 200
        except ApiError as error:
            status = error.status
            payload = orjson.loads(error_reply("openai", error, request_id).body)
        entry = {
            "id": sim.ids.make("batch_req_", 24),
            "custom_id": line["custom_id"],
            "response": {"status_code": status, "request_id": request_id, "body": payload},
            "error": None,
        }
        (outputs if status == 200 else failures).append(orjson.dumps(entry))
    record.counts["completed"] = len(outputs)
    record.counts["failed"] = len(failures)
    record.usage = {
        "input_tokens": totals["input"],
        "input_tokens_details": {"cached_tokens": totals["cached"]},
        "output_tokens": totals["output"],
        "output_tokens_details": {"reasoning_tokens": totals["reasoning"]},
        "total_tokens": totals["input"] + totals["output"],
    }
    if outputs:
        name = f"batch_{record.id}_output.jsonl"
        record.output_file_id = sim.files.add(name, "batch_output", b"\n".join(outputs) + b"\n").id
    if failures:
        name = f"batch_{record.id}_error.jsonl"
        record.error_file_id = sim.files.add(name, "batch_output", b"\n".join(failures) + b"\n").id
