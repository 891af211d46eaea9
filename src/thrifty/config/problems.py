"""Problems of a config file, one each, with the place they are at: pydantic's errors turned into
``server.prot: unknown key; did you mean 'port'?``, with union branches' tags taken out of the
place and "did you mean" found among the keys the model at that place takes."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["Problem", "close_match_hint", "format_location", "validation_problems"]

_PLACE = re.compile(r"^[A-Za-z_][^\s:]*(?: \([^)]*\))?$")
"""What a message of our own validators starts with when it names its place: ``routing.rules[0].tier``
or ``models[2] (gpt-4o)``."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: where (``server.port``; empty for the file as a whole), what, and a hint."""

    where: str
    message: str
    hint: str | None = None

    @classmethod
    def parse(cls, text: str, where: str = "") -> Problem:
        """A message at ``where``; without ``where``, one that may start with its own place
        (``tiers.small: list at least one model``)."""
        head, sep, rest = text.partition(": ")
        if not where and sep and _PLACE.match(head):
            return cls(head, rest)
        return cls(where, text)

    def text(self) -> str:
        where = f"{self.where}: " if self.where else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}{self.message}{hint}"

    def line(self, source: str) -> str:
        return f"{source}: {self.text()}"

    def as_json(self) -> dict[str, str | None]:
        return {"where": self.where, "message": self.message, "hint": self.hint}


def close_match_hint(name: str, known: Sequence[str]) -> str | None:
    """``did you mean 'port'?`` when ``name`` is close to one of ``known``; else the known names."""
    matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if matches:
        return "did you mean " + " or ".join(repr(match) for match in matches) + "?"
    return f"known: {', '.join(known)}" if known else None


def format_location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_problems(error: ValidationError, model: Any = None, prefix: Sequence[int | str] = ()) -> list[Problem]:
    """Each of pydantic's errors as a problem. ``model``: the type validated (a model class, or
    any annotation), so that union tags leave the place and unknown keys get "did you mean";
    ``prefix``: where that value sits in the file (``("routing",)``)."""
    problems: list[Problem] = []
    alternatives: dict[str, int] = {}  # one problem for every branch of a union that refused a value
    for detail in error.errors(include_url=False):
        loc, container, tagged = _locate(model, detail["loc"])
        where = format_location([*prefix, *loc])
        message, kind = str(detail["msg"]), detail["type"]
        hint: str | None = None
        if kind == "extra_forbidden":
            message = "unknown key"
            hint = close_match_hint(str(loc[-1]), _keys_of(container)) if loc else None
        elif kind == "missing":
            message = "required, but missing"
        elif message.startswith("Value error, "):  # our own validators: the message says it all
            problems.extend(_own_messages(message.removeprefix("Value error, "), where))
            continue
        if tagged and where in alternatives:
            first = problems[alternatives[where]]
            problems[alternatives[where]] = Problem(where, f"{first.message}, or {message}", first.hint)
            continue
        if tagged:
            alternatives[where] = len(problems)
        problems.append(Problem(where or "(top level)", message, hint))
    return problems


def _own_messages(text: str, where: str) -> list[Problem]:
    """A validator's message: one problem, or several joined by ``; `` when each names its place."""
    parts = text.split("; ")
    if not where and len(parts) > 1 and all(": " in part and _PLACE.match(part.split(": ")[0]) for part in parts):
        return [Problem.parse(part) for part in parts]
    return [Problem.parse(text, where)]


def _keys_of(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [info.alias or name for name, info in annotation.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """Without ``Annotated`` and ``| None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _members(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return None


def _is_tag(part: str, member: Any) -> bool:
    """Whether pydantic's tag ``part`` (``PricesSpec``, ``str``, ``list[literal['a','b']]``) names ``member``."""
    if isinstance(member, type):
        return part == member.__name__
    origin = typing.get_origin(_unwrap(member))
    name = getattr(origin, "__name__", "") if origin is not typing.Literal else "literal"
    return bool(name) and part.lower().startswith(f"{name.lower()}[")


def _locate(model: Any, loc: Sequence[int | str]) -> tuple[list[int | str], Any, bool]:
    """``loc`` without union tags; the type of the value holding its last part (None when lost);
    whether a union tag was taken out."""
    path: list[int | str] = []
    current, container, tagged = model, None, False
    for part in loc:
        current = _unwrap(current)
        members = _members(current)
        if members is not None and isinstance(part, str):
            chosen = next((m for m in members if _is_tag(part, m)), None)
            if chosen is not None:
                current, tagged = chosen, True
                continue
        container = current
        path.append(part)
        current = _child(current, part)
    return path, container, tagged


def _child(annotation: Any, part: int | str) -> Any:
    if annotation is None:
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None
