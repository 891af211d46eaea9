"""Small checks for untrusted JSON, each raising a ``RequestError`` that names where it failed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
