"""What every endpoint shares: errors in each provider's shape, replies, ids and seeds."""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from thrifty.core.messages import ChatRequest, RequestError

__all__ = [
    "Api",
    "ApiError",
    "IdMaker",
    "Reply",
    "error_reply",
    "load_json_object",
    "parse_request",
    "request_error",
    "seed_of",
]

Api = Literal["openai", "anthropic"]
Headers = list[tuple[bytes, bytes]]

# OpenAI error ``type`` and Anthropic error ``type`` for each status.
_OPENAI_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}
_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_KINDS = frozenset({*_ANTHROPIC_TYPES.values(), "api_error"})
_DEFAULT_MESSAGES: dict[int, str] = {
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
    504: "Request timed out.",
    529: "Overloaded",
}
_ANTHROPIC_DEFAULT_MESSAGES: dict[int, str] = {500: "Internal server error", 529: "Overloaded"}


class ApiError(Exception):
    """An error answer; rendered in the shape of the API it was asked of."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
        headers: Headers | None = None,
    ) -> None:
        super().__init__(message or _DEFAULT_MESSAGES.get(status, "error"))
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type
        self.headers = headers or []


def request_error(error: RequestError) -> ApiError:
    return ApiError(400, str(error), param=error.path or None)


def parse_request(parse: Callable[[object], ChatRequest], data: object) -> ChatRequest:
    """Run one of thrifty's request parsers; whatever it refuses is a 400. A parser that trips over
    a shape it did not foresee (a TypeError, say) is answered 400 too: no input gets a 500."""
    try:
        return parse(data)
    except RequestError as error:
        raise request_error(error) from None
    except (TypeError, AttributeError, KeyError, IndexError) as error:
        raise ApiError(400, f"invalid request ({type(error).__name__}: {error})") from None


@dataclass(slots=True)
class Reply:
    """A whole answer: a JSON (or other) body, or a list of server-sent events."""

    status: int = 200
    body: bytes = b""
    events: list[bytes] | None = None
    headers: Headers = field(default_factory=list)
    content_type: bytes = b"application/json"


def error_reply(api: Api, error: ApiError, request_id: str) -> Reply:
    status = error.status
    if api == "anthropic":
        kind = error.error_type if error.error_type in _ANTHROPIC_KINDS else _ANTHROPIC_TYPES.get(status, "api_error")
        message = error.message or _ANTHROPIC_DEFAULT_MESSAGES.get(status) or _DEFAULT_MESSAGES.get(status, "error")
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": request_id,
        }
        id_header = (b"request-id", request_id.encode())
    else:
        kind = error.error_type or _OPENAI_TYPES.get(status, "server_error")
        message = error.message or _DEFAULT_MESSAGES.get(status, "error")
        payload = {"error": {"message": message, "type": kind, "param": error.param, "code": error.code}}
        id_header = (b"x-request-id", request_id.encode())
    return Reply(status=status, body=orjson.dumps(payload), headers=[id_header, *error.headers])


def load_json_object(body: bytes, api: Api) -> dict[str, Any]:
    """The request body as a JSON object, or the provider's 400."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if api == "anthropic":
            raise ApiError(400, f"There was an error parsing the body of your request: {error}") from None
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


def seed_of(*parts: object) -> int:
    """A 64-bit seed from JSON-able parts; the same parts always give the same seed."""
    digest = hashlib.blake2b(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def fingerprint(model: str) -> str:
    """A fixed ``system_fingerprint`` per model."""
    return "fp_" + hashlib.blake2b(model.encode(), digest_size=5).hexdigest()


_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class IdMaker:
    """Unique ids in each provider's style: a random per-app stem and a counter in base58 (six
    characters, least significant first: 38 billion ids an app), with no system call a request."""

    def __init__(self) -> None:
        self._stem = _base58(int.from_bytes(os.urandom(24), "big"), 32)
        self._next = itertools.count(1).__next__

    def make(self, prefix: str, width: int = 24) -> str:
        """``prefix`` and ``width`` more characters (at least 6)."""
        n = self._next()
        pairs = _PAIRS
        return (
            prefix
            + self._stem[: max(0, width - 6)]
            + pairs[n % 3364]
            + pairs[n // 3364 % 3364]
            + pairs[n // 11316496 % 3364]
        )


_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # base58, two digits at a time


def _base58(number: int, width: int) -> str:
    out: list[str] = []
    for _ in range(width):
        number, digit = divmod(number, 58)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def str_field(data: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    value = data.get(name, default)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{name}: expected a string", param=name)
    return value
