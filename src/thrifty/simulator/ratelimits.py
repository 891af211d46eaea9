"""Rate limits as both providers report them: per-model buckets refilled continuously over a minute.

OpenAI: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, resets as Go-style durations
(``6ms``, ``1.5s``, ``1m0s``); a request's tokens are its prompt plus its ``max_tokens``.
Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
reset}``, resets as RFC 3339 times; ``tokens`` reports the more depleted of input and output.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from thrifty.simulator.common import ApiError
from thrifty.simulator.config import RateLimits

__all__ = ["Limiter"]

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class _Bucket:
    limit: int
    level: float
    stamp: float
    limit_bytes: bytes = b""
    per_second: float = 0.0

    def __post_init__(self) -> None:
        self.limit_bytes = str(self.limit).encode()
        self.per_second = self.limit / 60.0

    def refill(self, now: float) -> None:
        if now > self.stamp:
            level = self.level + (now - self.stamp) * self.per_second
            self.level = level if level < self.limit else float(self.limit)
            self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is)."""
        missing = min(amount, self.limit) - self.level
        return 0.0 if missing <= 0 else missing * 60.0 / self.limit

    def reset_in(self) -> float:
        return (self.limit - self.level) / self.per_second

    @property
    def remaining(self) -> int:
        level = self.level
        return int(level) if level > 0 else 0


class Limiter:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._times: dict[int, bytes] = {}  # RFC 3339 texts by epoch second, reused

    def _bucket(self, model: str, kind: str, limit: int, now: float) -> _Bucket:
        bucket = self._buckets.get((model, kind))
        if bucket is None:
            bucket = self._buckets[(model, kind)] = _Bucket(limit, float(limit), now)
        else:
            bucket.refill(now)
        return bucket

    def clear(self) -> None:
        self._buckets.clear()

    def openai(self, model: str, tokens: int) -> Headers:
        """Take one request and ``tokens`` from the model's buckets; raises a 429 when empty."""
        now = time.monotonic()
        limits = self.limits
        requests = self._bucket(model, "openai-requests", limits.openai_requests_per_minute, now)
        token_bucket = self._bucket(model, "openai-tokens", limits.openai_tokens_per_minute, now)
        if limits.enforce:
            wait_requests = requests.wait_for(1)
            wait_tokens = token_bucket.wait_for(tokens)
            if wait_requests > 0 or wait_tokens > 0:
                which, limit, used = (
                    ("requests", requests.limit, requests.limit - requests.remaining)
                    if wait_requests >= wait_tokens
                    else ("tokens", token_bucket.limit, token_bucket.limit - token_bucket.remaining)
                )
                wait = max(wait_requests, wait_tokens)
                raise ApiError(
                    429,
                    f"Rate limit reached for {model} on {which} per min (RPM/TPM): Limit {limit}, Used {used}, "
                    f"Requested {1 if which == 'requests' else tokens}. Please try again in {_duration(wait)}.",
                    code="rate_limit_exceeded",
                    error_type=which,
                    headers=[
                        (b"retry-after", str(math.ceil(wait)).encode()),
                        *_openai_headers(requests, token_bucket),
                    ],
                )
        requests.level -= 1
        token_bucket.level -= min(tokens, token_bucket.limit)
        return _openai_headers(requests, token_bucket)

    def anthropic(self, model: str, input_tokens: int, output_tokens: int) -> Headers:
        now = time.monotonic()
        limits = self.limits
        requests = self._bucket(model, "anthropic-requests", limits.anthropic_requests_per_minute, now)
        inputs = self._bucket(model, "anthropic-input", limits.anthropic_input_tokens_per_minute, now)
        outputs = self._bucket(model, "anthropic-output", limits.anthropic_output_tokens_per_minute, now)
        if limits.enforce:
            wait = max(requests.wait_for(1), inputs.wait_for(input_tokens), outputs.wait_for(1))
            if wait > 0:
                raise ApiError(
                    429,
                    "This request would exceed the rate limit for your organization of "
                    f"{_which_anthropic(requests, inputs, outputs, input_tokens)} for {model}. "
                    "Please reduce the prompt length or the maximum tokens requested, or try again later.",
                    headers=[
                        (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                        *self._anthropic_headers(requests, inputs, outputs, now),
                    ],
                )
        requests.level -= 1
        inputs.level -= min(input_tokens, inputs.limit)
        outputs.level -= min(output_tokens, outputs.limit)
        return self._anthropic_headers(requests, inputs, outputs, now)

    def _anthropic_headers(self, requests: _Bucket, inputs: _Bucket, outputs: _Bucket, now: float) -> Headers:
        wall = time.time() - now
        tightest = inputs if inputs.level / inputs.limit <= outputs.level / outputs.limit else outputs
        out: Headers = []
        for name, bucket in (
            (b"requests", requests),
            (b"tokens", tightest),
            (b"input-tokens", inputs),
            (b"output-tokens", outputs),
        ):
            out.append((b"anthropic-ratelimit-" + name + b"-limit", bucket.limit_bytes))
            out.append((b"anthropic-ratelimit-" + name + b"-remaining", str(bucket.remaining).encode()))
            out.append((b"anthropic-ratelimit-" + name + b"-reset", self._rfc3339(wall + now + bucket.reset_in())))
        return out

    def _rfc3339(self, epoch: float) -> bytes:
        second = math.ceil(epoch)
        text = self._times.get(second)
        if text is None:
            if len(self._times) > 256:
                self._times.clear()
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
            self._times[second] = text
        return text


def _which_anthropic(requests: _Bucket, inputs: _Bucket, outputs: _Bucket, input_tokens: int) -> str:
    if requests.wait_for(1) > 0:
        return f"{requests.limit:,} requests per minute"
    if inputs.wait_for(input_tokens) > 0:
        return f"{inputs.limit:,} input tokens per minute"
    return f"{outputs.limit:,} output tokens per minute"


def _openai_headers(requests: _Bucket, tokens: _Bucket) -> Headers:
    return [
        (b"x-ratelimit-limit-requests", requests.limit_bytes),
        (b"x-ratelimit-limit-tokens", tokens.limit_bytes),
        (b"x-ratelimit-remaining-requests", str(requests.remaining).encode()),
        (b"x-ratelimit-remaining-tokens", str(tokens.remaining).encode()),
        (b"x-ratelimit-reset-requests", _duration(requests.reset_in()).encode()),
        (b"x-ratelimit-reset-tokens", _duration(tokens.reset_in()).encode()),
    ]


def _duration(seconds: float) -> str:
    """Go's time.Duration style, as OpenAI writes it: ``0s``, ``6ms``, ``1.2s``, ``1m30s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"
