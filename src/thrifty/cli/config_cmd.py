"""``thrifty config check``: validate a gateway config (or a fragment of one, or a price file) and
say where each problem is, every problem in one pass."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from thrifty.cli.common import CliError, emit_json, json_option

if TYPE_CHECKING:
    from thrifty.config.check import CheckedFile
    from thrifty.config.problems import Problem

__all__ = ["config"]

_OPTIMISATION = ("tiers", "routing", "compression", "output_caps")


@click.group()
def config() -> None:
    """Work with gateway config files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--section",
    "sections",
    multiple=True,
    metavar="NAME",
    help="Check only this top-level section of FILE (repeatable; a file without NAME: is taken as "
    "its body). Default: the whole file; one without providers: and models: is checked as a "
    "fragment of sections, a price file as a price file.",
)
@json_option
def check(path: Path, sections: tuple[str, ...], as_json: bool) -> None:
    """Validate FILE: its schema, references between sections, key variables, prices, the router
    file and custom checks. Every problem is reported, each on a line of its own."""
    from thrifty.config.check import check_file, section_names
    from thrifty.config.problems import close_match_hint

    for name in sections:
        if name not in section_names():
            raise CliError(
                f"--section {name}: no such section of a gateway config; {close_match_hint(name, section_names())}"
            )
    checked = check_file(path, sections)
    problems = checked.problems + _later_stages(checked, path.resolve().parent)
    lines = [problem.line(str(path)) for problem in problems]
    if as_json:
        emit_json(
            {
                "file": str(path),
                "ok": not problems,
                "kind": checked.kind,
                "sections": list(checked.sections),
                "problems": lines,
                "items": [problem.as_json() for problem in problems],
            }
        )
        if problems:
            raise CliError(f"{path}: {len(problems)} problem(s), listed in the JSON")
        return
    if problems:
        for line in lines[:-1]:
            click.echo(f"thrifty: error: {line}", err=True)
        raise CliError(lines[-1])
    what = "" if checked.kind == "gateway" else f" ({checked.kind}: {', '.join(checked.sections) or 'empty'})"
    click.echo(f"{path}: ok{what}")


def _later_stages(checked: CheckedFile, base_dir: Path) -> list[Problem]:
    """Prices of the models, then the router file and the custom checks: each stage once the
    sections it reads are free of problems."""
    from thrifty.config.check import touches
    from thrifty.config.files import ConfigError
    from thrifty.config.gateway import GatewayConfig
    from thrifty.config.problems import Problem
    from thrifty.core.pricing import PriceBook, UnknownModelError
    from thrifty.gateway.runtime import build_price_book
    from thrifty.pipeline.optimisation import Optimisation

    if checked.kind == "prices":
        return []
    values = checked.values
    # The sections that validated, as one config: the stages read only the sections they need.
    config = checked.config or GatewayConfig.model_construct(**{"models": [], "providers": {}, **values})
    problems: list[Problem] = []
    book = PriceBook()
    if "prices" in values and not touches(checked.problems, ("prices", "models")):
        try:
            book = build_price_book(config, base_dir)
        except ConfigError as error:
            problems.append(Problem("prices", str(error)))
        else:
            for index, model in enumerate(config.models):
                try:
                    book.quote(model.priced_as)
                except UnknownModelError as error:
                    problems.append(Problem(f"models[{index}] ({model.name})", str(error), "set price_as or price"))
    if any(name in values for name in _OPTIMISATION) and not touches(
        checked.problems + problems, ("models", *_OPTIMISATION)
    ):
        problem = Optimisation.check(config, book, base_dir)
        if problem is not None:
            problems.append(Problem.parse(problem))
    return problems
