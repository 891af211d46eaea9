"""``thrifty gate``: block a release whose LLM cost grows past a threshold. Exit 0 within it, 1
over it (saying which features and calls grew, by how much), 2 on bad input."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from thrifty.cli.common import COUNT, CliError
from thrifty.cli.replay_cmd import load_config, progress_bar
from thrifty.replay.gate import CallCost, GateError
from thrifty.replay.traffic import TrafficError

__all__ = ["gate"]


class GateFailed(CliError):
    """Over the threshold: exit status 1 (the output above says what grew), not bad input's 2."""

    exit_code = 1


def parse_increase(value: str) -> Decimal:
    """``20%`` or ``20`` (percent either way) as the fraction 0.2."""
    text = value.strip().removesuffix("%").strip().lstrip("+")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise CliError(f"--max-increase {value!r}: expected a percentage such as 20%") from None
    if not number.is_finite() or number < 0:
        raise CliError(f"--max-increase {value!r}: must be 0% or more")
    return number / 100


def _kind(path: Path) -> str:
    """``config`` (YAML), ``report`` (a ``thrifty replay --json`` output) or ``traffic`` (JSON lines)."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    if path.suffix.lower() in (".yaml", ".yml"):
        return "config"
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 20)
    except OSError as error:
        raise CliError(f"{path}: cannot be read: {error.strerror}") from None
    first = head.lstrip()[:1]
    if first != b"{":
        return "config"
    try:
        document = json.loads(path.read_bytes())
    except ValueError:
        return "traffic"  # several JSON lines
    return "report" if isinstance(document, dict) and "calls" in document and "candidate" in document else "traffic"


class _Sides:
    def __init__(
        self,
        traffic: Path | None,
        config_path: Path | None,
        output_tokens: int | None,
        ledger_url: str | None,
        strict: bool,
        semantic: bool,
        quiet: bool,
    ) -> None:
        self.traffic = traffic
        self.config_path = config_path
        self.output_tokens = output_tokens
        self.strict = strict
        self.semantic = semantic
        self.quiet = quiet
        self.assumptions: list[str] = []
        self._averages = _feature_averages(ledger_url) if ledger_url else None

    def costs(self, path: Path, name: str) -> list[CallCost]:
        from thrifty.replay.gate import costs_of_report

        kind = _kind(path)
        if kind == "report":
            return costs_of_report(json.loads(path.read_bytes()), str(path))
        if kind == "config":
            if self.traffic is None:
                raise CliError(f"--{name} {path} is a config: give the requests to cost with --traffic FILE")
            return self._replayed(self.traffic, load_config(path), path, name)
        if self.config_path is not None:
            return self._replayed(path, load_config(self.config_path), self.config_path, name)
        return self._replayed(path, None, None, name)

    def _replayed(self, traffic_path: Path, config: Any, config_path: Path | None, name: str) -> list[CallCost]:
        from thrifty.replay.configs import plain_config
        from thrifty.replay.gate import costs_of_run
        from thrifty.replay.plan import assume_output, read_traffic_file, run_config

        try:
            traffic = read_traffic_file(traffic_path, strict=self.strict)
            for said in assume_output(traffic, output_tokens=self.output_tokens, averages=self._averages):
                self.assumptions.append(f"{name}: {said}")
            if traffic.bad:
                self.assumptions.append(
                    f"{name}: {len(traffic.bad)} line(s) of {traffic_path} skipped: "
                    + "; ".join(bad.text() for bad in traffic.bad[:5])
                )
            if config is None:
                config = plain_config(item.model for item in traffic.items)
                where, base = "each model as itself at the catalogue's prices", Path.cwd()
            else:
                assert config_path is not None
                where, base = str(config_path), config_path.resolve().parent
            with progress_bar(len(traffic.items), name, quiet=self.quiet) as tick:
                run = run_config(
                    config, base, traffic, where, semantic=self.semantic, strict=self.strict, progress=tick
                )
        except TrafficError as error:
            raise CliError(str(error)) from None
        if run.unserved:
            self.assumptions.append(f"{name}: {len(run.unserved)} call(s) skipped: {run.unserved[0].message}")
        return costs_of_run(run)


def _feature_averages(url: str) -> dict[str, int]:
    from thrifty.cli.common import store_error
    from thrifty.stores.ledger import open_ledger

    try:
        store = open_ledger(url, migrate=False)
    except Exception as error:
        raise store_error("the ledger", url, error) from None
    try:
        totals = store.totals("feature")
    finally:
        store.close()
    return {t.key: t.output_tokens // t.calls for t in totals if t.key is not None and t.calls}


@click.command("gate")
@click.option(
    "--baseline",
    "baseline_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Config, sample, capture export or replay JSON.",
)
@click.option("--candidate", "candidate_path", required=True, type=click.Path(path_type=Path), help="The same kinds.")
@click.option("--max-increase", default="20%", show_default=True, help="The largest rise that passes.")
@click.option("--per", type=click.Choice(["request", "session", "month"]), default="session", show_default=True)
@click.option("--sessions-per-day", type=COUNT, help="For --per month: sessions a day (30 days a month).")
@click.option("--traffic", type=click.Path(path_type=Path), help="The requests a config side is replayed with.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="The config sample sides run through (default: none: each model at the catalogue's prices).",
)
@click.option(
    "--output-tokens", type=COUNT, help="Output tokens of a call with no recorded usage (default: its max_tokens)."
)
@click.option("--ledger", "ledger_url", help="A ledger whose per-feature output averages are the output assumption.")
@click.option("--markdown", is_flag=True, help="Print a summary fit for a pull-request comment.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option("--strict", is_flag=True, help="A line that is not a valid request is fatal.")
@click.option("--no-semantic", is_flag=True, help="Leave the semantic cache out.")
def gate(
    baseline_path: Path,
    candidate_path: Path,
    max_increase: str,
    per: str,
    sessions_per_day: int | None,
    traffic: Path | None,
    config_path: Path | None,
    output_tokens: int | None,
    ledger_url: str | None,
    markdown: bool,
    as_json: bool,
    strict: bool,
    no_semantic: bool,
) -> None:
    """Compare what the candidate costs with the baseline, per request, session or month, and
    fail (exit 1) when it rose by more than --max-increase."""
    from thrifty.replay.gate import gate as run_gate

    limit = parse_increase(max_increase)
    if markdown and as_json:
        raise CliError("give --markdown or --json, not both")
    sides = _Sides(traffic, config_path, output_tokens, ledger_url, strict, not no_semantic, markdown or as_json)
    before = sides.costs(baseline_path, "baseline")
    after = sides.costs(candidate_path, "candidate")
    try:
        result = run_gate(
            before,
            after,
            max_increase=limit,
            per=per,  # type: ignore[arg-type]  # click's Choice
            sessions_per_day=sessions_per_day,
            assumptions=sides.assumptions,
            sources=(str(baseline_path), str(candidate_path)),
        )
    except GateError as error:
        raise CliError(str(error)) from None
    if as_json:
        click.echo(json.dumps(result.as_json(), separators=(",", ":")))
    elif markdown:
        click.echo(result.markdown(), nl=False)
    else:
        click.echo(result.text())
    if not result.passed:
        percent = result.percent()
        rise = "from nothing" if percent is None else f"by {percent.quantize(Decimal('0.1'))}%"
        raise GateFailed(f"cost gate failed: the cost {result.unit} rose {rise}, over the {max_increase} limit")
