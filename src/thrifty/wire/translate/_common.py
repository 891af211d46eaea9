"""What every translation shares: stop reasons, usage, tool ids and arguments, data: URIs.

Kept apart from the public modules so the request, response and stream translators cannot drift
from one another on, say, how a cache read is counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from thrifty.core import _validate as v
from thrifty.errors import ResponseShapeError

__all__ = [
    "Report",
    "ResponseShapeError",
    "anthropic_tool_id",
    "anthropic_usage_from_openai",
    "data_uri",
    "finish_reason_from_anthropic",
    "openai_usage_from_anthropic",
    "parse_data_uri",
    "stop_reason_from_openai",
    "tool_arguments",
    "tool_input",
]


@dataclass(slots=True)
class Report:
    """What one request translation left out or changed; built up while translating, then frozen
    into a ``RequestTranslation``."""

    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def drop(self, path: str) -> None:
        self.dropped.append(path)

    def note(self, text: str) -> None:
        if text not in self.notes:  # one note per kind of change, not one per message
            self.notes.append(text)


# Anthropic stop_reason -> OpenAI finish_reason. pause_turn (a server-tool turn Claude paused) has
# no OpenAI counterpart; the turn did end normally from the client's point of view, so "stop".
_FINISH_FROM_ANTHROPIC: Mapping[str, str] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }
)

# OpenAI finish_reason -> Anthropic stop_reason. OpenAI does not say whether "stop" came from a
# stop sequence or a natural end, so it is always end_turn (stop_sequence stays null).
_STOP_FROM_OPENAI: Mapping[str, str] = MappingProxyType(
    {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "function_call": "tool_use",
        "content_filter": "refusal",
    }
)


def finish_reason_from_anthropic(stop_reason: object) -> str:
    return _FINISH_FROM_ANTHROPIC.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason_from_openai(finish_reason: object, *, refused: bool = False) -> str:
    """``refused``: the message carried an OpenAI ``refusal``, which is what Anthropic reports as
    stop_reason ``refusal`` even though OpenAI's finish_reason is a plain ``stop``."""
    if refused:
        return "refusal"
    return _STOP_FROM_OPENAI.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def _count(obj: Mapping[str, Any], key: str) -> int:
    # Upstream usage is trusted for shape but not for every optional field being present.
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _sub(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def openai_usage_from_anthropic(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> OpenAI ``CompletionUsage``. Anthropic's ``input_tokens`` excludes cache
    reads and writes; OpenAI's ``prompt_tokens`` includes them, so all three are added up, and
    ``Usage.from_openai`` of the result sees the same total input and cache reads."""
    read = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    prompt = _count(usage, "input_tokens") + read + written
    completion = _count(usage, "output_tokens")
    details: dict[str, Any] = {"cached_tokens": read}
    if written:
        # The OpenAI SDK has this field; OpenAI clients that look for cache writes find them here.
        details["cache_write_tokens"] = written
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": details,
    }
    thinking = _count(_sub(usage, "output_tokens_details"), "thinking_tokens")
    if thinking:
        out["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return out


def anthropic_usage_from_openai(usage: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI usage -> Anthropic usage: the cached part of ``prompt_tokens`` moves to
    ``cache_read_input_tokens``. OpenAI does not charge for cache writes, so none are reported
    (reporting its informational ``cache_write_tokens`` would make them priced at Anthropic's
    cache-write rate)."""
    prompt = _count(usage, "prompt_tokens")
    cached = min(_count(_sub(usage, "prompt_tokens_details"), "cached_tokens"), prompt)
    out: dict[str, Any] = {
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": _count(usage, "completion_tokens"),
    }
    reasoning = _count(_sub(usage, "completion_tokens_details"), "reasoning_tokens")
    if reasoning:
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    return out


_BAD_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def anthropic_tool_id(tool_call_id: str) -> str:
    """Anthropic accepts tool_use ids matching ``^[a-zA-Z0-9_-]+$``; some OpenAI-compatible
    providers use ids like ``functions.get_weather:0``. The same mapping is applied to a
    ``tool_use`` id and to the ``tool_result`` that answers it, so the pair still matches."""
    return _BAD_ID_CHARS.sub("_", tool_call_id) or "call"


def tool_arguments(value: object) -> str:
    """A tool_use ``input`` object as OpenAI ``arguments`` JSON text (compact, as models emit it)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def tool_input(arguments: str) -> dict[str, Any]:
    """OpenAI ``arguments`` JSON text -> an Anthropic ``input`` object.

    OpenAI documents that models may emit invalid JSON here. Rejecting it would break an agent
    loop (and cost a retry of the whole call) over something the tool itself can report; instead
    text that is not a JSON object is kept whole under ``_raw``, as ``render_anthropic_request``
    already does. So is an object nested deeper than a request may be (``MAX_DEPTH``): as text it
    was one string, as an object it would be more than the encoder can write."""
    if not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except (json.JSONDecodeError, RecursionError):
        return {"_raw": arguments}
    return parsed if isinstance(parsed, dict) and v.within_depth(parsed) else {"_raw": arguments}


_DATA_URI = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?P<params>(?:;[^;,]*)*?);base64,(?P<data>.*)$", re.DOTALL)


def parse_data_uri(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> ``("image/png", "AAAA")``; None for anything else
    (including data: URIs that are not base64, which Anthropic has no source type for)."""
    match = _DATA_URI.match(url)
    if match is None:
        return None
    return match["media"].lower(), match["data"]


def data_uri(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"
