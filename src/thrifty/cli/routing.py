"""``thrifty router train`` and ``thrifty eval router``: a learned router from labelled outcomes,
and the quality–cost figures of routers (rules, learned, random) replayed on such outcomes.

Outcomes are in the RouteLLM format (a CSV): a ``prompt`` column, a column per model with its
correctness (True/False) or score, and optionally ``<model>_response`` with its answer. Each
answer is priced at its model's price-book rates: the prompt's tokens in, the response's tokens
out (``--output-tokens`` when there is no response column).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from thrifty.cli.common import CliError, emit_json, json_option, price_book, prices_option, usd
from thrifty.config.files import ConfigError
from thrifty.core.messages import ChatRequest, Message, TextPart
from thrifty.core.pricing import PriceBook, UnknownModelError
from thrifty.core.routing.evaluate import Outcome, RouterReport, evaluate_router, split_rows
from thrifty.core.routing.features import RequestFacts
from thrifty.core.routing.outcomes import OutcomesError, OutcomeTable, parse_outcomes
from thrifty.core.routing.rules import Rule, RuleSet
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage

if TYPE_CHECKING:  # numpy: loaded by the commands that train or score, not by every thrifty command
    from thrifty.core.routing.embedding import Embedder
    from thrifty.core.routing.learned import LearnedRouter

__all__ = ["DEFAULT_EVAL_RULES", "eval_router", "router"]

DEFAULT_EVAL_RULES: tuple[dict[str, Any], ...] = (
    {"name": "code", "has_code": True, "tier": "strong"},
    {"name": "long-prompt", "min_prompt_tokens": 500, "tier": "strong"},
    {
        "name": "hard-words",
        "keywords": [
            "prove",
            "derive",
            "step by step",
            "analyze",
            "analyse",
            "debug",
            "optimize",
            "optimise",
            "refactor",
            "algorithm",
        ],
        "tier": "strong",
    },
)
"""The rules ``eval router`` scores when no ``--config`` gives any: general-purpose heuristics
(code, long prompts, words that ask for reasoning), not tuned to any data set."""


def _read_outcomes(path: str, weak: str | None, strong: str | None) -> OutcomeTable:
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CliError(f"{path}: cannot be read as CSV: {error}") from None
    try:
        return parse_outcomes(header, rows, weak=weak, strong=strong)
    except OutcomesError as error:
        raise CliError(f"{path}: {error}") from None


def _embedder(name: str) -> Embedder:
    from thrifty.core.routing.embedding import HashedNgrams

    if name == "hashed":
        return HashedNgrams(4096, char_ngrams=False)
    try:
        from thrifty.semantic.embedder import OnnxEmbedder

        embedder = OnnxEmbedder()
        embedder.load()
    except Exception as error:
        raise CliError(f"--embedder semantic: the local embedding model is not available: {error}") from None
    return embedder


def _split(n: int, split: float | None, seed: int) -> tuple[list[int], list[int]]:
    if split is None:
        everything = list(range(n))
        return everything, everything
    if not 0 < split < 1:
        raise CliError(f"--split: the share of rows to train on, between 0 and 1; got {split}")
    return split_rows(n, split, seed)


@click.group("router")
def router() -> None:
    """Learned routers: train one from labelled outcomes (then set routing.learned.path)."""


@router.command("train")
@click.option("--outcomes", "outcomes_path", required=True, help="Labelled outcomes (RouteLLM CSV).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Router file.")
@click.option("--weak", help="The weak model's column (default: the one with the lower quality).")
@click.option("--strong", help="The strong model's column.")
@click.option("--split", type=float, help="Train on this share of the rows only (the rest: eval router --split).")
@click.option("--seed", type=int, default=0, show_default=True, help="The split's seed.")
@click.option(
    "--embedder",
    type=click.Choice(["hashed", "semantic"]),
    default="hashed",
    show_default=True,
    help="hashed: built-in word n-gram features, no model; semantic: the local sentence model.",
)
@click.option(
    "--target-quality",
    type=click.FloatRange(0.5, 1.0),
    default=0.95,
    show_default=True,
    help="The threshold is set to reach this share of the strong model's quality.",
)
@json_option
def train(
    outcomes_path: str,
    out_path: Path,
    weak: str | None,
    strong: str | None,
    split: float | None,
    seed: int,
    embedder: str,
    target_quality: float,
    as_json: bool,
) -> None:
    """Train a learned router: it routes with one local embedding and no LLM call."""
    table = _read_outcomes(outcomes_path, weak, strong)
    rows, _ = _split(len(table), split, seed)
    chosen = _embedder(embedder)
    info = {
        "outcomes": Path(outcomes_path).name,
        "weak": table.weak_model,
        "strong": table.strong_model,
        "split": split,
        "seed": seed,
    }
    from thrifty.core.routing.learned import train_router

    try:
        learned = train_router(
            chosen,
            [table.prompts[i] for i in rows],
            [table.weak[i] for i in rows],
            [table.strong[i] for i in rows],
            target_quality=target_quality,
            seed=seed,
            info=info,
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    try:
        out_path.write_bytes(orjson.dumps(learned.to_document()))
    except OSError as error:
        raise CliError(f"{out_path}: cannot be written: {error.strerror}") from None
    summary = {
        "router": str(out_path),
        "rows": len(rows),
        "weak": table.weak_model,
        "strong": table.strong_model,
        "embedder": learned.embedder,
        "threshold": learned.threshold,
    }
    if as_json:
        emit_json(summary)
        return
    click.echo(
        f"trained on {len(rows)} rows ({table.weak_model} vs {table.strong_model}), embedder {learned.embedder}; "
        f"threshold {learned.threshold:.4f}; wrote {out_path}"
    )


@dataclass(frozen=True, slots=True)
class _Priced:
    rows: list[Outcome]
    weak_priced_as: str
    strong_priced_as: str


def _price_rows(
    table: OutcomeTable,
    prices: PriceBook,
    weak_as: str | None,
    strong_as: str | None,
    output_tokens: int,
    counter: TokenCounter,
) -> _Priced:
    models = (weak_as or table.weak_model, strong_as or table.strong_model)
    for model, option in zip(models, ("--weak-price-as", "--strong-price-as"), strict=True):
        try:
            prices.quote(model)
        except UnknownModelError as error:
            raise CliError(f"{error}; name its price-book model with {option}") from None
    rows = []
    for i, prompt in enumerate(table.prompts):
        request = ChatRequest(model=models[0], messages=(Message("user", (TextPart(prompt),)),))
        costs: list[Decimal] = []
        for model, responses in zip(models, (table.weak_responses, table.strong_responses), strict=True):
            tokens_in = counter.count_request(request, model).input_tokens
            tokens_out = counter.count_text(responses[i], model).input_tokens if responses else output_tokens
            usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
            costs.append(prices.price(usage, model).cost.total)
        rows.append(Outcome(prompt, table.weak[i], table.strong[i], costs[0], costs[1]))
    return _Priced(rows, models[0], models[1])


def _rules_scores(prompts: Sequence[str], config: Path | None, counter: TokenCounter) -> tuple[list[float], str]:
    from thrifty.config.routing import OptimisationSpec, load_optimisation_spec
    from thrifty.pipeline.optimisation import compile_rule

    if config is not None:
        try:
            spec = load_optimisation_spec(config)
        except ConfigError as error:
            raise CliError(str(error)) from None
        if spec.routing is None or not spec.routing.rules:
            raise CliError(f"{config}: no routing.rules to evaluate")
        source = str(config)
    else:
        spec = OptimisationSpec.model_validate(
            {"tiers": {"weak": ["weak"], "strong": ["strong"]}, "routing": {"rules": list(DEFAULT_EVAL_RULES)}}
        )
        source = "built-in rules"
    assert spec.routing is not None
    names = list(spec.tiers)
    index = {name: i for i, name in enumerate(names)}
    rules = RuleSet([compile_rule(r, i, index[r.tier]) for i, r in enumerate(spec.routing.rules)])
    default = index[spec.routing.default_tier] if spec.routing.default_tier else 0
    top = max(len(names) - 1, 1)
    scores = []
    for prompt in prompts:
        request = ChatRequest(model="gpt-4o", messages=(Message("user", (TextPart(prompt),)),))
        facts = RequestFacts(
            request,
            body_size=len(prompt.encode()) + 64,
            count_text=lambda text: counter.count_text(text, "gpt-4o").input_tokens,
            count_request=lambda r: counter.count_request(r, "gpt-4o").input_tokens,
        )
        rule: Rule | None = rules.match(facts)
        scores.append((rule.tier if rule is not None else default) / top)
    return scores, source


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _report_json(report: RouterReport) -> dict[str, Any]:
    return {
        "router": report.name,
        "rows": report.rows,
        "apgr": report.apgr,
        "cpt50": report.cpt50,
        "cpt80": report.cpt80,
        "at_95pct_quality": {
            "target_quality": report.target_quality,
            "strong_share": report.share_at_target,
            "quality": report.quality_at_target,
            "cost_usd": report.cost_at_target,
            "cost_saved": report.saving_at_target,
        },
        "curve": [
            {"strong_share": p.strong_share, "quality": p.quality, "cost_usd": p.cost, "pgr": p.pgr}
            for p in report.curve
        ],
    }


@click.command("router")
@click.option("--outcomes", "outcomes_path", required=True, help="Labelled outcomes (RouteLLM CSV).")
@click.option(
    "--router",
    "router_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A router file to score (default with --split: one trained on the training part).",
)
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="Rules to score (routing.rules).")
@click.option("--split", type=float, help="Train on this share of the rows, score on the rest (e.g. 0.7).")
@click.option("--seed", type=int, default=0, show_default=True, help="The split's seed.")
@click.option("--weak", help="The weak model's column (default: the one with the lower quality).")
@click.option("--strong", help="The strong model's column.")
@click.option("--weak-price-as", help="The weak model's name in the price book, if not its column name.")
@click.option("--strong-price-as", help="The strong model's name in the price book.")
@click.option("--output-tokens", type=click.IntRange(min=1), default=256, show_default=True, help="With no responses.")
@click.option("--embedder", type=click.Choice(["hashed", "semantic"]), default="hashed", show_default=True)
@json_option
@prices_option
def eval_router(
    outcomes_path: str,
    router_path: Path | None,
    config: Path | None,
    split: float | None,
    seed: int,
    weak: str | None,
    strong: str | None,
    weak_price_as: str | None,
    strong_price_as: str | None,
    output_tokens: int,
    embedder: str,
    as_json: bool,
    prices_file: Path | None,
) -> None:
    """Replay labelled outcomes: quality–cost curve, APGR, CPT(50%), CPT(80%) and the cost saved at
    95% of the strong model's quality, for the rules, the learned router and a random router."""
    table = _read_outcomes(outcomes_path, weak, strong)
    counter = TokenCounter()
    priced = _price_rows(table, price_book(prices_file), weak_price_as, strong_price_as, output_tokens, counter)
    train_rows, test_rows = _split(len(table), split, seed)
    test = [priced.rows[i] for i in test_rows]
    prompts = [row.prompt for row in test]
    reports: list[RouterReport] = []
    learned_source = None
    if router_path is not None or split is not None:
        from thrifty.core.routing.learned import train_router
        from thrifty.pipeline.optimisation import embedder_for, load_learned_router

        if router_path is not None:
            try:
                learned: LearnedRouter = load_learned_router(router_path)
                chosen = embedder_for(learned.embedder)
            except ConfigError as error:
                raise CliError(str(error)) from None
            learned_source = str(router_path)
        else:
            chosen = _embedder(embedder)
            learned = train_router(
                chosen,
                [table.prompts[i] for i in train_rows],
                [table.weak[i] for i in train_rows],
                [table.strong[i] for i in train_rows],
                seed=seed,
            )
            learned_source = f"trained on the {len(train_rows)} training rows"
        scores = learned.scores(chosen.embed(prompts), prompts)
        reports.append(evaluate_router("learned", [float(s) for s in scores], test))
    rule_scores, rules_source = _rules_scores(prompts, config, counter)
    rules_up = sum(1 for score in rule_scores if score > 0) / len(rule_scores)
    reports.append(evaluate_router("rules", rule_scores, test))
    reports.append(evaluate_router("random", [0.0] * len(test), test))
    oracle = [row.strong - row.weak for row in test]
    reports.append(evaluate_router("oracle", oracle, test))
    first = reports[0]
    meta = {
        "outcomes": outcomes_path,
        "rows": len(table),
        "scored_rows": len(test),
        "split": split,
        "seed": seed,
        "weak": {"model": table.weak_model, "priced_as": priced.weak_priced_as, "quality": first.weak_quality},
        "strong": {"model": table.strong_model, "priced_as": priced.strong_priced_as, "quality": first.strong_quality},
        "weak_cost_usd": first.weak_cost,
        "strong_cost_usd": first.strong_cost,
        "learned": learned_source,
        "rules": rules_source,
        "rules_strong_share": rules_up,
        "random": "expected over random orderings (the diagonal)",
    }
    if as_json:
        emit_json({**meta, "routers": [_report_json(r) for r in reports]})
        return
    held = f"{len(test)} held-out rows (trained on {len(train_rows)}, seed {seed})" if split else f"{len(test)} rows"
    _print_report(f"{outcomes_path}: {held}", table, reports, learned_source, rules_source, rules_up)


def _print_report(
    heading: str,
    table: OutcomeTable,
    reports: Sequence[RouterReport],
    learned_source: str | None,
    rules_source: str,
    rules_up: float,
) -> None:
    first = reports[0]
    click.echo(heading)
    click.echo(f"weak   {table.weak_model}: quality {_pct(first.weak_quality)}, {usd(first.weak_cost)} for these rows")
    click.echo(
        f"strong {table.strong_model}: quality {_pct(first.strong_quality)}, {usd(first.strong_cost)} for these rows"
    )
    click.echo("")
    click.echo(f"{'router':<8} {'APGR':>6} {'CPT(50%)':>9} {'CPT(80%)':>9} {'strong @95%':>12} {'saved @95%':>11}")
    for report in reports:
        apgr = "-" if report.apgr is None else f"{report.apgr:.3f}"
        click.echo(
            f"{report.name:<8} {apgr:>6} {_pct(report.cpt50):>9} {_pct(report.cpt80):>9} "
            f"{_pct(report.share_at_target):>12} {_pct(report.saving_at_target):>11}"
        )
    click.echo("")
    click.echo("quality by share of calls sent to the strong model:")
    shares = [p.strong_share for p in first.curve][::2]
    click.echo(f"{'':<8} " + " ".join(f"{s * 100:>5.0f}%" for s in shares))
    for report in reports:
        click.echo(f"{report.name:<8} " + " ".join(f"{p.quality * 100:>5.1f}%" for p in report.curve[::2]))
    click.echo("")
    click.echo(f"learned: {learned_source or 'not scored (give --router or --split)'}")
    note = " (a rule set is one point, joined to both ends of the curve)"
    if rules_up in (0.0, 1.0):
        note = f" (they send every prompt to the {'strong' if rules_up else 'weak'} model: no better than random)"
    click.echo(f"rules: {rules_source}; {_pct(rules_up)} of these prompts sent to the strong model{note}")
    click.echo("random: the expected curve of a router that picks at random; oracle: the best possible")
