"""``thrifty replay``: captured (or sample) traffic through a candidate config's pipeline, offline,
side by side with a baseline config; what-ifs without writing a config."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from thrifty.cli.common import COUNT, CliError, parse_when
from thrifty.replay.configs import ReplayConfigError
from thrifty.replay.traffic import Traffic, TrafficError

__all__ = ["load_config", "progress_bar", "read_traffic_source", "replay"]


def load_config(path: Path) -> Any:
    """A config the replay can run, or every problem ``thrifty config check`` finds in it (all
    but the last on standard error, the last as the command's error)."""
    from thrifty.replay.configs import load_replay_config

    try:
        return load_replay_config(path)
    except ReplayConfigError as error:
        for line in error.problems[:-1]:
            click.echo(f"thrifty: error: {line}", err=True)
        raise CliError(error.problems[-1] if error.problems else str(error)) from None


def read_traffic_source(
    traffic: Path | None,
    ledger_url: str | None,
    since: str | None,
    *,
    strict: bool,
    model_map: dict[str, str] | None = None,
) -> Traffic:
    from thrifty.replay.plan import read_traffic_file
    from thrifty.replay.traffic import read_traffic

    try:
        if traffic is not None:
            return read_traffic_file(traffic, strict=strict, model_map=model_map)
        if ledger_url is None:
            raise CliError("give --traffic FILE or --ledger URL")
        from thrifty.stores.ledger.captures import export_lines

        lines = export_lines(ledger_url, since=parse_when(since, "--since"))
        return read_traffic(lines, f"the captures in {ledger_url}", strict=strict, model_map=model_map)
    except TrafficError as error:
        raise CliError(str(error)) from None


@contextlib.contextmanager
def progress_bar(total: int, label: str, *, quiet: bool = False) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on standard error when it is a terminal (never in the command's output)."""
    if quiet or not sys.stderr.isatty() or total == 0:
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def parse_scale(value: str) -> Decimal:
    text = value.strip().lower().removesuffix("x")
    try:
        scale = Decimal(text)
    except InvalidOperation:
        raise CliError(f"--scale {value!r}: expected a factor such as 3x or 0.5x") from None
    if not scale.is_finite() or scale <= 0:
        raise CliError(f"--scale {value!r}: must be more than 0")
    return scale


@click.command("replay")
@click.option("--traffic", type=click.Path(path_type=Path), help="A capture export or a sample file (JSON lines).")
@click.option("--ledger", "ledger_url", help="Replay the captures kept in this ledger (sqlite:///… or postgresql://…).")
@click.option("--since", help="With --ledger: captures from this date or time (UTC).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="The candidate config.")
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path), help="The current config, side by side.")
@click.option("--outcomes", type=click.Path(path_type=Path), help="Labels CSV (prompt, then a column per model).")
@click.option("--model-map", "model_maps", multiple=True, metavar="FROM=TO", help="What if FROM were TO (repeatable).")
@click.option("--price-override", type=click.Path(path_type=Path), help="A price file on top of the config's prices.")
@click.option("--scale", "scale_text", default="1x", show_default=True, help="What if the traffic were N times.")
@click.option(
    "--output-tokens", type=COUNT, help="Output tokens of a call with no recorded usage (default: its max_tokens)."
)
@click.option("--strict", is_flag=True, help="A line that is not a valid request is fatal.")
@click.option("--no-semantic", is_flag=True, help="Leave the semantic cache out (faster).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
def replay(
    traffic: Path | None,
    ledger_url: str | None,
    since: str | None,
    config_path: Path | None,
    baseline_path: Path | None,
    outcomes: Path | None,
    model_maps: tuple[str, ...],
    price_override: Path | None,
    scale_text: str,
    output_tokens: int | None,
    strict: bool,
    no_semantic: bool,
    as_json: bool,
    html_path: Path | None,
) -> None:
    """Replay captured traffic through a candidate config, offline: the candidate's own pipeline
    (caches, routers, compression, caps) with the provider replaced by the recorded answers.
    Without --config, the what-ifs (--model-map, --price-override, --scale) apply to --baseline."""
    from thrifty.replay.plan import run_config
    from thrifty.replay.report import report

    if traffic is not None and ledger_url is not None:
        raise CliError("give --traffic or --ledger, not both")
    sides = _Sides.load(config_path, baseline_path, model_maps, price_override, parse_scale(scale_text))
    labels = _labels(outcomes)
    cand_traffic = read_traffic_source(traffic, ledger_url, since, strict=strict, model_map=sides.mapping)
    assumed = _assume(cand_traffic, output_tokens)
    name = str(sides.candidate_path) + (" + what-ifs" if sides.what_ifs else "")
    with progress_bar(len(cand_traffic.items), "candidate", quiet=as_json) as tick:
        cand_run = _run(
            run_config,
            sides.candidate,
            sides.candidate_path,
            cand_traffic,
            name,
            sides.prices,
            no_semantic,
            strict,
            tick,
        )
    base_run = None
    if sides.baseline is not None and sides.baseline_path is not None:
        base_traffic = read_traffic_source(traffic, ledger_url, since, strict=strict)
        _assume(base_traffic, output_tokens)
        with progress_bar(len(base_traffic.items), "baseline", quiet=as_json) as tick:
            base_run = _run(
                run_config,
                sides.baseline,
                sides.baseline_path,
                base_traffic,
                str(sides.baseline_path),
                None,
                no_semantic,
                strict,
                tick,
            )
    out = report(cand_run, base_run, scale=sides.scale, labels=labels, what_ifs=sides.described(price_override))
    out["notes"][:0] = assumed
    _emit(out, as_json, html_path)


class _Sides:
    """The candidate config (with the what-ifs) and the baseline's, loaded and checked."""

    def __init__(self, candidate: Any, candidate_path: Path, baseline: Any, baseline_path: Path | None) -> None:
        self.candidate, self.candidate_path = candidate, candidate_path
        self.baseline, self.baseline_path = baseline, baseline_path
        self.mapping: dict[str, str] = {}
        self.scale = Decimal(1)
        self.what_ifs = False
        self.prices: Any = None

    @classmethod
    def load(
        cls,
        config_path: Path | None,
        baseline_path: Path | None,
        model_maps: tuple[str, ...],
        price_override: Path | None,
        scale: Decimal,
    ) -> _Sides:
        from thrifty.replay.configs import parse_model_map, price_book_of, with_what_ifs

        if config_path is None and baseline_path is None:
            raise CliError("give --config (the candidate) or --baseline with what-ifs")
        try:
            mapping = parse_model_map(model_maps)
        except ValueError as error:
            raise CliError(str(error)) from None
        what_ifs = bool(mapping or price_override is not None or scale != 1)
        if config_path is None and not what_ifs:
            raise CliError("without --config, give a what-if (--model-map, --price-override, --scale)")
        candidate_path = config_path or baseline_path
        assert candidate_path is not None
        candidate = load_config(candidate_path)
        baseline = load_config(baseline_path) if baseline_path is not None else None
        if baseline is None and config_path is not None and what_ifs:
            baseline, baseline_path = candidate, config_path  # the what-ifs against the config as it is
        base_dir = candidate_path.resolve().parent
        try:
            candidate = with_what_ifs(candidate, base_dir, model_map=mapping, price_override=price_override)
            prices = price_book_of(candidate, base_dir)
        except ReplayConfigError as error:
            raise CliError(error.problems[-1]) from None
        sides = cls(candidate, candidate_path, baseline, baseline_path)
        sides.mapping, sides.scale, sides.what_ifs, sides.prices = mapping, scale, what_ifs, prices
        return sides

    def described(self, price_override: Path | None) -> dict[str, Any]:
        details: dict[str, Any] = {"model_map": self.mapping, "scale": str(self.scale) if self.scale != 1 else None}
        details["price_override"] = str(price_override) if price_override is not None else None
        return {k: v for k, v in details.items() if v}


def _labels(outcomes: Path | None) -> Any:
    if outcomes is None:
        return None
    from thrifty.cli.common import read_input
    from thrifty.replay.report import LabelsError, parse_labels

    try:
        return parse_labels(read_input(str(outcomes)), str(outcomes))
    except LabelsError as error:
        raise CliError(str(error)) from None


def _emit(out: dict[str, Any], as_json: bool, html_path: Path | None) -> None:
    from thrifty.replay.report import render_html, render_text

    if html_path is not None:
        try:
            html_path.write_text(render_html(out), encoding="utf-8")
        except OSError as error:
            raise CliError(f"--html {html_path}: cannot be written: {error.strerror}") from None
    if as_json:
        click.echo(json.dumps(out, separators=(",", ":")))
    else:
        click.echo(render_text(out))
        if html_path is not None:
            click.echo(f"report written to {html_path}")


def _assume(traffic: Traffic, output_tokens: int | None) -> list[str]:
    from thrifty.replay.plan import assume_output

    try:
        return assume_output(traffic, output_tokens=output_tokens)
    except TrafficError as error:
        raise CliError(str(error)) from None


def _run(
    run_config: Any,
    config: Any,
    path: Path,
    traffic: Traffic,
    name: str,
    prices: Any,
    no_semantic: bool,
    strict: bool,
    tick: Callable[[int], None] | None,
) -> Any:
    try:
        return run_config(
            config,
            path.resolve().parent,
            traffic,
            name,
            prices=prices,
            semantic=not no_semantic,
            strict=strict,
            progress=tick,
        )
    except TrafficError as error:
        raise CliError(str(error)) from None
