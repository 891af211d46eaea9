"""``/metrics`` of ``thrifty serve --workers 2``: whichever worker a scrape lands on, it reports
the whole gateway's counts (prometheus_client's multiprocess mode, a directory per run)."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_serve_workers import Served, _until, served, simulator  # noqa: F401  # fixtures


def _requests_total(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "thrifty_requests_total"
    )


def test_every_worker_reports_the_whole_gateways_counts(served: Callable[..., Served]) -> None:  # noqa: F811
    gateway = served(workers=2)
    workers = gateway.workers()
    answered: list[int] = []

    def both_answered() -> bool:
        response = gateway.ask()
        assert response is not None and response.status_code == 200
        answered.append(int(response.headers["x-thrifty-worker"]))
        return set(answered) == workers

    _until("answers from both workers", both_answered, log=gateway.log)
    sent = len(answered)
    scraped_by: set[int] = set()

    def both_scraped() -> bool:
        response = httpx2.get(f"{gateway.url}/metrics", timeout=30)  # a new connection each time
        assert response.status_code == 200
        assert _requests_total(response.text) == sent, (response.headers.get("x-thrifty-worker"), response.text[:2000])
        scraped_by.add(int(response.headers["x-thrifty-worker"]))
        return scraped_by == workers

    _until("scrapes answered by both workers", both_scraped, log=gateway.log)
    assert gateway.stop() == 0
    assert len(gateway.rows()) == sent
