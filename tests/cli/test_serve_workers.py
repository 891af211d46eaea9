"""``thrifty serve --workers N`` as real processes on loopback, in front of the simulator: several
workers on one port, a worker killed and replaced, a drain on SIGTERM that lets a stream finish
and records it, and reloads (SIGHUP, POST /admin/reload) that change prices for new requests only
and change nothing when the file is bad. Every wait polls with a generous deadline: the machine
may be small and busy."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.support.processes import free_port, thrifty_process, wait_ready
from thrifty.cli.main import main
from thrifty.core.ledger import LedgerRecord
from thrifty.stores.ledger import open_ledger

ADMIN_TOKEN = "test-admin-token-13"
DEADLINE_S = 120.0
SLOW_TOKENS = 40
"""A stream of the ``slow`` model: ~40 events, 300 ms apart (~12 s), far longer than a reload."""


def _until(what: str, check: Callable[[], Any], deadline_s: float = DEADLINE_S, log: Path | None = None) -> Any:
    """``check()`` once it is truthy; a failure naming ``what`` (and the log's tail) at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None else ""
            pytest.fail(f"{what}: not within {deadline_s:g} s\n{tail}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A simulator of its own, in its own process, whose ``gpt-4.1-nano`` streams slowly."""
    home = tmp_path_factory.mktemp("simulator")
    config = home / "simulator.yaml"
    config.write_text(yaml.safe_dump({"faults": {"gpt-4.1-nano": "chunk-delay=300"}}))
    port = free_port()
    log = home / "simulator.log"
    process = thrifty_process("simulate", "--port", str(port), "--config", str(config), log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log, "/_simulator/health")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _config(simulator: str, home: Path, price: int | str) -> dict[str, Any]:
    rate = {"input_mtok": price, "output_mtok": price}
    return {
        "storage": {"ledger": f"sqlite:///{home / 'ledger.db'}", "journal_dir": str(home / "journal")},
        "retry": {"attempts": 1, "attempt_timeout_s": 60},
        "providers": {"openai": {"kind": "openai", "base_url": f"{simulator}/v1"}},
        "models": [
            {"name": "gpt-4o-mini", "provider": "openai", "price": rate},
            {"name": "slow", "provider": "openai", "upstream_model": "gpt-4.1-nano", "price": rate},
        ],
        "cache": {"exact": {"enabled": False}},
        "admin": {"token_env": "THRIFTY_TEST_ADMIN_TOKEN"},
    }


class Served:
    """One ``thrifty serve --config FILE --workers N`` process and what a test asks of it."""

    def __init__(self, simulator: str, home: Path, workers: int, price: int = 1) -> None:
        self.simulator = simulator
        self.home = home
        self.config = home / "gateway.yaml"
        self.write_config(price)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "gateway.log"
        os.environ["THRIFTY_TEST_ADMIN_TOKEN"] = ADMIN_TOKEN  # inherited by the process
        self.process = thrifty_process(
            "serve", "--config", str(self.config), "--port", str(self.port), "--workers", str(workers), log=self.log
        )
        wait_ready(self.url, self.process, self.log, "/readyz")
        if workers > 1:
            _until(f"{workers} workers", lambda: len(self.workers()) == workers, log=self.log)

    def write_config(self, price: int | str) -> None:
        self.config.write_text(yaml.safe_dump(_config(self.simulator, self.home, price)))

    def workers(self) -> set[int]:
        """The supervisor's children: its workers (their ledger sidecars are the workers' children)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return {int(pid) for pid in path.read_text().split()}
        except OSError:
            return set()

    def ask(self, model: str = "gpt-4o-mini") -> httpx2.Response | None:
        """One chat completion on a new connection (so each is spread afresh); None if refused."""
        body = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 5}
        try:
            return httpx2.post(f"{self.url}/v1/chat/completions", json=body, timeout=30)
        except httpx2.TransportError:
            return None

    def reload(self) -> httpx2.Response:
        headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx2.post(f"{self.url}/admin/reload", headers=headers, timeout=60)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def rows(self) -> list[LedgerRecord]:
        store = open_ledger(f"sqlite:///{self.home / 'ledger.db'}")
        try:
            return store.records(limit=10_000)
        finally:
            store.close()


@pytest.fixture
def served(simulator: str, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(workers: int, price: int = 1) -> Served:
        started.append(Served(simulator, tmp_path, workers, price))
        return started[-1]

    yield start
    for one in started:
        if one.process.poll() is None:
            one.process.kill()
            one.process.wait()


class Stream:
    """A streamed call of the ``slow`` model, read on a thread: the events so far, and whether it ended."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[str] = []
        self.worker: str | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        body = {
            "model": "slow",
            "messages": [{"role": "user", "content": "Count slowly."}],
            "max_tokens": SLOW_TOKENS,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        try:
            with httpx2.stream("POST", f"{self.url}/v1/chat/completions", json=body, timeout=120) as response:
                self.worker = response.headers.get("x-thrifty-worker")
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line.removeprefix("data: "))
        except BaseException as error:
            self.error = error
        finally:
            self.done.set()

    def finished(self) -> bool:
        return self.done.wait(DEADLINE_S) and self.error is None and self.events[-1:] == ["[DONE]"]


def _cost_per_token(response: httpx2.Response) -> Decimal:
    usage = response.json()["usage"]
    return Decimal(response.headers["x-thrifty-cost-usd"]) / (usage["prompt_tokens"] + usage["completion_tokens"])


def _row_rate(row: LedgerRecord) -> Decimal:
    assert row.cost is not None
    return row.cost.total / (row.usage.input_tokens + row.usage.output_tokens)


def test_two_workers_share_the_port_and_one_that_dies_is_replaced(served: Callable[..., Served]) -> None:
    gateway = served(workers=2)
    first = gateway.workers()
    seen: set[int] = set()

    def both_answered() -> bool:
        response = gateway.ask()
        if response is not None and response.status_code == 200:
            seen.add(int(response.headers["x-thrifty-worker"]))
        return seen == first

    _until("answers from both workers", both_answered, log=gateway.log)

    # A second gateway on the same port is refused, not let into the port's group of sockets.
    second = subprocess.run(  # noqa: PLW1510  # the status is the point
        [*_thrifty(), "serve", "--config", str(gateway.config), "--port", str(gateway.port), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert second.returncode == 2 and "cannot listen" in second.stderr, second.stderr

    victim = min(first)
    os.kill(victim, signal.SIGKILL)

    def replacement() -> set[int] | None:
        now = gateway.workers()
        return now if victim not in now and len(now) == 2 else None

    replaced = _until("a replacement worker", replacement, log=gateway.log)
    answered_by: set[int] = set()

    def replacement_answered() -> bool:
        response = gateway.ask()
        assert response is not None and response.status_code == 200, "the port stopped answering"
        answered_by.add(int(response.headers["x-thrifty-worker"]))
        return answered_by == replaced

    _until("answers from the surviving worker and its new sibling", replacement_answered, log=gateway.log)
    assert gateway.stop() == 0
    assert f"worker {victim} exited (status -9)" in gateway.log.read_text()


def test_sigterm_lets_a_stream_in_flight_finish_and_records_it(served: Callable[..., Served]) -> None:
    gateway = served(workers=2)
    stream = Stream(gateway.url)
    _until("the stream's first events", lambda: len(stream.events) >= 2 or stream.done.is_set())
    assert not stream.done.is_set(), stream.error
    gateway.process.send_signal(signal.SIGTERM)
    # No new connection is taken while the stream goes on.
    _until("new connections refused", lambda: gateway.ask() is None or stream.done.is_set(), log=gateway.log)
    assert not stream.done.is_set(), "the stream ended before the drain refused a new connection"
    assert stream.finished(), (stream.error, stream.events[-3:])
    assert gateway.process.wait(timeout=DEADLINE_S) == 0
    rows = gateway.rows()  # flushed before the exit: no waiting for it
    streamed = [row for row in rows if row.stream]
    assert len(streamed) == 1 and streamed[0].status == "ok", [(r.status, r.stream) for r in rows]
    assert streamed[0].usage.output_tokens == SLOW_TOKENS
    log = gateway.log.read_text()
    assert "draining" in log and "killed" not in log


def test_sighup_reprices_new_requests_while_a_stream_in_flight_keeps_the_old_price(
    served: Callable[..., Served],
) -> None:
    gateway = served(workers=2)
    workers = gateway.workers()
    old, new = Decimal(1) / 10**6, Decimal(100) / 10**6
    response = gateway.ask()
    assert response is not None and _cost_per_token(response) == old
    stream = Stream(gateway.url)
    _until("the stream's first events", lambda: len(stream.events) >= 2 or stream.done.is_set())
    gateway.write_config(100)
    gateway.process.send_signal(signal.SIGHUP)
    repriced: set[int] = set()

    def every_worker_repriced() -> bool:
        answer = gateway.ask()
        assert answer is not None and answer.status_code == 200
        if _cost_per_token(answer) == new:
            repriced.add(int(answer.headers["x-thrifty-worker"]))
        return repriced == workers

    _until("the new price from every worker", every_worker_repriced, log=gateway.log)
    assert not stream.done.is_set(), "the stream ended before the reload: it tells nothing"
    assert stream.finished(), (stream.error, stream.events[-3:])
    assert gateway.workers() == workers  # reloaded in place, not restarted
    assert gateway.stop() == 0
    rows = gateway.rows()
    (streamed,) = [row for row in rows if row.stream]
    assert streamed.status == "ok" and _row_rate(streamed) == old  # began before the reload: its price
    assert {_row_rate(row) for row in rows if not row.stream} == {old, new}


def test_a_bad_config_on_reload_changes_nothing_and_the_admin_api_lists_its_problems(
    served: Callable[..., Served],
) -> None:
    gateway = served(workers=2)
    workers = gateway.workers()
    gateway.write_config("-5")  # a negative price: refused by the schema
    config = yaml.safe_load(gateway.config.read_text())
    config["models"][1]["provider"] = "nowhere"
    gateway.config.write_text(yaml.safe_dump(config))
    gateway.process.send_signal(signal.SIGHUP)
    _until("the refusal in the log", lambda: "not applied" in gateway.log.read_text(), log=gateway.log)
    log = gateway.log.read_text()
    assert "models[0].price.input_mtok" in log and "models[1].price.input_mtok" in log

    refused = gateway.reload()
    assert refused.status_code == 422, refused.text
    problems = refused.json()["error"]["problems"]
    assert len(problems) >= 2 and all(str(gateway.config) in line for line in problems), problems
    assert any("models[0].price.input_mtok" in line for line in problems)
    unauthorised = httpx2.post(f"{gateway.url}/admin/reload", timeout=30)
    assert unauthorised.status_code == 401

    for _ in range(10):  # still the old price, from every worker alike
        answer = gateway.ask()
        assert answer is not None and answer.status_code == 200
        assert _cost_per_token(answer) == Decimal(1) / 10**6
    assert gateway.workers() == workers

    # A good file through the admin API: the worker that took it reloads, then the supervisor the rest.
    gateway.write_config(7)
    applied = gateway.reload()
    assert applied.status_code == 200 and applied.json()["reloaded"] is True, applied.text
    repriced: set[int] = set()

    def every_worker_repriced() -> bool:
        answer = gateway.ask()
        assert answer is not None and answer.status_code == 200
        if _cost_per_token(answer) == Decimal(7) / 10**6:
            repriced.add(int(answer.headers["x-thrifty-worker"]))
        return repriced == workers

    _until("the admin API's reload on every worker", every_worker_repriced, log=gateway.log)
    assert gateway.stop() == 0


def test_one_worker_reloads_on_sighup_too(served: Callable[..., Served]) -> None:
    gateway = served(workers=1)
    response = gateway.ask()
    assert response is not None and "x-thrifty-worker" not in response.headers  # one process: nothing to tell apart
    gateway.write_config(3)
    gateway.process.send_signal(signal.SIGHUP)

    def repriced() -> bool:
        answer = gateway.ask()
        return answer is not None and _cost_per_token(answer) == Decimal(3) / 10**6

    _until("the new price", repriced, log=gateway.log)
    assert gateway.stop() == 0


@pytest.mark.parametrize("value", ["0", "abc", "-3", ""])
def test_workers_must_be_a_positive_number_or_auto(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--demo", "--workers", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--workers" in err and "auto" in err, err


def _thrifty() -> list[str]:
    import sys

    return [sys.executable, "-m", "thrifty.cli.main"]
