"""A finished batch's results: the providers' output and error files read line by line, each line
priced at the batch rates and recorded once (its ledger id is fixed by the batch and the line, so
recording again after a restart changes nothing), stored in the exact cache, and written to the
caller's output or error file with the caller's custom_id; lines that got no answer (cancelled,
expired) get an error line each."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from thrifty.batch.budget import LineSpend
from thrifty.batch.job import BatchJob, line_record_id
from thrifty.batch.pricing import price_line
from thrifty.config.cache import ExactCacheSpec
from thrifty.core.ledger import LedgerRecord
from thrifty.core.messages import ChatRequest
from thrifty.core.pricing import Cost, PriceBook, UnknownModelError
from thrifty.core.usage import Usage, UsageError
from thrifty.pipeline.call import Attribution, Call, Result
from thrifty.pipeline.steps.cache import encode_entry, ttl_for
from thrifty.pipeline.steps.dispatch import Routes
from thrifty.pipeline.steps.record import RecordSink
from thrifty.stores.cache import ResponseCache
from thrifty.wire.openai_batches import error_line, output_line

__all__ = ["Collector", "Totals"]

log = logging.getLogger("thrifty.batch")


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    model: str
    priced_as: str
    cache_key: tuple[str, str] | None


@dataclass(slots=True)
class Totals:
    completed: int = 0
    failed: int = 0
    spent: list[LineSpend] | None = None


class Collector:
    def __init__(
        self,
        prices: PriceBook,
        routes: Routes,
        writer: RecordSink,
        cache: ResponseCache | None,
        cache_spec: ExactCacheSpec,
    ) -> None:
        self.prices = prices
        self.routes = routes
        self.writer = writer
        self.cache = cache
        self.cache_spec = cache_spec

    async def collect(self, job: BatchJob, outputs: list[Path], errors: list[Path], missing: str) -> Totals:
        """Write the caller's files from the providers' ``outputs`` and ``errors``; a line with no
        answer in either gets an error line coded ``missing`` (``batch_cancelled``, ``batch_expired``)."""
        index = _read_index(Path(job.index_path))
        totals = Totals(spent=[])
        assert totals.spent is not None
        with open(job.output_path, "wb") as out, open(job.error_path, "wb") as err:
            cached = Path(job.cached_path)
            if cached.exists():
                with open(cached, "rb") as hits:
                    for raw in hits:
                        out.write(raw)
                        totals.completed += 1
            for path in [*outputs, *errors]:
                for entry in _lines(path):
                    custom_id = entry.get("custom_id")
                    line = index.pop(custom_id, None) if isinstance(custom_id, str) else None
                    if line is None:
                        log.error("batch %s: the provider answered an unknown custom_id %r", job.id, custom_id)
                        continue
                    ok, spend = await self._one(job, custom_id, line, entry, out, err)
                    totals.spent.append(spend)
                    if ok:
                        totals.completed += 1
                    else:
                        totals.failed += 1
            for custom_id, line in index.items():
                message = f"the request got no answer: the batch ended {missing.removeprefix('batch_')} first"
                err.write(error_line(f"batch_req_{job.id}_{line.number}", custom_id, missing, message) + b"\n")
                totals.failed += 1
        return totals

    async def _one(
        self, job: BatchJob, custom_id: str, line: _Line, entry: dict[str, Any], out: IO[bytes], err: IO[bytes]
    ) -> tuple[bool, LineSpend]:
        response = entry.get("response") if isinstance(entry.get("response"), dict) else None
        status = int(response.get("status_code", 500)) if response else 500
        body = response.get("body") if response else None
        request_id = str(response.get("request_id", "")) if response else ""
        line_id = f"batch_req_{job.id}_{line.number}"
        if response is None:
            problem = entry.get("error") or {}
            code = str(problem.get("code") or "provider_error")
            err.write(error_line(line_id, custom_id, code, str(problem.get("message") or "no response")) + b"\n")
            return False, LineSpend(line.model, Decimal(0), 0)
        usage = _usage(body) if status == 200 else Usage()
        record = self._record(job, custom_id, line, status, usage, request_id)
        self.writer.submit(record)
        if status == 200:
            out.write(output_line(line_id, custom_id, status, request_id, body) + b"\n")
            await self._store(job, line, record, body, usage)
        else:
            err.write(output_line(line_id, custom_id, status, request_id, body) + b"\n")
        cost = record.cost.total if record.cost is not None else None
        return status == 200, LineSpend(line.model, cost, usage.input_tokens + usage.output_tokens)

    def _record(
        self, job: BatchJob, custom_id: str, line: _Line, status: int, usage: Usage, request_id: str
    ) -> LedgerRecord:
        created = datetime.fromtimestamp(job.created_at, UTC)
        route = self.routes.get(line.model)
        provider_id = route.upstream.provider_id if route is not None else None
        details: dict[str, Any] = {"batch_id": job.id, "custom_id": custom_id, "line": line.number}
        if request_id:
            details["provider_request_id"] = request_id
        cost = None
        savings = {}
        counterfactual = None
        if status == 200:
            try:
                priced = price_line(self.prices, usage, line.priced_as, provider=provider_id, at=created)
            except UnknownModelError as error:
                details["price_error"] = str(error)
            else:
                cost, counterfactual = priced.cost, priced.standard
                savings = {"batch": priced.saving}
                details["price_notes"] = list(priced.quote.notes)
        who = job.attribution
        return LedgerRecord(
            id=line_record_id(job.id, job.created_at, line.number),
            requested_model=line.model,
            ts=created,
            request_id=f"{job.id}/{custom_id}"[:256],
            user=who.get("user"),
            team=who.get("team"),
            feature=who.get("feature"),
            key_id=who.get("key_id"),
            tags=tuple(who.get("tags") or ()),
            provider=route.upstream.name if route is not None else None,
            served_model=line.model,
            usage=usage,
            cost=cost if status == 200 else Cost(),
            counterfactual_cost=counterfactual,
            savings=savings,
            latency_ms=round((time.time() - job.created_at) * 1000, 3),
            status="ok" if status == 200 else "error",
            http_status=status,
            cache_status="miss" if line.cache_key is not None else "bypass",
            batch=True,
            details=details,
        )

    async def _store(self, job: BatchJob, line: _Line, record: LedgerRecord, body: Any, usage: Usage) -> None:
        if self.cache is None or line.cache_key is None:
            return
        namespace, key = line.cache_key
        raw = orjson.dumps(body)
        if len(raw) > self.cache_spec.max_entry_bytes:
            return
        who = job.attribution
        call = Call(
            request_id=record.request_id or job.id,
            client_api="openai",
            body={},
            request=ChatRequest(model=line.model, messages=()),
            model=line.model,
            stream=False,
            attribution=Attribution(who.get("user"), who.get("team"), who.get("feature"), who.get("key_id")),
            ts=record.ts,
            started=0.0,
        )
        route = self.routes.get(line.model)
        result = Result(
            status=200,
            served_model=line.model,
            priced_as=line.priced_as,
            provider=route.upstream.name if route is not None else None,
            provider_id=route.upstream.provider_id if route is not None else None,
        )
        try:
            await self.cache.put(
                namespace, key, encode_entry(call, result, raw, usage, self.prices), ttl_for(self.cache_spec, namespace)
            )
        except Exception:  # the results matter more than the cache
            log.exception("batch %s: could not store line %d in the cache", job.id, line.number)


def _usage(body: Any) -> Usage:
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    try:
        return Usage.from_openai(usage)
    except (UsageError, ValueError, TypeError):
        return Usage()


def _read_index(path: Path) -> dict[str, _Line]:
    index = {}
    for item in _lines(path):
        custom_id, number, model, priced_as, key = item
        index[custom_id] = _Line(number, model, priced_as, (key[0], key[1]) if key else None)
    return index


def _lines(path: Path) -> Iterator[Any]:
    if not path.exists():
        return
    with open(path, "rb") as source:
        for raw in source:
            if raw.strip():
                yield orjson.loads(raw)
