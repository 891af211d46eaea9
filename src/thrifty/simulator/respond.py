"""Sending a ``Reply``: whole, streamed, slowed, or cut off as the request's fault says."""

from __future__ import annotations

import asyncio

from thrifty.simulator.asgi import (
    Receive,
    Send,
    disconnect_watcher,
    send_response,
    start_stream,
    stream_chunk,
    wait_for_disconnect,
)
from thrifty.simulator.common import Reply
from thrifty.simulator.config import FaultSpec

__all__ = ["hang", "send_reply"]

_BATCH = 64  # stream events written at once when nothing slows the stream


async def send_reply(send: Send, receive: Receive, reply: Reply, fault: FaultSpec | None) -> None:
    if reply.events is None:
        await _send_whole(send, reply, fault)
        return
    events = reply.events
    await start_stream(send, reply.status, reply.headers)
    drop_after = fault.drop_after if fault is not None else None
    delay = fault.chunk_delay_ms / 1000 if fault is not None else 0.0
    if drop_after is not None:
        events = events[:drop_after]
    if delay <= 0:
        for start in range(0, len(events), _BATCH):
            await stream_chunk(send, b"".join(events[start : start + _BATCH]))
    else:
        watcher = disconnect_watcher(receive)
        try:
            for event in events:
                await asyncio.sleep(delay)
                if watcher.done():
                    return
                await stream_chunk(send, event)
        finally:
            watcher.cancel()
    if drop_after is not None:
        return  # returning before the last body message makes the server close the connection
    await stream_chunk(send, b"", more=False)


async def _send_whole(send: Send, reply: Reply, fault: FaultSpec | None) -> None:
    if fault is not None and fault.drop_after is not None:
        body = reply.body
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", reply.content_type), *reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await stream_chunk(send, body[: len(body) // 2])
        return  # the connection closes with the body half sent
    await send_response(send, reply.status, reply.body, reply.headers, content_type=reply.content_type)


async def hang(receive: Receive, limit: float) -> bool:
    """Wait until the client goes away (True) or ``limit`` seconds pass (False)."""
    try:
        await asyncio.wait_for(wait_for_disconnect(receive), limit)
    except TimeoutError:
        return False
    return True
