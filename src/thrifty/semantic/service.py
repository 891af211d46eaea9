"""The semantic cache's moving parts, built once from the config and run off the event loop.

``SemanticService`` holds the embedder, the vector index, the matcher (threshold, near-miss guard,
verifier) and the store of entries (the response cache the exact cache uses, or PostgreSQL beside
pgvector). Model loading, embedding, index searches and verifier runs go to a small thread pool so
the event loop never waits on them; any failure or a lookup slower than ``lookup_timeout_s`` is a
miss and a warning (at most one a minute), never a failed request.

The index maps a vector to an entry key; the entry (header + response body, as the exact cache
writes it, with the question added) lives in the response cache under that key and expires
there. A vector whose entry is gone (expired, cleared by ``thrifty cache clear``) is dropped when
a search finds it. The local index is saved beside the SQLite cache every minute and at shutdown,
with each entry's expiry, so expired vectors are also dropped without being searched for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from thrifty.config.cache import CacheSpec
from thrifty.semantic.embedder import Embedder, OnnxEmbedder, ProviderEmbedder
from thrifty.semantic.index import IndexFileError, LocalIndex, VectorIndex
from thrifty.semantic.matcher import Candidate, Decision, SemanticMatcher
from thrifty.semantic.verifier import Prepared, Verifier
from thrifty.stores.cache import ResponseCache, _Warner

__all__ = ["EmbeddingSpend", "Lookup", "SemanticService", "clear_semantic", "index_file"]

log = logging.getLogger("thrifty.cache")

T = TypeVar("T")
Vector = npt.NDArray[np.float32]

_PERSIST_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class EmbeddingSpend:
    """A paid embedding call a lookup made (a provider embedder; the local model costs nothing)."""

    model: str
    """The provider's model name: what the call is priced as."""
    text: str
    input_tokens: int | None
    """What the provider reported it billed (``usage.prompt_tokens``); None when it did not say."""
    base_url: str
    seconds: float
    """How long the provider took."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a lookup found: the hit's entry (raw header + body), or why there was none."""

    hit: bool
    reason: str
    similarity: float | None = None
    """The hit's similarity, or the best candidate's on a miss."""
    entry_raw: bytes | None = None
    vector: Vector | None = None
    """The question's embedding (None when embedding failed): what a miss is stored under."""
    probability: float | None = None
    seconds: float = 0.0
    embedding: EmbeddingSpend | None = None
    """The provider embedding call this lookup made and must be billed for, if it made one."""
    entry_id: str | None = None
    """The hit's entry: what feedback on the answer evicts."""


def index_file(cache_path: Path) -> Path:
    """Where the local index is saved: beside the SQLite cache file."""
    return cache_path.with_name(cache_path.name + ".semantic-index")


class SemanticService:
    def __init__(
        self,
        cache: CacheSpec,
        entries: ResponseCache,
        *,
        embedder: Embedder | None = None,
        index: VectorIndex | None = None,
        index_path: Path | None = None,
    ) -> None:
        """Nothing is loaded or opened here: ``start`` does it, in the server's loop."""
        self.cache = cache
        self.spec = cache.semantic
        self.entries = entries
        self.embedder: Embedder = embedder if embedder is not None else _embedder(cache)
        self.index: VectorIndex | None = index
        self.index_path = index_path
        self.matcher: SemanticMatcher | None = None
        self.verifier: _MemoVerifier | None = None
        self._owns_entries = False
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="thrifty-semantic")
        self._warn = _Warner()
        self._expiry: list[tuple[float, str, str, str]] = []
        self._expires: dict[tuple[str, str, str], float] = {}
        self._meta = threading.Lock()  # guards the expiry heap and map (loop and worker threads)
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, cache: CacheSpec, local_entries: ResponseCache, cache_path: Path) -> SemanticService:
        """With a local index, entries go to ``local_entries`` (the exact cache's store: SQLite,
        or Redis) and the index is saved beside ``cache_path``; with pgvector, both live in
        PostgreSQL, so every gateway sharing the index can read the answers it points to."""
        if cache.semantic.index == "local":
            return cls(cache, local_entries, index_path=index_file(cache_path))
        from thrifty.stores.cache_pg import PgResponseCache

        service = cls(cache, PgResponseCache(cache.semantic.index))
        service._owns_entries = True
        return service

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model(s) and the index now, not on a first request (in a worker thread)."""
        await self._run(self._load)
        if self.index_path is not None:
            self._task = asyncio.create_task(self._maintain(), name="thrifty-semantic-persist")

    def _load(self) -> None:
        verifier = None
        if self.spec.verifier:
            encoder = self.embedder if isinstance(self.embedder, OnnxEmbedder) else OnnxEmbedder()
            verifier = self.verifier = _MemoVerifier(encoder)
            verifier.prepare(["warm up the verifier"])
            _ = verifier.model
        if isinstance(self.embedder, OnnxEmbedder):
            self.embedder.load()
            self.embedder.embed(["warm up the embedder"])
        namespaces = set(self.spec.namespaces) | set(self.cache.exact.namespaces)
        thresholds = {ns: self.spec.threshold_for(ns, self.cache.exact) for ns in namespaces}
        self.matcher = SemanticMatcher(
            self.spec.threshold, thresholds=thresholds, guard=self.spec.guard, verifier=verifier
        )
        if self.index is None:
            self.index = self._open_index()

    def _open_index(self) -> VectorIndex:
        dim = self.embedder.dim
        if self.spec.index != "local":
            from thrifty.semantic.pgvector import PgVectorIndex
            from thrifty.stores.cache_pg import with_connect_timeout

            return PgVectorIndex(with_connect_timeout(self.spec.index), dim)
        path = self.index_path
        if path is None or not path.exists():
            return LocalIndex(dim)
        try:
            index = LocalIndex.load(path)
        except IndexFileError as error:
            log.warning("semantic cache: starting with an empty index: %s", error)
            return LocalIndex(dim)
        if index.dim != dim:
            log.warning("semantic cache: %s holds %d-dim vectors, not %d; starting empty", path, index.dim, dim)
            return LocalIndex(dim)
        self._load_expiry(index, path)
        return index

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self._run(self._persist)
        except Exception as error:
            log.warning("semantic cache: could not save the index: %s: %s", type(error).__name__, error)
        close = getattr(self.index, "close", None)
        if close is not None:
            await self._run(close)
        if self._owns_entries:
            await self.entries.close()
        self._executor.shutdown(wait=False)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(_PERSIST_EVERY_S)
            try:
                await self._run(self._persist)
            except Exception as error:
                self._warn("semantic cache: could not save the index", error)

    def _persist(self) -> None:
        """Drop expired vectors; save a local index that changed (with each entry's expiry)."""
        index = self.index
        if not isinstance(index, LocalIndex) or self.index_path is None:
            return
        now = time.time()
        expired = []
        with self._meta:
            while self._expiry and self._expiry[0][0] <= now:
                expires, namespace, context, entry_id = heapq.heappop(self._expiry)
                if self._expires.get((namespace, context, entry_id)) == expires:
                    del self._expires[(namespace, context, entry_id)]
                    expired.append((namespace, context, entry_id))
        for namespace, context, entry_id in expired:
            index.remove(namespace, context, entry_id)
            self._dirty = True
        if not self._dirty:
            return
        self._dirty = False
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        index.save(self.index_path)
        with self._meta:
            expiry = [[expires, *key] for key, expires in self._expires.items()]
        sidecar = self.index_path.with_name(self.index_path.name + ".expiry")
        temporary = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        temporary.write_bytes(orjson.dumps(expiry))
        os.replace(temporary, sidecar)

    def _load_expiry(self, index: LocalIndex, path: Path) -> None:
        sidecar = path.with_name(path.name + ".expiry")
        try:
            rows = orjson.loads(sidecar.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        now = time.time()
        for expires, namespace, context, entry_id in rows:
            if expires <= now:
                index.remove(namespace, context, entry_id)
                self._dirty = True
            else:
                self._track(namespace, context, entry_id, float(expires))

    def _track(self, namespace: str, context: str, entry_id: str, expires: float) -> None:
        with self._meta:
            self._expires[(namespace, context, entry_id)] = expires
            heapq.heappush(self._expiry, (expires, namespace, context, entry_id))

    # -- requests ------------------------------------------------------------------------------

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def lookup(self, text: str, namespace: str, context: str, vector: Vector | None = None) -> Lookup:
        """Never raises: a failure or a time-out is a miss (with the vector, when it was made)."""
        started = time.perf_counter()
        holder: list[Vector] = [vector] if vector is not None else []
        paid: list[EmbeddingSpend] = []  # filled in the worker thread once the provider answered
        try:
            found = await asyncio.wait_for(
                self._lookup(text, namespace, context, holder, paid, started), self.spec.lookup_timeout_s
            )
            return dataclasses.replace(found, embedding=paid[0]) if paid else found
        except TimeoutError:
            reason = f"lookup took over {self.spec.lookup_timeout_s} s"
            self._warn("semantic cache: a lookup timed out", TimeoutError(reason))
        except Exception as error:
            reason = f"backend error: {type(error).__name__}"
            self._warn("semantic cache: lookup failed", error)
        return Lookup(
            False,
            reason,
            vector=holder[0] if holder else None,
            seconds=time.perf_counter() - started,
            embedding=paid[0] if paid else None,  # a search that failed after a paid embedding
        )

    def _embed_and_search(
        self, text: str, namespace: str, context: str, holder: list[Vector], paid: list[EmbeddingSpend]
    ) -> list[tuple[str, float]]:
        if not holder:
            verifier = self.verifier
            embedder = self.embedder
            if verifier is not None and verifier.encoder is embedder:
                # One model run gives both the vector and the verifier's view of the question.
                holder.append(verifier.prepare([text])[0].sentence)
            elif isinstance(embedder, ProviderEmbedder):  # a paid call: the step records it
                began = time.perf_counter()
                vectors, tokens = embedder.embed_with_usage([text])
                holder.append(vectors[0])
                seconds = time.perf_counter() - began
                paid.append(EmbeddingSpend(embedder.model, text, tokens, embedder.base_url, seconds))
            else:
                holder.append(self.embedder.embed([text])[0])
        assert self.index is not None, "the semantic cache has not started"
        return self.index.search(namespace, context, holder[0], self.spec.candidates)

    async def _lookup(
        self,
        text: str,
        namespace: str,
        context: str,
        holder: list[Vector],
        paid: list[EmbeddingSpend],
        started: float,
    ) -> Lookup:
        matcher = self.matcher
        assert matcher is not None, "the semantic cache has not started"
        found = await self._run(self._embed_and_search, text, namespace, context, holder, paid)
        threshold = matcher.threshold_for(namespace)
        candidates: list[Candidate] = []
        raws: dict[str, bytes] = {}
        for entry_id, similarity in found:
            if similarity < threshold:
                continue
            raw = await self.entries.get(namespace, entry_id)
            question = _question(raw) if raw is not None else None
            if raw is None or question is None:  # expired or cleared: forget the vector too
                await self._forget(namespace, context, entry_id)
                continue
            raws[entry_id] = raw
            candidates.append(Candidate(entry_id, question, similarity))
        vector = holder[0]
        if not candidates:
            best = max((s for _, s in found), default=None)
            reason = "no candidates" if best is None else f"below threshold: {best:.4f} < {threshold:.4f}"
            if best is not None and best >= threshold:
                reason = "candidates expired"
            return Lookup(False, reason, best, vector=vector, seconds=time.perf_counter() - started)
        decision: Decision = await self._run(functools.partial(matcher.decide, namespace=namespace), text, candidates)
        seconds = time.perf_counter() - started
        if not decision.hit or decision.entry_id is None:
            return Lookup(False, decision.reason, decision.similarity, None, vector, decision.probability, seconds)
        raw_hit = raws[decision.entry_id]
        return Lookup(
            True, "hit", decision.similarity, raw_hit, vector, decision.probability, seconds, entry_id=decision.entry_id
        )

    async def _forget(self, namespace: str, context: str, entry_id: str) -> None:
        index = self.index
        assert index is not None
        await self._run(index.remove, namespace, context, entry_id)
        with self._meta:
            self._expires.pop((namespace, context, entry_id), None)
        self._dirty = True

    async def evict(self, namespace: str, context: str | None, entry_id: str) -> bool:
        """Drop one entry (an answer judged wrong): the entry everywhere its store is shared, and
        its vector from the index (when the context is known; else a lookup that finds the vector
        without its entry forgets it then). Whether the entry was there."""
        dropped = await self.entries.delete(namespace, entry_id)
        if context is not None and self.index is not None:
            await self._forget(namespace, context, entry_id)
        return dropped

    async def store(
        self, namespace: str, context: str, entry_id: str, value: bytes, vector: Vector, ttl_s: int
    ) -> None:
        """The entry first, then its vector (a vector never points to nothing for long)."""
        try:
            await self.entries.put(namespace, entry_id, value, ttl_s)
            index = self.index
            assert index is not None
            await self._run(index.add, namespace, context, entry_id, vector)
            if isinstance(index, LocalIndex):
                self._track(namespace, context, entry_id, time.time() + ttl_s)
                self._dirty = True
        except Exception as error:
            self._warn("semantic cache: storing an answer failed", error)


class _MemoVerifier(Verifier):
    """The verifier, remembering the questions it prepared lately: the question a lookup embedded
    and the stored questions that keep being hit are not run through the model again."""

    def __init__(self, encoder: OnnxEmbedder, size: int = 256) -> None:
        super().__init__(encoder)
        self._memo: OrderedDict[str, Prepared] = OrderedDict()
        self._size = size
        self._memo_lock = threading.Lock()

    def prepare(self, texts: Sequence[str]) -> list[Prepared]:
        with self._memo_lock:
            known = {t: self._memo[t] for t in texts if t in self._memo}
            for text in known:
                self._memo.move_to_end(text)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            made = dict(zip(missing, super().prepare(missing), strict=True))
            with self._memo_lock:
                for text, prepared in made.items():
                    self._memo[text] = prepared
                while len(self._memo) > self._size:
                    self._memo.popitem(last=False)
            known.update(made)
        return [known[t] for t in texts]


def _question(raw: bytes) -> str | None:
    head, newline, _ = raw.partition(b"\n")
    if not newline:
        return None
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    question = header.get("question") if isinstance(header, dict) else None
    return question if isinstance(question, str) else None


def _embedder(cache: CacheSpec) -> Embedder:
    spec = cache.semantic.embedder
    if spec.kind == "local":
        return OnnxEmbedder()
    if spec.base_url is None or spec.model is None or spec.dim is None:  # the config validates it
        raise ValueError("a provider embedder needs base_url, model and dim")
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    return ProviderEmbedder(spec.base_url, spec.model, dim=spec.dim, api_key=key, timeout=spec.timeout_s)


def clear_semantic(cache: CacheSpec, cache_path: Path, namespace: str | None = None) -> tuple[int, int]:
    """``thrifty cache clear`` for the semantic cache: (entries, vectors) dropped. Entries of a
    local index live in the exact cache's store, which the caller clears (0 here); with pgvector
    both tables are cleared. Running gateways drop a vector whose entry is gone when they meet it."""
    spec = cache.semantic
    if spec.index != "local":
        from thrifty.semantic.pgvector import PgVectorIndex
        from thrifty.stores.cache_pg import PgResponseCache, with_connect_timeout

        dim = spec.embedder.dim if spec.embedder.kind == "provider" and spec.embedder.dim else 384
        entries = PgResponseCache(spec.index).clear(namespace)
        index = PgVectorIndex(with_connect_timeout(spec.index), dim)
        try:
            if namespace is not None:
                return entries, index.remove_namespace(namespace)
            vectors = len(index)
            index.clear()
            return entries, vectors
        finally:
            index.close()
    path = index_file(cache_path)
    if not path.exists():
        return 0, 0
    sidecar = path.with_name(path.name + ".expiry")
    try:
        local = LocalIndex.load(path)
    except IndexFileError:
        path.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return 0, 0
    if namespace is None:
        vectors = len(local)
        path.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        return 0, vectors
    vectors = local.remove_namespace(namespace)
    local.save(path)
    return 0, vectors
