"""Feedback on an answer, acted on: a verdict that a call's answer was wrong evicts the cache
entry it came from (or was stored as) at once, so no one is served it again, and every verdict is
kept as a label (``thrifty cache calibrate --from-feedback`` reads the semantic hits'). Both faces
use it: the gateway's ``POST /v1/thrifty/feedback`` and the in-process ``Thrifty.feedback``.

A verdict speaks for one tenant's calls only: a request id of another tenant (or none known) is
the same 404, so ids cannot be probed and no tenant can evict another's entries."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from thrifty.config.cache import CacheSpec
from thrifty.core.cache_key import namespace_for
from thrifty.core.feedback import FeedbackRequest, answered_row, row_tenant
from thrifty.core.ledger import LedgerRecord
from thrifty.errors import NotFound
from thrifty.stores.ledger.feedback import FeedbackRow, FeedbackStore

if TYPE_CHECKING:
    from thrifty.semantic.service import SemanticService  # numpy and onnxruntime: only when it is on
    from thrifty.stores.cache import ResponseCache

__all__ = ["FeedbackOutcome", "FeedbackService", "UnknownRequest"]

log = logging.getLogger("thrifty.feedback")


class UnknownRequest(NotFound):
    """No call of this tenant has that request id (404)."""


@dataclass(frozen=True, slots=True)
class FeedbackOutcome:
    request_id: str
    verdict: str
    cache_status: str | None
    evicted: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "thrifty.feedback",
            "request_id": self.request_id,
            "verdict": self.verdict,
            "cache_status": self.cache_status,
            "evicted": list(self.evicted),
        }


class FeedbackService:
    """``wait_s``: how long a verdict waits for its call's row to reach the ledger (rows are
    written a moment after the answer, by the journal's writer), polling every ``poll_s``."""

    def __init__(
        self,
        store: FeedbackStore,
        cache: CacheSpec,
        response_cache: ResponseCache | None,
        semantic: SemanticService | None,
        *,
        wait_s: float = 2.0,
        poll_s: float = 0.05,
    ) -> None:
        self.store = store
        self.cache = cache
        self.response_cache = response_cache
        self.semantic = semantic
        self.wait_s = wait_s
        self.poll_s = poll_s

    async def submit(self, feedback: FeedbackRequest, tenant: str | None) -> FeedbackOutcome:
        """``tenant``: the caller's (``Binding.tenant``); None for a gateway without keys or a
        client wrapped without a team, which are one tenant."""
        row = await self._answered(feedback.request_id)
        if row is None or (tenant is not None and row_tenant(row) != tenant):
            raise UnknownRequest(f"request_id: no call {feedback.request_id!r} of yours is in the ledger")
        namespace = self._namespace(row)
        evicted = await self._evict_all(row) if feedback.verdict == "wrong" else ()
        semantic = row.details.get("semantic_cache")
        similarity = row.details.get("similarity")
        if similarity is None and isinstance(semantic, dict):
            similarity = semantic.get("similarity")
        stored = FeedbackRow(
            request_id=feedback.request_id,
            ts=datetime.now(UTC),
            verdict=feedback.verdict,
            tenant=row_tenant(row),
            record_id=row.id,
            cache_status=row.cache_status,
            namespace=namespace,
            similarity=float(similarity) if isinstance(similarity, int | float) else None,
            route=row.route,
            served_model=row.served_model,
            evicted=evicted,
            note=feedback.note,
        )
        await asyncio.to_thread(self.store.put, stored)
        log.info(
            "feedback: %s on %s (%s)%s",
            feedback.verdict,
            feedback.request_id,
            row.cache_status or "-",
            f", evicted {', '.join(evicted)}" if evicted else "",
        )
        return FeedbackOutcome(feedback.request_id, feedback.verdict, row.cache_status, evicted)

    async def _answered(self, request_id: str) -> LedgerRecord | None:
        deadline = time.monotonic() + self.wait_s
        while True:
            row = answered_row(await asyncio.to_thread(self.store.rows_of, request_id))
            if row is not None or time.monotonic() >= deadline:
                return row
            await asyncio.sleep(self.poll_s)

    async def _evict_all(self, row: LedgerRecord) -> tuple[str, ...]:
        """Every entry holding this answer: what the call stored it as and, for a hit, what the
        call it came from stored (a wrong answer an exact hit served is also in the semantic cache
        under the first call's question), so it is served nowhere again."""
        evicted = set(await self._evict(row))
        source_id = row.details.get("cached_from")
        if isinstance(source_id, str) and source_id != row.request_id:
            source = answered_row(await asyncio.to_thread(self.store.rows_of, source_id))
            if source is not None and row_tenant(source) == row_tenant(row):
                evicted.update(await self._evict(source))
        return tuple(sorted(evicted))

    def _namespace(self, row: LedgerRecord) -> str:
        return namespace_for(self.cache.exact.scope, team=row.team, key_id=row.key_id, user=row.user)

    async def _evict(self, row: LedgerRecord) -> list[str]:
        """The entries of one row (its exact key, its semantic entry), dropped."""
        namespace = self._namespace(row)
        evicted: list[str] = []
        key = row.details.get("cache_key")
        if (
            isinstance(key, str)
            and self.response_cache is not None
            and await self.response_cache.delete(namespace, key)
        ):
            evicted.append("exact")
        semantic = row.details.get("semantic_cache")
        if isinstance(semantic, dict) and self.semantic is not None:
            entry, context = semantic.get("entry"), semantic.get("context")
            if isinstance(entry, str):
                where = context if isinstance(context, str) else None
                if await self.semantic.evict(namespace, where, entry):
                    evicted.append("semantic")
        return evicted
