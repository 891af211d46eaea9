"""A batch as thrifty keeps it: the caller's view (OpenAI's batch object) and the state of each
provider batch it was split into, one JSON document rewritten before every provider call."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from thrifty.wire.openai_batches import batch_object

__all__ = ["BatchJob", "Group", "line_record_id"]

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(slots=True)
class Group:
    """The lines of one batch that go to one provider for one model: one provider batch.

    ``state`` moves pending → uploading → uploaded → creating → submitted → finished; each
    step is saved before the provider call it starts, so a restart knows what may have happened
    (a ``creating`` group may exist at the provider: it is looked up by its metadata first)."""

    key: str
    upstream: str
    """The provider's name in the config."""
    model: str
    """The upstream model the lines are sent as."""
    lines: int
    path: str
    """The provider's input file, as thrifty wrote it."""
    state: str = "pending"
    provider_file_id: str | None = None
    provider_batch_id: str | None = None
    provider_status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None


@dataclass(slots=True)
class BatchJob:
    id: str
    tenant: str
    created_at: int
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    attribution: dict[str, Any]
    index_path: str
    """One JSON line per line sent to a provider: custom_id, line number, model, cache key."""
    cached_path: str
    """The output lines answered from the cache at create time."""
    output_path: str
    error_path: str
    status: str = "validating"
    times: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    cached: int = 0
    model: str | None = None
    groups: list[Group] = field(default_factory=list)
    budget_lines: list[dict[str, Any]] = field(default_factory=list)
    """What was reserved on each budget counter, and for which models (settled as results come)."""
    reservation: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    cancel_requested: bool = False
    collected: bool = False

    @property
    def open(self) -> bool:
        return not self.collected

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BatchJob:
        values = dict(doc)
        values["groups"] = [Group(**g) for g in doc.get("groups", [])]
        return cls(**values)

    def as_openai(self) -> dict[str, Any]:
        return batch_object(
            batch_id=self.id,
            endpoint=self.endpoint,
            input_file_id=self.input_file_id,
            status=self.status,
            created_at=self.created_at,
            times=self.times,
            counts=self.counts,
            metadata=self.metadata,
            model=self.model,
            output_file_id=self.output_file_id,
            error_file_id=self.error_file_id,
        )


def line_record_id(batch_id: str, created_at: int, line: int) -> str:
    """The ledger id of a batch line's row: the same every time the line is recorded (a restart
    that records the results again writes the same ids, which the ledger ignores), time-ordered
    like ``new_record_id`` by the batch's creation time."""
    digest = int.from_bytes(hashlib.blake2b(f"{batch_id}\x1f{line}".encode(), digest_size=10).digest(), "big")
    millis = created_at * 1000
    fraction = (digest >> 62) & 0xFFF
    rand = digest & ((1 << 62) - 1)
    return f"{(millis << 80) | 0x7 << 76 | fraction << 64 | 1 << 63 | rand:032x}"
