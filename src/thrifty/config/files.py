"""Reading YAML and JSON documents for config and price files, with errors that say where.

The reading itself is in ``thrifty.core.documents``; this adds the one-line account of a
validation error, with "did you mean" from the model validated."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from thrifty.config.problems import validation_problems
from thrifty.core.documents import ConfigError, load_document, parse_document, read_text_file

__all__ = ["ConfigError", "describe_validation_error", "load_document", "parse_document", "read_text_file"]


def describe_validation_error(error: ValidationError, source: str, model: Any = None) -> str:
    """Every problem, on one line: ``prices.yaml: models[2].input_mtok: must be >= 0; ...``.
    ``model``: the type validated, for "did you mean" on unknown keys (see ``validation_problems``)."""
    return f"{source}: " + "; ".join(problem.text() for problem in validation_problems(error, model))
