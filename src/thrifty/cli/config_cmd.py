"""``thrifty config check``: validate a gateway config and say where each problem is."""

from __future__ import annotations

from pathlib import Path

import click

from thrifty.cli.common import CliError, emit_json, json_option

__all__ = ["config"]


@click.group()
def config() -> None:
    """Work with gateway config files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def check(path: Path, as_json: bool) -> None:
    """Validate FILE: its schema, references between models and providers, key variables, prices."""
    from thrifty.config.files import ConfigError
    from thrifty.config.gateway import check_config_file, load_gateway_config

    problems = check_config_file(path)
    if not problems:
        try:
            from thrifty.core.pricing import UnknownModelError
            from thrifty.gateway.runtime import build_price_book

            loaded = load_gateway_config(path)
            book = build_price_book(loaded, path.parent)
            for index, model in enumerate(loaded.models):
                try:
                    book.quote(model.priced_as)
                except UnknownModelError as error:
                    problems.append(f"{path}: models[{index}] ({model.name}): {error}; set price_as or price")
            from thrifty.pipeline.optimisation import Optimisation

            problem = Optimisation.check(loaded, book, path.parent)
            if problem is not None:
                problems.append(f"{path}: {problem}")
        except ConfigError as error:
            problems.append(str(error))
    if as_json:
        emit_json({"file": str(path), "ok": not problems, "problems": problems})
        if problems:
            raise SystemExit(2)
        return
    if problems:
        for problem in problems[:-1]:
            click.echo(f"thrifty: error: {problem}", err=True)
        raise CliError(problems[-1])
    click.echo(f"{path}: ok")
