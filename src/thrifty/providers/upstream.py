"""Upstream providers: where a request goes and how it is authenticated, over one shared pool.

Every provider speaks one of two wire formats: OpenAI Chat Completions (OpenAI, Azure OpenAI,
and the OpenAI-compatible servers: vLLM, Ollama, LM Studio, self-hosted) or Anthropic Messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import aiohttp

from thrifty.config.gateway import ProviderKind, ProviderSpec

__all__ = ["Upstream", "UpstreamTimeouts", "WireFormat", "new_session"]

WireFormat = Literal["openai", "anthropic"]

_ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    connect: float
    attempt: float
    """The whole of a non-streaming attempt; for a stream, the wait for each next byte."""


def new_session() -> aiohttp.ClientSession:
    """One pooled client for every provider. No limit on connections per host: the gateway's own
    concurrency is the limit, and a pool cap would queue requests invisibly."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300)
    # auto_decompress stays on; response bodies are JSON/SSE we parse.
    return aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",), raise_for_status=False)


class Upstream:
    """One provider endpoint: its URLs and its headers (credentials included)."""

    def __init__(
        self,
        name: str,
        kind: ProviderKind,
        base_url: str,
        headers: Mapping[str, str],
        api_version: str | None = None,
        key_env: str | None = None,
    ) -> None:
        self.name = name
        self.key_env = key_env
        """The environment variable the key came from (for error messages; never the key)."""
        self.own_credentials = True
        """The key is the gateway's (a provider refusing it is thrifty's problem), not the caller's."""
        self.kind = kind
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.wire: WireFormat = "anthropic" if kind == "anthropic" else "openai"
        self._headers = {"content-type": "application/json", **headers}

    @classmethod
    def from_spec(cls, name: str, spec: ProviderSpec) -> Upstream:
        key = spec.api_key()
        headers = {"user-agent": "thrifty", **spec.headers}
        if spec.kind == "anthropic":
            headers["anthropic-version"] = spec.api_version or _ANTHROPIC_VERSION
            if key:
                headers["x-api-key"] = key
        elif spec.kind == "azure":
            if key:
                headers["api-key"] = key
        elif key:
            headers["authorization"] = f"Bearer {key}"
        return cls(name, spec.kind, spec.base_url, headers, spec.api_version, spec.api_key_env)

    @property
    def provider_id(self) -> str | None:
        """The price catalogue's provider id, when the kind pins one."""
        return {"openai": "openai", "azure": "azure", "anthropic": "anthropic"}.get(self.kind)

    def chat_url(self, upstream_model: str) -> str:
        if self.kind == "anthropic":
            return f"{self.base_url}/v1/messages"
        if self.kind == "azure":
            version = self.api_version or "2024-10-21"
            return f"{self.base_url}/openai/deployments/{upstream_model}/chat/completions?api-version={version}"
        return f"{self.base_url}/chat/completions"

    def embeddings_url(self, upstream_model: str) -> str:
        if self.kind == "azure":
            version = self.api_version or "2024-10-21"
            return f"{self.base_url}/openai/deployments/{upstream_model}/embeddings?api-version={version}"
        return f"{self.base_url}/embeddings"

    def headers(self) -> dict[str, str]:
        return self._headers

    def describe(self) -> str:
        """For logs: never includes the key."""
        return f"{self.name} ({self.kind}, {self.base_url})"
