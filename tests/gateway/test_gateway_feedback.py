"""``POST /v1/thrifty/feedback`` with virtual keys, over loopback: a verdict that an answer was wrong
evicts every cache entry holding it at once (a semantic hit's, an exact hit's, a fresh answer's),
so the next asker gets a new answer; a verdict is kept as a label that ``thrifty cache calibrate
--from-feedback`` turns into a namespace threshold; a tenant can never judge (or evict) another
tenant's calls, and bad bodies are 400s naming the field."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import yaml

from tests.gateway.test_gateway_tenants import Keys
from tests.support.gateway import running_gateway
from tests.support.pgvector import pgvector_server, pgvector_url  # noqa: F401  (fixtures)
from tests.support.services import ensure_redis
from thrifty.stores.ledger.feedback import FeedbackStore

FIRST = "How do I enable dark mode?"
PARAPHRASE = "How can I turn on dark mode?"
THIRD = "How can I enable dark mode?"


@pytest.fixture
def keyed(simulator_url: str, tmp_path: Path) -> Iterator[Keys]:
    cache = {"semantic": {"enabled": True, "threshold": 0.9}}
    with running_gateway(simulator_url, tmp_path, cache=cache) as gateway:
        yield Keys(gateway)


def ask(client: openai.OpenAI, question: str) -> tuple[str, str, str]:
    """(cache status, request id, answer) of one question."""
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], temperature=0, max_tokens=30
    )
    answer = reply.parse().choices[0].message.content or ""
    return str(reply.headers["x-thrifty-cache"]), str(reply.headers["x-thrifty-request-id"]), answer


def judge(keys: Keys, secret: str | None, body: Any) -> httpx2.Response:
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    keys.gateway.runtime.writer.flush(timeout=2.0)
    return httpx2.post(f"{keys.gateway.url}/v1/thrifty/feedback", json=body, headers=headers, timeout=10)


def test_wrong_on_a_semantic_hit_evicts_it_and_the_next_asker_gets_a_new_answer(keyed: Keys) -> None:
    secret = keyed.create(team="red")
    client = keyed.gpt(secret)
    assert ask(client, FIRST)[0] == "miss"
    status, hit_id, served = ask(client, PARAPHRASE)
    assert status == "semantic"
    assert ask(client, THIRD)[0] == "semantic"  # the entry serves every paraphrase until judged
    response = judge(keyed, secret, {"request_id": hit_id, "verdict": "wrong", "note": "answers another question"})
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["object"] == "thrifty.feedback" and outcome["verdict"] == "wrong"
    assert outcome["cache_status"] == "semantic"
    assert "semantic" in outcome["evicted"]
    status, _, fresh = ask(client, THIRD)
    assert status == "miss"  # the judged answer is served to no one again
    store = FeedbackStore(keyed.gateway.runtime.config.storage.ledger)
    try:
        kept = store.get(hit_id)
        (label,) = store.labels()
    finally:
        store.close()
    assert kept is not None and kept.verdict == "wrong" and kept.tenant == "team:red"
    assert kept.note == "answers another question" and kept.similarity is not None and kept.similarity >= 0.9
    assert label.namespace == "team:red" and label.wrong and label.similarity == kept.similarity
    assert fresh != served  # a new answer (the simulator's answers follow the question's text)


def test_wrong_evicts_from_a_shared_pgvector_index_and_redis(
    simulator_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    index: str = request.getfixturevalue("pgvector_url")
    cache = {"semantic": {"enabled": True, "threshold": 0.9, "index": index}}
    storage = _storage(tmp_path, ensure_redis())
    with running_gateway(simulator_url, tmp_path, cache=cache, storage=storage) as gateway:
        keys = Keys(gateway)
        secret = keys.create(team=f"red-{secrets.token_hex(4)}")  # Redis outlives the test: a team of its own
        client = keys.gpt(secret)
        ask(client, FIRST)
        assert ask(client, FIRST)[0] == "hit"  # from Redis
        status, hit_id, _ = ask(client, PARAPHRASE)
        assert status == "semantic"  # from pgvector
        response = judge(keys, secret, {"request_id": hit_id, "verdict": "wrong"})
        assert response.json()["evicted"] == ["exact", "semantic"]
        assert ask(client, FIRST)[0] == "miss"  # neither Redis's copy nor pgvector's (similarity 1.0) is left


def _storage(home: Path, redis_url: str) -> dict[str, str]:
    return {"ledger": f"sqlite:///{home / 'ledger.db'}", "journal_dir": str(home / "journal"), "redis": redis_url}


def test_wrong_on_an_exact_hit_evicts_both_caches_copies(keyed: Keys) -> None:
    secret = keyed.create(team="red")
    client = keyed.gpt(secret)
    ask(client, FIRST)
    status, hit_id, _ = ask(client, FIRST)
    assert status == "hit"
    response = judge(keyed, secret, {"request_id": hit_id, "verdict": "wrong"})
    assert response.status_code == 200, response.text
    assert response.json()["evicted"] == ["exact", "semantic"]  # the first call stored it in both
    assert ask(client, FIRST)[0] == "miss"


def test_wrong_on_a_fresh_answer_evicts_what_it_was_stored_as(keyed: Keys) -> None:
    secret = keyed.create(team="red")
    client = keyed.gpt(secret)
    status, first_id, _ = ask(client, FIRST)
    assert status == "miss"
    response = judge(keyed, secret, {"request_id": first_id, "verdict": "wrong"})
    assert response.json()["evicted"] == ["exact", "semantic"]
    assert ask(client, FIRST)[0] == "miss"
    assert ask(client, PARAPHRASE)[0] == "semantic"  # the new answer is cached as usual


def test_right_keeps_the_entry_and_is_kept_as_a_label(keyed: Keys) -> None:
    secret = keyed.create(team="red")
    client = keyed.gpt(secret)
    ask(client, FIRST)
    _, hit_id, _ = ask(client, PARAPHRASE)
    response = judge(keyed, secret, {"request_id": hit_id, "verdict": "right"})
    assert response.status_code == 200 and response.json()["evicted"] == []
    assert ask(client, THIRD)[0] == "semantic"
    again = judge(keyed, secret, {"request_id": hit_id, "verdict": "wrong"})  # a change of mind replaces it
    assert again.status_code == 200 and again.json()["evicted"] == ["exact", "semantic"]  # the first call's too
    store = FeedbackStore(keyed.gateway.runtime.config.storage.ledger)
    try:
        assert [label.wrong for label in store.labels()] == [True]
    finally:
        store.close()


def test_another_tenant_can_neither_judge_nor_evict(keyed: Keys) -> None:
    red = keyed.create(team="red")
    blue = keyed.create(team="blue")
    teamless = keyed.create(user="mallory")
    red_client = keyed.gpt(red)
    ask(red_client, FIRST)
    _, hit_id, _ = ask(red_client, PARAPHRASE)
    for other in (blue, teamless):
        response = judge(keyed, other, {"request_id": hit_id, "verdict": "wrong"})
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "not_found_error"
    unknown = judge(keyed, blue, {"request_id": "req_000000000000000000000000", "verdict": "wrong"})
    assert unknown.status_code == 404
    assert (
        unknown.json()["error"]["message"].replace("req_000000000000000000000000", hit_id)
        == (judge(keyed, blue, {"request_id": hit_id, "verdict": "wrong"}).json()["error"]["message"])
    )  # the same answer for a foreign id as for none: ids cannot be probed
    assert ask(red_client, THIRD)[0] == "semantic"  # red's entry is still there
    assert judge(keyed, None, {"request_id": hit_id, "verdict": "wrong"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"verdict": "wrong"}, "request_id"),
        ({"request_id": "req_1", "verdict": "meh"}, "verdict"),
        ({"request_id": "req_1"}, "verdict"),
        ({"request_id": 7, "verdict": "wrong"}, "request_id"),
        ({"request_id": "req_1", "verdict": "wrong", "note": 3}, "note"),
        ({"request_id": "req_1", "verdict": "wrong", "score": 1}, "score"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(keyed: Keys, body: dict[str, Any], field: str) -> None:
    secret = keyed.create(team="red")
    response = judge(keyed, secret, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith(f"{field}:")


def test_not_json_and_wrong_method(keyed: Keys) -> None:
    secret = keyed.create(team="red")
    url = f"{keyed.gateway.url}/v1/thrifty/feedback"
    auth = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    assert httpx2.post(url, content=b"{nope", headers=auth).status_code == 400
    assert httpx2.get(url, headers=auth).status_code == 405


def test_calibrate_from_feedback_raises_the_namespace_threshold(keyed: Keys, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from thrifty.stores.ledger.feedback import FeedbackRow

    gateway = keyed.gateway
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(gateway.runtime.config.model_dump(mode="json", exclude_defaults=True)))
    store = FeedbackStore(gateway.runtime.config.storage.ledger)
    try:  # judged hits of team:red: right above 0.95, often wrong below it
        for i in range(40):
            similarity = 0.90 + i * 0.0025
            wrong = similarity < 0.95 and i % 2 == 0
            store.put(
                FeedbackRow(
                    f"req_{i}", datetime.now(UTC), "wrong" if wrong else "right", "team:red", f"rec_{i}",
                    "semantic", "team:red", similarity, None, "gpt-4o-mini", (), None,
                )
            )  # fmt: skip
    finally:
        store.close()
    cli = [sys.executable, "-m", "thrifty.cli.main", "cache", "calibrate", "--from-feedback", "--config"]
    out = subprocess.run(
        [*cli, str(config_file), "--target-precision", "0.95", "--json"], check=False, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    (row,) = yaml.safe_load(out.stdout)["namespaces"]
    assert row["labels"] == 40 and row["wrong"] == 10
    assert 0.94 <= row["suggested_threshold"] <= 0.96 and row["action"].startswith("raise to")
    written = subprocess.run(
        [*cli, str(config_file), "--target-precision", "0.95", "--write"], check=False, capture_output=True, text=True
    )
    assert written.returncode == 0, written.stderr
    config = yaml.safe_load(config_file.read_text())
    assert config["cache"]["semantic"]["namespaces"]["team:red"]["threshold"] == row["suggested_threshold"]
    both = subprocess.run(
        [*cli, str(config_file), "--target-precision", "0.95", "--pairs", "x.csv"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert both.returncode == 2 and "choose one" in both.stderr
