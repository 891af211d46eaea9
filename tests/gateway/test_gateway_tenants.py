"""Tenant boundaries with virtual keys, attacked with spoofed attribution headers on both faces:
the key decides the tenant of every cache (exact and semantic), budget and ledger row; a header
may only name an end user *inside* the key's tenant, and never the user another key is bound to."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.gateway.test_gateway_budgets import calls, settled
from tests.support.gateway import RunningGateway, running_gateway
from thrifty.stores.keys import open_keys

QUESTION = [{"role": "user", "content": "How do I enable dark mode in the settings?"}]
PARAPHRASE = [{"role": "user", "content": "How can I turn on dark mode in the settings?"}]


class Keys:
    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway

    def create(self, user: str | None = None, team: str | None = None) -> str:
        store = open_keys(self.gateway.runtime.config.storage.ledger)
        try:
            _, secret = store.create(user=user, team=team, feature=None)
        finally:
            store.close()
        self.gateway.runtime.keys.load()
        return secret

    def gpt(self, secret: str, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.gateway.url}/v1", api_key=secret, max_retries=0, default_headers=headers)

    def claude(self, secret: str, **headers: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gateway.url, api_key=secret, max_retries=0, default_headers=headers)


def ask(client: openai.OpenAI, messages: list[dict[str, str]] = QUESTION) -> str:
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=messages,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=20,
    )
    return str(reply.headers["x-thrifty-cache"])


def ask_claude(client: anthropic.Anthropic, messages: list[dict[str, str]] = QUESTION) -> str:
    reply = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=20,
        extra_body={"temperature": 0},
    )
    return str(reply.headers["x-thrifty-cache"])


@pytest.fixture
def keyed(simulator_url: str, tmp_path: Path) -> Iterator[Keys]:
    semantic = {"semantic": {"enabled": True, "threshold": 0.9}}
    with running_gateway(simulator_url, tmp_path, cache=semantic) as gateway:
        yield Keys(gateway)


def test_a_team_header_never_moves_a_teamless_key_into_a_teams_cache(keyed: Keys) -> None:
    alice = keyed.gpt(keyed.create(user="alice", team="red"))
    assert ask(alice) == "miss"
    assert ask(alice) == "hit"  # the cache works within the tenant
    assert ask(alice, PARAPHRASE) == "semantic"
    carol = keyed.gpt(keyed.create(user="carol"), **{"x-thrifty-team": "red"})
    assert ask(carol, PARAPHRASE) == "miss"  # red's entries, exact and semantic, are not carol's
    assert ask(carol) == "semantic"  # carol's own paraphrase of a moment ago (checked below)
    dave = keyed.gpt(keyed.create(user="dave"), **{"x-thrifty-team": "red"})
    assert ask(dave) == "miss"  # two team-less keys claiming one team share nothing
    rows = keyed.gateway.records(6)
    owner = {r.request_id: r.user for r in rows}
    assert {r.team for r in rows if r.user in ("carol", "dave")} == {None}
    for row in rows:  # every answer from a cache came from the same user's own call
        source = row.details.get("cached_from")
        if source is not None:
            assert owner[source] == row.user, row


def test_an_end_user_header_stays_inside_its_keys_tenant_on_both_apis(keyed: Keys) -> None:
    red = keyed.create(team="red")
    green = keyed.create(team="green")
    # The same end user name under two teams: two people, two caches, two ledger users.
    assert ask(keyed.gpt(red, **{"x-thrifty-user": "alice"})) == "miss"
    assert ask(keyed.gpt(green, **{"x-thrifty-user": "alice"})) == "miss"
    assert ask_claude(keyed.claude(red, **{"x-thrifty-user": "alice", "x-thrifty-team": "green"})) == "miss"
    assert ask_claude(keyed.claude(green, **{"x-thrifty-user": "alice"})) == "miss"
    rows = keyed.gateway.records(4)
    assert sorted((r.user, r.team) for r in rows) == [
        ("team:green/alice", "green"),
        ("team:green/alice", "green"),
        ("team:red/alice", "red"),
        ("team:red/alice", "red"),
    ]


def test_a_user_scoped_cache_never_crosses_teams_for_users_of_one_name(simulator_url: str, tmp_path: Path) -> None:
    with running_gateway(simulator_url, tmp_path, cache={"exact": {"scope": "user"}}) as gateway:
        keys = Keys(gateway)
        red_alice = keys.gpt(keys.create(user="alice", team="red"))
        green_alice = keys.gpt(keys.create(user="alice", team="green"))
        teamless_alice = keys.gpt(keys.create(user="alice"))
        assert ask(red_alice) == "miss"
        assert ask(red_alice) == "hit"
        assert ask(green_alice) == "miss"
        assert ask(teamless_alice) == "miss"
        other_teamless_alice = keys.gpt(keys.create(user="alice"))
        assert ask(other_teamless_alice) == "miss"  # a key without a team is a tenant of its own


def _budgeted(simulator_url: str, home: Path, limits: list[dict[str, Any]]) -> Any:
    return running_gateway(
        simulator_url, home, budgets={"limits": limits, "refresh_s": 0.2}, cache={"exact": {"enabled": False}}
    )


def test_no_header_spends_another_tenants_budget(simulator_url: str, tmp_path: Path) -> None:
    # alice of team red may spend about one call; red as a team a little more.
    limits = [
        {"scope": "user", "value": "alice", "usd": "0.00002", "window": "day"},
        {"scope": "team", "value": "red", "usd": "0.00004", "window": "day"},
    ]
    with _budgeted(simulator_url, tmp_path, limits) as gateway:
        keys = Keys(gateway)
        alice = keys.gpt(keys.create(user="alice", team="red"))
        spoofers = [
            keys.gpt(keys.create(team="green"), **{"x-thrifty-user": "alice"}),
            keys.gpt(keys.create(team="green"), **{"x-thrifty-user": "alice", "x-thrifty-team": "red"}),
            keys.gpt(keys.create(), **{"x-thrifty-team": "red", "x-thrifty-user": "alice"}),
        ]
        claude_spoofer = keys.claude(keys.create(team="green"), **{"x-thrifty-user": "alice", "x-thrifty-team": "red"})
        for client in spoofers:
            for _ in range(3):
                ask(client)
        for _ in range(3):
            ask_claude(claude_spoofer)
        # Nothing of that reached alice's or red's budget: alice's own key is still served.
        assert ask(alice) == "miss"
        rows = {r["id"]: r for r in settled(gateway)}
        records = calls(gateway, 13)
        (alice_row,) = [r for r in records if r.user == "alice"]
        assert alice_row.cost is not None
        assert Decimal(rows["user:alice:day:usd"]["spent"]) == alice_row.cost.total
        assert Decimal(rows["team:red:day:usd"]["spent"]) == alice_row.cost.total
        spoofed = [r for r in records if r.user != "alice"]
        assert len(spoofed) == 12
        assert {r.user for r in spoofed} == {"team:green/alice"} | {
            f"key:{r.key_id}/alice" for r in spoofed if r.team is None
        }
        assert all(r.team != "red" for r in spoofed)


def test_an_end_users_budget_is_named_with_its_tenant_and_the_keys_team_bounds_them_all(
    simulator_url: str, tmp_path: Path
) -> None:
    limits = [
        {"scope": "user", "value": "team:green/bob", "usd": "0.00002", "window": "day"},
        {"scope": "team", "value": "green", "usd": "0.00004", "window": "day"},
    ]
    with _budgeted(simulator_url, tmp_path, limits) as gateway:
        keys = Keys(gateway)
        green = keys.create(team="green")
        bob = keys.gpt(green, **{"x-thrifty-user": "bob"})
        ask(bob)
        with pytest.raises(openai.RateLimitError) as refused:
            ask(bob)
        assert "team:green/bob" in str(refused.value.body)
        # Other end users of green go on until green's own budget is spent, whatever they are named.
        refusals: list[str] = []
        for n in range(10):
            try:
                ask(keys.gpt(green, **{"x-thrifty-user": f"user{n}"}))
            except openai.RateLimitError as error:
                refusals.append(str(error.body))
        assert 0 < len(refusals) < 10 and all("team green" in r for r in refusals)


# -- the in-process face: a client wrapped with a team is bound to it, as a key is ----------------


def test_a_wrapped_clients_attribution_is_fixed_and_headers_name_end_users_within_it(
    simulator_url: str, tmp_path: Path
) -> None:
    import thrifty
    from thrifty.stores.ledger import open_ledger

    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    limits = {"budgets": {"limits": [{"scope": "team", "value": "red", "usd": "0.00002", "window": "day"}]}}
    runtime = thrifty.Thrifty(ledger=ledger, journal_dir=tmp_path / "journal", limits=limits)
    try:
        spoof = {"x-thrifty-team": "red", "x-thrifty-user": "alice"}
        green = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), team="green")
        claude = runtime.wrap(anthropic.Anthropic(base_url=simulator_url, api_key="sk-test"), team="green")
        for _ in range(3):  # red's budget fits about one such call: none of these is charged to it
            green.chat.completions.create(
                model="gpt-4o-mini",
                messages=QUESTION,  # type: ignore[arg-type]
                max_tokens=20,
                extra_headers=spoof,
            )
            claude.messages.create(
                model="claude-haiku-4-5",
                messages=QUESTION,  # type: ignore[arg-type]
                max_tokens=20,
                extra_headers=spoof,
            )
        red = runtime.wrap(openai.OpenAI(base_url=f"{simulator_url}/v1", api_key="sk-test"), team="red")
        red.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, max_tokens=20)  # type: ignore[arg-type]
        runtime.runtime.writer.flush(timeout=10)
        store = open_ledger(ledger)
        try:
            rows = store.records(limit=100)
        finally:
            store.close()
        assert sorted((r.user or "", r.team) for r in rows) == [("", "red")] + [("team:green/alice", "green")] * 6
        assert all(r.status == "ok" for r in rows)  # red's one call fitted: nothing else was charged to red
    finally:
        runtime.close()
