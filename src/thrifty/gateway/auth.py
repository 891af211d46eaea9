"""Virtual keys at the door: the secret's hash is looked up in memory; the store is read in the
background (new keys and revocations take effect within ``refresh_seconds``) and on a miss."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import OrderedDict

from thrifty.config.gateway import AuthMode
from thrifty.stores.keys import KeyInfo, KeyStore, hash_secret
from thrifty.web.asgi import Scope, header

__all__ = ["KeyCache", "is_loopback", "presented_secret"]

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


def is_loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere: assume it is reachable


class KeyCache:
    """Whether keys are required is decided by the config and by whether a key was *ever* created,
    never by how many are active: revoking the last active key leaves a gateway that refuses every
    request, not an open one. Once required, a running gateway stays so (``auth: none`` aside)."""

    def __init__(
        self,
        store: KeyStore,
        refresh_seconds: float = 5.0,
        miss_seconds: float = 2.0,
        *,
        mode: AuthMode = "auto",
        loopback: bool = True,
    ) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._miss_seconds = miss_seconds
        self._mode: AuthMode = mode
        self._loopback = loopback
        self._required = mode == "keys" or (mode == "auto" and not loopback)
        self._ever_created = False
        self._keys: dict[str, KeyInfo] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def listen_on(self, host: str) -> None:
        """The address the server binds (the command line may override the config's)."""
        self._loopback = is_loopback(host)
        if self._mode == "auto" and not self._loopback:
            self._required = True

    @property
    def required(self) -> bool:
        return self._required and self._mode != "none"

    @property
    def why(self) -> str:
        """The mode and its reason, for the banner and ``/healthz``."""
        if self._mode == "none":
            where = "" if self._loopback else "; this gateway listens beyond loopback: anyone who reaches it can spend"
            return f"not required (auth: none){where}"
        if self._mode == "keys":
            return "required (auth: keys)"
        if self._ever_created:
            return "required (virtual keys were created; revoked keys stay refused)"
        if self._required:
            return "required (listening beyond loopback; create a key with `thrifty keys create`)"
        return "not required (no virtual key was ever created; a private gateway on loopback)"

    def load(self) -> None:
        self._observe(self._store.active_by_hash(), self._ever_created or self._store.any_created())

    def _observe(self, keys: dict[str, KeyInfo], ever_created: bool) -> None:
        self._keys = keys
        if ever_created or keys:
            self._ever_created = True
            self._required = True

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
                await asyncio.to_thread(self.load)
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
