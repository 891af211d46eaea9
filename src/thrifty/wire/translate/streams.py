"""Streams: Anthropic server-sent events <-> OpenAI ``chat.completion.chunk`` events.

Both translators are fed one upstream event at a time and return the events to send on, so the
gateway never buffers a reply. Each keeps the upstream usage it has seen (``usage``) so a call
can be priced even when the stream is cut short.

Anthropic -> OpenAI: message_start gives the first chunk (``role: assistant``); text deltas become
``content``; a tool_use block becomes one ``tool_calls`` entry (its own index, id, name) and its
input_json_delta fragments become argument fragments; message_delta gives the chunk with
``finish_reason``; message_stop gives, when the client asked for ``include_usage``, the last chunk
(``choices: []`` and ``usage``). Thinking, citations and server-tool blocks are not forwarded. An
Anthropic ``error`` event becomes ``{"error": {...}}``, which the OpenAI SDK raises as an APIError.

OpenAI -> Anthropic: the first chunk gives message_start (usage is not known yet, so 0 input
tokens: the SDK requires the numbers, and message_delta carries the real ones, cumulatively, as
Anthropic's own stream may); text and each tool call become content blocks, opened and closed in
order; message_delta and message_stop follow once both the finish_reason and the usage are known,
whatever chunk they arrive in (some providers put usage on the chunk with the last text).
``finish()`` completes the message when the upstream ended early or never sent usage; call it
when the upstream stream ends, it returns nothing if the message was already complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.wire.translate._common import (
    anthropic_tool_id,
    anthropic_usage_from_openai,
    finish_reason_from_anthropic,
    openai_usage_from_anthropic,
    stop_reason_from_openai,
    tool_arguments,
)
from thrifty.wire.translate.errors import anthropic_error_to_openai, openai_error_to_anthropic

__all__ = ["AnthropicToOpenAIStream", "OpenAIToAnthropicStream"]

Event = tuple[str, dict[str, Any]]

_USAGE_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


class AnthropicToOpenAIStream:
    def __init__(self, model: str, completion_id: str, created: int, include_usage: bool) -> None:
        self._model = model
        self._id = completion_id
        self._created = created
        self._include_usage = include_usage
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self._started = False
        self._finished = False  # the finish_reason chunk was sent
        self._usage_sent = False

    @property
    def usage(self) -> dict[str, Any]:
        """The Anthropic usage so far: message_start's, overwritten by message_delta's cumulative
        counts exactly as the Anthropic SDK does; what ``Usage.from_anthropic`` takes."""
        return dict(self._usage)

    def feed(self, event_type: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        if event_type == "message_start":
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
            if isinstance(usage, Mapping):
                self._usage = dict(usage)
            return self._start()
        if event_type == "content_block_start":
            return self._block_start(data)
        if event_type == "content_block_delta":
            return self._delta(data)
        if event_type == "message_delta":
            return self._message_delta(data)
        if event_type == "message_stop":
            return self._usage_chunk()
        if event_type == "error":
            error = data.get("error")
            kind = error.get("type") if isinstance(error, Mapping) else None
            return [anthropic_error_to_openai(529 if kind == "overloaded_error" else 500, data)]
        return []  # ping, content_block_stop, and event types added after this was written

    def finish(self) -> list[dict[str, Any]]:
        """The usage chunk, if the upstream ended after message_delta but before message_stop.
        No finish_reason is invented for a stream cut short: the client sees it was cut."""
        return self._usage_chunk() if self._finished else []

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            chunk["usage"] = None  # as OpenAI does: null on every chunk but the last
        return chunk

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        # The role goes in the first chunk only: the OpenAI SDK concatenates repeated strings.
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = self._start()
        block = data.get("content_block")
        index = data.get("index")
        if not isinstance(block, Mapping) or not isinstance(index, int):
            return out
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            out.append(self._chunk({"content": block["text"]}))
        elif block.get("type") == "tool_use":
            position = len(self._tool_index)
            self._tool_index[index] = position
            # Anthropic streams input as input_json_delta fragments after an empty start; a start
            # that already carries input (not seen from the API, allowed by the type) is sent whole.
            initial = block.get("input")
            arguments = tool_arguments(initial) if isinstance(initial, Mapping) and initial else ""
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments},
            }
            out.append(self._chunk({"tool_calls": [call]}))
        return out

    def _delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = self._start()
        delta = data.get("delta")
        if not isinstance(delta, Mapping):
            return out
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            out.append(self._chunk({"content": delta["text"]}))
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str) and delta["partial_json"]:
            position = self._tool_index.get(data.get("index", -1))
            if position is not None:
                fragment = {"index": position, "function": {"arguments": delta["partial_json"]}}
                out.append(self._chunk({"tool_calls": [fragment]}))
        return out

    def _message_delta(self, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            # Cumulative counts: they replace, and absent optional ones keep message_start's.
            for key in _USAGE_KEYS:
                if usage.get(key) is not None:
                    self._usage[key] = usage[key]
            if usage.get("output_tokens_details") is not None:
                self._usage["output_tokens_details"] = usage["output_tokens_details"]
        if self._finished:
            return []
        out = self._start()
        delta = data.get("delta")
        stop_reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        self._finished = True
        out.append(self._chunk({}, finish_reason_from_anthropic(stop_reason)))
        return out

    def _usage_chunk(self) -> list[dict[str, Any]]:
        if not self._include_usage or self._usage_sent:
            return []
        self._usage_sent = True
        return [
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": openai_usage_from_anthropic(self._usage),
            }
        ]


class OpenAIToAnthropicStream:
    def __init__(self, model: str, message_id: str) -> None:
        self._model = model
        self._id = message_id
        self._usage: dict[str, Any] | None = None
        self._started = False
        self._done = False
        self._next_block = 0
        self._open: int | None = None  # the content block now open, if any
        self._open_is_text = False
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool_calls index -> Anthropic block index
        self._stop_reason: str | None = None
        self._refused = False

    @property
    def usage(self) -> dict[str, Any] | None:
        """The OpenAI usage from the latest chunk that carried one (what ``Usage.from_openai``
        takes), or None if none has arrived."""
        return None if self._usage is None else dict(self._usage)

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._usage = dict(usage)  # cumulative: the latest report wins, even after the end
        if self._done:
            return []
        error = chunk.get("error")
        if error:
            # A mid-stream OpenAI error: Anthropic streams report these as an ``error`` event.
            self._done = True
            return [("error", openai_error_to_anthropic(500, chunk))]
        out = self._start()
        for choice in chunk.get("choices") or ():
            # Only choice 0: n > 1 cannot be asked of Anthropic, so it has no stream to map to.
            if isinstance(choice, Mapping) and choice.get("index", 0) == 0:
                self._choice(choice, out)
        if self._stop_reason is not None and self._usage is not None:
            out.extend(self._end())
        return out

    def finish(self) -> list[Event]:
        if self._done:
            return []
        out = self._start()
        self._close(out)
        if self._stop_reason is None:
            self._stop_reason = stop_reason_from_openai(None, refused=self._refused)
        out.extend(self._end())
        return out

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _choice(self, choice: Mapping[str, Any], out: list[Event]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    self._refused = self._refused or key == "refusal"
                    self._text(text, out)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    self._tool_call(call, out)
        finish_reason = choice.get("finish_reason")
        if finish_reason is not None and self._stop_reason is None:
            self._close(out)
            self._stop_reason = stop_reason_from_openai(finish_reason, refused=self._refused)

    def _open_block(self, block: dict[str, Any], out: list[Event], *, text: bool) -> int:
        self._close(out)
        index = self._next_block
        self._next_block += 1
        self._open, self._open_is_text = index, text
        out.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close(self, out: list[Event]) -> None:
        if self._open is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._open}))
            self._open = None

    def _text(self, text: str, out: list[Event]) -> None:
        if self._open is None or not self._open_is_text:
            self._open_block({"type": "text", "text": ""}, out, text=True)
        delta = {"type": "text_delta", "text": text}
        out.append(("content_block_delta", {"type": "content_block_delta", "index": self._open, "delta": delta}))

    def _tool_call(self, call: Mapping[str, Any], out: list[Event]) -> None:
        position = call.get("index", 0)
        if not isinstance(position, int):
            return
        fn = call.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        block = self._tool_blocks.get(position)
        if block is None:
            # The first fragment of a call names it; later id/name repeats (some providers send
            # them on every fragment) are ignored, since the OpenAI SDK would concatenate them too.
            raw_id = call.get("id")
            call_id = raw_id if isinstance(raw_id, str) and raw_id else f"call_{position}"
            raw_name = fn.get("name")
            name = raw_name if isinstance(raw_name, str) else ""
            start: dict[str, Any] = {"type": "tool_use", "id": anthropic_tool_id(call_id), "name": name, "input": {}}
            block = self._open_block(start, out, text=False)
            self._tool_blocks[position] = block
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            # Fragments for a call whose block was already closed (interleaved parallel calls,
            # not seen from OpenAI) still go to that call's block: the SDK accumulates by index.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(("content_block_delta", {"type": "content_block_delta", "index": block, "delta": delta}))

    def _end(self) -> list[Event]:
        self._done = True
        usage = anthropic_usage_from_openai(self._usage) if self._usage is not None else {"output_tokens": 0}
        delta = {"stop_reason": self._stop_reason, "stop_sequence": None}
        return [
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]
