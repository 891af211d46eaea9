"""Credentials out of everything thrifty prints or logs: a URL's password (``postgresql://role:
PASSWORD@host/db``, ``redis://:PASSWORD@host``) and secret-looking query parameters become ``***``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["RedactingFilter", "redact_log_handlers", "redact_text", "redact_url", "url_origin", "url_secrets"]

_SECRET_PARAMS = frozenset({"password", "passwd", "pass", "secret", "token", "key", "api_key", "apikey", "sslpassword"})
# The password runs to the last ``@`` before the path: an unencoded ``@`` in it (``u:p@ss@host``)
# is how people write them, and is what urlsplit reads too.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^/\s]*)@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pass|secret|token|api_key|apikey|sslpassword)=)[^&\s]+")


def redact_url(url: str) -> str:
    """``url`` with its password and secret query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    secret_query = any(name.lower() in _SECRET_PARAMS for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    if password is None and not secret_query:
        return url  # nothing to hide (and ``sqlite:///x`` kept exactly as written)
    if password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:***@{host}"
    query = parts.query
    if secret_query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(n, "***" if n.lower() in _SECRET_PARAMS else v) for n, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """The secrets written in ``url`` (its password, secret query values), as written and decoded:
    what a driver's error message may quote back (``invalid percent-encoded token: "p%zz"``)."""
    found: list[str] = []
    match = _USERINFO.search(url)
    if match and match["password"]:
        found.append(match["password"])
    try:
        query = urlsplit(url).query
    except ValueError:
        query = url.partition("?")[2]
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if unquote(name).lower() in _SECRET_PARAMS:
            found.append(value)
    found.extend([unquote(secret) for secret in found])
    return sorted({secret for secret in found if len(secret) >= 3}, key=len, reverse=True)


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: for URLs whose path or query may itself be the secret
    (a chat webhook's ``/services/T0/B0/XXXX``)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(an unparsable URL)"
    if not parts.scheme or not host:
        return "(an unparsable URL)"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Every URL password and secret query parameter in free text (a log line, an error), and each
    of ``secrets`` wherever it appears."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m[1]}***", text)


class RedactingFilter(logging.Filter):
    """On a handler: each record's message is redacted once formatted (arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_text is None and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


def redact_log_handlers() -> None:
    """A ``RedactingFilter`` on every handler the process's loggers have now: the root's, and those
    a library configured for its own loggers (uvicorn's, which do not propagate). Call it again
    after such a library has set its logging up."""
    loggers = [logging.getLogger()]
    loggers += [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
