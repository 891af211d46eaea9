"""Whole responses and their streams, both ways, in either API's shape.

The cache stores a whole response; a stream is accumulated into one to be stored, and a stored
response is replayed as a proper stream when a streaming request hits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

__all__ = [
    "AnthropicAccumulator",
    "OpenAIAccumulator",
    "anthropic_events",
    "openai_chunks",
]


class OpenAIAccumulator:
    """Chat completion chunks -> the ChatCompletion they add up to."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None

    def feed_event(self, event: str | None, data: Mapping[str, Any]) -> None:
        """One server-sent event (OpenAI's carry no event name)."""
        self.feed(data)

    def feed(self, chunk: Mapping[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint", "service_tier")}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index", 0))
            state = self.choices.setdefault(index, {"content": [], "refusal": [], "tools": {}, "finish": None})
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                state["content"].append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                state["refusal"].append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                slot = state["tools"].setdefault(int(call.get("index", 0)), {"id": None, "name": [], "args": []})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["name"].append(function["name"])
                if function.get("arguments"):
                    slot["args"].append(function["arguments"])
            if choice.get("finish_reason"):
                state["finish"] = choice["finish_reason"]

    def result(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(state["content"]) if state["content"] or not state["tools"] else None,
                "refusal": "".join(state["refusal"]) or None,
            }
            if state["tools"]:
                message["tool_calls"] = [
                    {
                        "id": slot["id"],
                        "type": "function",
                        "function": {"name": "".join(slot["name"]), "arguments": "".join(slot["args"])},
                    }
                    for _, slot in sorted(state["tools"].items())
                ]
            choices.append({"index": index, "message": message, "finish_reason": state["finish"], "logprobs": None})
        body = {
            **{k: v for k, v in self.head.items() if v is not None},
            "object": "chat.completion",
            "choices": choices,
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return body


def openai_chunks(completion: Mapping[str, Any], *, include_usage: bool) -> Iterator[dict[str, Any]]:
    """A stored ChatCompletion replayed as the chunks a stream of it would have carried."""
    head = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    if completion.get("system_fingerprint"):
        head["system_fingerprint"] = completion["system_fingerprint"]
    extra = {"usage": None} if include_usage else {}
    for choice in completion.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        yield {
            **head,
            **extra,
            "choices": [
                {"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
            ],
        }
        if message.get("content"):
            yield {
                **head,
                **extra,
                "choices": [
                    {"index": index, "delta": {"content": message["content"]}, "finish_reason": None, "logprobs": None}
                ],
            }
        calls = message.get("tool_calls") or []
        if calls:
            delta = {"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]}
            yield {
                **head,
                **extra,
                "choices": [{"index": index, "delta": delta, "finish_reason": None, "logprobs": None}],
            }
        yield {
            **head,
            **extra,
            "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason"), "logprobs": None}],
        }
    if include_usage:
        yield {**head, "choices": [], "usage": completion.get("usage")}


class AnthropicAccumulator:
    """Messages stream events -> the Message they add up to."""

    def __init__(self) -> None:
        self.message: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json: dict[int, list[str]] = {}

    def feed_event(self, event: str | None, data: Mapping[str, Any]) -> None:
        """One server-sent event: Anthropic names every one; one without a name carries nothing."""
        if event is not None:
            self.feed(event, data)

    def feed(self, event: str, data: Mapping[str, Any]) -> None:
        if event == "message_start":
            self.message = dict(data.get("message") or {})
            self.message["usage"] = dict(self.message.get("usage") or {})
        elif event == "content_block_start":
            self.blocks[int(data.get("index", 0))] = dict(data.get("content_block") or {})
        elif event == "content_block_delta":
            index = int(data.get("index", 0))
            block = self.blocks.setdefault(index, {"type": "text", "text": ""})
            delta = data.get("delta") or {}
            kind = delta.get("type")
            if kind == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif kind == "input_json_delta":
                self.json.setdefault(index, []).append(delta.get("partial_json", ""))
            elif kind == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif kind == "signature_delta":
                block["signature"] = delta.get("signature")
        elif event == "message_delta":
            self.message.update({k: v for k, v in (data.get("delta") or {}).items() if v is not None})
            usage = self.message.setdefault("usage", {})
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})

    def result(self) -> dict[str, Any]:
        content = []
        for index in sorted(self.blocks):
            block = dict(self.blocks[index])
            if block.get("type") == "tool_use" and index in self.json:
                text = "".join(self.json[index])
                block["input"] = orjson.loads(text) if text else {}
            content.append(block)
        return {**self.message, "content": content}


def anthropic_events(message: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A stored Message replayed as the events a stream of it would have carried."""
    usage = dict(message.get("usage") or {})
    start = {k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence")}
    start.update(content=[], stop_reason=None, stop_sequence=None, usage={**usage, "output_tokens": 1})
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message.get("content") or ()):
        kind = block.get("type")
        if kind == "tool_use":
            opening = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block.get("input", {})).decode()}
        elif kind == "thinking":
            opening = {**block, "thinking": "", "signature": ""}
            delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
        else:
            opening = {**block, "text": ""}
            delta = {"type": "text_delta", "text": block.get("text", "")}
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        if kind == "thinking" and block.get("signature"):
            signature = {"type": "signature_delta", "signature": block["signature"]}
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": signature}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")},
            "usage": {"output_tokens": usage.get("output_tokens", 0)},
        },
    )
    yield "message_stop", {"type": "message_stop"}
