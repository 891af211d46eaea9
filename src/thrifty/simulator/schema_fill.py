"""A deterministic JSON value valid for a JSON Schema: tool arguments and structured outputs.

Required properties are filled (all of them, plus every listed property when the schema is for a
strict structured output), enums take their first value, numbers respect their bounds, strings
their formats and lengths, arrays their ``minItems``. ``$ref`` to ``#/$defs`` or
``#/definitions`` is followed; recursion stops at a fixed depth with an empty value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["fill_schema"]

_MAX_DEPTH = 8
_FORMATS: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "PT1H",
    "email": "user@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def fill_schema(schema: Mapping[str, Any], words: Callable[[int], str], *, all_properties: bool = False) -> Any:
    """A value for ``schema``; ``words(n)`` supplies n words of text for strings."""
    return _Filler(schema, words, all_properties).value(schema, 0, "")


class _Filler:
    def __init__(self, root: Mapping[str, Any], words: Callable[[int], str], all_properties: bool) -> None:
        self.root = root
        self.words = words
        self.all_properties = all_properties

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(_MAX_DEPTH):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return schema
            target: Any = self.root
            for part in ref[2:].split("/") if ref.startswith("#/") else ():
                target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, Mapping) else None
            if not isinstance(target, Mapping):
                return {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def value(self, raw: Any, depth: int, name: str) -> Any:
        if not isinstance(raw, Mapping):
            return self.words(2)
        schema = self.resolve(raw)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                chosen = next((o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")), None)
                return self.value(chosen if chosen is not None else options[0], depth + 1, name)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged: dict[str, Any] = {}
            for raw_part in all_of:
                if isinstance(raw_part, Mapping):
                    part = self.resolve(raw_part)
                    for k, v in part.items():
                        if k in ("properties",) and isinstance(v, Mapping):
                            merged.setdefault("properties", {}).update(v)
                        elif k == "required" and isinstance(v, list):
                            merged.setdefault("required", []).extend(v)
                        else:
                            merged.setdefault(k, v)
            return self.value({**{k: v for k, v in schema.items() if k != "allOf"}, **merged}, depth + 1, name)
        kind = _kind(schema)
        if depth >= _MAX_DEPTH:
            return {"object": {}, "array": []}.get(kind)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, depth, name)
        if kind == "integer":
            return _integer(schema)
        if kind == "number":
            return _number(schema)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema, name)

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        required = schema.get("required")
        names = [n for n in required if n in properties] if isinstance(required, list) else []
        if self.all_properties:
            names = list(properties)
        return {n: self.value(properties[n], depth + 1, n) for n in names}

    def array(self, schema: Mapping[str, Any], depth: int, name: str) -> list[Any]:
        count = schema.get("minItems")
        count = count if isinstance(count, int) and count > 0 else 1
        maximum = schema.get("maxItems")
        if isinstance(maximum, int) and maximum >= 0:
            count = min(count, maximum)
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        out: list[Any] = []
        for i in range(count):
            item_schema = prefix[i] if isinstance(prefix, list) and i < len(prefix) else items
            out.append(self.value(item_schema if isinstance(item_schema, Mapping) else {}, depth + 1, name))
        return out

    def string(self, schema: Mapping[str, Any], name: str) -> str:
        fmt = schema.get("format")
        text = _FORMATS.get(fmt, "") if isinstance(fmt, str) else ""
        if not text:
            text = self.words(3)
        minimum = schema.get("minLength")
        if isinstance(minimum, int) and len(text) < minimum:
            text = (text + " ") * (minimum // (len(text) + 1) + 1)
            text = text[:minimum]
        maximum = schema.get("maxLength")
        if isinstance(maximum, int) and len(text) > maximum:
            text = text[:maximum]
        return text


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None, bool, bool]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    ex_low = schema.get("exclusiveMinimum")
    ex_high = schema.get("exclusiveMaximum")
    low_open = high_open = False
    if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
        low, low_open = ex_low, True
    if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
        high, high_open = ex_high, True
    low = low if isinstance(low, int | float) and not isinstance(low, bool) else None
    high = high if isinstance(high, int | float) and not isinstance(high, bool) else None
    return low, high, low_open, high_open


def _integer(schema: Mapping[str, Any]) -> int:
    low, high, low_open, high_open = _bounds(schema)
    value = 1
    if low is not None:
        floor = math.floor(low) + 1 if low_open else math.ceil(low)
        value = max(value, floor)
    if high is not None:
        ceiling = math.ceil(high) - 1 if high_open else math.floor(high)
        value = min(value, ceiling)
    return value


def _number(schema: Mapping[str, Any]) -> float:
    low, high, low_open, high_open = _bounds(schema)
    value = 1.5
    if low is not None and (value < low or (low_open and value <= low)):
        value = float(low)
        if low_open:
            value = (float(low) + float(high)) / 2 if high is not None else float(low) + 1.0
    if high is not None and (value > high or (high_open and value >= high)):
        value = float(high) - 1.0 if high_open else float(high)
        if low is not None:
            value = (float(low) + float(high)) / 2
    return value
