"""The ``batch:`` section: where uploaded files and batch state live, how often providers are
polled, and the limits an input file is held to."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchSpec"]


class BatchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """``/v1/files`` and ``/v1/batches`` through the gateway."""
    dir: str | None = None
    """Uploaded input files and assembled output files; default: a ``batches`` folder beside the
    ledger's journal."""
    poll_interval_s: Annotated[float, Field(gt=0)] = 30.0
    """How often the process holding the lease asks providers about their batches."""
    lease_s: Annotated[float, Field(gt=0)] = 60.0
    """One process polls at a time; another takes over this long after it stops renewing."""
    max_file_bytes: Annotated[int, Field(ge=1)] = 200 * 1024 * 1024
    """An upload larger than this is refused (413): OpenAI's limit for a batch input file."""
    max_lines: Annotated[int, Field(ge=1)] = 50_000
    """A batch of more lines is refused, naming the limit: OpenAI's requests per batch."""
