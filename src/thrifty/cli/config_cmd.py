"""``thrifty config check``: validate a gateway config (or a fragment of one, or a price file) and
say where each problem is, every problem in one pass."""

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
    from thrifty.config.check import section_names
    from thrifty.config.problems import close_match_hint
    from thrifty.gateway.checks import check_gateway_file

    for name in sections:
        if name not in section_names():
            raise CliError(
                f"--section {name}: no such section of a gateway config; {close_match_hint(name, section_names())}"
            )
    checked, problems = check_gateway_file(path, sections)
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
