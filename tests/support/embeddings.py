"""A provider's embeddings endpoint on loopback, for the semantic cache's provider embedder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from tests.support.servers import ServerThread

__all__ = ["EmbeddingsProvider", "running_embeddings_provider"]


class EmbeddingsProvider:
    """An OpenAI-style ``POST {prefix}/v1/embeddings`` backed by the local model, so that paraphrases
    land close (the simulator's vectors are not semantic). Under ``/usage`` it reports
    ``usage.prompt_tokens`` as the number of characters -- not what thrifty would count, so a test
    can tell the provider's figure from thrifty's; under ``/silent`` it reports no usage."""

    def __init__(self) -> None:
        from thrifty.semantic.embedder import OnnxEmbedder

        self.embedder = OnnxEmbedder()
        self.inputs: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = orjson.loads(body)
        texts: list[str] = request["input"]
        self.inputs += texts
        vectors = self.embedder.embed(texts)
        payload: dict[str, Any] = {
            "object": "list",
            "model": request["model"],
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
        }
        if scope["path"].startswith("/usage/"):
            tokens = sum(len(t) for t in texts)
            payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(payload)})


@contextmanager
def running_embeddings_provider() -> Iterator[tuple[str, EmbeddingsProvider]]:
    """(its URL, the app): the base URL of an embedder is ``{url}/usage/v1`` or ``{url}/silent/v1``."""
    app = EmbeddingsProvider()
    server = ServerThread(app).start()
    try:
        yield server.url, app
    finally:
        server.stop()
