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
"""

from __future__ import annotations

import hashlib
from typing import Any

from thrifty.config.cache import CacheSpec
from thrifty.core.cache_key import exact_key, is_sampled, namespace_for
from thrifty.core.pricing import PriceBook
from thrifty.core.routing.features import last_user_text
from thrifty.core.usage import Usage
from thrifty.pipeline.cache import cache_hit_result, encode_entry, load_entry, stored_stream
from thrifty.pipeline.call import Call, Next, Result
from thrifty.semantic.matcher import compared_text, context_key
from thrifty.semantic.service import Lookup, SemanticService, Vector

__all__ = ["SIMILARITY_HEADER", "SemanticCacheStep"]

SIMILARITY_HEADER = b"x-thrifty-cache-similarity"


class SemanticCacheStep:
    def __init__(self, service: SemanticService, cache: CacheSpec, prices: PriceBook) -> None:
        self.service = service
        self.cache = cache
        self.prices = prices

    async def __call__(self, call: Call, next_step: Next) -> Result:
        exact = self.cache.exact
        spec = self.cache.semantic
        directive = call.cache_directive
        if directive == "off" or (exact.sampled == "bypass" and directive != "force" and is_sampled(call.body)):
            call.cache_status = "bypass"
            return await next_step(call)
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
        if found.hit and found.entry_raw is not None:
            entry = load_entry(found.entry_raw)
            if entry is not None and entry.get("api") == call.client_api:
                return self._hit(call, entry, found)
        call.cache_status = "miss"
        call.details["semantic_cache"] = _miss_details(found)
        result = await next_step(call)
        if result.status != 200 or call.cache_status != "miss" or found.vector is None:
            return result
        entry_id = "s:" + hashlib.sha256(f"{context}\x00{text}".encode()).hexdigest()
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

    def _hit(self, call: Call, entry: dict[str, Any], found: Lookup) -> Result:
        result = cache_hit_result(call, entry, "semantic", "semantic_cache", self.prices)
        similarity = round(found.similarity or 0.0, 4)
        call.details["similarity"] = similarity
        call.details["semantic_cache"] = {
            "similarity": similarity,
            "verifier_probability": None if found.probability is None else round(found.probability, 4),
            "lookup_ms": round(found.seconds * 1000, 3),
        }
        result.headers.append((SIMILARITY_HEADER, f"{similarity:.4f}".encode()))
        return result


def _miss_details(found: Lookup) -> dict[str, Any]:
    details: dict[str, Any] = {"reason": found.reason, "lookup_ms": round(found.seconds * 1000, 3)}
    if found.similarity is not None:
        details["best_similarity"] = round(found.similarity, 4)
    return details
