"""``/v1/files``: uploads (multipart/form-data), metadata, content, listing and deletion."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.simulator.common import ApiError, IdMaker, Reply

__all__ = ["FileStore", "StoredFile", "parse_multipart"]

_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)
_PARAM = re.compile(rb';\s*([a-zA-Z*]+)="((?:[^"\\]|\\.)*)"')


@dataclass(slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


class FileStore:
    def __init__(self, ids: IdMaker) -> None:
        self._ids = ids
        self._files: dict[str, StoredFile] = {}

    def add(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(self._ids.make("file-", 22), filename, purpose, data, int(time.time()))
        self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return stored

    def clear(self) -> None:
        self._files.clear()

    def __len__(self) -> int:
        return len(self._files)

    # --- endpoints --------------------------------------------------------------------------

    def upload(self, body: bytes, content_type: bytes | None) -> Reply:
        fields = parse_multipart(body, content_type or b"")
        purpose_field = fields.get("purpose")
        file_field = fields.get("file")
        if purpose_field is None:
            raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
        if file_field is None:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        purpose = purpose_field[1].decode("utf-8", errors="replace").strip()
        if purpose not in _PURPOSES:
            raise ApiError(
                400,
                f"Invalid value for 'purpose': {purpose!r}; expected one of {', '.join(sorted(_PURPOSES))}.",
                param="purpose",
            )
        filename, data = file_field
        if purpose == "batch":
            _check_jsonl(data)
        stored = self.add(filename or "upload", purpose, data)
        return Reply(body=orjson.dumps(stored.json()))

    def retrieve(self, file_id: str) -> Reply:
        return Reply(body=orjson.dumps(self.get(file_id).json()))

    def content(self, file_id: str) -> Reply:
        return Reply(body=self.get(file_id).data, content_type=b"application/octet-stream")

    def delete(self, file_id: str) -> Reply:
        self.get(file_id)
        del self._files[file_id]
        return Reply(body=orjson.dumps({"id": file_id, "object": "file", "deleted": True}))

    def listing(self) -> Reply:
        data = [f.json() for f in sorted(self._files.values(), key=lambda f: f.created_at, reverse=True)]
        return Reply(
            body=orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": False,
                }
            )
        )


def _check_jsonl(data: bytes) -> None:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            raise ApiError(400, f"Invalid file format for Batch API: line {number} is not valid JSON.") from None


def parse_multipart(body: bytes, content_type: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    if not content_type.lower().startswith(b"multipart/form-data"):
        raise ApiError(400, "Expected a multipart/form-data body with 'purpose' and 'file'.")
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise ApiError(400, "The multipart/form-data content type has no boundary.")
    delimiter = b"\r\n--" + found.group(1)
    fields: dict[str, tuple[str | None, bytes]] = {}
    chunks = (b"\r\n" + body).split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        line_end = chunk.find(b"\r\n")
        if line_end == -1:
            continue
        head_end = chunk.find(b"\r\n\r\n", line_end)
        if head_end == -1:
            raise ApiError(400, "A multipart/form-data part has no header end.")
        headers = chunk[line_end + 2 : head_end]
        data = chunk[head_end + 4 :]
        params: dict[bytes, bytes] = {}
        for line in headers.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition:"):
                params = {k.lower(): v for k, v in _PARAM.findall(line)}
        name = params.get(b"name")
        if name is None:
            continue
        filename = params.get(b"filename")
        fields[name.decode("utf-8", errors="replace")] = (
            filename.decode("utf-8", errors="replace") if filename is not None else None,
            data,
        )
    return fields
