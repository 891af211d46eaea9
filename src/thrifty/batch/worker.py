"""The process that submits and polls: it holds the store's lease (another takes over when it
stops renewing it) and moves each open batch on, saving its state before every provider call so
that a restart resumes where it stopped: upload, create (looked up first, by its metadata, if a
create may have happened), poll, download, record, settle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from thrifty.batch.budget import settle
from thrifty.batch.collect import Collector
from thrifty.batch.job import TERMINAL, BatchJob, Group
from thrifty.batch.provider import OpenAIBatches
from thrifty.errors import StoreUnavailable, UpstreamError
from thrifty.pipeline.budgets.engine import BudgetEngine
from thrifty.stores.batches import BatchStore, StoredFile

__all__ = ["BatchWorker"]

log = logging.getLogger("thrifty.batch")

_MARK = "thrifty_batch"
"""The metadata key of a provider batch that names the thrifty batch (and group) it belongs to."""


class BatchWorker:
    def __init__(
        self,
        store: BatchStore,
        providers: Callable[[str], OpenAIBatches | None],
        collector: Collector,
        folder: Path,
        *,
        poll_interval_s: float,
        lease_s: float,
        budgets: BudgetEngine | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.collector = collector
        self.folder = folder
        self.poll_interval_s = poll_interval_s
        self.lease_s = lease_s
        self.budgets = budgets
        self.owner = f"{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.store.drop_lease, self.owner)

    def nudge(self) -> None:
        """Look at the open batches now (one was created or cancelled), not at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(self.store.take_lease, self.owner, self.lease_s):
                    for doc in await asyncio.to_thread(self.store.open_jobs):
                        await self.advance(BatchJob.from_doc(doc))
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as error:
                log.error("batch: the store is unreachable: %s", error)
            except Exception:
                log.exception("batch: a pass over the open batches failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(self.poll_interval_s, self.lease_s / 3))

    async def save(self, job: BatchJob) -> None:
        await asyncio.to_thread(self.store.put_job, job.id, job.tenant, job.created_at, job.to_doc(), open_=job.open)

    def lock_for(self, batch_id: str) -> asyncio.Lock:
        """Held while the batch is moved on (or cancelled): one change to its document at a time."""
        return self._locks.setdefault(batch_id, asyncio.Lock())

    async def advance(self, job: BatchJob) -> None:
        """Move ``job`` on as far as it goes now; each provider call's state saved before it."""
        async with self.lock_for(job.id):
            doc = await asyncio.to_thread(self.store.job, job.id, None)  # as it is now (a cancel)
            if doc is not None:
                job = BatchJob.from_doc(doc)
            if job.collected:
                return
            for group in job.groups:
                try:
                    await self._advance_group(job, group)
                except UpstreamError as error:  # tried again on the next pass
                    log.error("batch %s (%s): %s", job.id, group.key, error)
            if all(g.state == "finished" for g in job.groups):
                await self._finish(job)
                self._locks.pop(job.id, None)  # done with: the next look at it finds it collected

    async def _advance_group(self, job: BatchJob, group: Group) -> None:
        provider = self.providers(group.upstream)
        if provider is None:
            raise UpstreamError(f"the provider {group.upstream} is no longer configured")
        if job.cancel_requested and group.state in ("pending", "uploading", "uploaded"):
            group.state, group.provider_status = "finished", "cancelled"  # never sent
            await self.save(job)
            return
        if group.state in ("pending", "uploading"):
            group.state = "uploading"
            await self.save(job)
            group.provider_file_id = await provider.upload(Path(group.path), f"{group.key}.jsonl")
            group.state = "uploaded"
            await self.save(job)
        if group.state in ("uploaded", "creating"):
            mark = f"{job.id}/{group.key}"
            found = await provider.find(_MARK, mark) if group.state == "creating" else None
            if found is None:
                group.state = "creating"
                await self.save(job)
                assert group.provider_file_id is not None
                found = await provider.create(group.provider_file_id, job.endpoint, {_MARK: mark})
            group.provider_batch_id = str(found["id"])
            group.provider_status = str(found.get("status"))
            group.state = "submitted"
            if job.status == "validating":
                job.status = "in_progress"
                job.times["in_progress_at"] = int(time.time())
            await self.save(job)
        if group.state == "submitted":
            assert group.provider_batch_id is not None
            if job.cancel_requested and group.provider_status not in TERMINAL and group.provider_status != "cancelling":
                reply = await provider.cancel(group.provider_batch_id)
            else:
                reply = await provider.retrieve(group.provider_batch_id)
            group.provider_status = str(reply.get("status"))
            if group.provider_status in TERMINAL:
                group.output_file_id = reply.get("output_file_id")
                group.error_file_id = reply.get("error_file_id")
                group.state = "downloading"
                await self.save(job)
        if group.state == "downloading":
            for file_id, suffix in ((group.output_file_id, "out"), (group.error_file_id, "err")):
                if file_id:
                    await provider.download(file_id, Path(f"{group.path}.{suffix}"))
            group.state = "finished"
            await self.save(job)

    async def _finish(self, job: BatchJob) -> None:
        if job.collected:
            return
        statuses = {g.provider_status for g in job.groups}
        if job.cancel_requested:
            final, missing = "cancelled", "batch_cancelled"
        elif "expired" in statuses:
            final, missing = "expired", "batch_expired"
        else:
            final, missing = "completed", "batch_failed"
        outputs = [Path(f"{g.path}.out") for g in job.groups if g.output_file_id]
        errors = [Path(f"{g.path}.err") for g in job.groups if g.error_file_id]
        totals = await self.collector.collect(job, outputs, errors, missing)
        if totals.failed and not totals.completed and final == "completed" and "failed" in statuses:
            final = "failed"
        job.counts["completed"], job.counts["failed"] = totals.completed, totals.failed
        if self.budgets is not None and job.reservation is not None:
            await settle(self.budgets, job.reservation, job.budget_lines, totals.spent or [])
        now = int(time.time())
        for name, path, count in (
            ("output", job.output_path, totals.completed),
            ("error", job.error_path, totals.failed),
        ):
            if count:
                file_id = f"file-{job.id.removeprefix('batch_')}-{name}"
                size = Path(path).stat().st_size
                stored = StoredFile(file_id, job.tenant, f"{job.id}_{name}.jsonl", "batch_output", size, now, path)
                await asyncio.to_thread(self.store.add_file_once, stored)
                if name == "output":
                    job.output_file_id = file_id
                else:
                    job.error_file_id = file_id
        job.status = final
        job.times.setdefault("finalizing_at", now)
        job.times[f"{final}_at"] = now
        job.collected = True
        await self.save(job)
