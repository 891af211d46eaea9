"""Batches for one running gateway: files kept on disk and in the store, batches created (checked,
cached, budgeted), looked up, listed and cancelled, every object visible to its tenant only."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from thrifty.batch.budget import BatchBudget
from thrifty.batch.collect import Collector
from thrifty.batch.create import MakeCall, prepare
from thrifty.batch.job import TERMINAL, BatchJob
from thrifty.batch.provider import OpenAIBatches
from thrifty.batch.upload import receive_upload
from thrifty.batch.worker import BatchWorker
from thrifty.config.batch import BatchSpec
from thrifty.config.cache import CacheSpec
from thrifty.core.pricing import PriceBook
from thrifty.core.tokens.counter import TokenCounter
from thrifty.errors import Rejection
from thrifty.pipeline.budgets.engine import BudgetEngine
from thrifty.pipeline.call import Attribution
from thrifty.pipeline.steps.cache import ExactCacheStep
from thrifty.pipeline.steps.dispatch import Routes
from thrifty.pipeline.steps.record import RecordSink
from thrifty.stores.batches import BatchStore, StoredFile
from thrifty.stores.cache import ResponseCache
from thrifty.web.asgi import Receive
from thrifty.wire.openai_batches import check_create, file_object, list_object

__all__ = ["BatchParts", "BatchService"]


@dataclass(frozen=True, slots=True)
class BatchParts:
    """What batches run on, from the face's runtime (it opens and closes them)."""

    spec: BatchSpec
    folder: Path
    store_path: Path
    prices: PriceBook
    routes: Routes
    counter: TokenCounter
    writer: RecordSink
    session: aiohttp.ClientSession
    cache_spec: CacheSpec
    response_cache: ResponseCache | None = None
    budgets: BudgetEngine | None = None


class BatchService:
    def __init__(self, parts: BatchParts) -> None:
        self.parts = parts
        self.folder = parts.folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = BatchStore(parts.store_path)
        exact = parts.cache_spec.exact
        self.cache = (
            ExactCacheStep(parts.response_cache, exact, parts.prices)
            if exact.enabled and parts.response_cache is not None
            else None
        )
        collector = Collector(parts.prices, parts.routes, parts.writer, parts.response_cache, exact)
        upstreams = {
            r.upstream.name: r.upstream for r in (parts.routes.get(n) for n in parts.routes.names()) if r is not None
        }
        clients = {
            name: OpenAIBatches(parts.session, upstream)
            for name, upstream in upstreams.items()
            if upstream.kind == "openai"
        }
        self.worker = BatchWorker(
            self.store,
            clients.get,
            collector,
            self.folder,
            poll_interval_s=parts.spec.poll_interval_s,
            lease_s=parts.spec.lease_s,
            budgets=parts.budgets,
        )

    def start(self) -> None:
        self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
        self.store.close()

    # -- files -----------------------------------------------------------------------------------

    async def upload(self, tenant: str, receive: Receive, content_type: bytes | None) -> dict[str, Any]:
        file_id = f"file-{secrets.token_hex(12)}"
        target = self.folder / f"{file_id}.jsonl"
        upload = await receive_upload(receive, content_type, target, self.parts.spec.max_file_bytes)
        purpose = upload.fields.get("purpose")
        if purpose != "batch":
            os.unlink(target)
            if purpose is None:
                raise Rejection(400, "Missing required parameter: 'purpose'.")
            raise Rejection(400, f"purpose: {purpose!r} is not kept here; this gateway takes files for purpose 'batch'")
        stored = StoredFile(file_id, tenant, upload.filename, "batch", upload.size, int(time.time()), str(target))
        await asyncio.to_thread(self.store.add_file, stored)
        return _file_json(stored)

    async def file(self, tenant: str, file_id: str) -> StoredFile:
        stored = await asyncio.to_thread(self.store.file, file_id, tenant)
        if stored is None:
            raise Rejection(404, f"No such File object: {file_id}", code="not_found")
        return stored

    async def file_json(self, tenant: str, file_id: str) -> dict[str, Any]:
        return _file_json(await self.file(tenant, file_id))

    # -- batches ---------------------------------------------------------------------------------

    async def create(self, tenant: str, body: dict[str, Any], make_call: MakeCall, who: Attribution) -> dict[str, Any]:
        try:
            file_id, endpoint, metadata = check_create(body)
        except ValueError as error:
            raise Rejection(400, str(error)) from None
        stored = await self.file(tenant, file_id)
        if stored.purpose != "batch":
            raise Rejection(
                400, f"input_file_id: {file_id} has purpose {stored.purpose!r}; a batch needs purpose 'batch'"
            )
        batch_id = f"batch_{secrets.token_hex(12)}"
        base = self.folder / batch_id
        job = BatchJob(
            id=batch_id,
            tenant=tenant,
            created_at=int(time.time()),
            endpoint=endpoint,
            input_file_id=file_id,
            metadata=metadata,
            attribution={
                "user": who.user,
                "team": who.team,
                "feature": who.feature,
                "key_id": who.key_id,
                "tags": list(who.tags),
            },
            index_path=f"{base}.index.jsonl",
            cached_path=f"{base}.cached.jsonl",
            output_path=f"{base}.output.jsonl",
            error_path=f"{base}.errors.jsonl",
        )
        engine = self.parts.budgets
        budget = BatchBudget(engine, self.parts.prices, self.parts.counter) if engine is not None else None
        prepared = await prepare(
            job,
            Path(stored.path),
            self.folder,
            make_call=make_call,
            routes=self.parts.routes,
            cache=self.cache,
            cache_spec=self.parts.cache_spec.exact,
            budget=budget,
            max_lines=self.parts.spec.max_lines,
        )
        if budget is not None:
            try:
                job.reservation, job.budget_lines = await budget.reserve(job.id, job.counts["total"])
            except Rejection:
                _remove(job)
                raise
        for record in prepared.hits:
            self.parts.writer.submit(record)
        await self.worker.save(job)
        self.worker.nudge()
        return job.as_openai()

    async def job(self, tenant: str, batch_id: str) -> BatchJob:
        doc = await asyncio.to_thread(self.store.job, batch_id, tenant)
        if doc is None:
            raise Rejection(404, f"No batch found with id '{batch_id}'.", code="not_found")
        return BatchJob.from_doc(doc)

    async def get(self, tenant: str, batch_id: str) -> dict[str, Any]:
        return (await self.job(tenant, batch_id)).as_openai()

    async def listing(self, tenant: str, limit: int, after: str | None) -> dict[str, Any]:
        docs = await asyncio.to_thread(self.store.jobs, tenant, limit + 1, after)
        data = [BatchJob.from_doc(doc).as_openai() for doc in docs[:limit]]
        return list_object(data, len(docs) > limit)

    async def cancel(self, tenant: str, batch_id: str) -> dict[str, Any]:
        await self.job(tenant, batch_id)  # a 404 for another tenant's batch
        async with self.worker.lock_for(batch_id):  # not while the worker moves it on
            job = await self.job(tenant, batch_id)
            if job.status in TERMINAL:
                raise Rejection(409, f"Cannot cancel a batch with status {job.status!r}.", code="invalid_state")
            job.cancel_requested = True
            job.status = "cancelling"
            job.times.setdefault("cancelling_at", int(time.time()))
            await self.worker.save(job)
        self.worker.nudge()
        return job.as_openai()


def _file_json(stored: StoredFile) -> dict[str, Any]:
    return file_object(stored.id, stored.bytes, stored.created_at, stored.filename, stored.purpose)


def _remove(job: BatchJob) -> None:
    paths = [job.index_path, job.cached_path, *(g.path for g in job.groups)]
    for path in paths:
        if os.path.exists(path):
            os.unlink(path)
