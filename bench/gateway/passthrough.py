"""The floor: the least a gateway can do. Raw ASGI on uvicorn (uvloop + httptools), aiohttp upstream.

Run: .venv/bin/python bench/gateway/passthrough.py --port 9200 --upstream http://127.0.0.1:9100

Per request: read and parse the request JSON, forward it, parse the upstream's JSON and read its
usage, answer with the upstream's body. Streaming (SSE) is relayed chunk by chunk. GET /healthz: 200.
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import orjson
import uvicorn

STATE: dict[str, Any] = {"upstream": "", "session": None}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    request = orjson.loads(body)
    session = STATE["session"]
    if session is None:
        session = STATE["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
    headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in (b"authorization", b"content-type")}
    async with session.post(STATE["upstream"] + scope["path"], data=body, headers=headers) as upstream:
        start = {
            "type": "http.response.start",
            "status": upstream.status,
            "headers": [(b"content-type", upstream.headers.get("content-type", "application/json").encode())],
        }
        if request.get("stream") is True:
            await send(start)
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        out = await upstream.read()
    usage = orjson.loads(out).get("usage") or {}
    _ = (usage.get("prompt_tokens"), usage.get("completion_tokens"))  # what a ledger would record
    start["headers"].append((b"content-length", str(len(out)).encode()))
    await send(start)
    await send({"type": "http.response.body", "body": out})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100")
    args = parser.parse_args()
    STATE["upstream"] = args.upstream.rstrip("/")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
