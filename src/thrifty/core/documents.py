"""Reading YAML and JSON documents (config, price and data files), with errors that say where.

In core, below the config layer, so that a part kept apart from the product (the simulated
upstream's ``thrifty simulate --config``) reads its file the same way, with the same errors.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from thrifty.errors import ConfigError

__all__ = ["ConfigError", "load_document", "parse_document", "read_text_file"]


class _DecimalLoader(yaml.SafeLoader):
    """YAML numbers with a fraction become Decimal, so ``2.50`` is exactly 2.50 dollars."""


def _decimal_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | float:
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return float(loader.construct_yaml_float(node))


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _decimal_float)


def parse_document(text: str, source: str, *, json_only: bool = False) -> Any:
    """Parse YAML (a superset of JSON) or strict JSON; numbers with fractions as Decimal."""
    if json_only:
        try:
            return json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{source}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
            ) from None
    try:
        return yaml.load(text, Loader=_DecimalLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: invalid YAML{where}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: invalid YAML: {error}") from None


def read_text_file(path: str | Path, error: type[Exception] = ConfigError, encoding: str = "utf-8") -> str:
    """A text file's contents; anything that keeps it from being read is ``error`` with one line
    naming the file and what was wrong."""
    file = Path(path)
    try:
        return file.read_text(encoding=encoding)
    except FileNotFoundError:
        raise error(f"{file}: no such file") from None
    except IsADirectoryError:
        raise error(f"{file}: is a directory, not a file") from None
    except UnicodeDecodeError as problem:
        raise error(f"{file}: not UTF-8 text (byte {problem.start})") from None
    except OSError as problem:
        raise error(f"{file}: cannot be read: {problem.strerror}") from None


def load_document(path: str | Path) -> Any:
    file = Path(path)
    text = read_text_file(file)
    return parse_document(text, str(file), json_only=file.suffix.lower() == ".json")
