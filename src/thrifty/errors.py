"""Every error thrifty raises, in one hierarchy, and how a face answers each of them.

The family says who is at fault, and so how the gateway (or the in-process client) answers:

    ThriftyError                     500 api_error              the root: every error of ours
    ├── InvalidRequest (ValueError)  400 invalid_request_error  the caller's request (``path``, ``problem``)
    │   ├── RequestError             a chat request the parsers refuse
    │   ├── UsageError               token counts that cannot be right
    │   ├── BudgetError              a budget or limit definition that cannot be right
    │   └── BodyTooSlow              408: the body did not arrive in time
    ├── AuthError                    401 authentication_error   no valid key or token
    ├── NotFound (LookupError)       404 not_found_error        no such model, route or budget
    │   └── UnknownModelError
    ├── TooLarge                     413 request_too_large      more than a limit takes
    │   └── BodyTooLarge
    ├── LimitExceeded                429 rate_limit_error       a limit refuses the call (``retry_after_s``)
    ├── ConfigError (ValueError)     500 api_error              a config or data file that cannot be used
    │   └── RouterFileError, OutcomesError, PairFileError, IndexFileError
    ├── UpstreamError                502 api_error              the provider failed
    │   └── TransportError, BadUpstreamResponse, ResponseShapeError
    ├── StoreError                   503 api_error              a database or Redis failure
    │   └── StoreUnavailable
    ├── Unavailable                  503 api_error              a local part thrifty needs cannot be used
    │   └── EmbedderError, EncodingIntegrityError
    ├── Closed (RuntimeError)        503 api_error              used after ``close()``
    │   └── ThriftyClosed
    ├── Rejection                    its own status, kind and code: an answer decided at the door
    ├── ClientGone                   499: never answered, the client left
    └── CliError                     the CLI's one-line error, exit status 2 (in ``thrifty.cli.common``,
                                     beside click, whose ``ClickException`` it also is)

Each class is importable from where it was defined before this module (``RequestError`` from
``thrifty.core.messages`` and so on); the built-in bases that callers catch (``ValueError``,
``LookupError``, ``RuntimeError``) are kept. ``status``, ``kind`` (OpenAI's ``type``, Anthropic's
``error.type``) and ``code`` are class attributes; ``error_response`` renders any of them in either
API's shape, and ``error_body`` is that shape for answers built without an exception. Errors of
providers themselves (translated between the two shapes) are ``thrifty.wire.translate.errors``'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import orjson

__all__ = [
    "KIND_BY_STATUS",
    "AuthError",
    "BadUpstreamResponse",
    "BodyTooLarge",
    "BodyTooSlow",
    "BudgetError",
    "ClientGone",
    "Closed",
    "ConfigError",
    "EmbedderError",
    "EncodingIntegrityError",
    "IndexFileError",
    "InvalidRequest",
    "LimitExceeded",
    "NotFound",
    "OutcomesError",
    "PairFileError",
    "Rejection",
    "RequestError",
    "ResponseShapeError",
    "RouterFileError",
    "StoreError",
    "StoreUnavailable",
    "ThriftyClosed",
    "ThriftyError",
    "TooLarge",
    "TransportError",
    "Unavailable",
    "UnknownModelError",
    "UpstreamError",
    "UsageError",
    "error_body",
    "error_response",
    "kind_for",
]


class ThriftyError(Exception):
    """The root: ``except ThriftyError`` catches every error thrifty raises on purpose. Anything
    else escaping a face is a bug, answered 500 "internal error" without its details."""

    status: int = 500
    """The HTTP status a face answers it with."""
    kind: str = "api_error"
    """The error's type in both APIs' shapes."""
    code: str | None = None
    """OpenAI's ``code`` (its ``type`` when None); Anthropic's shape has none."""


def _where(path: str, problem: str) -> str:
    return f"{path}: {problem}" if path else problem


# -- the caller's fault: 4xx ----------------------------------------------------------------------


class InvalidRequest(ThriftyError, ValueError):
    """The caller's request cannot be served as sent. ``path`` says where (``messages[2].content``;
    empty for the request as a whole) and ``problem`` what is wrong."""

    status = 400
    kind = "invalid_request_error"

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(_where(path, problem))


class RequestError(InvalidRequest):
    """A chat request that ``thrifty.core``'s parsers refuse (either API's format)."""


class UsageError(InvalidRequest):
    """A usage report that cannot be right (negative counts, parts larger than their whole): raised
    by ``Usage`` itself, so by whoever gave the counts (a CLI flag, a usage line). A provider's
    impossible usage is caught where it is parsed and treated as unreported."""

    def __init__(self, message: str) -> None:
        super().__init__("", message)


class BudgetError(InvalidRequest):
    """A budget or limit that cannot be right (an unknown time zone, a negative amount...): in a
    config file (reported as that file's ``ConfigError``), the admin API (400) or the CLI."""

    def __init__(self, message: str) -> None:
        super().__init__("", message)


class BodyTooSlow(InvalidRequest):
    """The request body did not arrive within the server's time limit (a trickling client)."""

    status = 408
    code = "request_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__("", f"the request body did not arrive within {seconds:g} s")
        self.seconds = seconds


class AuthError(ThriftyError):
    """No valid credential: a thrifty key, or the admin API's token, missing or wrong."""

    status = 401
    kind = "authentication_error"


class NotFound(ThriftyError, LookupError):
    """What the request names does not exist here: a model, a route, a budget."""

    status = 404
    kind = "not_found_error"


class UnknownModelError(NotFound):
    """No price is known for a model, and no default price is configured."""

    def __init__(self, model: str, provider: str | None, suggestions: Sequence[str]) -> None:
        self.model = model
        self.provider = provider
        self.suggestions = list(suggestions)
        where = f" (provider {provider!r})" if provider else ""
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown model {model!r}{where}: no price is known for it{hint}")


class TooLarge(ThriftyError):
    """More than a configured limit takes (the request body; the connection is closed after it)."""

    status = 413
    kind = "request_too_large"


class BodyTooLarge(TooLarge):
    """The request body passed ``limit`` bytes; the rest of it is not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit} bytes")
        self.limit = limit


class LimitExceeded(ThriftyError):
    """A limit refuses the call for now; ``retry_after_s`` says when it may pass (None: cannot say).
    The budget and rate-limit steps answer in this shape (429) from their own results."""

    status = 429
    kind = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ClientGone(ThriftyError):
    """The client disconnected before the whole request body arrived: nothing is answered, the
    access log records 499 (as nginx does)."""

    status = 499


# -- thrifty's own files and parts -----------------------------------------------------------------


class ConfigError(ThriftyError, ValueError):
    """A config or data file that cannot be used; the message names the file and the place. Raised
    at start-up and by the CLI, which report it on one line: no request is answered with it."""


class RouterFileError(ConfigError):
    """A router document that cannot be used (wrong format, version, or sizes)."""


class OutcomesError(ConfigError):
    """An outcomes file that cannot be used; the message says why."""


class PairFileError(ConfigError):
    """A pair file that cannot be read: the message names the file and the line."""


class IndexFileError(ConfigError):
    """A persisted index file that cannot be read (the semantic cache then starts empty)."""


class Unavailable(ThriftyError):
    """A part thrifty needs beside the provider cannot be used here: a local model or an optional
    package missing, a bundled file damaged, an embedding endpoint not answering."""

    status = 503


class EmbedderError(Unavailable, RuntimeError):
    """The embedder cannot be loaded or did not answer (the semantic cache then misses)."""


class EncodingIntegrityError(Unavailable, RuntimeError):
    """A bundled vocabulary does not match the published file."""


class StoreError(ThriftyError):
    """A database or Redis failure (the ledger, keys, the cache, budget and rate-limit counters)."""

    status = 503


class StoreUnavailable(StoreError):
    """The store cannot be reached (Redis down, the SQLite file locked for too long)."""


class Closed(ThriftyError, RuntimeError):
    """Something was used after ``close()``."""

    status = 503


class ThriftyClosed(Closed):
    """A call on a ``Thrifty`` after ``close()``."""


# -- the provider's fault: 502 ---------------------------------------------------------------------


class UpstreamError(ThriftyError):
    """The provider failed: no answer, or one that is not a valid response. Answered 502 (a
    timeout too: the message says how long was waited)."""

    status = 502


class TransportError(UpstreamError):
    """No whole answer came. ``timeout``: a limit ran out; ``may_be_billed``: the request was
    sent and the provider may be working on it when we gave up."""

    def __init__(self, message: str, *, timeout: bool, may_be_billed: bool) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.may_be_billed = may_be_billed


class BadUpstreamResponse(UpstreamError):
    """The provider answered 200 with something that is not a valid response."""


class ResponseShapeError(UpstreamError, ValueError):
    """An upstream response (or stream event) that cannot be translated: the provider broke its
    own format. Distinct from ``RequestError`` because it is the gateway's upstream, not its
    client, that is at fault (a 502, not a 400)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(_where(path, problem))


# -- an answer decided at the door ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection(ThriftyError):
    """A request refused before it reaches the pipeline, with the status it is answered with; a
    ``kind`` left at ``invalid_request_error`` is refined by the status (``kind_for``)."""

    status: int = field()  # no default: not ThriftyError's 500
    message: str
    kind: str = "invalid_request_error"
    code: str | None = None


# -- rendering -------------------------------------------------------------------------------------

KIND_BY_STATUS: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        405: "invalid_request_error",
        408: "invalid_request_error",
        413: "request_too_large",
        415: "invalid_request_error",
        429: "rate_limit_error",
    }
)
"""The error type a status implies, for an error that gives only the generic one."""


def kind_for(status: int, kind: str) -> str:
    """``kind``, unless it is the generic ``invalid_request_error``: then the status's own."""
    return KIND_BY_STATUS.get(status, kind) if kind == "invalid_request_error" else kind


def error_body(api: str, status: int, message: str, kind: str, code: str | None = None) -> bytes:
    """An error in the shape the client's SDK expects: Anthropic's for ``api == "anthropic"``
    (``{"type": "error", "error": {"type", "message"}}``), OpenAI's otherwise
    (``{"error": {"message", "type", "code", "param"}}``, ``code`` defaulting to the type)."""
    if api == "anthropic":
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return orjson.dumps({"error": {"message": message, "type": kind, "code": code or kind, "param": None}})


def error_response(error: ThriftyError, api: str) -> tuple[int, bytes]:
    """The status and body a face answers ``error`` with, in ``api``'s shape."""
    message = error.message if isinstance(error, Rejection) else str(error)
    return error.status, error_body(api, error.status, message, kind_for(error.status, error.kind), error.code)
