"""The pure parts of feedback: the body's checks, which row a verdict is about, whose it is, and
the threshold the labels ask for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from thrifty.core.feedback import Label, answered_row, parse_feedback, row_tenant, suggest_threshold, wilson_interval
from thrifty.core.ledger import LedgerRecord
from thrifty.errors import InvalidRequest

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def row(cache: str | None, seconds: int = 0, **fields: object) -> LedgerRecord:
    return LedgerRecord(requested_model="gpt-4o-mini", ts=T0 + timedelta(seconds=seconds), cache_status=cache, **fields)  # type: ignore[arg-type]


def test_the_wilson_interval_matches_its_formula() -> None:
    low, high = wilson_interval(90, 100)
    assert low == pytest.approx(0.8256, abs=1e-4) and high == pytest.approx(0.9448, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(10, 10)[1] == 1.0


def test_the_answer_judged_is_the_hit_or_the_last_of_the_clients_rows() -> None:
    classifier = row("internal", 0)
    escalated = row("miss", 1)
    final = row("miss", 2)
    assert answered_row([classifier, escalated, final]) is final
    hit = row("semantic", 0)
    assert answered_row([row("internal", 1), hit]) is hit
    assert answered_row([classifier]) is None


def test_a_rows_tenant_is_its_team_else_its_key() -> None:
    assert row_tenant(row(None, team="red", key_id="k1")) == "team:red"
    assert row_tenant(row(None, key_id="k1")) == "key:k1"
    assert row_tenant(row(None)) is None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "request_id"),
        ({"request_id": "r", "verdict": 1}, "verdict"),
        ({"request_id": "r", "verdict": "wrong", "x": 1}, "x"),
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_feedback(body)
    assert caught.value.path == where


def test_the_suggested_threshold_is_where_the_judged_hits_above_it_meet_the_target() -> None:
    labels = [Label("team:red", 0.99 - i * 0.001, wrong=False) for i in range(20)]
    labels += [
        Label("team:red", 0.93, wrong=True),
        Label("team:red", 0.925, wrong=False),
        Label("team:red", 0.92, wrong=True),
    ]
    (suggestion,) = suggest_threshold(labels, target=0.95)
    assert suggestion.labels == 23 and suggestion.wrong == 2
    assert suggestion.threshold == pytest.approx(0.925)  # 21 of 22 right at 0.925; 21 of 23 below it
    (strict,) = suggest_threshold(labels, target=0.99)
    assert strict.threshold == pytest.approx(0.971)  # only above the first wrong one
    assert suggest_threshold([Label("shared", 0.95, wrong=True)], 0.95)[0].threshold is None
