"""Everything one simulator remembers, created by ``create_app``: nothing lives at module level."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator.common import IdMaker
from thrifty.simulator.config import SimulatorConfig
from thrifty.simulator.faults import FaultBook, Stats
from thrifty.simulator.files import FileStore
from thrifty.simulator.prompt_cache import ExpiringStore
from thrifty.simulator.ratelimits import Limiter
from thrifty.simulator.text import TextBank

if TYPE_CHECKING:
    from thrifty.simulator.batch_record import BatchRecord

__all__ = ["Simulator"]

T = TypeVar("T")
_MEMO_BODY_LIMIT = 16 * 1024
_MEMO_ENTRIES = 1024


class Simulator:
    def __init__(self, config: SimulatorConfig, counter: TokenCounter | None = None) -> None:
        self.config = config
        self.counter = counter if counter is not None else TokenCounter()
        self.ids = IdMaker()
        self.store = ExpiringStore(config.cache_max_entries)
        self.faults = FaultBook(config.faults)
        self.stats = Stats()
        self.limiter = Limiter(config.rate_limits)
        self.files = FileStore(self.ids)
        self.batches: dict[str, BatchRecord] = {}
        self._bank: TextBank | None = None
        self.warmed = False
        self.embedding_bases: dict[int, tuple[int, int]] = {}
        """Per vector size: a fixed unit vector and its sign mask (see ``embeddings``)."""
        self.parsed: dict[bytes, Any] = {}
        """Parsed chat and messages requests by their exact body: an identical body (a benchmark
        replaying requests) skips the parse and the count. Bounded; bodies over 16 KB never enter."""

    def remembered(self, key: bytes, parse: Callable[[], T]) -> T:
        """``parse()``, or the earlier result for the same ``key`` (an exact request body)."""
        if len(key) > _MEMO_BODY_LIMIT:
            return parse()
        found = self.parsed.get(key)
        if found is None:
            found = parse()
            if len(self.parsed) >= _MEMO_ENTRIES:
                self.parsed.clear()
            self.parsed[key] = found
        return cast("T", found)

    @property
    def bank(self) -> TextBank:
        bank = self._bank
        if bank is None:
            bank = self._bank = TextBank(self.config.answer_min_tokens, self.config.answer_max_tokens)
        return bank

    def warm(self) -> None:
        """Load both vocabularies and check the answer words against them (about a second, once)."""
        if self.warmed:
            return
        encodings = (self.counter.encoding_for("gpt-4o"), self.counter.encoding_for("gpt-4"))
        self._bank = TextBank(self.config.answer_min_tokens, self.config.answer_max_tokens, encodings)
        self.warmed = True

    def reset(self) -> None:
        """Forget caches, files, batches, queued faults, counters and rate-limit buckets."""
        self.store.clear()
        self.parsed.clear()
        self.faults.reset()
        self.stats.reset()
        self.limiter.clear()
        self.files.clear()
        self.batches.clear()
