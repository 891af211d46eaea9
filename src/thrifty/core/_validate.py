"""Small checks for untrusted JSON, each raising a ``RequestError`` that names where it failed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import orjson

from thrifty.core.messages import RequestError


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def obj(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RequestError(path, f"expected an object, got {type_name(value)}")
    return value


def array(value: object, path: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise RequestError(path, f"expected an array, got {type_name(value)}")
    return value


def string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise RequestError(path, f"expected a string, got {type_name(value)}")
    return value


def opt_string(value: object, path: str) -> str | None:
    return None if value is None else string(value, path)


def non_empty_string(value: object, path: str) -> str:
    text = string(value, path)
    if not text:
        raise RequestError(path, "must not be empty")
    return text


def opt_int(value: object, path: str, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(path, f"expected a whole number, got {type_name(value)}")
    if value < minimum:
        raise RequestError(path, f"must be at least {minimum}, got {value}")
    return value


def opt_number(value: object, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(path, f"expected a number, got {type_name(value)}")
    return float(value)


def opt_bool(value: object, path: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise RequestError(path, f"expected true or false, got {type_name(value)}")
    return value


def opt_obj(value: object, path: str) -> Mapping[str, Any] | None:
    return None if value is None else obj(value, path)


Check = Callable[[Any, str], object]
"""A check of one field's value (never None: an absent field and a null one are alike), raising a
``RequestError`` naming ``path`` when the value is not what the field takes."""


def fields(data: Mapping[str, Any], checks: Mapping[str, Check]) -> None:
    """The optional fields of a request, each against its check: a value of the wrong type is
    refused here, naming the field, instead of passing through for the provider to refuse (or for
    a later step to trip over). One pass over the fields the request has, not over ``checks``."""
    for key, value in data.items():
        if value is not None:
            check = checks.get(key)
            if check is not None:
                check(value, key)


def boolean(value: object, path: str) -> bool | None:
    return opt_bool(value, path)


def integer(value: object, path: str) -> int | None:
    return opt_int(value, path, -(2**63))


def number(value: object, path: str) -> float | None:
    return opt_number(value, path)


def strings(value: object, path: str) -> Sequence[str]:
    """An array of strings (``stop_sequences``, ``modalities``)."""
    items = array(value, path)
    for i, item in enumerate(items):
        string(item, f"{path}[{i}]")
    return items


def string_or_strings(value: object, path: str) -> object:
    """A string or an array of strings (OpenAI ``stop``)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise RequestError(path, f"expected a string or an array of strings, got {type_name(value)}")
    return strings(value, path)


def string_or_object(value: object, path: str) -> object:
    if not isinstance(value, str | dict):
        raise RequestError(path, f"expected a string or an object, got {type_name(value)}")
    return value


def string_map(value: object, path: str) -> Mapping[str, Any]:
    """An object whose values are strings (OpenAI ``metadata``)."""
    data = obj(value, path)
    for key, item in data.items():
        string(item, f"{path}.{key}")
    return data


NumberRange = tuple[float, float]
"""An inclusive range a sampling parameter must fall in."""


def sampling(data: Mapping[str, Any], numbers: Mapping[str, NumberRange], whole: Mapping[str, NumberRange]) -> None:
    """Sampling parameters against the wire format's documented ranges: a value the provider
    would refuse is refused here, before an upstream call is spent to learn it."""
    for name, (low, high) in numbers.items():
        number = opt_number(data.get(name), name)
        if number is not None and not low <= number <= high:
            raise RequestError(name, f"must be between {low:g} and {high:g}, got {number:g}")
    for name, (low, high) in whole.items():
        count = opt_int(data.get(name), name, int(low))
        if count is not None and count > high:
            raise RequestError(name, f"must be between {low:g} and {high:g}, got {count}")


MAX_DEPTH: Final = 128
"""How deep a request body may nest: objects and arrays, the body itself being level 1. Far beyond
any real request (a strict OpenAI schema may nest 10 objects, about 25 levels), and far enough
below what orjson can write (254) that whatever thrifty wraps a body or a tool input in (a cache
key, a translation, a journal line) still encodes."""

_ENCODER_DEPTH: Final = 254
"""The deepest nesting orjson writes; one level more is an error ("Recursion limit reached")."""


def within_depth(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests at most ``limit`` levels, at C speed: orjson encodes it wrapped in as
    many arrays as take anything deeper past the encoder's own limit (about a microsecond a KB).
    Only when that fails (too deep, or an integer orjson cannot write) does a walk in Python say
    which it was."""
    wrapped = value
    for _ in range(_ENCODER_DEPTH - limit):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return too_deep(value, limit) is None
    return True


def too_deep(value: object, limit: int = MAX_DEPTH) -> str | None:
    """The path of the first object or array nested deeper than ``limit`` levels
    (``tools[0].function.parameters.properties``), or None. A walk in Python: only for a value
    ``within_depth`` refused, to say where."""
    if not isinstance(value, dict | list):
        return None
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, level = stack.pop()
        if level > limit:
            return path
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in pairs:
            if isinstance(child, dict | list):
                where = f"{path}[{key}]" if isinstance(item, list) else (f"{path}.{key}" if path else str(key))
                stack.append((child, where, level + 1))
    return None


def check_depth(value: object, path: str = "body", limit: int = MAX_DEPTH) -> None:
    """A ``RequestError`` naming the field that nests deeper than ``limit`` levels, if one does."""
    if within_depth(value, limit):
        return
    where = too_deep(value, limit) or path
    if len(where) > 100:
        where = f"{where[:60]}...{where[-30:]}"
    raise RequestError(where, too_deep_problem(limit))


def too_deep_problem(limit: int = MAX_DEPTH) -> str:
    return f"nested deeper than {limit} levels of objects and arrays, the most thrifty accepts"


_JSON_TOKENS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:]')


def field_at(text: str, position: int) -> str | None:
    """The top-level field of the JSON object ``text`` that holds character ``position``: where a
    parser gave up on a body too deep to parse at all (orjson stops at 1024 levels), so the error
    can still name the field. A scan of the text up to there: strings are skipped whole."""
    depth, last, field = 0, "", None
    for match in _JSON_TOKENS.finditer(text, 0, position):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
        elif token == ":":
            if depth == 1:
                field = last
        else:
            last = token
    if field is None:
        return None
    try:
        name = json.loads(field)
    except json.JSONDecodeError:
        return None
    return name if isinstance(name, str) else None
