"""Virtual keys at the door: the secret's hash is looked up in memory; the store is read in the
background (new keys and revocations take effect within ``refresh_seconds``) and on a miss."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from thrifty.stores.keys import KeyInfo, KeyStore, hash_secret
from thrifty.web.asgi import Scope, header

__all__ = ["KeyCache", "presented_secret"]

log = logging.getLogger("thrifty.auth")

_MISS_MEMORY = 4096


def presented_secret(scope: Scope) -> str | None:
    """The key a client presents: ``Authorization: Bearer ...`` (OpenAI SDKs) or ``x-api-key``
    (Anthropic SDKs)."""
    value = header(scope, b"authorization")
    if value is not None:
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    value = header(scope, b"x-api-key")
    if value is not None and value.strip():
        return value.decode("latin-1").strip()
    return None


class KeyCache:
    def __init__(self, store: KeyStore, refresh_seconds: float = 5.0, miss_seconds: float = 2.0) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._miss_seconds = miss_seconds
        self._keys: dict[str, KeyInfo] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    @property
    def required(self) -> bool:
        """Keys are required as soon as one exists."""
        return bool(self._keys)

    def load(self) -> None:
        self._keys = self._store.active_by_hash()

    def start(self) -> None:
        self.load()
        self._task = asyncio.ensure_future(self._refresher())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._store.close()

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            try:
                self._keys = await asyncio.to_thread(self._store.active_by_hash)
            except Exception as error:  # keep the last good set; say why
                log.warning("keys: refresh failed, keeping the last known keys: %s", error)

    async def check(self, secret: str | None) -> KeyInfo | None:
        """The key's info, or None when the secret is missing, unknown or revoked."""
        if secret is None:
            return None
        digest = hash_secret(secret)
        info = self._keys.get(digest)
        if info is not None:
            return info
        now = time.monotonic()
        missed = self._misses.get(digest)
        if missed is not None and now - missed < self._miss_seconds:
            return None  # a flood of bad keys must not become a flood of database reads
        info = await asyncio.to_thread(self._store.find, digest)
        if info is None:
            self._misses[digest] = now
            self._misses.move_to_end(digest)
            while len(self._misses) > _MISS_MEMORY:
                self._misses.popitem(last=False)
            return None
        self._keys = {**self._keys, digest: info}
        return info
