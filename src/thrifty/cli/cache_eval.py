"""``thrifty eval cache`` and ``thrifty cache calibrate``: the semantic cache measured on labelled
question pairs, and its threshold written into a config file.

Thresholds are chosen on the pairs' calibration split and reported on the held-out split (the
splits are by a hash of each pair, see ``thrifty.semantic.calibration``), so a figure is never
measured on the pairs it was tuned on. ``--split all`` evaluates every pair instead.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from thrifty.cli.common import CliError, emit_json, json_option

if TYPE_CHECKING:
    from thrifty.semantic.calibration import Curve, PairScores, Split

__all__ = ["cache_calibrate", "eval_cache"]

_VARIANTS = (("plain", False, False), ("guard", True, False), ("verifier", False, True), ("guard+verifier", True, True))
_TABLE_THRESHOLDS = tuple(round(0.80 + 0.01 * i, 2) for i in range(21))


def _pairs_option(func: Any) -> Any:
    return click.option(
        "--pairs",
        "pairs_file",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="CSV of labelled pairs: sentence1,sentence2,label or question1,question2,is_duplicate.",
    )(func)


def _min_hits_option(func: Any) -> Any:
    return click.option(
        "--min-hits",
        type=click.IntRange(min=1),
        default=25,
        show_default=True,
        help="Precision must hold at every higher threshold with at least this many hits.",
    )(func)


def _load(pairs_file: Path) -> list[Any]:
    from thrifty.semantic.calibration import PairFileError, read_pairs

    try:
        return read_pairs(pairs_file)
    except PairFileError as error:
        raise CliError(str(error)) from None


def _score(pairs: list[Any], *, verifier: bool) -> PairScores:
    from thrifty.semantic.calibration import score_pairs
    from thrifty.semantic.embedder import EmbedderError, OnnxEmbedder
    from thrifty.semantic.verifier import Verifier

    embedder = OnnxEmbedder(threads=2)
    texts = len({t for p in pairs for t in (p.a, p.b)})
    hidden = not sys.stderr.isatty()
    try:
        with click.progressbar(length=texts, label="embedding questions", file=sys.stderr, hidden=hidden) as bar:
            return score_pairs(pairs, embedder, Verifier(embedder) if verifier else None, progress=bar.update)
    except EmbedderError as error:
        raise CliError(str(error)) from None


def _curves(scores: PairScores, min_probability: float, thresholds: Any = None) -> dict[str, Curve]:
    from thrifty.semantic.calibration import DEFAULT_THRESHOLDS, curve

    out = {}
    for name, guard, verifier in _VARIANTS:
        if verifier and scores.probability is None:
            continue
        accepted = scores.accepted(guard=guard, verifier=verifier, min_probability=min_probability)
        out[name] = curve(scores.cosine, scores.labels, accepted, thresholds or DEFAULT_THRESHOLDS)
    return out


def _parts(pairs: list[Any], split_name: Split) -> tuple[list[Any], list[Any]]:
    from thrifty.semantic.calibration import split

    if split_name == "all":
        return pairs, pairs
    tune, report = split(pairs, "calibration"), split(pairs, split_name)
    if not tune or not report:
        raise CliError(f"too few pairs to split (calibration {len(tune)}, {split_name} {len(report)}): use --split all")
    return tune, report


@click.command("cache")
@_pairs_option
@click.option("--threshold", type=click.FloatRange(-1, 1), help="Report at this cosine threshold.")
@click.option(
    "--target-precision", type=click.FloatRange(0, 1, min_open=True), help="Find the lowest threshold that reaches it."
)
@click.option(
    "--split",
    "split_name",
    type=click.Choice(["held-out", "calibration", "train", "all"]),
    default="held-out",
    show_default=True,
    help="The pairs reported on; thresholds are chosen on the calibration split ('all': on every pair).",
)
@click.option("--sample", type=click.IntRange(min=1), help="At most N pairs of each part (chosen by hash).")
@click.option("--no-verifier", is_flag=True, help="Leave the verifier out (faster; two variants instead of four).")
@_min_hits_option
@json_option
def eval_cache(
    pairs_file: Path,
    threshold: float | None,
    target_precision: float | None,
    split_name: Split,
    sample: int | None,
    no_verifier: bool,
    min_hits: int,
    as_json: bool,
) -> None:
    """Precision, recall and F1 of the semantic cache over thresholds, with the guard and the
    verifier on and off, on labelled question pairs."""
    from thrifty.semantic.calibration import label_ceiling, lowest_threshold
    from thrifty.semantic.calibration import sample as take
    from thrifty.semantic.verifier import VerifierModel

    if threshold is not None and target_precision is not None:
        raise CliError("give --threshold or --target-precision, not both")
    pairs = _load(pairs_file)
    tune, report = _parts(pairs, split_name)
    tune, report = take(tune, sample), take(report, sample)
    cut = VerifierModel.load().min_probability if not no_verifier else 1.0
    scores = _score(report, verifier=not no_verifier)
    curves = _curves(scores, cut)
    chosen: dict[str, float | None] = {}
    if target_precision is not None:
        tune_curves = curves if tune is report else _curves(_score(tune, verifier=not no_verifier), cut)
        chosen = {name: lowest_threshold(c, target_precision, min_hits=min_hits) for name, c in tune_curves.items()}
    elif threshold is not None:
        chosen = dict.fromkeys(curves, threshold)
    result = {
        "pairs": str(pairs_file),
        "split": split_name,
        "reported_pairs": len(report),
        "positives": int(scores.labels.sum()),
        "calibrated_on": "all" if tune is report else f"calibration ({len(tune)} pairs)",
        "verifier_min_probability": None if no_verifier else cut,
        "target_precision": target_precision,
        "variants": {
            name: {
                "threshold": chosen.get(name),
                "at_threshold": _at(c, chosen.get(name)),
                "curve": [p.as_dict() for p in c.points],
            }
            for name, c in curves.items()
        },
        "labels": label_ceiling(report, scores.cosine).as_dict(),
        "seconds": {k: round(v, 3) for k, v in scores.seconds.items()},
    }
    if as_json:
        emit_json(result)
        return
    _print_report(result, curves, chosen)


def _at(c: Curve, threshold: float | None) -> dict[str, float | int | None] | None:
    return None if threshold is None else c.at(threshold).as_dict()


def _print_report(result: dict[str, Any], curves: dict[str, Curve], chosen: dict[str, float | None]) -> None:
    click.echo(
        f"{result['pairs']}: {result['reported_pairs']} pairs ({result['split']}), {result['positives']} duplicates; "
        f"thresholds chosen on {result['calibrated_on']}"
    )
    names = list(curves)
    click.echo("threshold  " + "  ".join(f"{n:>22}" for n in names))
    click.echo("           " + "  ".join(f"{'precision recall   f1':>22}" for _ in names))
    for t in _TABLE_THRESHOLDS:
        cells = []
        for name in names:
            point = curves[name].at(t)
            precision = "-" if point.precision is None else f"{point.precision:.3f}"
            cells.append(f"{precision:>9} {point.recall:6.3f} {point.f1:6.3f}")
        click.echo(f"{t:9.2f}  " + "  ".join(f"{c:>22}" for c in cells))
    if chosen:
        target = result["target_precision"]
        label = f"lowest threshold with precision >= {target}" if target is not None else "at the threshold"
        click.echo(f"{label}:")
        for name in names:
            found = chosen.get(name)
            if found is None:
                click.echo(f"  {name:>15}: none reaches it")
                continue
            point = curves[name].at(found)
            precision = "-" if point.precision is None else f"{point.precision:.3f}"
            click.echo(
                f"  {name:>15}: {found:.3f}  precision {precision}  recall {point.recall:.3f}  f1 {point.f1:.3f}"
            )
    click.echo(_ceiling_line(result["labels"], result["target_precision"]))


def _ceiling_line(labels: dict[str, Any], target: float | None) -> str:
    """What the labels allow: a target above the share of duplicates among the closest pairs is out
    of reach for any threshold, however good the checks."""
    parts = []
    if labels["closest_labelled_duplicate"] is not None:
        parts.append(
            f"{labels['closest_labelled_duplicate']:.1%} of the {labels['closest_pairs']} pairs with cosine >= "
            f"{labels['closest_cosine_at_least']} are labelled duplicates"
        )
    if labels["same_question_labelled_duplicate"] is not None:
        parts.append(
            f"{labels['same_question_labelled_duplicate']:.1%} of the {labels['same_question_pairs']} pairs that "
            "are the same question (case and punctuation aside)"
        )
    if not parts:
        return "labels: no pair is close enough to say how far they let precision go"
    line = "labels: " + ", and ".join(parts)
    closest = labels["closest_labelled_duplicate"]
    if target is not None and closest is not None and closest < target:
        line += f" -- precision {target} is out of reach on these labels beyond a handful of hits"
    return line


@click.command("calibrate")
@click.option(
    "--pairs",
    "pairs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of labelled pairs: sentence1,sentence2,label or question1,question2,is_duplicate.",
)
@click.option(
    "--from-feedback",
    is_flag=True,
    help="Calibrate each namespace on the verdicts sent on its semantic hits (POST /v1/thrifty/feedback), "
    "read from the config's ledger, instead of on --pairs.",
)
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="--from-feedback: only verdicts from this UTC date or time on.",
)
@click.option("--write", is_flag=True, help="--from-feedback: raise the namespaces' thresholds in the config.")
@click.option(
    "--min-labels",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="--from-feedback: a namespace with fewer judged hits is left as it is.",
)
@click.option("--target-precision", required=True, type=click.FloatRange(0, 1, min_open=True))
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The gateway config (YAML) to write cache.semantic.threshold into; created if missing.",
)
@click.option(
    "--guard/--no-guard", default=None, help="Calibrate with the guard (default: as the config says, else on)."
)
@click.option(
    "--verifier/--no-verifier", default=None, help="Calibrate with the verifier (default: as the config says, else on)."
)
@click.option(
    "--split",
    "split_name",
    type=click.Choice(["calibration", "all"]),
    default="calibration",
    show_default=True,
    help="The pairs to calibrate on: the calibration split (20%, by hash) or every pair.",
)
@click.option("--sample", type=click.IntRange(min=1), help="At most N calibration pairs (chosen by hash).")
@_min_hits_option
@json_option
def cache_calibrate(
    pairs_file: Path | None,
    from_feedback: bool,
    since: datetime | None,
    write: bool,
    min_labels: int,
    target_precision: float,
    config_file: Path,
    guard: bool | None,
    verifier: bool | None,
    split_name: str,
    sample: int | None,
    min_hits: int,
    as_json: bool,
) -> None:
    """Find the lowest semantic-cache threshold that reaches the target precision on the pairs'
    calibration split, and write it to the config as cache.semantic.threshold; or, with
    --from-feedback, each namespace's from the verdicts on its hits."""
    if from_feedback:
        if pairs_file is not None:
            raise CliError("--pairs and --from-feedback: choose one")
        from thrifty.cli.cache_feedback import calibrate_from_feedback

        moment = since.replace(tzinfo=UTC) if since is not None else None
        calibrate_from_feedback(config_file, target_precision, moment, write, min_labels, as_json)
        return
    if pairs_file is None:
        raise CliError("--pairs FILE (labelled pairs) or --from-feedback is needed")
    from thrifty.config.files import ConfigError, load_document
    from thrifty.semantic.calibration import curve, label_ceiling, lowest_threshold, split
    from thrifty.semantic.calibration import sample as take
    from thrifty.semantic.verifier import VerifierModel

    document: Any = {}
    if config_file.exists():
        try:
            document = load_document(config_file) or {}
        except ConfigError as error:
            raise CliError(str(error)) from None
        if not isinstance(document, dict):
            raise CliError(f"{config_file}: the top level must be a mapping")
    semantic = ((document.get("cache") or {}) if isinstance(document.get("cache"), dict) else {}).get("semantic")
    semantic = semantic if isinstance(semantic, dict) else {}
    use_guard = guard if guard is not None else bool(semantic.get("guard", True))
    use_verifier = verifier if verifier is not None else bool(semantic.get("verifier", True))

    pairs = _load(pairs_file)
    tune = take(pairs if split_name == "all" else split(pairs, "calibration"), sample)
    if not tune:
        raise CliError(f"{pairs_file}: no pairs fall in the calibration split: use --split all")
    cut = VerifierModel.load().min_probability if use_verifier else 1.0
    scores = _score(tune, verifier=use_verifier)
    accepted = scores.accepted(guard=use_guard, verifier=use_verifier, min_probability=cut)
    c = curve(scores.cosine, scores.labels, accepted)
    threshold = lowest_threshold(c, target_precision, min_hits=min_hits)
    if threshold is None:
        best = max((p.precision or 0.0 for p in c.points if p.predicted >= min_hits), default=0.0)
        ceiling = _ceiling_line(label_ceiling(tune, scores.cosine).as_dict(), target_precision)
        raise CliError(
            f"{pairs_file}: no threshold reaches precision {target_precision} on {len(tune)} calibration pairs "
            f"(best with {min_hits}+ hits: {best:.3f}); {ceiling}"
        )
    _write_threshold(config_file, document, threshold)
    point = c.at(threshold)
    if as_json:
        emit_json(
            {
                "config": str(config_file),
                "threshold": threshold,
                "guard": use_guard,
                "verifier": use_verifier,
                "calibration_pairs": len(tune),
                **{k: v for k, v in point.as_dict().items() if k != "threshold"},
            }
        )
        return
    mode = "+".join(n for n, on in (("guard", use_guard), ("verifier", use_verifier)) if on) or "plain"
    click.echo(
        f"{config_file}: cache.semantic.threshold = {threshold} ({mode}; on {len(tune)} calibration pairs: "
        f"precision {point.precision:.3f}, recall {point.recall:.3f})"
    )


def _write_threshold(path: Path, document: dict[str, Any], threshold: float) -> None:
    """Set cache.semantic.threshold, keeping the rest of the file -- comments and order included
    when the file uses block style; otherwise the document is rewritten."""
    import yaml

    from thrifty.config.files import ConfigError, parse_document

    value = f"{threshold:g}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    edited = _edit_yaml(text, value)
    wanted = _with_threshold(document, threshold)
    try:
        ok = edited is not None and _plain(parse_document(edited, str(path))) == _plain(wanted)
    except ConfigError:
        ok = False
    if not ok:
        edited = yaml.safe_dump(_plain(wanted), sort_keys=False)
    try:
        path.write_text(edited or "", encoding="utf-8")
    except OSError as error:
        raise CliError(f"{path}: cannot be written: {error.strerror}") from None


def _with_threshold(document: dict[str, Any], threshold: float) -> dict[str, Any]:
    out = dict(document)
    cache = dict(out.get("cache") or {})
    semantic = dict(cache.get("semantic") or {})
    semantic["threshold"] = threshold
    cache["semantic"] = semantic
    out["cache"] = cache
    return out


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def _block(lines: list[str], start: int, indent: int) -> int:
    """The index just past the block whose header is ``lines[start]`` (children indented more)."""
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and not line.lstrip().startswith("#") and len(line) - len(line.lstrip()) <= indent:
            break
        end += 1
    return end


def _find(lines: list[str], key: str, start: int, end: int, indent: int | None) -> tuple[int, int] | None:
    pattern = re.compile(rf"^(\s*){re.escape(key)}:(\s*(#.*)?)?$")
    for i in range(start, end):
        match = pattern.match(lines[i])
        if match and ((indent is None and not match.group(1)) or (indent is not None and len(match.group(1)) > indent)):
            return i, len(match.group(1))
    return None


def _edit_yaml(text: str, value: str) -> str | None:
    lines = text.splitlines()
    cache = _find(lines, "cache", 0, len(lines), None)
    if cache is None:
        return text.rstrip("\n") + ("\n" if text.strip() else "") + f"cache:\n  semantic:\n    threshold: {value}\n"
    cache_line, _ = cache
    cache_end = _block(lines, cache_line, 0)
    semantic = _find(lines, "semantic", cache_line + 1, cache_end, 0)
    if semantic is None:
        lines.insert(cache_line + 1, f"  semantic:\n    threshold: {value}")
        return "\n".join(lines) + "\n"
    semantic_line, indent = semantic
    semantic_end = _block(lines, semantic_line, indent)
    pattern = re.compile(r"^(\s*)threshold:\s*[^#\s]+(\s*#.*)?$")
    for i in range(semantic_line + 1, semantic_end):
        match = pattern.match(lines[i])
        if match and len(match.group(1)) > indent:
            lines[i] = f"{match.group(1)}threshold: {value}{match.group(2) or ''}"
            return "\n".join(lines) + "\n"
    children = (len(line) - len(line.lstrip()) for line in lines[semantic_line + 1 : semantic_end] if line.strip())
    child = next(children, indent + 2)
    lines.insert(semantic_line + 1, " " * child + f"threshold: {value}")
    return "\n".join(lines) + "\n"
