"""The chat pipeline's answers, whole or streamed, as the Responses API gives them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

__all__ = ["ResponsesStream", "as_responses", "chat_to_response"]


def _usage(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def _shell(request: Mapping[str, Any], response_id: str, created: float, model: str) -> dict[str, Any]:
    """A ``response`` object with what the request set, before any output."""
    text = request.get("text") if isinstance(request.get("text"), dict) else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": request.get("reasoning"),
        "store": False,
        "temperature": request.get("temperature"),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def _finish(response: dict[str, Any], finish_reason: str | None, usage: Mapping[str, Any] | None) -> None:
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"
    response["usage"] = _usage(usage)


def _message_item(item_id: str, text: str | None, refusal: str | None, status: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call: Mapping[str, Any], status: str) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments") or "",
        "status": status,
    }


def chat_to_response(completion: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """A Chat Completion as the ``response`` object of the Responses request ``request``."""
    base = str(completion.get("id") or "chatcmpl")
    created = float(completion.get("created") or time.time())
    model = str(completion.get("model") or request.get("model"))
    response = _shell(request, "resp_" + base.removeprefix("chatcmpl-"), created, model)
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("content") or message.get("refusal"):
        output.append(_message_item(f"msg_{base}", message.get("content"), message.get("refusal"), "completed"))
    for index, call in enumerate(message.get("tool_calls") or []):
        output.append(_call_item(f"fc_{base}_{index}", call, "completed"))
    response["output"] = output
    _finish(response, choice.get("finish_reason"), completion.get("usage"))
    return response


def as_responses(
    status: int, body: bytes | None, events: AsyncIterator[bytes] | None, request: Mapping[str, Any]
) -> tuple[bytes | None, AsyncIterator[bytes] | None]:
    """The chat pipeline's answer to the Responses request ``request`` (its body, or its events),
    as the Responses API gives it; an error body is the same in both APIs and stays as it is."""
    if events is not None:
        return body, ResponsesStream(request).translate(events)
    if status == 200 and body:
        return orjson.dumps(chat_to_response(orjson.loads(body), request)), None
    return body, events


class ResponsesStream:
    """Chat Completion chunks (SSE bytes, as the pipeline streams them) in, Responses events out:
    ``response.created``, then each output item's added / delta / done events, then
    ``response.completed`` (or ``response.incomplete``) with the usage."""

    def __init__(self, request: Mapping[str, Any]) -> None:
        self.request = request
        self.sequence = 0
        self.response: dict[str, Any] | None = None
        self.buffer = b""
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.message_index: int | None = None
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> {output_index, item}
        self.outputs = 0
        self.finish_reason: str | None = None
        self.usage: Mapping[str, Any] | None = None
        self.failed = False
        self.base = "chatcmpl"

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The events of ``chunks``; closing this closes ``chunks`` (a client gone: the upstream
        stops and the call is recorded as such)."""
        try:
            async for chunk in chunks:
                out = self.feed(chunk)
                if out:
                    yield out
            tail = self.finish()
            if tail:
                yield tail
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    def feed(self, chunk: bytes) -> bytes:
        self.buffer += chunk
        out = []
        while b"\n\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            out.append(self._event(raw))
        return b"".join(out)

    def _event(self, raw: bytes) -> bytes:
        if raw.startswith(b":"):
            return raw + b"\n\n"  # a comment (thrifty's cost trailer): SDKs skip it
        data = b"\n".join(line[6:] for line in raw.split(b"\n") if line.startswith(b"data: "))
        if not data or data == b"[DONE]" or self.failed:
            return b""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            self.failed = True
            error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            return self._emit(
                "error", {"code": error.get("code"), "message": error.get("message"), "param": error.get("param")}
            )
        out = [self._start(chunk)] if self.response is None else []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.append(self._text(delta["content"]))
            if delta.get("refusal"):
                self.refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or []:
                out.append(self._call(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return b"".join(out)

    def _emit(self, kind: str, fields: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _start(self, chunk: Mapping[str, Any]) -> bytes:
        base = str(chunk.get("id") or "chatcmpl")
        self.base = base
        created = float(chunk.get("created") or time.time())
        model = str(chunk.get("model") or self.request.get("model"))
        self.response = _shell(self.request, "resp_" + base.removeprefix("chatcmpl-"), created, model)
        return self._emit("response.created", {"response": self.response}) + self._emit(
            "response.in_progress", {"response": self.response}
        )

    def _text(self, delta: str) -> bytes:
        out = b""
        if self.message_index is None:
            self.message_index = self.outputs
            self.outputs += 1
            item = _message_item(f"msg_{self.base}", None, None, "in_progress")
            out += self._emit("response.output_item.added", {"output_index": self.message_index, "item": item})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += self._emit(
                "response.content_part.added",
                {"item_id": item["id"], "output_index": self.message_index, "content_index": 0, "part": part},
            )
        self.text.append(delta)
        return out + self._emit(
            "response.output_text.delta",
            {
                "item_id": f"msg_{self.base}",
                "output_index": self.message_index,
                "content_index": 0,
                "delta": delta,
                "logprobs": [],
            },
        )

    def _call(self, call: Mapping[str, Any]) -> bytes:
        index = call.get("index", 0)
        state = self.calls.get(index)
        function = call.get("function") or {}
        out = b""
        if state is None:
            item = _call_item(f"fc_{self.base}_{index}", {"id": call.get("id"), "function": function}, "in_progress")
            item["arguments"] = ""
            state = self.calls[index] = {"output_index": self.outputs, "item": item}
            self.outputs += 1
            out += self._emit("response.output_item.added", {"output_index": state["output_index"], "item": item})
        arguments = function.get("arguments") or ""
        if arguments:
            state["item"]["arguments"] += arguments
            out += self._emit(
                "response.function_call_arguments.delta",
                {"item_id": state["item"]["id"], "output_index": state["output_index"], "delta": arguments},
            )
        return out

    def finish(self) -> bytes:
        if self.failed or self.response is None:
            return b""
        out = []
        output: list[tuple[int, dict[str, Any]]] = []
        if self.message_index is not None or self.refusal:
            index = self.message_index if self.message_index is not None else self.outputs
            text = "".join(self.text)
            item = _message_item(f"msg_{self.base}", text, "".join(self.refusal) or None, "completed")
            if self.message_index is not None:
                done = {"item_id": item["id"], "output_index": index, "content_index": 0}
                out.append(self._emit("response.output_text.done", {**done, "text": text, "logprobs": []}))
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                out.append(self._emit("response.content_part.done", {**done, "part": part}))
            out.append(self._emit("response.output_item.done", {"output_index": index, "item": item}))
            output.append((index, item))
        for state in self.calls.values():
            item = {**state["item"], "status": "completed"}
            fields = {"item_id": item["id"], "output_index": state["output_index"], "arguments": item["arguments"]}
            out.append(self._emit("response.function_call_arguments.done", fields))
            out.append(self._emit("response.output_item.done", {"output_index": state["output_index"], "item": item}))
            output.append((state["output_index"], item))
        response = self.response
        response["output"] = [item for _, item in sorted(output, key=lambda pair: pair[0])]
        _finish(response, self.finish_reason, self.usage)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._emit(kind, {"response": response}))
        return b"".join(out)
