"""Credentials out of everything thrifty prints or logs: a URL's password (``postgresql://role:
PASSWORD@host/db``, ``redis://:PASSWORD@host``) and secret-looking query parameters become ``***``."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["RedactingFilter", "redact_text", "redact_url"]

_SECRET_PARAMS = frozenset({"password", "passwd", "pass", "secret", "token", "key", "api_key", "apikey", "sslpassword"})
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pass|secret|token|api_key|apikey|sslpassword)=)[^&\s]+")


def redact_url(url: str) -> str:
    """``url`` with its password and secret query parameters replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    secret_query = any(name.lower() in _SECRET_PARAMS for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    if parts.password is None and not secret_query:
        return url  # nothing to hide (and ``sqlite:///x`` kept exactly as written)
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:***@{host}"
    query = parts.query
    if secret_query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(n, "***" if n.lower() in _SECRET_PARAMS else v) for n, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL password and secret query parameter in free text (a log line, an error)."""
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
