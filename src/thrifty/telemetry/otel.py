"""Spans to an OTLP/HTTP collector (``otel:``), batched, off the request path.

``observe`` (on the hot path, from the ledger writer) only appends the record to a bounded queue;
a background task turns batches of records into one ``ExportTraceServiceRequest`` each
(``spans.encode_spans``) and POSTs it to ``{endpoint}/v1/traces`` with aiohttp, retrying with a
doubling pause. A full queue drops the new span, a batch that failed every try is dropped: both
are counted (``thrifty_otel_dropped_spans_total{reason}``), and neither ever waits a request: an
unreachable collector costs a request nothing but the append."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

import aiohttp

from thrifty.config.telemetry import OtelSpec
from thrifty.core.ledger import LedgerRecord
from thrifty.telemetry.spans import encode_spans

if TYPE_CHECKING:
    from thrifty.telemetry.metrics import Metrics

__all__ = ["SpanExporter"]

log = logging.getLogger("thrifty.otel")

_ALERT_STATUS = "budget_alert"
_PERMANENT = frozenset({400, 401, 403, 404, 405, 413, 415})
"""Answers that another try would only repeat (OTLP: 429, 502, 503 and 504 are the retryable ones)."""


class SpanExporter:
    def __init__(self, spec: OtelSpec, metrics: Metrics | None = None) -> None:
        self.spec = spec
        self.url = f"{spec.endpoint}/v1/traces"
        self._headers = {**spec.headers, "content-type": "application/x-protobuf"}
        self._metrics = metrics
        self._queue: deque[LedgerRecord] = deque()
        self._content: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Prompts and answers by request id, only with ``export_content`` (bounded like the queue)."""
        self._wake: asyncio.Event | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._dropped: dict[str, Any] = {}
        self._memo: dict[tuple[Any, ...], bytes] = {}
        """Encoded attributes that repeat from span to span (``spans.encode_spans``)."""
        self.dropped = 0
        self.exported = 0

    @property
    def export_content(self) -> bool:
        return self.spec.export_content

    def observe(self, record: LedgerRecord) -> None:
        """Queue the record's span: an append, or a drop counted when the queue is full."""
        if record.status == _ALERT_STATUS:
            return
        queue = self._queue
        if len(queue) >= self.spec.queue_size:
            self._drop(1, "queue_full")
            return
        queue.append(record)
        if len(queue) >= self.spec.batch_size:
            wake = self._wake
            if wake is not None and not wake.is_set() and threading.get_ident() == self._loop_thread:
                wake.set()  # a full batch goes now, not at the next interval

    def content(self, request_id: str, key: str, value: Any) -> None:
        """A call's prompt (``input``) or answer (``output``) for its span (``export_content``)."""
        entry = self._content.get(request_id)
        if entry is None:
            entry = self._content[request_id] = {}
            while len(self._content) > self.spec.queue_size:
                self._content.popitem(last=False)
        entry[key] = value

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._loop_thread = threading.get_ident()
        timeout = aiohttp.ClientTimeout(total=self.spec.timeout_s, connect=min(self.spec.timeout_s, 3.0))
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._run(), name="thrifty-otel-export")

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), then stop."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(attempts=1), timeout)
            await self._session.close()
            self._session = None
        if self._queue:
            self._drop(len(self._queue), "shutdown")
            self._queue.clear()

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.spec.flush_interval_s)
            wake.clear()
            try:
                await self._drain(self.spec.max_attempts)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours must not end the exporter
                log.exception("otel: export failed")

    async def _drain(self, attempts: int) -> None:
        queue = self._queue
        while queue:
            batch = [queue.popleft() for _ in range(min(self.spec.batch_size, len(queue)))]
            content = None
            if self._content:
                content = {}
                for record in batch:  # a request's rows (a lost attempt, the answer) all get its content
                    if record.request_id and record.request_id not in content:
                        content[record.request_id] = self._content.pop(record.request_id, {})
            body = encode_spans(batch, self.spec.service_name, content, self._memo)
            if await self._send(body, attempts):
                self.exported += len(batch)
                if self._metrics is not None:
                    self._metrics.exported_spans.inc(len(batch))
            else:
                self._drop(len(batch), "export_failed")

    async def _send(self, body: bytes, attempts: int) -> bool:
        session = self._session
        assert session is not None
        pause, why = 0.5, ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(pause)
                pause *= 2
            try:
                async with session.post(self.url, data=body, headers=self._headers) as response:
                    if response.status < 300:
                        return True
                    why = f"{self.url} answered {response.status}"
                    if response.status in _PERMANENT:
                        log.warning("otel: %s; spans dropped", why)
                        return False
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                why = f"{self.url}: {type(error).__name__}: {error}"
            log.debug("otel: export try %d failed: %s", attempt + 1, why)
        log.warning("otel: export failed %d time(s), spans dropped: %s", attempts, why)
        return False

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        if self._metrics is None:
            return
        child = self._dropped.get(reason)
        if child is None:
            child = self._dropped[reason] = self._metrics.dropped_spans.labels(reason)
        child.inc(count)
