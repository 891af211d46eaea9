"""Pair files, splits, precision/recall curves, and the calibration commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from thrifty.cli.cache_eval import cache_calibrate, eval_cache
from thrifty.semantic.calibration import (
    Pair,
    PairFileError,
    curve,
    label_ceiling,
    lowest_threshold,
    parse_pairs,
    read_pairs,
    sample,
    split,
    split_of,
)


def test_both_layouts_are_read() -> None:
    a = parse_pairs("sentence1,sentence2,label\nhi there,hello there,1\nfoo,bar,0\n")
    b = parse_pairs('id,question1,question2,is_duplicate\n7,"hi, there",hello there,1\n8,foo,bar,0\n')
    assert [(p.a, p.b, p.label) for p in a] == [("hi there", "hello there", 1), ("foo", "bar", 0)]
    assert [(p.a, p.b, p.label, p.line) for p in b] == [("hi, there", "hello there", 1, 2), ("foo", "bar", 0, 3)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("a,b,c\nx,y,1\n", "line 1: the header must name"),
        ("sentence1,sentence2,label\n", "no pairs"),
        ("sentence1,sentence2,label\nx,y,1\nx,y,maybe\n", "line 3: label 'maybe' is not 0 or 1"),
        ("sentence1,sentence2,label\nx,y,1\n\nx,,0\n", "line 4: an empty question"),
        ("sentence1,sentence2,label\nx,y\n", "line 2: expected at least 3 columns, got 2"),
        ('sentence1,sentence2,label\nx,y,1\n"a\nb",c,1\nd,e,2\n', "line 5: label '2'"),
    ],
)
def test_bad_files_say_which_line(text: str, message: str) -> None:
    with pytest.raises(PairFileError, match=message):
        parse_pairs(text, "pairs.csv")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PairFileError, match="no such file"):
        read_pairs(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"sentence1,sentence2,label\n\xff,x,1\n")
    with pytest.raises(PairFileError, match="not UTF-8"):
        read_pairs(tmp_path / "bin.csv")


def test_splits_are_deterministic_disjoint_and_order_free() -> None:
    pairs = [Pair(f"question {i}", f"other {i}", i % 2) for i in range(2000)]
    parts = {name: split(pairs, name) for name in ("train", "calibration", "held-out")}
    assert sum(len(p) for p in parts.values()) == len(pairs)
    assert 0.55 < len(parts["train"]) / len(pairs) < 0.65
    ids = [{(p.a, p.b) for p in part} for part in parts.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert split(list(reversed(pairs)), "held-out") == list(reversed(parts["held-out"]))
    assert split_of(Pair("a", "b", 1)) == split_of(Pair("b", "a", 0)), "a pair's order does not move it"
    assert sample(pairs, 10) == sample(pairs, 10)
    assert len(sample(pairs, 10)) == 10


def test_curve_and_lowest_threshold() -> None:
    scores = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.90, 0.85, 0.80] * 5)
    labels = np.array([1, 1, 1, 1, 1, 0, 1, 0] * 5)
    c = curve(scores, labels, thresholds=[0.8, 0.85, 0.9, 0.95, 1.0])
    assert c.positives == 30
    point = c.at(0.95)
    assert (point.predicted, point.true_positives, point.precision) == (25, 25, 1.0)
    assert point.recall == pytest.approx(25 / 30)
    assert c.at(1.0).precision is None
    assert lowest_threshold(c, 0.95) == 0.95
    assert lowest_threshold(c, 0.80) == 0.85
    vetoed = curve(scores, labels, accepted=scores != 0.90, thresholds=[0.8, 0.85, 0.9])
    assert lowest_threshold(vetoed, 0.95, min_hits=1) == 0.85
    assert lowest_threshold(c, 0.999, min_hits=1000) is None


CALIBRATE_ALL = ["--split", "all", "--min-hits", "3"]

PAIRS_CSV = """question1,question2,is_duplicate
How do I learn Python?,What is the best way to learn Python?,1
How can I lose weight fast?,What is the quickest way to lose weight?,1
What is the capital of France?,What's the capital city of France?,1
How do I enable dark mode?,How do I disable dark mode?,0
Is Python good for web development?,Is Java good for web development?,0
Can I run 5 km a day?,Can I run 10 km a day?,0
How do I make pasta?,What is the tallest mountain?,0
Why is the sky blue?,What makes the sky look blue?,1
"""


def test_eval_cache_reports_every_variant(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS_CSV)
    result = CliRunner().invoke(eval_cache, ["--pairs", str(pairs), "--split", "all", "--threshold", "0.8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["variants"]) == {"plain", "guard", "verifier", "guard+verifier"}
    plain, guarded = report["variants"]["plain"]["at_threshold"], report["variants"]["guard"]["at_threshold"]
    assert guarded["hits"] < plain["hits"], "the guard refuses the near misses"
    assert report["variants"]["guard"]["at_threshold"]["precision"] == 1.0
    text = CliRunner().invoke(
        eval_cache, ["--pairs", str(pairs), "--split", "all", "--target-precision", "0.9", "--min-hits", "2"]
    )
    assert text.exit_code == 0, text.output
    assert "lowest threshold with precision >= 0.9" in text.output
    assert "labels: " in text.output
    assert report["labels"]["closest_cosine_at_least"] == 0.99


def test_the_label_ceiling_counts_same_questions_and_the_closest_pairs() -> None:
    pairs = [
        Pair("What is the purpose of life ?", "what is the purpose of life", 0, 2),  # a label error
        Pair("How do I cook rice?", "How do I cook rice", 1, 3),
        Pair("How do I cook rice?", "How do I boil an egg?", 0, 4),
        Pair("Why is the sky blue?", "What makes the sky blue?", 1, 5),
    ]
    ceiling = label_ceiling(pairs, np.array([1.0, 1.0, 0.7, 0.991]))
    assert (ceiling.same_question, ceiling.same_question_duplicates) == (2, 0.5)
    assert (ceiling.closest, ceiling.closest_duplicates) == (3, 2 / 3)
    none_close = label_ceiling(pairs[2:3], np.array([0.5]))
    assert (none_close.same_question_duplicates, none_close.closest_duplicates) == (None, None)


def test_eval_cache_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence1,sentence2,label\na,b,x\n")
    result = CliRunner().invoke(eval_cache, ["--pairs", str(bad), "--threshold", "0.9"])
    assert result.exit_code == 2
    assert "line 2: label 'x' is not 0 or 1" in result.output
    both = CliRunner().invoke(eval_cache, ["--pairs", str(bad), "--threshold", "0.9", "--target-precision", "0.9"])
    assert both.exit_code == 2


def test_calibrate_writes_the_threshold_and_keeps_the_rest(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS_CSV + PAIRS_CSV.split("\n", 1)[1] * 2)
    config = tmp_path / "thrifty.yaml"
    config.write_text(
        "# my gateway\nmodels:\n  - name: gpt-4o  # the main one\ncache:\n  exact:\n    ttl_s: 60\n"
        "  semantic:\n    enabled: true\n    threshold: 0.5  # old\n    verifier: false\nbudgets: {}\n"
    )
    result = CliRunner().invoke(
        cache_calibrate,
        ["--pairs", str(pairs), "--target-precision", "0.9", "--config", str(config), "--json", *CALIBRATE_ALL],
    )
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    assert written["verifier"] is False, "the config's own setting is used"
    text = config.read_text()
    assert "# my gateway" in text and "# the main one" in text and "# old" in text
    document = yaml.safe_load(text)
    assert document["cache"]["semantic"] == {"enabled": True, "threshold": written["threshold"], "verifier": False}
    assert document["cache"]["exact"] == {"ttl_s": 60}
    assert document["models"] == [{"name": "gpt-4o"}]
    assert document["budgets"] == {}


def test_calibrate_creates_the_section(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS_CSV + PAIRS_CSV.split("\n", 1)[1] * 2)
    config = tmp_path / "new.yaml"
    config.write_text("models: []\n")
    result = CliRunner().invoke(
        cache_calibrate,
        ["--pairs", str(pairs), "--target-precision", "0.9", "--config", str(config), "--no-verifier", *CALIBRATE_ALL],
    )
    assert result.exit_code == 0, result.output
    assert "cache.semantic.threshold = " in result.output
    document = yaml.safe_load(config.read_text())
    assert set(document) == {"models", "cache"}
    assert 0 < document["cache"]["semantic"]["threshold"] <= 1


def test_calibrate_unreachable_target(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    rows = "How do I enable it?,How do I disable it?,0\n" * 10 + "How do I enable it?,how do I enable it,0\n" * 10
    pairs.write_text("sentence1,sentence2,label\n" + rows)
    config = tmp_path / "c.yaml"
    result = CliRunner().invoke(
        cache_calibrate,
        ["--pairs", str(pairs), "--target-precision", "0.9", "--config", str(config), "--no-guard", *CALIBRATE_ALL],
    )
    assert result.exit_code == 2
    assert "no threshold reaches precision 0.9" in result.output
    assert "labels: 0.0% of the 10 pairs with cosine >= 0.99 are labelled duplicates" in result.output
    assert "precision 0.9 is out of reach on these labels" in result.output
    assert not config.exists()
