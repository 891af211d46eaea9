"""Between the client's wire format and the provider's: requests, responses, errors and streams.

When both speak the same format the body goes through untouched but for the model name (and, for
OpenAI streams, ``stream_options.include_usage``, which the gateway always asks for so that every
stream is priced from the provider's own usage; the usage chunk reaches the client only if the
client asked for it). Otherwise the ``wire.translate`` functions convert each way.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson

from thrifty.core.usage import Usage, UsageError
from thrifty.errors import BadUpstreamResponse, error_body
from thrifty.pipeline.call import Call, ClientAPI, StreamState
from thrifty.providers.sse import SSEEvent, encode_event
from thrifty.providers.upstream import WireFormat
from thrifty.wire.anthropic_messages import message_text
from thrifty.wire.openai_chat import chunk_choices, completion_text
from thrifty.wire.translate.requests import (
    RequestTranslation,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)
from thrifty.wire.translate.responses import (
    anthropic_error_to_openai,
    anthropic_to_openai_response,
    openai_error_to_anthropic,
    openai_to_anthropic_response,
)
from thrifty.wire.translate.streams import AnthropicToOpenAIStream, OpenAIToAnthropicStream

__all__ = ["BadUpstreamResponse", "Conversion", "StreamTranslator", "conversion_for", "error_body"]

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires max_tokens; an OpenAI client that set none gets this (or the model's cap)."""


class StreamTranslator(Protocol):
    def feed(self, event: SSEEvent) -> bytes: ...

    def finish(self) -> bytes: ...


class Conversion(Protocol):
    def request_body(self, call: Call, upstream_model: str, max_output_tokens: int | None) -> dict[str, Any]: ...

    def response_body(self, raw: bytes, public_model: str) -> tuple[bytes, Usage | None, str]:
        """(the client's body, the provider's usage if it reported one, the generated text: it
        is needed only without usage, and may be empty when there is usage)."""
        ...

    def error_body(self, status: int, raw: bytes) -> bytes: ...

    def stream(self, call: Call, state: StreamState) -> StreamTranslator: ...


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadUpstreamResponse(f"the provider's response is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise BadUpstreamResponse("the provider's response is not a JSON object")
    return value


def _usage(parse: Any, raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    try:
        usage: Usage = parse(raw)
    except UsageError:
        return None
    return usage


# -- OpenAI client, OpenAI provider -----------------------------------------------------------


class _OpenAIStream:
    def __init__(self, state: StreamState, include_usage: bool) -> None:
        self.state = state
        self.include_usage = include_usage

    def feed(self, event: SSEEvent) -> bytes:
        data = event.data
        if data == b"[DONE]":
            return b"data: [DONE]\n\n"
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b"data: " + data + b"\n\n"
        if not isinstance(chunk, dict):
            return b"data: " + data + b"\n\n"
        if "error" in chunk:
            self.state.error = str((chunk.get("error") or {}).get("message", "upstream stream error"))
            return b"data: " + data + b"\n\n"
        choices = chunk_choices(chunk)
        state = self.state
        for choice in choices:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                state.output_text.append(content)
                if state.first_token_at is None:
                    state.first_token_at = time.perf_counter()
            for call in delta.get("tool_calls") or ():
                arguments = (call.get("function") or {}).get("arguments")
                if arguments:
                    state.output_text.append(arguments)
                    if state.first_token_at is None:
                        state.first_token_at = time.perf_counter()
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
        usage = chunk.get("usage")
        if usage:
            state.usage = _usage(Usage.from_openai, usage) or state.usage
            if not self.include_usage:
                # The gateway asked for usage; the client did not. Drop the usage-only chunk, and
                # strip usage from a chunk that also carries content.
                if not choices:
                    return b""
                return encode_event({k: v for k, v in chunk.items() if k != "usage"})
        return b"data: " + data + b"\n\n"

    def finish(self) -> bytes:
        return b""


class _OpenAIToOpenAI:
    def request_body(self, call: Call, upstream_model: str, max_output_tokens: int | None) -> dict[str, Any]:
        body = dict(call.body)
        body["model"] = upstream_model
        if call.stream:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return body

    def response_body(self, raw: bytes, public_model: str) -> tuple[bytes, Usage | None, str]:
        body = _json(raw)
        usage = _usage(Usage.from_openai, body.get("usage"))
        return raw, usage, completion_text(body) if usage is None else ""  # the text is counted only without usage

    def error_body(self, status: int, raw: bytes) -> bytes:
        return raw

    def stream(self, call: Call, state: StreamState) -> StreamTranslator:
        return _OpenAIStream(state, call.include_usage)


# -- Anthropic client, Anthropic provider -----------------------------------------------------


class _AnthropicStream:
    def __init__(self, state: StreamState) -> None:
        self.state = state
        self.usage: dict[str, Any] = {}

    def feed(self, event: SSEEvent) -> bytes:
        name = event.event
        out = (b"event: " + name.encode() + b"\n" if name else b"") + b"data: " + event.data + b"\n\n"
        if name in ("message_start", "message_delta", "content_block_delta", "error"):
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                return out
            self._observe(name, data)
        return out

    def _observe(self, name: str, data: dict[str, Any]) -> None:
        state = self.state
        if name == "content_block_delta":
            delta = data.get("delta") or {}
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if text:
                state.output_text.append(text)
                if state.first_token_at is None:
                    state.first_token_at = time.perf_counter()
        elif name == "message_start":
            self.usage.update((data.get("message") or {}).get("usage") or {})
            state.usage = _usage(Usage.from_anthropic, self.usage)
        elif name == "message_delta":
            # Cumulative counts; a field missing or null here keeps the message_start value.
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            state.usage = _usage(Usage.from_anthropic, self.usage)
            state.finish_reason = (data.get("delta") or {}).get("stop_reason") or state.finish_reason
        elif name == "error":
            state.error = str((data.get("error") or {}).get("message", "upstream stream error"))

    def finish(self) -> bytes:
        return b""


class _AnthropicToAnthropic:
    def request_body(self, call: Call, upstream_model: str, max_output_tokens: int | None) -> dict[str, Any]:
        body = dict(call.body)
        body["model"] = upstream_model
        return body

    def response_body(self, raw: bytes, public_model: str) -> tuple[bytes, Usage | None, str]:
        body = _json(raw)
        usage = _usage(Usage.from_anthropic, body.get("usage"))
        return raw, usage, message_text(body) if usage is None else ""

    def error_body(self, status: int, raw: bytes) -> bytes:
        return raw

    def stream(self, call: Call, state: StreamState) -> StreamTranslator:
        return _AnthropicStream(state)


# -- across formats ---------------------------------------------------------------------------


class _TranslatedToOpenAI:
    """An OpenAI client, an Anthropic provider."""

    def __init__(self, state: StreamState, translator: AnthropicToOpenAIStream) -> None:
        self.observer = _AnthropicStream(state)
        self.translator = translator
        self.done = False

    def feed(self, event: SSEEvent) -> bytes:
        self.observer.feed(event)
        if event.event is None:
            return b""
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return b""
        chunks = self.translator.feed(event.event, data)
        out = b"".join(encode_event(chunk) for chunk in chunks)
        if event.event == "message_stop":
            self.done = True
            out += b"data: [DONE]\n\n"
        return out

    def finish(self) -> bytes:
        """The upstream ended without message_stop: close the OpenAI stream properly anyway."""
        if self.done:
            return b""
        self.done = True
        return b"".join(encode_event(chunk) for chunk in self.translator.finish()) + b"data: [DONE]\n\n"


class _OpenAIClientAnthropicProvider:
    def request_body(self, call: Call, upstream_model: str, max_output_tokens: int | None) -> dict[str, Any]:
        translation = openai_to_anthropic_request(call.body, default_max_tokens=max_output_tokens or DEFAULT_MAX_TOKENS)
        _note_translation(call, translation)
        body = translation.body
        body["model"] = upstream_model
        return body

    def response_body(self, raw: bytes, public_model: str) -> tuple[bytes, Usage | None, str]:
        body = _json(raw)
        try:
            converted = anthropic_to_openai_response(body, model=public_model)
        except ValueError as error:
            raise BadUpstreamResponse(f"the provider's response does not parse: {error}") from None
        return orjson.dumps(converted), _usage(Usage.from_anthropic, body.get("usage")), message_text(body)

    def error_body(self, status: int, raw: bytes) -> bytes:
        return orjson.dumps(anthropic_error_to_openai(status, _json_or_empty(raw)))

    def stream(self, call: Call, state: StreamState) -> StreamTranslator:
        translator = AnthropicToOpenAIStream(
            model=call.model,
            completion_id=f"chatcmpl-{call.request_id}",
            created=int(call.ts.timestamp()),
            include_usage=call.include_usage,
        )
        return _TranslatedToOpenAI(state, translator)


class _TranslatedToAnthropic:
    """An Anthropic client, an OpenAI provider."""

    def __init__(self, state: StreamState, translator: OpenAIToAnthropicStream) -> None:
        self.observer = _OpenAIStream(state, include_usage=True)
        self.translator = translator

    def feed(self, event: SSEEvent) -> bytes:
        self.observer.feed(event)
        if event.data == b"[DONE]":
            return b""
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return b""
        return b"".join(encode_event(data, name) for name, data in self.translator.feed(chunk))

    def finish(self) -> bytes:
        return b"".join(encode_event(data, name) for name, data in self.translator.finish())


class _AnthropicClientOpenAIProvider:
    def request_body(self, call: Call, upstream_model: str, max_output_tokens: int | None) -> dict[str, Any]:
        translation = anthropic_to_openai_request(call.body)
        _note_translation(call, translation)
        body = translation.body
        body["model"] = upstream_model
        if call.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def response_body(self, raw: bytes, public_model: str) -> tuple[bytes, Usage | None, str]:
        body = _json(raw)
        try:
            converted = openai_to_anthropic_response(body, model=public_model)
        except ValueError as error:
            raise BadUpstreamResponse(f"the provider's response does not parse: {error}") from None
        return orjson.dumps(converted), _usage(Usage.from_openai, body.get("usage")), completion_text(body)

    def error_body(self, status: int, raw: bytes) -> bytes:
        return orjson.dumps(openai_error_to_anthropic(status, _json_or_empty(raw)))

    def stream(self, call: Call, state: StreamState) -> StreamTranslator:
        return _TranslatedToAnthropic(
            state, OpenAIToAnthropicStream(model=call.model, message_id=f"msg_{call.request_id}")
        )


def _note_translation(call: Call, translation: RequestTranslation) -> None:
    """What the translation left out or adapted goes into the call's ledger details."""
    if translation.dropped or translation.notes:
        call.details["translation"] = {"dropped": list(translation.dropped), "notes": list(translation.notes)}


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return dict(value) if isinstance(value, dict) else {}


def conversion_for(client: ClientAPI, upstream: WireFormat) -> Conversion:
    """The conversions hold no state (streams get their own translator each), so one will do."""
    if client == upstream:
        return _OpenAIToOpenAI() if client == "openai" else _AnthropicToAnthropic()
    return _OpenAIClientAnthropicProvider() if client == "openai" else _AnthropicClientOpenAIProvider()
