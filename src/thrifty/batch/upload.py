"""``POST /v1/files``: a multipart/form-data upload parsed as it streams in (python-multipart),
the file part written straight to disk, never held whole in memory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from thrifty.errors import BodyTooLarge, ClientGone, Rejection
from thrifty.web.asgi import Receive

__all__ = ["Upload", "receive_upload"]

_SMALL_FIELD = 4096


@dataclass(slots=True)
class Upload:
    path: Path
    size: int
    filename: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Parts:
    """The parser's callbacks' state: the part under way and what has been read of it."""

    target: Path
    limit: int
    out: IO[bytes] | None = None
    header_name: bytes = b""
    header_value: bytes = b""
    name: str | None = None
    filename: str | None = None
    value: bytearray = field(default_factory=bytearray)
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)
    file_seen: bool = False
    upload_name: str = "upload"

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            _, params = parse_options_header(self.header_value)
            name = params.get(b"name")
            filename = params.get(b"filename")
            self.name = name.decode("utf-8", "replace") if name is not None else None
            self.filename = filename.decode("utf-8", "replace") if filename is not None else None
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        if self.name == "file":
            if self.file_seen:
                raise Rejection(400, "file: sent more than once")
            self.file_seen = True
            self.upload_name = (self.filename or "upload")[:256]
            self.out = open(self.target, "wb")  # noqa: SIM115 (closed in on_part_end, or by receive_upload)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.out is not None:
            self.size += end - start
            if self.size > self.limit:
                raise BodyTooLarge(self.limit)
            self.out.write(data[start:end])
        elif self.name is not None:
            self.value += data[start:end]
            if len(self.value) > _SMALL_FIELD:
                raise Rejection(400, f"{self.name}: a form field of more than {_SMALL_FIELD} bytes")

    def on_part_end(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
        elif self.name is not None:
            self.fields[self.name] = self.value.decode("utf-8", "replace").strip()
        self.name = self.filename = None
        self.value = bytearray()


async def receive_upload(receive: Receive, content_type: bytes | None, target: Path, limit: int) -> Upload:
    """Read the request body into ``target`` (the ``file`` part) and the small fields; raises
    ``Rejection`` (400, 413) for a body that is not a multipart upload or is too large."""
    kind, params = parse_options_header(content_type or b"")
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise Rejection(415, "expected a multipart/form-data upload with the fields purpose and file")
    parts = _Parts(target, limit)
    callbacks: Any = {
        "on_header_field": parts.on_header_field,
        "on_header_value": parts.on_header_value,
        "on_header_end": parts.on_header_end,
        "on_headers_finished": parts.on_headers_finished,
        "on_part_data": parts.on_part_data,
        "on_part_end": parts.on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                parser.write(chunk)
            if not message.get("more_body", False):
                break
        parser.finalize()
    except MultipartParseError as error:
        _discard(parts, target)
        raise Rejection(400, f"the multipart/form-data body is malformed: {error}") from None
    except BaseException:
        _discard(parts, target)
        raise
    if not parts.file_seen:
        _discard(parts, target)
        raise Rejection(400, "Missing required parameter: 'file'.")
    return Upload(target, parts.size, parts.upload_name, parts.fields)


def _discard(parts: _Parts, target: Path) -> None:
    if parts.out is not None:
        parts.out.close()
    if target.exists():
        os.unlink(target)
