"""``POST /v1/embeddings``: deterministic unit vectors seeded from each input.

Every vector of a given size has the same component magnitudes (a fixed unit vector, made once per
size) with signs from SHAKE-256 of the input: flipping signs keeps the norm at exactly 1 and costs
two big-integer operations instead of a Python loop over 1536 floats. Different inputs give nearly
orthogonal vectors; a shorter ``dimensions`` gives the renormalised prefix of the full vector (as
text-embedding-3's shortened embeddings behave). Values are float32 in both encodings: ``float``
lists them, ``base64`` packs them little-endian (the official SDK asks for base64 unless told
otherwise, and decodes it).
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from typing import TYPE_CHECKING, Any, TypeGuard

import orjson

from thrifty.simulator.common import ApiError, Reply, load_json_object

if TYPE_CHECKING:
    from thrifty.simulator.state import Simulator

__all__ = ["embeddings_json", "respond_embeddings"]

_NATIVE_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_DEFAULT_DIMENSIONS = 1536
_MAX_INPUT_TOKENS = 8192
_MAX_INPUTS = 2048


def respond_embeddings(sim: Simulator, body: bytes | dict[str, Any], model: str | None = None) -> Reply:
    data = body if isinstance(body, dict) else load_json_object(body, "openai")
    if model is not None and data.get("model") is None:
        data["model"] = model
    payload, tokens = embeddings_json(sim, data)
    headers = sim.limiter.openai(payload["model"], tokens)
    return Reply(body=orjson.dumps(payload), headers=headers)


def embeddings_json(sim: Simulator, data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "you must provide a model parameter", param="model")
    inputs = _inputs(data.get("input"))
    fmt = data.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise ApiError(
            400, f"Invalid value for 'encoding_format': {fmt!r}; expected 'float' or 'base64'.", param="encoding_format"
        )
    native = _NATIVE_DIMENSIONS.get(model, _DEFAULT_DIMENSIONS)
    dimensions = data.get("dimensions")
    if dimensions is None:
        dimensions = native
    elif model == "text-embedding-ada-002":
        raise ApiError(400, "This model does not support specifying dimensions.", param="dimensions")
    elif isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= native:
        raise ApiError(
            400, f"Invalid value for 'dimensions': expected a whole number from 1 to {native}.", param="dimensions"
        )
    total = 0
    out: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            tokens = sim.counter.count_text(item, model).input_tokens
            seed = item.encode("utf-8")
        else:
            tokens = len(item)
            seed = b"tokens\0" + array("q", item).tobytes()
        if tokens > _MAX_INPUT_TOKENS:
            raise ApiError(
                400,
                f"This model's maximum context length is {_MAX_INPUT_TOKENS} tokens, however you requested {tokens} "
                f"tokens ({tokens} in your prompt; 0 for the completion). Please reduce your prompt.",
                param="input",
            )
        total += tokens
        packed = unit_vector(sim, seed, dimensions)
        embedding: Any = base64.b64encode(packed).decode("ascii") if fmt == "base64" else _floats(packed)
        out.append({"object": "embedding", "index": index, "embedding": embedding})
    payload = {"object": "list", "data": out, "model": model, "usage": {"prompt_tokens": total, "total_tokens": total}}
    return payload, total


def _inputs(value: object) -> list[str | list[int]]:
    invalid = ApiError(
        400,
        "'$.input' is invalid: expected a non-empty string, an array of non-empty strings, an array of tokens "
        "or an array of token arrays.",
        param="input",
    )
    if isinstance(value, str):
        if not value:
            raise invalid
        return [value]
    if not isinstance(value, list) or not value or len(value) > _MAX_INPUTS:
        raise invalid
    if _token_list(value):
        return [value]
    out: list[str | list[int]] = []
    for item in value:
        if not (isinstance(item, str) and item) and not _token_list(item):
            raise invalid
        out.append(item)
    return out


def _token_list(value: object) -> TypeGuard[list[int]]:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )


def unit_vector(sim: Simulator, seed: bytes, dimensions: int) -> bytes:
    """The vector for ``seed`` as little-endian float32 bytes."""
    base, mask = _base(sim, dimensions)
    digest = hashlib.shake_256(seed).digest(4 * dimensions)
    signs = int.from_bytes(digest, "little") & mask
    return (base ^ signs).to_bytes(4 * dimensions, "little")


def _base(sim: Simulator, dimensions: int) -> tuple[int, int]:
    """The fixed unit vector of a size (as an integer of its float32 bytes) and its sign-bit mask."""
    found = sim.embedding_bases.get(dimensions)
    if found is None:
        raw = array("h", hashlib.shake_256(b"thrifty simulator embedding").digest(2 * dimensions))
        if sys.byteorder != "little":
            raw.byteswap()
        norm = math.sqrt(math.fsum(float(v) * v for v in raw)) or 1.0
        floats = array("f", [v / norm for v in raw])
        if sys.byteorder != "little":
            floats.byteswap()
        mask = int.from_bytes(b"\x00\x00\x00\x80" * dimensions, "little")
        if len(sim.embedding_bases) >= 64:
            sim.embedding_bases.clear()
        found = sim.embedding_bases[dimensions] = (int.from_bytes(floats.tobytes(), "little"), mask)
    return found


def _floats(packed: bytes) -> list[float]:
    values = array("f", packed)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()
