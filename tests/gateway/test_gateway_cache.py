"""The exact response cache through the gateway: identical requests hit (whole or streamed, in
the client's format), cost nothing and record their saving; tenants never see each other's
entries; sampled requests bypass; a broken backend is a miss, not a failure."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.support.gateway import RunningGateway, expected_cost, running_gateway

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def gpt(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0, default_headers=headers)


def ask(client: openai.OpenAI, **extra: Any) -> Any:
    arguments: dict[str, Any] = {"model": "gpt-4o-mini", "messages": QUESTION, "temperature": 0, "max_tokens": 30}
    arguments.update(extra)
    return client.chat.completions.with_raw_response.create(**arguments)


def test_an_identical_request_hits_and_costs_nothing(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    first = ask(client)
    second = ask(client)
    assert first.headers["x-thrifty-cache"] == "miss"
    assert second.headers["x-thrifty-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert Decimal(second.headers["x-thrifty-cost-usd"]) == 0
    miss, hit = gateway.records(2)
    assert hit.cache_status == "hit" and hit.cost is not None and hit.cost.total == 0
    assert hit.usage.input_tokens == 0  # the provider was not called
    assert miss.cost is not None
    assert hit.counterfactual_cost == miss.cost.total == expected_cost(miss.usage, "gpt-4o-mini", miss)
    assert hit.savings == {"exact_cache": miss.cost.total}
    assert hit.details["cached_from"] == miss.request_id


def test_a_streaming_request_hits_and_is_replayed_as_a_stream(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    whole = ask(client).parse()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=QUESTION,
        temperature=0,
        max_tokens=30,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    _, hit = gateway.records(2)
    assert hit.cache_status == "hit" and hit.stream


def test_a_streamed_answer_is_stored_and_serves_a_whole_request(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    streamed = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            temperature=0,
            max_tokens=30,
            stream=True,  # type: ignore[arg-type]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    again = ask(client)
    assert again.headers["x-thrifty-cache"] == "hit"
    assert again.parse().choices[0].message.content == text


def test_anthropic_hits_are_in_anthropic_shape_whole_and_streamed(gateway: RunningGateway) -> None:
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    kwargs: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 30,
        "messages": QUESTION,
        "extra_body": {"temperature": 0},
    }
    first = claude.messages.create(**kwargs)
    raw = claude.messages.with_raw_response.create(**kwargs)
    assert raw.headers["x-thrifty-cache"] == "hit"
    assert raw.parse().content[0].text == first.content[0].text  # type: ignore[union-attr]
    with claude.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == first.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == first.usage.output_tokens


def test_tenants_never_see_each_others_entries(gateway: RunningGateway) -> None:
    red = gpt(gateway, **{"x-thrifty-team": "red"})
    blue = gpt(gateway, **{"x-thrifty-team": "blue"})
    assert ask(red).headers["x-thrifty-cache"] == "miss"
    assert ask(blue).headers["x-thrifty-cache"] == "miss"  # same question, other tenant
    assert ask(red).headers["x-thrifty-cache"] == "hit"
    assert ask(blue).headers["x-thrifty-cache"] == "hit"


def test_everything_that_changes_the_answer_changes_the_key(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    ask(client)
    assert ask(client, max_tokens=31).headers["x-thrifty-cache"] == "miss"  # type: ignore[arg-type]
    changed = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be terse."}, *QUESTION],
        temperature=0,
        max_tokens=30,  # type: ignore[arg-type]
    )
    assert changed.headers["x-thrifty-cache"] == "miss"
    assert ask(client, user="someone-else").headers["x-thrifty-cache"] == "hit"  # attribution is not in the key
    versioned = gpt(gateway, **{"x-thrifty-cache-version": "docs-v2"})
    assert ask(versioned).headers["x-thrifty-cache"] == "miss"


def test_sampled_requests_bypass_unless_forced_and_off_skips(gateway: RunningGateway) -> None:
    client = gpt(gateway)
    kwargs: dict[str, Any] = {"model": "gpt-4o-mini", "messages": QUESTION, "max_tokens": 20}
    assert client.chat.completions.with_raw_response.create(**kwargs).headers["x-thrifty-cache"] == "bypass"
    forced = gpt(gateway, **{"x-thrifty-cache": "force"})
    assert forced.chat.completions.with_raw_response.create(**kwargs).headers["x-thrifty-cache"] == "miss"
    assert forced.chat.completions.with_raw_response.create(**kwargs).headers["x-thrifty-cache"] == "hit"
    off = gpt(gateway, **{"x-thrifty-cache": "off"})
    ask(client)
    assert ask(off).headers["x-thrifty-cache"] == "bypass"
    with pytest.raises(openai.BadRequestError):
        ask(gpt(gateway, **{"x-thrifty-cache": "sometimes"}))


def test_failed_calls_are_not_cached(gateway: RunningGateway) -> None:
    gateway.fault("gpt-4o-mini", "500", times=3)
    client = gpt(gateway)
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert ask(client).headers["x-thrifty-cache"] == "miss"


def test_cache_clear_takes_effect_in_a_running_gateway(gateway: RunningGateway, tmp_path: Path) -> None:
    client = gpt(gateway)
    ask(client)
    assert ask(client).headers["x-thrifty-cache"] == "hit"
    ledger = gateway.runtime.config.storage.ledger
    out = subprocess.run(
        [sys.executable, "-m", "thrifty.cli.main", "cache", "clear", "--ledger", ledger],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cleared" in out.stdout
    import time

    time.sleep(1.1)  # gateways re-check the clear generation once a second
    assert ask(client).headers["x-thrifty-cache"] == "miss"


def test_a_dead_redis_is_a_miss_not_a_failure(simulator_url: str, tmp_path: Path) -> None:
    storage = {
        "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
        "journal_dir": str(tmp_path / "journal"),
        "redis": "redis://127.0.0.1:1/0",  # nothing listens there
    }
    with running_gateway(simulator_url, tmp_path, storage=storage) as gateway:
        client = gpt(gateway)
        assert ask(client).headers["x-thrifty-cache"] == "miss"
        assert ask(client).headers["x-thrifty-cache"] == "miss"


def test_redis_backend_shared_by_two_gateways(simulator_url: str, tmp_path: Path) -> None:
    import redis

    from tests.support.services import ensure_redis

    url = ensure_redis().rstrip("/") + "/14"
    redis.Redis.from_url(url).flushdb()
    storage = {"ledger": f"sqlite:///{tmp_path / 'ledger.db'}", "journal_dir": str(tmp_path / "journal"), "redis": url}
    with (
        running_gateway(simulator_url, tmp_path / "a", storage=storage) as one,
        running_gateway(simulator_url, tmp_path / "b", storage=storage) as two,
    ):
        red_one = gpt(one, **{"x-thrifty-team": "red"})
        red_two = gpt(two, **{"x-thrifty-team": "red"})
        blue_two = gpt(two, **{"x-thrifty-team": "blue"})
        assert ask(red_one).headers["x-thrifty-cache"] == "miss"
        assert ask(red_two).headers["x-thrifty-cache"] == "hit"  # stored by the other process
        assert ask(blue_two).headers["x-thrifty-cache"] == "miss"  # never across tenants
        keys = [k.decode() for k in redis.Redis.from_url(url).keys("thrifty:cache:*")]
        assert {k.split(":")[3] for k in keys} == {"red", "blue"}
        entry = redis.Redis.from_url(url).get(keys[0]) or b""
        assert b"authorization" not in entry.lower() and b"api_key" not in entry.lower()


def test_report_shows_hit_rates_and_savings_per_strategy(gateway: RunningGateway) -> None:
    import json

    client = gpt(gateway)
    ask(client)
    ask(client)
    ask(client)
    miss, *_ = gateway.records(3)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "thrifty.cli.main",
            "report",
            "--json",
            "--ledger",
            gateway.runtime.config.storage.ledger,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["cache"] == {"miss": 1, "hit": 2}
    assert miss.cost is not None
    assert Decimal(report["savings_usd"]["exact_cache"]) == 2 * miss.cost.total


def test_report_says_why_calls_bypassed_the_caches_and_how_to_opt_in(gateway: RunningGateway) -> None:
    import json

    client = gpt(gateway)
    unset: dict[str, Any] = {"model": "gpt-4o-mini", "messages": QUESTION, "max_tokens": 20}  # the SDKs' default
    for _ in range(3):
        assert client.chat.completions.with_raw_response.create(**unset).headers["x-thrifty-cache"] == "bypass"
    warm = client.chat.completions.with_raw_response.create(**unset, temperature=0.7)
    assert warm.headers["x-thrifty-cache"] == "bypass"
    assert ask(gpt(gateway, **{"x-thrifty-cache": "off"})).headers["x-thrifty-cache"] == "bypass"
    ask(client)  # temperature 0: cached as usual
    rows = gateway.records(6)
    assert sorted(str(r.details.get("cache_bypass")) for r in rows) == [
        "None",
        "off",
        "temperature_above_0",
        "temperature_unset",
        "temperature_unset",
        "temperature_unset",
    ]
    cli = [sys.executable, "-m", "thrifty.cli.main", "report", "--ledger", gateway.runtime.config.storage.ledger]
    document = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, check=True).stdout)
    assert document["cache_bypass"] == {"temperature_unset": 3, "temperature_above_0": 1, "off": 1}
    text = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert "bypassed the caches: 3 temperature unset" in text
    assert "temperature: 0" in text and "x-thrifty-cache: force" in text
