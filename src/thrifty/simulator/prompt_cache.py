"""Prompt caching as the two providers bill it.

OpenAI (automatic): a prompt of 1024 tokens or more is cut into 128-token steps; each step
boundary's prefix is hashed (a chain of BLAKE2b digests over the canonical token sequence) and
remembered for a TTL. ``cached_tokens`` is the longest boundary an earlier request of the same
model already sent.

Anthropic (``cache_control`` breakpoints): the request is a sequence of blocks (tools, system
blocks, message content blocks); a breakpoint's prefix runs through its block. A breakpoint whose
prefix (or, looking back up to 20 blocks, an earlier block boundary's prefix) was written earlier
and is still live is a cache READ (which refreshes it); a later breakpoint whose prefix reaches the
model's minimum is a cache WRITE, billed per TTL. Block token counts are scaled so the prefixes
add up to the request's counted total.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import tiktoken

from thrifty.simulator.common import ApiError

__all__ = [
    "AnthropicCacheUsage",
    "Block",
    "ExpiringStore",
    "anthropic_blocks",
    "anthropic_cache_usage",
    "openai_cached_tokens",
    "openai_canonical_tokens",
]

_IMAGE_TOKENS = 1568  # Anthropic's cost of a full-size image (about 1.15 megapixels)
_MAX_BREAKPOINTS = 4


class ExpiringStore:
    """Keys with an expiry, at most ``limit`` of them; the least recently written or read go first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def live(self, key: bytes, now: float) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry[0] <= now:
            del self._entries[key]
            return False
        return True

    def put(self, key: bytes, ttl: float, now: float) -> None:
        """Store or refresh ``key`` for ``ttl`` seconds (never shortening a longer life)."""
        entry = self._entries.get(key)
        expiry = now + ttl
        if entry is not None:
            if entry[0] > expiry and entry[0] > now:
                expiry, ttl = entry[0], entry[1]
            self._entries.move_to_end(key)
        self._entries[key] = (expiry, ttl)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def touch(self, key: bytes, now: float) -> None:
        """A read: the entry lives its own TTL again from now."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (now + entry[1], entry[1])
            self._entries.move_to_end(key)

    def clear(self) -> None:
        self._entries.clear()


# --- OpenAI -------------------------------------------------------------------------------------


def openai_canonical_tokens(encoding: tiktoken.Encoding, data: Mapping[str, Any], length: int) -> list[int]:
    """The request as one token sequence (tools, then each message's role and content), cut or
    padded (with a framing token) to ``length``, the counted prompt size."""
    encode = encoding.encode_ordinary
    tokens: list[int] = []
    tools = data.get("tools")
    if tools:
        tokens += encode(orjson.dumps(tools).decode())
    for message in data.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        tokens += encode(role if isinstance(role, str) else "user")
        name = message.get("name")
        if isinstance(name, str):
            tokens += encode(name)
        content = message.get("content")
        if isinstance(content, str):
            tokens += encode(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    tokens += encode(part["text"])
                else:
                    tokens += encode(orjson.dumps(part).decode())
        calls = message.get("tool_calls")
        if calls:
            tokens += encode(orjson.dumps(calls).decode())
        if len(tokens) >= length:
            break
    if len(tokens) >= length:
        del tokens[length:]
    else:
        tokens.extend([0] * (length - len(tokens)))
    return tokens


def openai_cached_tokens(
    store: ExpiringStore,
    namespace: bytes,
    tokens: Sequence[int],
    *,
    minimum: int,
    step: int,
    ttl: float,
    now: float,
) -> int:
    """Look up the longest live step prefix, then remember every step prefix of this prompt."""
    steps = len(tokens) // step
    first = -(-minimum // step)
    if steps < first:
        return 0
    raw = array("I", tokens).tobytes()
    width = step * 4
    digest = hashlib.blake2b(b"openai\0" + namespace, digest_size=16).digest()
    keys: list[bytes] = []
    for k in range(1, steps + 1):
        digest = hashlib.blake2b(digest + raw[(k - 1) * width : k * width], digest_size=16).digest()
        if k >= first:
            keys.append(digest)
    cached = 0
    for index in range(len(keys) - 1, -1, -1):
        if store.live(keys[index], now):
            cached = (first + index) * step
            break
    for key in keys:
        store.put(key, ttl, now)
    return cached


# --- Anthropic ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Block:
    tokens: int
    digest: bytes
    """Identifies the block's content (not its cache_control)."""
    ttl: str | None = None
    """``5m`` or ``1h`` when the block is a cache breakpoint."""


@dataclass(frozen=True, slots=True)
class AnthropicCacheUsage:
    input_tokens: int
    cache_read: int
    write_5m: int
    write_1h: int

    @property
    def cache_creation(self) -> int:
        return self.write_5m + self.write_1h


def anthropic_blocks(encoding: tiktoken.Encoding, data: Mapping[str, Any]) -> list[Block]:
    """The request's blocks in cache order (tools, system, messages); validates cache_control."""
    encode = encoding.encode_ordinary
    blocks: list[Block] = []
    seen: list[tuple[str, str]] = []  # (where, ttl) of each breakpoint

    def add(tokens: int, payload: bytes, holder: Any, where: str) -> None:
        ttl = _breakpoint(holder, where) if isinstance(holder, Mapping) else None
        if ttl is not None:
            seen.append((where, ttl))
        blocks.append(Block(tokens, hashlib.blake2b(payload, digest_size=16).digest(), ttl))

    tools = data.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            if isinstance(tool, Mapping):
                body = {k: v for k, v in tool.items() if k != "cache_control"}
                packed = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
                add(len(encode(packed.decode())), b"tool\0" + packed, tool, f"tools.{i}")
    system = data.get("system")
    if isinstance(system, str) and system:
        add(3 + len(encode(system)), b"system\0" + system.encode(), None, "system")
    elif isinstance(system, list):
        for i, part in enumerate(system):
            if isinstance(part, Mapping):
                text = part.get("text")
                tokens = len(encode(text)) if isinstance(text, str) else 0
                add(tokens + (3 if i == 0 else 0), b"system\0" + _content_bytes(part), part, f"system.{i}")
    for m, message in enumerate(data.get("messages") or ()):
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role"))
        framing = 3 + len(encode(role))
        content = message.get("content")
        if isinstance(content, str):
            add(framing + len(encode(content)), role.encode() + b"\0" + content.encode(), None, f"messages.{m}")
        elif isinstance(content, list):
            for i, part in enumerate(content):
                if isinstance(part, Mapping):
                    tokens = _part_tokens(encode, part) + (framing if i == 0 else 0)
                    add(tokens, role.encode() + b"\0" + _content_bytes(part), part, f"messages.{m}.content.{i}")
    automatic = data.get("cache_control")
    if automatic is not None and blocks:
        ttl = _breakpoint({"cache_control": automatic}, "")
        if ttl is not None and blocks[-1].ttl is None:
            last = blocks[-1]
            blocks[-1] = Block(last.tokens, last.digest, ttl)
            seen.append(("cache_control", ttl))
    if len(seen) > _MAX_BREAKPOINTS:
        message = f"A maximum of {_MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(seen)}."
        raise ApiError(400, message)
    saw_5m = False
    for where, ttl in seen:
        if ttl == "5m":
            saw_5m = True
        elif saw_5m:
            raise ApiError(
                400,
                f"{where}.cache_control: a ttl='1h' cache_control block must not come after a ttl='5m' "
                "cache_control block (longer TTLs must come first)",
            )
    return blocks


def _breakpoint(holder: Mapping[str, Any], where: str) -> str | None:
    control = holder.get("cache_control")
    if control is None:
        return None
    path = f"{where}.cache_control" if where else "cache_control"
    if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
        raise ApiError(400, f"{path}.type: Input should be 'ephemeral'")
    ttl = control.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise ApiError(400, f"{path}.ttl: Input should be '5m' or '1h'")
    return str(ttl)


def _content_bytes(part: Mapping[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in part.items() if k != "cache_control"}, option=orjson.OPT_SORT_KEYS)


def _part_tokens(encode: Any, part: Mapping[str, Any]) -> int:
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        return len(encode(text)) if isinstance(text, str) else 0
    if kind == "image":
        return _IMAGE_TOKENS
    if kind == "tool_use":
        return 3 + len(encode(str(part.get("name", "")))) + len(encode(orjson.dumps(part.get("input")).decode()))
    if kind == "tool_result":
        content = part.get("content")
        if isinstance(content, str):
            return 3 + len(encode(content))
        if isinstance(content, list):
            return 3 + sum(_part_tokens(encode, p) for p in content if isinstance(p, Mapping))
        return 3
    return len(encode(orjson.dumps(part).decode()))


def anthropic_cache_usage(
    store: ExpiringStore,
    model: str,
    blocks: Sequence[Block],
    total: int,
    *,
    minimum: int,
    ttls: Mapping[str, float],
    lookback: int,
    now: float,
) -> AnthropicCacheUsage:
    """Split ``total`` input tokens into uncached, read and written (by TTL) parts."""
    breakpoints = [i for i, b in enumerate(blocks) if b.ttl is not None]
    if not breakpoints:
        return AnthropicCacheUsage(total, 0, 0, 0)
    raw_total = sum(b.tokens for b in blocks) or 1
    positions: list[int] = []
    digests: list[bytes] = []
    running = 0
    digest = hashlib.blake2b(b"anthropic\0" + model.encode(), digest_size=16).digest()
    for block in blocks:
        running += block.tokens
        positions.append(min(total, running * total // raw_total))
        digest = hashlib.blake2b(digest + block.digest, digest_size=16).digest()
        digests.append(digest)
    read_index = -1
    for j in breakpoints:
        for k in range(j, max(-1, j - lookback), -1):
            if k <= read_index:
                break
            if store.live(digests[k], now):
                read_index = k
                break
    read = 0
    if read_index >= 0:
        read = positions[read_index]
        store.touch(digests[read_index], now)
    last = read
    write = {"5m": 0, "1h": 0}
    for j in breakpoints:
        if j <= read_index or positions[j] < minimum or positions[j] <= last:
            continue
        ttl = blocks[j].ttl or "5m"
        write[ttl] += positions[j] - last
        store.put(digests[j], ttls[ttl], now)
        last = positions[j]
    return AnthropicCacheUsage(total - last, read, write["5m"], write["1h"])
