"""thrifty: cut the cost of LLM-powered software without making its answers worse.

Importing this package does no work: the catalogue, vocabularies and connections load when first
used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Thrifty", "wrap"]

if TYPE_CHECKING:
    from thrifty.client import Thrifty, wrap


def __getattr__(name: str) -> Any:
    # The in-process client pulls in aiohttp and httpx2; load them only for those who use it.
    if name in __all__:
        from thrifty import client

        return getattr(client, name)
    raise AttributeError(f"module 'thrifty' has no attribute {name!r}")
