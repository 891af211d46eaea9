"""Request bodies: OpenAI Chat Completions <-> Anthropic Messages.

Each function returns a ``RequestTranslation``: the new body, the fields that had no equivalent
and were left out (``dropped``, as paths), and notes on what was changed to fit (``notes``).
A field whose loss would change what the caller gets back is *rejected* with a ``RequestError``
naming it; a field that only tunes sampling, cost or bookkeeping is *dropped* and reported.

OpenAI -> Anthropic
    * system/developer messages -> ``system`` blocks (wherever they were; noted if moved).
    * tool messages -> ``tool_result`` blocks in one user turn; consecutive turns of one role merged.
    * ``max_completion_tokens`` / ``max_tokens`` -> ``max_tokens`` (``default_max_tokens`` if absent:
      Anthropic requires it).
    * ``temperature``: OpenAI allows 0..2, Anthropic 0..1; a value above 1 is rejected, naming
      Anthropic's range. Anthropic would refuse it, and quietly clamping it would answer another
      request than the one sent (a rescaling would change even the values both APIs accept).
      ``top_p`` is 0..1 on both.
    * ``stop`` -> ``stop_sequences``; ``user`` (else ``safety_identifier``) -> ``metadata.user_id``.
    * ``tools``/``tool_choice``/``parallel_tool_calls: false`` -> tools, tool_choice and
      ``disable_parallel_tool_use``; function ``strict`` -> tool ``strict``.
    * ``response_format`` json_schema -> ``output_config.format`` (Anthropic structured outputs).
    * Rejected: ``n`` > 1, ``logprobs``/``top_logprobs``, audio (``audio``, ``modalities``), the
      json_object response format (Anthropic has no schema-less JSON mode), the deprecated
      ``functions``/``function_call``, ``web_search_options``, custom tools, ``allowed_tools``.
    * Dropped and reported: every other field (``frequency_penalty``, ``presence_penalty``,
      ``logit_bias``, ``seed``, ``reasoning_effort``, ``metadata``, ``store``, ``service_tier``, ...)
      and message ``name``\\ s. ``stream_options`` is not reported: the stream translator honours
      ``include_usage`` itself.

Anthropic -> OpenAI
    * ``system`` -> one leading system message; ``max_tokens`` -> ``max_completion_tokens`` (the
      field every current OpenAI model accepts); ``stop_sequences`` -> ``stop`` (at most 4, as
      OpenAI allows); ``metadata.user_id`` -> ``user``; tool_choice ``any`` -> ``"required"``;
      ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``; output_config.format ->
      ``response_format`` json_schema. A streaming request gets ``stream_options.include_usage``
      so the usage needed for pricing arrives.
    * Dropped and reported: ``top_k``, ``thinking`` (and thinking blocks in history),
      ``output_config.effort``, ``is_error`` on tool results, and any other field.
      ``cache_control`` markers are dropped with a note: OpenAI caches prefixes automatically.
    * Rejected: server tools (web search, code execution, ...), more than 4 stop sequences, content
      blocks OpenAI chat cannot carry (search results, server tool results, non-PDF documents).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.core import _validate as v
from thrifty.core.messages import RequestError
from thrifty.wire.translate._common import Report
from thrifty.wire.translate._to_anthropic import openai_messages_to_anthropic
from thrifty.wire.translate._to_openai import CACHE_NOTE, anthropic_messages_to_openai

__all__ = ["RequestTranslation", "anthropic_to_openai_request", "openai_to_anthropic_request"]

# Fields each translator reads itself; anything else in a body is dropped and reported.
_OPENAI_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
        "stream", "stream_options", "user", "safety_identifier", "tools", "tool_choice",
        "parallel_tool_calls", "n", "logprobs", "top_logprobs", "modalities", "audio",
        "response_format", "functions", "function_call", "web_search_options",
    }
)  # fmt: skip
_ANTHROPIC_FIELDS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences",
        "stream", "metadata", "tools", "tool_choice", "thinking", "cache_control", "output_config",
    }
)  # fmt: skip
_OPENAI_MAX_STOP = 4


@dataclass(frozen=True, slots=True)
class RequestTranslation:
    body: dict[str, Any]
    """The request in the target API's shape."""
    dropped: tuple[str, ...] = ()
    """Paths of fields with no equivalent in the target API, left out (``top_k``,
    ``messages[2].name``)."""
    notes: tuple[str, ...] = ()
    """Changes made so the request fits the target API without changing what it asks for."""


def openai_to_anthropic_request(body: Mapping[str, Any], *, default_max_tokens: int) -> RequestTranslation:
    data = v.obj(body, "body")
    report = Report()
    _reject_openai_only(data)
    system, messages = openai_messages_to_anthropic(data.get("messages"), report)
    out: dict[str, Any] = {"model": v.non_empty_string(data.get("model"), "model")}
    if system:
        out["system"] = system
    out["messages"] = messages
    max_tokens = v.opt_int(data.get("max_completion_tokens"), "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = v.opt_int(data.get("max_tokens"), "max_tokens", 1)
    out["max_tokens"] = default_max_tokens if max_tokens is None else max_tokens
    for key, value in _anthropic_sampling(data).items():
        out[key] = value
    stop = _stop_list(data.get("stop"), "stop")
    if stop:
        out["stop_sequences"] = stop
    if v.opt_bool(data.get("stream"), "stream"):
        out["stream"] = True
    user = v.opt_string(data.get("user"), "user") or v.opt_string(data.get("safety_identifier"), "safety_identifier")
    if user:
        out["metadata"] = {"user_id": user}
    tools = _openai_tools(data.get("tools"))
    if tools:
        out["tools"] = tools
    choice = _openai_tool_choice(data, has_tools=bool(tools), report=report)
    if choice is not None:
        out["tool_choice"] = choice
    output_format = _openai_response_format(data.get("response_format"))
    if output_format is not None:
        out["output_config"] = {"format": output_format}
    for key, value in data.items():
        if key not in _OPENAI_FIELDS and value is not None:
            report.drop(key)
    return RequestTranslation(out, tuple(report.dropped), tuple(report.notes))


def _anthropic_sampling(data: Mapping[str, Any]) -> dict[str, float]:
    """``temperature`` and ``top_p`` within Anthropic's ranges (both 0 to 1), else rejected naming
    the range: a value an Anthropic model would refuse is refused before the call is spent."""
    out: dict[str, float] = {}
    for key, wider in (("temperature", "; OpenAI's is 0 to 2"), ("top_p", "")):
        number = v.opt_number(data.get(key), key)
        if number is None:
            continue
        if not 0 <= number <= 1:
            raise RequestError(key, f"must be between 0 and 1 (Anthropic's range{wider}), got {number:g}")
        out[key] = number
    return out


def _reject_openai_only(data: Mapping[str, Any]) -> None:
    """Fields whose loss would silently change the kind of answer the caller gets."""
    n = v.opt_int(data.get("n"), "n", 1)
    if n is not None and n > 1:
        raise RequestError("n", "Anthropic returns one completion per request; send n requests instead")
    if v.opt_bool(data.get("logprobs"), "logprobs"):
        raise RequestError("logprobs", "Anthropic does not return log probabilities")
    if data.get("top_logprobs") is not None:
        raise RequestError("top_logprobs", "Anthropic does not return log probabilities")
    if data.get("audio") is not None:
        raise RequestError("audio", "Anthropic models do not produce audio")
    modalities = data.get("modalities")
    if modalities is not None and "audio" in v.array(modalities, "modalities"):
        raise RequestError("modalities", "Anthropic models do not produce audio")
    if data.get("functions") is not None:
        raise RequestError("functions", "the deprecated functions parameter cannot be translated; use tools")
    if data.get("function_call") is not None:
        raise RequestError(
            "function_call", "the deprecated function_call parameter cannot be translated; use tool_choice"
        )
    if data.get("web_search_options") is not None:
        raise RequestError("web_search_options", "OpenAI web search cannot be translated to an Anthropic request")


def _stop_list(value: object, path: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [s for j, s in enumerate(v.array(value, path)) if v.string(s, f"{path}[{j}]")]


def _openai_tools(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    tools = []
    for i, item in enumerate(v.array(value, "tools")):
        where = f"tools[{i}]"
        tool = v.obj(item, where)
        kind = tool.get("type", "function")
        if kind != "function":
            raise RequestError(f"{where}.type", f"tool type {kind!r} has no Anthropic equivalent; use function tools")
        fn = v.obj(tool.get("function"), f"{where}.function")
        out: dict[str, Any] = {"name": v.non_empty_string(fn.get("name"), f"{where}.function.name")}
        description = v.opt_string(fn.get("description"), f"{where}.function.description")
        if description is not None:
            out["description"] = description
        # Anthropic requires a schema; OpenAI allows omitting it for a tool without arguments.
        out["input_schema"] = v.opt_obj(fn.get("parameters"), f"{where}.function.parameters") or {
            "type": "object",
            "properties": {},
        }
        strict = v.opt_bool(fn.get("strict"), f"{where}.function.strict")
        if strict is not None:
            out["strict"] = strict
        tools.append(out)
    return tools


def _openai_tool_choice(data: Mapping[str, Any], *, has_tools: bool, report: Report) -> dict[str, Any] | None:
    value = data.get("tool_choice")
    parallel = v.opt_bool(data.get("parallel_tool_calls"), "parallel_tool_calls")
    if not has_tools:
        # Without tools neither field means anything (OpenAI itself rejects a forced choice).
        if value not in (None, "none", "auto"):
            report.drop("tool_choice")
        return None
    choice: dict[str, Any]
    if value is None or value == "auto":
        choice = {"type": "auto"}
    elif value == "required":
        choice = {"type": "any"}
    elif value == "none":
        return {"type": "none"}
    elif isinstance(value, Mapping) and value.get("type") == "function":
        fn = v.obj(value.get("function"), "tool_choice.function")
        choice = {"type": "tool", "name": v.non_empty_string(fn.get("name"), "tool_choice.function.name")}
    elif isinstance(value, Mapping):
        raise RequestError("tool_choice.type", f"tool_choice type {value.get('type')!r} has no Anthropic equivalent")
    else:
        raise RequestError("tool_choice", "expected 'auto', 'required', 'none' or a function choice")
    if parallel is False:
        choice["disable_parallel_tool_use"] = True
    elif value is None:
        return None  # the default on both sides: say nothing
    return choice


def _openai_response_format(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    data = v.obj(value, "response_format")
    kind = data.get("type")
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = v.obj(data.get("json_schema"), "response_format.json_schema")
        schema = v.obj(spec.get("schema"), "response_format.json_schema.schema")
        return {"type": "json_schema", "schema": dict(schema)}
    if kind == "json_object":
        raise RequestError(
            "response_format.type", "Anthropic has no schema-less JSON mode; use a json_schema response format"
        )
    raise RequestError("response_format.type", f"unknown response format {kind!r}")


def anthropic_to_openai_request(body: Mapping[str, Any]) -> RequestTranslation:
    data = v.obj(body, "body")
    report = Report()
    out: dict[str, Any] = {"model": v.non_empty_string(data.get("model"), "model")}
    out["messages"] = anthropic_messages_to_openai(data.get("system"), data.get("messages"), report)
    max_tokens = v.opt_int(data.get("max_tokens"), "max_tokens", 1)
    if max_tokens is not None:
        out["max_completion_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        number = v.opt_number(data.get(key), key)
        if number is not None:
            out[key] = number  # Anthropic's 0..1 ranges lie within OpenAI's
    if data.get("top_k") is not None:
        report.drop("top_k")
    stop = _stop_list(data.get("stop_sequences"), "stop_sequences")
    if len(stop) > _OPENAI_MAX_STOP:
        raise RequestError(
            "stop_sequences", f"OpenAI accepts at most {_OPENAI_MAX_STOP} stop sequences, got {len(stop)}"
        )
    if stop:
        out["stop"] = stop
    if v.opt_bool(data.get("stream"), "stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # else OpenAI streams carry no usage at all
    metadata = v.opt_obj(data.get("metadata"), "metadata") or {}
    for key, value in metadata.items():
        if key == "user_id" and value is not None:
            out["user"] = v.string(value, "metadata.user_id")
        elif value is not None:
            report.drop(f"metadata.{key}")
    tools = _anthropic_tools(data.get("tools"), report)
    if tools:
        out["tools"] = tools
        _anthropic_tool_choice(data.get("tool_choice"), out)
    thinking = v.opt_obj(data.get("thinking"), "thinking")
    if thinking is not None and thinking.get("type") != "disabled":
        report.drop("thinking")
    if data.get("cache_control") is not None:
        report.note(CACHE_NOTE)
    _anthropic_output_config(data.get("output_config"), out, report)
    for key, value in data.items():
        if key not in _ANTHROPIC_FIELDS and value is not None:
            report.drop(key)
    return RequestTranslation(out, tuple(report.dropped), tuple(report.notes))


_TOOL_FIELDS = frozenset({"type", "name", "description", "input_schema", "strict", "cache_control"})


def _anthropic_tools(value: object, report: Report) -> list[dict[str, Any]]:
    if value is None:
        return []
    tools = []
    for i, item in enumerate(v.array(value, "tools")):
        where = f"tools[{i}]"
        tool = v.obj(item, where)
        kind = tool.get("type")
        if kind not in (None, "custom"):
            # Server tools run inside Anthropic's API; an OpenAI model cannot call them.
            raise RequestError(f"{where}.type", f"server tool {kind!r} has no OpenAI equivalent")
        fn: dict[str, Any] = {"name": v.non_empty_string(tool.get("name"), f"{where}.name")}
        description = v.opt_string(tool.get("description"), f"{where}.description")
        if description is not None:
            fn["description"] = description
        fn["parameters"] = dict(v.obj(tool.get("input_schema"), f"{where}.input_schema"))
        strict = v.opt_bool(tool.get("strict"), f"{where}.strict")
        if strict is not None:
            fn["strict"] = strict
        if tool.get("cache_control") is not None:
            report.note(CACHE_NOTE)
        for key, field_value in tool.items():
            if key not in _TOOL_FIELDS and field_value is not None:
                report.drop(f"{where}.{key}")
        tools.append({"type": "function", "function": fn})
    return tools


def _anthropic_tool_choice(value: object, out: dict[str, Any]) -> None:
    if value is None:
        return
    choice = v.obj(value, "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
        return  # parallelism is moot when no tool may be called
    elif kind == "tool":
        name = v.non_empty_string(choice.get("name"), "tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise RequestError("tool_choice.type", f"unknown tool_choice type {kind!r}")
    if v.opt_bool(choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False


def _anthropic_output_config(value: object, out: dict[str, Any], report: Report) -> None:
    if value is None:
        return
    config = v.obj(value, "output_config")
    for key, item in config.items():
        if item is None:
            continue
        if key == "format":
            spec = v.obj(item, "output_config.format")
            if spec.get("type") != "json_schema":
                raise RequestError("output_config.format.type", f"unknown output format {spec.get('type')!r}")
            schema = v.obj(spec.get("schema"), "output_config.format.schema")
            # OpenAI requires a name; strict matches Anthropic, whose structured outputs always
            # constrain decoding to the schema.
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": dict(schema), "strict": True},
            }
        else:
            report.drop(f"output_config.{key}")  # effort: no portable OpenAI equivalent
