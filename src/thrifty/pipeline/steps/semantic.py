"""The semantic cache step: runs after an exact-cache miss and answers a paraphrased question with
the answer stored for the first phrasing.

Only the last user message is compared by meaning. Everything else -- the model, the system
prompt, tools, earlier turns, every parameter that changes the answer, the client's API, the
cache version (``x-thrifty-cache-version``) and the embedding model -- is hashed into a context
key, and a search never leaves its (tenant namespace, context) partition: a different system
prompt or another tenant can never produce a hit. A candidate above the namespace's threshold
must then pass the near-miss guard and the verifier (see ``thrifty.semantic.matcher``).

A hit is answered like an exact hit (whole, or replayed as a stream in the client's format), at no
cost, with ``x-thrifty-cache: semantic`` and ``x-thrifty-cache-similarity``; the ledger row keeps
the similarity and the cost of the answer it reused. The same requests bypass it as bypass the
exact cache (``x-thrifty-cache: off``; sampled requests unless forced).

A provider embedder is paid for every question it embeds: each such call is a ledger row of its
own (the request's id and attribution, ``details.purpose = "semantic cache embedding"``, the
provider's ``usage.prompt_tokens`` -- thrifty's count, flagged estimated, when it reports none --
priced from the price book, unknown price: cost None). The question's row carries the embedding's
cost in ``details.semantic_cache``. Money: on a hit, the embedding is what the hit cost, so the
hit's ``savings.semantic_cache`` is the answer it reused less the embedding (and the embedding's
row has a counterfactual of 0: with no cache it would not have happened); on a miss, the
embedding row's own ``savings.semantic_cache`` is minus its cost (counterfactual 0), as routing
records its classifier. Summed over the ledger, the semantic cache's savings are net of what its
embeddings cost. The local model costs nothing and makes no row; a failed embedding, none either.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from thrifty.config.cache import CacheSpec
from thrifty.core.cache_key import exact_key, namespace_for
from thrifty.core.messages import ChatRequest
from thrifty.core.pricing import PriceBook, UnknownModelError, format_usd
from thrifty.core.routing.features import last_user_text
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.pipeline.call import Call, Next, Result, extra_call_listener, internal_call
from thrifty.pipeline.steps.cache import (
    bypass_reason,
    cache_hit_result,
    encode_entry,
    load_entry,
    note_bypass,
    settled,
    stored_stream,
)
from thrifty.semantic.matcher import compared_text, context_key
from thrifty.semantic.service import EmbeddingSpend, Lookup, SemanticService, Vector

if TYPE_CHECKING:
    from thrifty.pipeline.services import Sections, Services

__all__ = ["SIMILARITY_HEADER", "SemanticCacheStep"]

SIMILARITY_HEADER = b"x-thrifty-cache-similarity"
EMBEDDING_PURPOSE = "semantic cache embedding"

log = logging.getLogger("thrifty.cache")


@dataclass(frozen=True, slots=True)
class _Spent:
    """A recorded embedding call, as the question's own row reports it."""

    model: str
    input_tokens: int
    estimated: bool
    cost: Decimal | None
    """None: no known price (never taken for $0)."""

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "embedding_model": self.model,
            "embedding_input_tokens": self.input_tokens,
            "embedding_cost_usd": None if self.cost is None else format_usd(self.cost),
        }
        if self.estimated:
            out["embedding_usage_estimated"] = True
        return out


class SemanticCacheStep:
    def __init__(
        self,
        service: SemanticService,
        cache: CacheSpec,
        prices: PriceBook,
        *,
        counter: TokenCounter | None = None,
    ) -> None:
        """``counter`` counts a question's tokens when the provider reports no usage."""
        self.service = service
        self.cache = cache
        self.prices = prices
        self._counter = counter

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> SemanticCacheStep | None:
        """``cache.semantic``: on when the face opened its service (model and index)."""
        if services.semantic is None:
            return None
        return cls(services.semantic, sections.cache, services.prices, counter=services.counter)

    async def __call__(self, call: Call, next_step: Next) -> Result:
        exact = self.cache.exact
        spec = self.cache.semantic
        reason = bypass_reason(call, exact)
        if reason is not None:
            note_bypass(call, reason)
            return settled(await next_step(call.replace(cache_status="bypass")), "bypass")
        raw = call.body.get("messages")
        messages: list[Any] = raw if isinstance(raw, list) else []
        text = compared_text(messages)
        if not text or not text.strip() or len(text) > spec.max_question_chars:
            call.details["semantic_cache"] = {"skipped": "no question" if not text else "question too long"}
            return await next_step(call)
        who = call.attribution
        namespace = namespace_for(exact.scope, team=who.team, key_id=who.key_id, user=who.user)
        context = self._context(call, messages)
        shared = self._shareable(call, text)
        known: Vector | None = call.embeddings.get(self.service.embedder.name) if shared else None
        found = await self.service.lookup(text, namespace, context, known)
        if shared and found.vector is not None:
            call.embeddings[self.service.embedder.name] = found.vector  # the learned router reuses it
        hit: dict[str, Any] | None = None
        if found.hit and found.entry_raw is not None:
            entry = load_entry(found.entry_raw)
            if entry is not None and entry.get("api") == call.client_api:
                hit = entry
        row, spent = self._embedding_row(call, found.embedding, hit=hit is not None)
        if hit is not None:
            answered = self._hit(call, hit, found, spent, context)
            answered.records.extend(row)
            return answered
        entry_id = "s:" + hashlib.sha256(f"{context}\x00{text}".encode()).hexdigest()
        # Where this answer will be stored: feedback that it was wrong evicts it from there.
        call.details["semantic_cache"] = {**_miss_details(found, spent), "entry": entry_id, "context": context}
        result = settled(await next_step(call.replace(cache_status="miss")), "miss")
        result.records.extend(row)
        if result.status != 200 or result.cache_status != "miss" or found.vector is None:
            return result
        ttl = spec.ttl_for(namespace)
        vector = found.vector
        limit = exact.max_entry_bytes

        async def store(body: bytes, usage: Usage | None) -> None:
            value = encode_entry(call, result, body, usage, self.prices, question=text)
            if len(value) <= limit:
                await self.service.store(namespace, context, entry_id, value, vector, ttl)

        if result.events is None:
            if result.body is not None and len(result.body) <= limit:
                await store(result.body, result.usage)
            return result
        result.events = stored_stream(call, result, result.events, limit, store)
        return result

    def _context(self, call: Call, messages: list[Any]) -> str:
        """Everything but the last user message's text, hashed: the exact cache's key of the rest
        of the request (model, tools, system, every parameter, API, version) plus the embedder."""
        rest = {k: v for k, v in call.body.items() if k != "messages"}
        params = exact_key(rest, call.client_api, call.model, call.cache_version)
        return context_key(messages, params=params, embedder=self.service.embedder.name)

    @staticmethod
    def _shareable(call: Call, text: str) -> bool:
        """Whether ``call.embeddings`` (shared with the learned router, which embeds the normalised
        request's last user text) holds the vector of this very text."""
        try:
            return last_user_text(call.request) == text
        except Exception:
            return False

    def _hit(self, call: Call, entry: dict[str, Any], found: Lookup, spent: _Spent | None, context: str) -> Result:
        result = cache_hit_result(call, entry, "semantic", "semantic_cache", self.prices)
        similarity = round(found.similarity or 0.0, 4)
        call.details["similarity"] = similarity
        call.details["semantic_cache"] = {
            "similarity": similarity,
            "verifier_probability": None if found.probability is None else round(found.probability, 4),
            "lookup_ms": round(found.seconds * 1000, 3),
            "entry": found.entry_id,  # what feedback that the answer was wrong evicts
            "context": context,
            **(spent.details() if spent is not None else {}),
        }
        if spent is not None and spent.cost is not None and "semantic_cache" in call.savings:
            # The hit was not free: it cost the embedding (recorded in its own row).
            call.savings["semantic_cache"] -= spent.cost
        result.headers.append((SIMILARITY_HEADER, f"{similarity:.4f}".encode()))
        return result

    def _embedding_row(
        self, parent: Call, spend: EmbeddingSpend | None, *, hit: bool
    ) -> tuple[list[tuple[Call, Result]], _Spent | None]:
        """The provider embedding call a lookup made, as a row of its own (for the record step),
        and what it cost (priced here: the question's own row reports it)."""
        if spend is None:
            return [], None
        try:
            estimated = spend.input_tokens is None
            tokens = spend.input_tokens
            if tokens is None:
                if self._counter is None:
                    self._counter = TokenCounter()
                tokens = self._counter.count_text(spend.text, spend.model).input_tokens
            embedding = _embedding_call(parent, spend, estimated)
            if hit:
                # Charged to the hit's saving; with no cache this call would not have happened.
                embedding.trace.counterfactual_cost = Decimal(0)
            else:
                embedding.cost_listeners.append(extra_call_listener(embedding, "semantic_cache"))
            result = Result(
                status=200,
                served_model=spend.model,
                provider=urlsplit(spend.base_url).hostname,
                priced_as=spend.model,
                usage=Usage(input_tokens=tokens),
            )
        except Exception:  # the answer matters more than this row: say so, answer anyway
            log.exception("semantic cache: could not make the embedding call's row for %s", parent.request_id)
            return [], None
        cost: Decimal | None
        try:  # as the record step will price its row
            cost = self.prices.price(Usage(input_tokens=tokens), spend.model, at=embedding.ts).cost.total
        except UnknownModelError:
            cost = None  # never taken for $0
        return [(embedding, result)], _Spent(spend.model, tokens, estimated, cost)


def _embedding_call(parent: Call, spend: EmbeddingSpend, estimated: bool) -> Call:
    """The embedding call thrifty made for ``parent``: same request id and attribution."""
    call = internal_call(
        parent,
        spend.model,
        {"model": spend.model, "input": [spend.text]},
        EMBEDDING_PURPOSE,
        request=ChatRequest(model=spend.model, messages=()),
        started=time.perf_counter() - spend.seconds,
    )
    call.trace.route = "semantic cache: embedding the question"
    call.details["endpoint"] = "embeddings"
    if estimated:
        call.details["usage_estimated"] = True  # the provider reported no usage: thrifty counted it
    return call


def _miss_details(found: Lookup, spent: _Spent | None) -> dict[str, Any]:
    details: dict[str, Any] = {"reason": found.reason, "lookup_ms": round(found.seconds * 1000, 3)}
    if found.similarity is not None:
        details["best_similarity"] = round(found.similarity, 4)
    if spent is not None:
        details.update(spent.details())
    return details
