"""The simulator's parts on their own: text, schemas, caches, faults, config, ids, the CLI."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thrifty.cli.simulate import simulate
from thrifty.config.files import ConfigError
from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator import FaultSpec, SimulatorConfig, create_app, load_simulator_config
from thrifty.simulator.common import ApiError, IdMaker
from thrifty.simulator.files import parse_multipart
from thrifty.simulator.prompt_cache import (
    Block,
    ExpiringStore,
    anthropic_cache_usage,
    openai_cached_tokens,
)
from thrifty.simulator.ratelimits import _duration
from thrifty.simulator.schema_fill import fill_schema
from thrifty.simulator.text import OPENERS, WORDS, TextBank, cut_at_stop


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter()


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_every_piece_is_one_token(counter: TokenCounter) -> None:
    encodings = (counter.encoding_for("gpt-4o"), counter.encoding_for("gpt-4"))
    assert {e.name for e in encodings} == {"o200k_base", "cl100k_base"}
    for encoding in encodings:
        for word in (*WORDS, *OPENERS):
            assert len(encoding.encode(word)) == 1, word
            assert len(encoding.encode(" " + word)) == 1, word
    TextBank(20, 200, encodings)  # checks the same on construction


def test_answers_are_exactly_counted_and_deterministic(counter: TokenCounter) -> None:
    bank = TextBank(20, 200)
    o200k, cl100k = counter.encoding_for("gpt-4o"), counter.encoding_for("gpt-4")
    lengths = set()
    for seed in range(0, 40_000_000_000, 97_000_001):
        answer = bank.answer(seed)
        assert 20 <= answer.tokens <= 200
        assert answer.finish == "stop"
        assert len(o200k.encode(answer.text)) == answer.tokens
        assert len(cl100k.encode(answer.text)) == answer.tokens
        assert answer.text[0].isupper()
        assert bank.answer(seed) == answer
        cut = bank.answer(seed, limit=7)
        assert cut.tokens == 7
        assert cut.finish == "length"
        assert answer.text.startswith(cut.text)
        lengths.add(answer.tokens)
    assert len(lengths) > 50  # lengths vary with the request


def test_stop_sequence_cut_inside_a_word(counter: TokenCounter) -> None:
    encoding = counter.encoding_for("gpt-4o")
    pieces = ["The", " model", " reads", " the", " data", "."]
    answer = cut_at_stop(pieces, "stop", ("ead",), encoding)
    assert answer.text == "The model r"
    assert answer.finish == "stop_sequence"
    assert answer.stop_sequence == "ead"
    assert answer.tokens == len(encoding.encode("The model r"))
    assert cut_at_stop(pieces, "stop", ("zzz",), encoding).tokens == 6
    first = cut_at_stop(pieces, "stop", (" data", " model"), encoding)
    assert first.text == "The"
    assert first.stop_sequence == " model"


def test_fill_schema() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "properties": {
            "name": {"type": "string", "maxLength": 4},
            "code": {"type": "string", "minLength": 30},
            "age": {"type": "integer", "exclusiveMinimum": 17, "maximum": 99},
            "ratio": {"type": "number", "exclusiveMaximum": 1, "minimum": 0},
            "level": {"type": ["null", "integer"], "maximum": -5},
            "mode": {"enum": ["fast", "slow"]},
            "fixed": {"const": 42},
            "when": {"type": "string", "format": "date-time"},
            "where": {"$ref": "#/$defs/point"},
            "either": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
            "both": {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"type": "object"}]},
            "list": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "minItems": 2},
            "optional": {"type": "string"},
        },
        "required": [
            "name", "code", "age", "ratio", "level", "mode", "fixed", "when", "where", "either", "both", "list", "pair",
        ],
    }  # fmt: skip
    value = fill_schema(schema, lambda n: " ".join(["alpha"] * n))
    assert len(value["name"]) <= 4
    assert len(value["code"]) == 30
    assert value["age"] == 18
    assert 0 <= value["ratio"] < 1
    assert value["level"] == -5
    assert value["mode"] == "fast"
    assert value["fixed"] == 42
    assert value["when"] == "2024-01-01T00:00:00Z"
    assert value["where"] == {"x": 1.5}
    assert value["either"] is True
    assert value["both"] == {"a": 1}
    assert value["list"] == ["alpha alpha alpha"] * 3
    assert value["pair"] == [1, True]
    assert "optional" not in value
    assert set(fill_schema(schema, lambda n: "x", all_properties=True)) == set(schema["properties"])
    recursive = {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}
    depth, node = 0, fill_schema(recursive, lambda n: "x")
    while node:
        node, depth = node["next"], depth + 1
    assert depth < 10
    assert fill_schema({}, lambda n: "free text") == "free text"


def test_fault_text() -> None:
    assert FaultSpec.parse("429;retry-after=0.2") == FaultSpec(status=429, retry_after_s=0.2)
    assert FaultSpec.parse(" delay=150 ; chunk-delay=5;drop-after=3 ") == FaultSpec(
        delay_ms=150, chunk_delay_ms=5, drop_after=3
    )
    assert FaultSpec.parse("timeout").timeout
    assert FaultSpec.parse("quota").error_status == 429
    assert FaultSpec.parse("529").error_status == 529
    for text in ("429;retry-after=0.2", "500;delay=10;rate=0.25", "drop-after=2", "timeout", "quota"):
        assert FaultSpec.parse(FaultSpec.parse(text).describe()) == FaultSpec.parse(text)
    for bad in ("", "boom", "200", "delay=soon", "retry-after=-1", "rate=2", "quota;500", "wait=3"):
        with pytest.raises(ValueError):  # noqa: PT011
            FaultSpec.parse(bad)


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "simulator.yaml"
    path.write_text(
        "answer_min_tokens: 5\n"
        "answer_max_tokens: 10\n"
        "openai_cache_ttl_s: 1.5\n"
        "faults:\n"
        "  gpt-4o: '429;retry-after=0.5'\n"
        "  '*': {delay_ms: 20, rate: 0.1}\n"
        "rate_limits:\n"
        "  openai_requests_per_minute: 100\n"
        "anthropic_cache_minimums: {'': 512, claude-tiny: 64}\n",
        encoding="utf-8",
    )
    config = load_simulator_config(path)
    assert config.answer_max_tokens == 10
    assert config.openai_cache_ttl_s == 1.5
    assert config.faults["gpt-4o"] == FaultSpec(status=429, retry_after_s=0.5)
    assert config.faults["*"].rate == 0.1
    assert config.rate_limits.openai_requests_per_minute == 100
    assert config.anthropic_cache_minimum("claude-tiny-2") == 64
    assert config.anthropic_cache_minimum("claude-other") == 512
    defaults = SimulatorConfig()
    assert defaults.anthropic_cache_minimum("claude-sonnet-4-5-20250929") == 1024
    assert defaults.anthropic_cache_minimum("claude-3-5-haiku-latest") == 2048
    assert defaults.anthropic_cache_minimum("claude-haiku-4-5-20251001") == 4096
    assert defaults.anthropic_cache_minimum("claude-opus-4-5") == 4096
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    assert load_simulator_config(tmp_path / "empty.yaml") == SimulatorConfig()
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "answer_min_tokens: 50\nanswer_max_tokens: 10\nfaults: {x: 'explode'}\nunknown: 1\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_simulator_config(bad)
    message = str(caught.value)
    assert "bad.yaml" in message
    assert "explode" in message
    assert "unknown" in message
    with pytest.raises(ConfigError, match="no such file"):
        load_simulator_config(tmp_path / "missing.yaml")


def test_expiring_store() -> None:
    store = ExpiringStore(limit=3)
    store.put(b"a", 10, now=0)
    store.put(b"b", 1, now=0)
    assert store.live(b"a", now=5)
    assert not store.live(b"b", now=5)
    store.put(b"a", 1, now=8)  # a shorter write never shortens a longer life
    assert store.live(b"a", now=9.5)
    store.touch(b"a", now=9.5)  # a read: its own TTL again from now
    assert store.live(b"a", now=19)
    for key in (b"c", b"d", b"e"):
        store.put(key, 100, now=20)
    assert len(store) == 3
    assert not store.live(b"a", now=20)  # the least recently used went first


def test_openai_prefix_steps() -> None:
    store = ExpiringStore(1000)
    tokens = list(range(1500))
    kwargs: dict[str, Any] = {"minimum": 1024, "step": 128, "ttl": 10.0}
    assert openai_cached_tokens(store, b"m", tokens, now=0, **kwargs) == 0
    assert openai_cached_tokens(store, b"m", tokens, now=1, **kwargs) == 1408
    assert openai_cached_tokens(store, b"m", [*tokens[:1200], *range(9000, 9400)], now=2, **kwargs) == 1152
    assert openai_cached_tokens(store, b"other", tokens, now=3, **kwargs) == 0
    assert openai_cached_tokens(store, b"m", tokens, now=20, **kwargs) == 0  # expired
    assert openai_cached_tokens(store, b"m", tokens[:1000], now=21, **kwargs) == 0


def test_anthropic_breakpoints() -> None:
    store = ExpiringStore(1000)
    ttls = {"5m": 300.0, "1h": 3600.0}

    def blocks(*specs: tuple[int, str, str | None]) -> list[Block]:
        return [Block(tokens, name.encode().ljust(16, b"\0"), ttl) for tokens, name, ttl in specs]

    first = blocks((1000, "tools", "1h"), (1000, "system", "5m"), (200, "question", None))
    usage = anthropic_cache_usage(store, "m", first, 2200, minimum=1024, ttls=ttls, lookback=20, now=0)
    assert (usage.cache_read, usage.write_1h, usage.write_5m, usage.input_tokens) == (0, 0, 2000, 200)
    # The 1h breakpoint's prefix (1000) is under the minimum: only the 5m one is written, from 0.
    again = anthropic_cache_usage(store, "m", first, 2200, minimum=1024, ttls=ttls, lookback=20, now=1)
    assert (again.cache_read, again.cache_creation, again.input_tokens) == (2000, 0, 200)
    # A breakpoint beyond the lookback window does not find an older prefix.
    many = blocks((1000, "tools", None), (1000, "system", None), *[(10, f"m{i}", None) for i in range(25)])
    many[-1] = Block(10, many[-1].digest, "5m")
    store.put(b"unrelated", 10, now=0)
    far = anthropic_cache_usage(store, "m", many, 2250, minimum=1024, ttls=ttls, lookback=20, now=2)
    assert far.cache_read == 0
    assert far.write_5m == 2250
    assert far.input_tokens == 0


def test_ids_are_unique_and_shaped() -> None:
    ids = IdMaker()
    made = [ids.make("msg_01", 22) for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert all(len(m) == len("msg_01") + 22 for m in made)
    assert IdMaker().make("x") != IdMaker().make("x")


def test_multipart() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n"
    )
    fields = parse_multipart(body, b'multipart/form-data; boundary="XyZ"')
    assert fields == {"purpose": (None, b"batch"), "file": ("a.jsonl", b"line1\r\nline2")}
    with pytest.raises(ApiError):
        parse_multipart(body, b"application/json")
    with pytest.raises(ApiError):
        parse_multipart(body, b"multipart/form-data")


def test_duration_format() -> None:
    assert _duration(0) == "0s"
    assert _duration(0.0061) == "6ms"
    assert _duration(1) == "1s"
    assert _duration(1.25) == "1.25s"
    assert _duration(90) == "1m30s"


def test_apps_share_no_state(counter: TokenCounter) -> None:
    """Two apps: a prompt cached in one is not cached in the other."""
    loop = asyncio.new_event_loop()
    body = json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": words(1500)}], "max_tokens": 3}
    ).encode()

    def cached(app: Any) -> int:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def deliver(message: Any) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "query_string": b""}
        loop.run_until_complete(app(scope, receive, deliver))
        return int(json.loads(sent[1]["body"])["usage"]["prompt_tokens_details"]["cached_tokens"])

    one, two = create_app(counter=counter), create_app(counter=counter)
    assert cached(one) == 0
    assert cached(one) > 0
    assert cached(two) == 0
    loop.close()


def test_cli_help_and_bad_config(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(simulate, ["--help"])
    assert result.exit_code == 0
    assert "SIMULATED upstream" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("answer_max_tokens: -1\n", encoding="utf-8")
    result = runner.invoke(simulate, ["--config", str(bad)])
    assert result.exit_code == 2
    assert "answer_max_tokens" in result.output


def test_cli_serves(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "sim.json"
    config.write_text(json.dumps({"answer_max_tokens": 30}), encoding="utf-8")
    code = "import sys; from thrifty.cli.simulate import simulate; simulate(sys.argv[1:])"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", str(port), "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
                conn.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"})
                reply = json.loads(conn.getresponse().read())
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert reply["usage"]["completion_tokens"] <= 30
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert b"simulated upstream" in stderr
