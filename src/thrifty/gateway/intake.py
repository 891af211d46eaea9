"""From an HTTP request to a ``Call``: every check on what the client sent, each failing with a
4xx in the client's own error shape and a message that says what was wrong."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from thrifty.core._validate import check_depth, field_at, too_deep_problem
from thrifty.core.messages import RequestError
from thrifty.errors import Rejection
from thrifty.pipeline.call import Attribution, Call, ClientAPI
from thrifty.stores.keys import KeyInfo
from thrifty.wire.formats import wire_format

__all__ = [
    "Binding",
    "Directives",
    "Rejection",
    "attribution",
    "build_call",
    "cache_headers",
    "decode_json",
    "directives_of",
    "new_request_id",
]

Directives = Mapping[bytes, bytes]
"""A request's ``x-thrifty-*`` headers, names in lower case: all that intake reads of the headers.
Each face makes it from what it has (``directives_of``): the gateway from its ASGI scope, the
in-process client from the SDK's request."""

_MAX_LABEL = 256
_LABEL = re.compile(r"^[\x20-\x7e]+$")
_ATTRIBUTION_HEADERS = (b"x-thrifty-user", b"x-thrifty-team", b"x-thrifty-feature")


@dataclass(frozen=True, slots=True)
class Binding:
    """What authenticated a request, and the attribution it fixes: a virtual key's (the gateway) or
    a wrapped client's (in process). Headers and the body may only fill in what it leaves open."""

    key_id: str | None = None
    user: str | None = None
    team: str | None = None
    feature: str | None = None

    @classmethod
    def of_key(cls, key: KeyInfo) -> Binding:
        return cls(key_id=key.id, user=key.user, team=key.team, feature=key.feature)

    @property
    def tenant(self) -> str | None:
        """The security boundary: the key's team, else the key itself (a key without a team is its
        own tenant). None for an in-process client wrapped without a team: the app is one tenant."""
        if self.team:
            return f"team:{self.team}"
        return f"key:{self.key_id}" if self.key_id else None


def new_request_id() -> str:
    """Unique, not secret: the fast generator (a system call for each id costs more than the rest)."""
    return f"req_{random.getrandbits(96):024x}"


def decode_json(body: bytes) -> dict[str, Any]:
    if not body:
        raise Rejection(400, "the request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if "utf-8" in str(error).lower():
            raise Rejection(400, "the request body is not valid UTF-8") from None
        if str(error).startswith("depth limit exceeded"):  # orjson parses at most 1024 levels
            name = field_at(body.decode(errors="replace"), error.pos)
            where = name[:100] if name is not None else "the request body"
            raise Rejection(400, f"{where}: {too_deep_problem()}") from None
        raise Rejection(400, f"the request body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise Rejection(400, "the request body must be a JSON object")
    try:  # what is forwarded must encode again, wrapped or translated: see MAX_DEPTH
        check_depth(data)
    except RequestError as error:
        raise Rejection(400, str(error)) from None
    return data


def directives_of(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The x-thrifty-* headers of ``(name, value)`` pairs with lower-case names, in one pass."""
    return {key: bytes(value) for key, value in headers if key[:10] == b"x-thrifty-"}


def _label(headers: Directives, name: bytes) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    text = raw.decode("latin-1").strip()
    if not text:
        return None
    if len(text) > _MAX_LABEL or not _LABEL.match(text):
        raise Rejection(400, f"header {name.decode()}: at most {_MAX_LABEL} printable ASCII characters")
    return text


def cache_headers(headers: Directives) -> tuple[str | None, str | None]:
    """``x-thrifty-cache`` (``off`` or ``force``; ``on`` is the default) and ``x-thrifty-cache-version``."""
    directive = _label(headers, b"x-thrifty-cache") if headers else None
    if directive is not None:
        directive = directive.lower()
        if directive not in ("on", "off", "force"):
            raise Rejection(400, "header x-thrifty-cache: expected on, off or force")
        directive = None if directive == "on" else directive
    version = _label(headers, b"x-thrifty-cache-version") if headers else None
    return directive, version


def _urgent(headers: Directives) -> bool:
    """``x-thrifty-urgent: 1`` (or true, yes): a plan may allow the call a larger max_tokens cap."""
    value = headers.get(b"x-thrifty-urgent")
    return value is not None and value.strip().lower() in (b"1", b"true", b"yes")


def _tags(headers: Directives) -> tuple[str, ...]:
    raw = headers.get(b"x-thrifty-tags")
    if raw is None:
        return ()
    tags = tuple(t.strip() for t in raw.decode("latin-1").split(",") if t.strip())
    if len(tags) > 32 or any(len(t) > 64 or not _LABEL.match(t) for t in tags):
        raise Rejection(400, "header x-thrifty-tags: at most 32 comma-separated tags of 64 printable characters")
    return tags


def attribution(headers: Directives, body: dict[str, Any], client: ClientAPI, binding: Binding | None) -> Attribution:
    """Who a call is for: see ``_attribution``."""
    if headers:
        user, team, feature = (_label(headers, name) for name in _ATTRIBUTION_HEADERS)
        tags = _tags(headers)
    else:
        user = team = feature = None
        tags = ()
    return _attribution(body, client, binding, user, team, feature, tags)


def _body_user(body: dict[str, Any], client: ClientAPI) -> str | None:
    """The API's own end-user field: OpenAI ``user``, Anthropic ``metadata.user_id``."""
    if client == "openai":
        named = body.get("user")
    else:
        metadata = body.get("metadata")  # its type was checked by the request's parser
        named = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(named, str) and named.strip():
        return named.strip()[:_MAX_LABEL]
    return None


def _attribution(
    body: dict[str, Any],
    client: ClientAPI,
    binding: Binding | None,
    user: str | None,
    team: str | None,
    feature: str | None,
    tags: tuple[str, ...],
) -> Attribution:
    """Without a binding (a private gateway, a client wrapped without attribution) the headers
    decide, then the body's user field. With one, what it fixes wins and a header never moves a call
    into another tenant: the team header is ignored, and a user named by a header or the body is an
    end user *inside* the tenant (``team:green/alice``, never the ``alice`` a key of team red is
    bound to), so every budget, limit, plan and cache keyed by user stays within the tenant."""
    if user is None:
        user = _body_user(body, client)
    if binding is None:
        return Attribution(user=user, team=team, feature=feature, tags=tags)
    tenant = binding.tenant
    if binding.user:
        user = binding.user
    elif user is not None and tenant is not None:
        user = f"{tenant}/{user}"
    return Attribution(
        user=user,
        team=binding.team if tenant is not None else team,
        feature=binding.feature or feature,
        key_id=binding.key_id,
        tags=tags,
    )


_HINT_HEADERS = {
    b"x-thrifty-tier": "tier",
    b"x-thrifty-route": "route",
    b"x-thrifty-plan": "plan",
    b"x-thrifty-urgency": "urgency",
}


def _hints(headers: Directives) -> dict[str, str]:
    """The routing and output-cap directives (``x-thrifty-tier``, ``-route``, ``-plan``, ``-urgency``)."""
    hints: dict[str, str] = {}
    for key, name in _HINT_HEADERS.items():
        value = headers.get(key)
        if value is not None:
            text = value.decode("latin-1").strip()
            if text:
                hints[name] = text[:_MAX_LABEL]
    return hints


def build_call(
    headers: Directives,
    body: dict[str, Any],
    client: ClientAPI,
    binding: Binding | None,
    request_id: str,
    started: float,
    body_size: int = 0,
) -> Call:
    try:
        request = wire_format(client).parse_request(body)
    except RequestError as error:
        raise Rejection(400, str(error), code="invalid_request") from None
    include_usage = False
    if client == "openai":
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise Rejection(400, "stream_options: expected an object")
        include_usage = bool(options and options.get("include_usage"))
    if headers:
        directive, version = cache_headers(headers)
        urgent, hints, who = _urgent(headers), _hints(headers), attribution(headers, body, client, binding)
    else:  # the usual case: no directive to read
        directive = version = None
        urgent, hints, who = False, {}, _attribution(body, client, binding, None, None, None, ())
    return Call(
        request_id=request_id,
        cache_directive=directive,
        cache_version=version,
        urgent=urgent,
        hints=hints,
        client_api=client,
        body=body,
        request=request,
        model=request.model,
        stream=request.stream,
        attribution=who,
        ts=datetime.now(UTC),
        started=started,
        body_size=body_size,
        include_usage=include_usage,
    )
