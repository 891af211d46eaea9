"""What makes two requests the same request, and whose cache entry is whose."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import orjson

__all__ = ["exact_key", "is_sampled", "namespace_for"]

# Fields that change who asked, how the answer is delivered, or what it is billed at -- not what
# the answer is. Everything else (model, messages, tools, every sampling parameter, response
# format, stop sequences, seed, ...) is part of the key.
_NOT_IN_KEY = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)


def exact_key(body: Mapping[str, Any], client_api: str, model: str, version: str | None = None) -> str:
    """A SHA-256 of the canonical request: sorted keys, no whitespace, attribution and streaming
    left out, the public model name and the cache version (``x-thrifty-cache-version``) put in."""
    canonical = {k: v for k, v in body.items() if k not in _NOT_IN_KEY}
    canonical["model"] = model
    payload = orjson.dumps([client_api, version, canonical], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(payload).hexdigest()


def is_sampled(body: Mapping[str, Any]) -> bool:
    """Whether the answer is drawn at random each time: a temperature above 0, or none given
    (the providers' default is 1). ``top_p`` alone does not make it deterministic either."""
    temperature = body.get("temperature")
    if temperature is None:
        return True
    return not isinstance(temperature, int | float) or temperature > 0


Scope = Literal["team", "key", "user", "shared"]


def namespace_for(scope: Scope, *, team: str | None, key_id: str | None, user: str | None) -> str:
    """The narrowest sensible tenant for ``scope``: a team's entries are its own; without a team,
    the key's; without either, the anonymous tenant (a gateway with no keys has one tenant). A
    user's entries live inside their tenant: two keys' users of one name never share."""
    if scope == "shared":
        return "shared"
    tenant = f"team:{team}" if team else f"key:{key_id}" if key_id else None
    if scope == "user" and user:
        return f"{tenant}/user:{user}" if tenant else f"user:{user}"
    return tenant or "anonymous"
