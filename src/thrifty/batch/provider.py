"""OpenAI's Files and Batch API at a provider (OpenAI, or anything that speaks it): upload a file
(streamed from disk), create, look up, list and cancel batches, download a file to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from thrifty.errors import UpstreamError
from thrifty.providers.upstream import Upstream

__all__ = ["OpenAIBatches"]

_CHUNK = 1 << 16


class OpenAIBatches:
    def __init__(self, session: aiohttp.ClientSession, upstream: Upstream, timeout_s: float = 300.0) -> None:
        self.session = session
        self.upstream = upstream
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.base = upstream.base_url

    def _headers(self, json: bool = True) -> dict[str, str]:
        headers = dict(self.upstream.headers())
        if not json:
            headers.pop("content-type", None)
        return headers

    async def upload(self, path: Path, filename: str) -> str:
        """The provider's id of the uploaded file (purpose batch)."""
        with open(path, "rb") as source:
            form = aiohttp.FormData()
            form.add_field("purpose", "batch")
            form.add_field("file", source, filename=filename, content_type="application/jsonl")
            reply = await self._request("POST", "/files", data=form, json_body=False)
        return str(reply["id"])

    async def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> dict[str, Any]:
        body = {"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", "metadata": metadata}
        return await self._request("POST", "/batches", data=orjson.dumps(body))

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/batches/{batch_id}")

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return await self._request("POST", f"/batches/{batch_id}/cancel")

    async def find(self, key: str, value: str) -> dict[str, Any] | None:
        """A recent batch whose metadata has ``key: value`` (one created before a restart)."""
        reply = await self._request("GET", "/batches?limit=100")
        for batch in reply.get("data") or ():
            metadata = batch.get("metadata") or {}
            if metadata.get(key) == value:
                return dict(batch)
        return None

    async def download(self, file_id: str, target: Path) -> None:
        url = f"{self.base}/files/{file_id}/content"
        try:
            async with self.session.get(url, headers=self._headers(), timeout=self.timeout) as response:
                if response.status != 200:
                    raise UpstreamError(f"{self.upstream.describe()}: GET /files/{file_id}/content: {response.status}")
                with open(target, "wb") as out:
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        out.write(chunk)
        except aiohttp.ClientError as error:
            raise UpstreamError(f"{self.upstream.describe()}: GET /files/{file_id}/content: {error}") from error

    async def _request(self, method: str, path: str, *, data: Any = None, json_body: bool = True) -> dict[str, Any]:
        url = f"{self.base}{path}"
        try:
            async with self.session.request(
                method, url, data=data, headers=self._headers(json_body), timeout=self.timeout
            ) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientError as error:
            raise UpstreamError(f"{self.upstream.describe()}: {method} {path}: {error}") from error
        try:
            reply = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            reply = {}
        if status >= 400 or not isinstance(reply, dict):
            detail = reply.get("error", {}).get("message") if isinstance(reply, dict) else None
            raise UpstreamError(f"{self.upstream.describe()}: {method} {path}: {status} {detail or ''}".strip())
        return reply
