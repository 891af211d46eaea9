"""What the semantic cache adds to a request through the gateway, measured in one run.

Run: .venv/bin/python bench/semantic/gateway_latency.py [--rounds 300]

Two gateways on loopback in front of one simulated upstream, identical but for
``cache.semantic.enabled``. Requests alternate between them on kept-alive connections:

- hit: a paraphrase never sent before (prefixes, wordings and suffixes combined: the verifier keeps
  the questions it saw lately, so a repeated paraphrase would be cheaper than a new one) answered
  by the semantic cache (embedding, index search, guard, verifier, entry read), against an
  exact-cache hit of the same gateway (the cheapest answer it gives); paraphrases the guard or
  the verifier refuse are counted apart;
- miss: a question never seen before (a new one each round) through the semantic gateway (embed,
  search, then the upstream call and storing the entry and its vector) against the same kind of
  question through the gateway without it.

Figures are client-side wall times; the difference of the medians is what the semantic cache adds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers
from _util import free_port, percentile, stop_all, wait_ready

THRIFTY = [sys.executable, "-m", "thrifty.cli.main"]
CONFIG = """
storage: {{ledger: "sqlite:///{home}/ledger.db", journal_dir: "{home}/journal"}}
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:{sim}/v1"}}
models:
  - {{name: gpt-4o-mini, provider: sim}}
cache:
  semantic: {{enabled: {semantic}}}
"""


def body(question: str) -> bytes:
    messages = [{"role": "user", "content": question}]
    return orjson.dumps({"model": "gpt-4o-mini", "messages": messages, "temperature": 0, "max_tokens": 40})


PREFIXES = ("", "Hi! ", "Hello, ", "Quick question: ", "Hey, ", "Please, ", "Excuse me, ", "Sorry, ")
WORDINGS = (
    "how can I turn on dark mode?",
    "how do I turn on dark mode?",
    "how can I enable dark mode?",
    "how to enable dark mode?",
    "how do I activate dark mode?",
    "what is the way to enable dark mode?",
)
SUFFIXES = ("", " Thanks.", " Thank you!", " Cheers.", " Any idea?", " I can't find it.")


def paraphrases() -> list[str]:
    out = []
    for prefix in PREFIXES:
        for wording in WORDINGS:
            for suffix in SUFFIXES:
                text = prefix + wording + suffix
                out.append(text[0].upper() + text[1:])
    return out


def timed(client: httpx2.Client, url: str, content: bytes, expect: str) -> float:
    return timed_status(client, url, content, (expect,))[0]


def timed_status(client: httpx2.Client, url: str, content: bytes, expect: tuple[str, ...]) -> tuple[float, str]:
    start = time.perf_counter()
    response = client.post(url, content=content)
    elapsed = (time.perf_counter() - start) * 1000
    got = response.headers.get("x-thrifty-cache", "")
    if response.status_code != 200 or got not in expect:
        raise SystemExit(f"expected {expect}, got {response.status_code} {got}: {response.text[:200]}")
    return elapsed, got


def line(name: str, values: list[float]) -> str:
    return f"  {name:<22} p50 {statistics.median(values):7.2f} ms   p99 {percentile(values, 0.99):7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    variants = paraphrases()
    parser.add_argument("--rounds", type=int, default=len(variants), help=f"at most {len(variants)}")
    rounds = min(parser.parse_args().rounds, len(variants))
    home = Path(tempfile.mkdtemp(prefix="thrifty-semantic-bench-"))
    sim_port = free_port()
    ports = {"on": free_port(), "off": free_port()}
    env = {**os.environ, "THRIFTY_HOME": str(home)}
    processes = [subprocess.Popen([*THRIFTY, "simulate", "--port", str(sim_port)], env=env, stderr=subprocess.DEVNULL)]
    for name, port in ports.items():
        (home / name).mkdir()
        config = home / name / "gateway.yaml"
        semantic = "true" if name == "on" else "false"
        config.write_text(CONFIG.format(home=home / name, sim=sim_port, semantic=semantic))
        serve = [*THRIFTY, "serve", "--config", str(config), "--port", str(port), "--log-level", "warning"]
        processes.append(subprocess.Popen(serve, env=env, stderr=subprocess.DEVNULL))
    try:
        wait_ready(f"http://127.0.0.1:{sim_port}/_simulator/health", timeout=120)
        for port in ports.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz", timeout=120)
        on = f"http://127.0.0.1:{ports['on']}/v1/chat/completions"
        off = f"http://127.0.0.1:{ports['off']}/v1/chat/completions"
        headers = {"content-type": "application/json"}
        with httpx2.Client(headers=headers, timeout=30) as a, httpx2.Client(headers=headers, timeout=30) as b:
            original = body("How do I enable dark mode?")
            timed(a, on, original, "miss")
            exact_hits, semantic_hits, refused, misses_on, misses_off = [], [], [], [], []
            for i in range(rounds):
                exact_hits.append(timed(a, on, original, "hit"))
                elapsed, got = timed_status(a, on, body(variants[i]), ("semantic", "miss"))
                (semantic_hits if got == "semantic" else refused).append(elapsed)
                misses_on.append(timed(a, on, body(f"Question {i}: how many moons does planet {i} have?"), "miss"))
                misses_off.append(timed(b, off, body(f"Question {i}: how many moons does planet {i} have?"), "miss"))
        print(f"{rounds} rounds, requests alternating between the two gateways (one connection each)")
        print(line("exact hit", exact_hits))
        print(line(f"semantic hit ({len(semantic_hits)})", semantic_hits))
        if refused:
            print(line(f"paraphrase refused ({len(refused)})", refused))
        print(line("miss, semantic on", misses_on))
        print(line("miss, semantic off", misses_off))
        hit_added = statistics.median(semantic_hits) - statistics.median(exact_hits)
        miss_added = statistics.median(misses_on) - statistics.median(misses_off)
        print(f"  a semantic hit takes {hit_added:+.2f} ms (p50) over an exact hit")
        print(f"  a semantic miss adds {miss_added:+.2f} ms (p50) to a miss (embed, search, store)")
    finally:
        stop_all(processes)


if __name__ == "__main__":
    main()
