"""``thrifty config check``'s first stages: a file's schema, section by section, and the references
between its sections, every problem of both in one pass. What needs more than the config package
(prices, the router file, custom checks) runs after, in the command.

A file is one of three kinds:

- ``gateway``: a whole gateway config (it has ``providers:`` or ``models:``);
- ``prices``: a price-override file (only ``models:`` of priced models and ``default_price:``);
- ``fragment``: some sections of a gateway config without ``providers:`` and ``models:`` (the
  in-process client's ``routing.yaml``, a limits file). Each section is checked on its own and
  against the others present; model names go unchecked, as there is no ``models:`` to check them
  against.

``sections`` (``--section``) says which sections to check, whatever the file looks like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from thrifty.config.files import ConfigError, load_document
from thrifty.config.gateway import GatewayConfig, anchored, section_references, unset_key_variables
from thrifty.config.prices import PriceFile, price_book_from_document
from thrifty.config.problems import Problem, close_match_hint, validation_problems

__all__ = ["CheckedFile", "check_document", "check_file", "section_names", "touches"]

Kind = Literal["gateway", "fragment", "prices"]


@dataclass(frozen=True)
class CheckedFile:
    """What the first stages found: the kind of file, its sections, its problems, and what later
    stages need: the whole config (a gateway file with a valid schema and references, its relative
    paths anchored at the file's folder) and the sections that validated."""

    kind: Kind
    sections: tuple[str, ...]
    problems: list[Problem]
    config: GatewayConfig | None = None
    values: Mapping[str, Any] = field(default_factory=dict)


def section_names() -> tuple[str, ...]:
    """The top-level sections of a gateway config, in the order of the model."""
    return tuple(GatewayConfig.model_fields)


def touches(problems: Sequence[Problem], sections: Sequence[str]) -> bool:
    """Whether any of ``problems`` is in one of ``sections`` (or in the file as a whole)."""
    return any(re.split(r"[.\[ ]", problem.where, maxsplit=1)[0] in ("", *sections) for problem in problems)


def check_file(path: str | Path, sections: Sequence[str] = ()) -> CheckedFile:
    try:
        document = load_document(path)
    except ConfigError as error:  # unreadable, or not YAML: nothing more can be checked
        return CheckedFile("gateway", (), [Problem.parse(str(error).removeprefix(f"{path}: "))])
    return check_document(document, str(path), Path(path).resolve().parent, sections)


def check_document(document: Any, source: str, base_dir: Path, sections: Sequence[str] = ()) -> CheckedFile:
    """Every problem of the schema and the references of ``document`` (read from ``source``)."""
    if sections:
        return _check_sections(document, source, base_dir, tuple(dict.fromkeys(sections)))
    if not isinstance(document, dict):
        what = "empty" if document is None else f"a {type(document).__name__}"
        message = f"the file is {what}: a config is a mapping (providers:, models:, ...; or sections such as routing:)"
        return CheckedFile("gateway", (), [Problem("", message)])
    if _looks_like_price_file(document):
        return _check_price_file(document, source)
    if "providers" in document or "models" in document:
        return _check_gateway(document, base_dir)
    return _check_fragment(document, tuple(document), unknown_too=True)


def _check_gateway(document: dict[Any, Any], base_dir: Path) -> CheckedFile:
    problems = _unknown_sections(document)
    values: dict[str, Any] = {}
    for name, info in GatewayConfig.model_fields.items():
        if name in document:
            _validate_section(name, document[name], values, problems)
        elif info.is_required():
            problems.append(Problem(name, "required, but missing"))
        else:
            values[name] = info.get_default(call_default_factory=True)
    problems += [Problem.parse(text) for text in section_references(values)]
    config: GatewayConfig | None = None
    if not problems:
        try:
            config = anchored(GatewayConfig.model_validate(document), base_dir)
        except ValidationError as error:  # a check of the whole model that the sections missed
            problems += validation_problems(error, GatewayConfig)
    if "providers" in values:
        problems += [Problem.parse(text) for text in unset_key_variables(values["providers"])]
    sections = tuple(name for name in document if name in GatewayConfig.model_fields)
    return CheckedFile("gateway", sections, problems, config, values)


def _check_fragment(document: Mapping[Any, Any], names: tuple[str, ...], *, unknown_too: bool) -> CheckedFile:
    """The sections ``names`` of ``document``, each on its own, then their references to each other
    (tiers, routing and compression; models and providers when the fragment has them)."""
    problems = _unknown_sections(document) if unknown_too else []
    values: dict[str, Any] = {}
    for name in names:
        if name in GatewayConfig.model_fields:
            _validate_section(name, document[name], values, problems)
    for name, info in GatewayConfig.model_fields.items():
        if name not in document and name not in ("models", "providers") and not info.is_required():
            values[name] = info.get_default(call_default_factory=True)
    problems += [Problem.parse(text) for text in section_references(values)]
    if "providers" in values and "providers" in names:
        problems += [Problem.parse(text) for text in unset_key_variables(values["providers"])]
    checked = tuple(name for name in names if name in GatewayConfig.model_fields)
    return CheckedFile("fragment", checked, problems, None, {name: values[name] for name in checked if name in values})


def _check_sections(document: Any, source: str, base_dir: Path, names: tuple[str, ...]) -> CheckedFile:
    """``--section``: these sections of the file, the rest left alone. With one section that the
    file has no key for, and no key naming another section, the whole file is that section's body
    (a price file for ``prices``; ``exact:``, ``semantic:`` for ``cache``)."""
    mapping = document if isinstance(document, dict) else {}
    if len(names) == 1 and names[0] not in mapping and _is_body_of(names[0], mapping):
        if names[0] == "prices":
            return _check_price_file(document, source)
        return _check_fragment({names[0]: document}, names, unknown_too=False)
    missing = [Problem(name, f"the file has no {name}: section") for name in names if name not in mapping]
    checked = _check_fragment(mapping, tuple(name for name in names if name in mapping), unknown_too=False)
    return CheckedFile("fragment", names, missing + checked.problems, None, checked.values)


def _is_body_of(name: str, document: Mapping[Any, Any]) -> bool:
    own = set(PriceFile.model_fields) if name == "prices" else set(_model_keys(name))
    return not any(key in GatewayConfig.model_fields and key not in own for key in document)


def _model_keys(name: str) -> list[str]:
    annotation = GatewayConfig.model_fields[name].annotation
    candidates = getattr(annotation, "__args__", (annotation,))
    return [
        key
        for model in candidates
        if isinstance(model, type) and issubclass(model, BaseModel)
        for key in model.model_fields
    ]


def _check_price_file(document: Any, source: str) -> CheckedFile:
    """A price-override file: its schema, then what ``price_book_from_document`` refuses."""
    document = {} if document is None else document
    try:
        PriceFile.model_validate(document)
    except ValidationError as error:
        return CheckedFile("prices", _keys(document), validation_problems(error, PriceFile))
    try:
        price_book_from_document(document, source)
    except ConfigError as error:
        return CheckedFile("prices", _keys(document), [Problem.parse(str(error).removeprefix(f"{source}: "))])
    return CheckedFile("prices", _keys(document), [])


def _looks_like_price_file(document: dict[Any, Any]) -> bool:
    """Only ``models:`` and ``default_price:``, and the models name themselves with ``model:``
    (a gateway config's models have ``name:`` and ``provider:``)."""
    if not document or not set(document) <= {"models", "default_price"}:
        return False
    models = document.get("models")
    if not isinstance(models, list) or not models:
        return "default_price" in document and not models
    return all(isinstance(entry, dict) and "model" in entry and "name" not in entry for entry in models)


def _unknown_sections(document: Mapping[Any, Any]) -> list[Problem]:
    known = section_names()
    return [
        Problem(str(key), "unknown section", close_match_hint(str(key), known))
        for key in document
        if key not in GatewayConfig.model_fields
    ]


def _validate_section(name: str, value: Any, values: dict[str, Any], problems: list[Problem]) -> None:
    annotation: Any = GatewayConfig.model_fields[name].annotation
    try:
        values[name] = TypeAdapter[Any](annotation).validate_python(value)
    except ValidationError as error:
        problems += validation_problems(error, annotation, (name,))


def _keys(document: Any) -> tuple[str, ...]:
    return tuple(str(key) for key in document) if isinstance(document, dict) else ()
