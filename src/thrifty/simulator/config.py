"""The simulator's settings: a frozen pydantic model, loadable from a YAML or JSON file.

Every field has a default, so ``SimulatorConfig()`` is a working simulator: answers of 20-200
tokens, OpenAI automatic prompt caching (1024 tokens, 128-token steps, 10 minutes), Anthropic
``cache_control`` breakpoints with the per-model minimums below, generous rate limits and no faults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thrifty.core.documents import ConfigError, load_document

__all__ = [
    "DEFAULT_ANTHROPIC_CACHE_MINIMUMS",
    "DEFAULT_MODELS",
    "FaultSpec",
    "RateLimits",
    "SimulatorConfig",
    "describe_validation_error",
    "load_simulator_config",
]

# The smallest prefix Anthropic will cache, by model-name prefix (the longest matching prefix wins;
# "" is the default for any other model). From Anthropic's prompt-caching documentation.
DEFAULT_ANTHROPIC_CACHE_MINIMUMS: Mapping[str, int] = MappingProxyType(
    {
        "": 1024,
        "claude-3-haiku": 2048,
        "claude-3-5-haiku": 2048,
        "claude-haiku-3": 2048,
        "claude-haiku-4-5": 4096,
        "claude-opus-4-5": 4096,
        "claude-opus-4-6": 4096,
        "claude-sonnet-4-6": 2048,
    }
)

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "o3",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "claude-opus-4-5",
)

_STATUS_ONLY = re.compile(r"^[1-5]\d\d$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultSpec(_Strict):
    """One fault: an error status, added latency, a slow or dropped stream, or a hang.

    As text (the ``x-simulator-fault`` header, the admin endpoint, or a config value):
    ``;``-separated items, e.g. ``429;retry-after=0.2``, ``500``, ``529``, ``quota`` (a 429 with
    code ``insufficient_quota``), ``delay=150`` (ms before the response), ``chunk-delay=20`` (ms
    before each stream event), ``drop-after=3`` (close the connection after 3 stream events, or
    half-way through a non-streaming body), ``timeout`` (hang until the client gives up),
    ``rate=0.1`` (config faults only: the fraction of the model's requests affected).
    """

    status: Annotated[int, Field(ge=400, le=599)] | None = None
    retry_after_s: Annotated[float, Field(ge=0)] | None = None
    insufficient_quota: bool = False
    delay_ms: Annotated[float, Field(ge=0)] = 0.0
    chunk_delay_ms: Annotated[float, Field(ge=0)] = 0.0
    drop_after: Annotated[int, Field(ge=0)] | None = None
    timeout: bool = False
    rate: Annotated[float, Field(gt=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _quota_is_429(self) -> FaultSpec:
        if self.insufficient_quota and self.status not in (None, 429):
            raise ValueError("quota is a 429 error; it cannot have another status")
        return self

    @property
    def error_status(self) -> int | None:
        return 429 if self.insufficient_quota else self.status

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse the text form; raises ``ValueError`` with a message naming the bad item."""
        fields: dict[str, Any] = {}
        for raw in text.split(";"):
            item = raw.strip().lower()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep:
                if _STATUS_ONLY.match(key):
                    fields["status"] = int(key)
                elif key == "timeout":
                    fields["timeout"] = True
                elif key == "quota":
                    fields["insufficient_quota"] = True
                else:
                    raise ValueError(f"unknown fault item {raw.strip()!r}")
                continue
            name = _ITEM_FIELDS.get(key)
            if name is None:
                raise ValueError(f"unknown fault item {raw.strip()!r}")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"fault item {key!r} needs a number, got {value!r}") from None
            fields[name] = int(number) if name in ("status", "drop_after") else number
        if not fields:
            raise ValueError("empty fault")
        try:
            return cls(**fields)
        except ValidationError as error:
            raise ValueError(describe_validation_error(error, "fault")) from None

    def describe(self) -> str:
        parts: list[str] = []
        if self.insufficient_quota:
            parts.append("quota")
        elif self.status is not None:
            parts.append(str(self.status))
        for name, key in _ITEM_FIELDS.items():
            if key in ("status", "rate"):
                continue
            value = getattr(self, key)
            if value not in (None, 0, 0.0):
                parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
        if self.timeout:
            parts.append("timeout")
        if self.rate != 1.0:
            parts.append(f"rate={self.rate:g}")
        return ";".join(parts)


_ITEM_FIELDS: dict[str, str] = {
    "status": "status",
    "retry-after": "retry_after_s",
    "delay": "delay_ms",
    "chunk-delay": "chunk_delay_ms",
    "drop-after": "drop_after",
    "rate": "rate",
}


class RateLimits(_Strict):
    """Per-model token buckets that refill continuously over a minute, reported in the providers'
    rate-limit headers and, when ``enforce`` is on, answered with 429 when empty."""

    enforce: bool = True
    openai_requests_per_minute: Annotated[int, Field(ge=1)] = 10_000_000
    openai_tokens_per_minute: Annotated[int, Field(ge=1)] = 10_000_000_000
    anthropic_requests_per_minute: Annotated[int, Field(ge=1)] = 10_000_000
    anthropic_input_tokens_per_minute: Annotated[int, Field(ge=1)] = 10_000_000_000
    anthropic_output_tokens_per_minute: Annotated[int, Field(ge=1)] = 1_000_000_000


class SimulatorConfig(_Strict):
    """Settings of one simulated upstream (see the module docstring for the defaults)."""

    models: tuple[str, ...] = DEFAULT_MODELS
    """Listed by ``GET /v1/models``; requests for any other model are served all the same."""
    answer_min_tokens: Annotated[int, Field(ge=1)] = 20
    answer_max_tokens: Annotated[int, Field(ge=1, le=4096)] = 200
    openai_cache_ttl_s: Annotated[float, Field(gt=0)] = 600.0
    openai_cache_min_tokens: Annotated[int, Field(ge=1)] = 1024
    openai_cache_step_tokens: Annotated[int, Field(ge=1)] = 128
    anthropic_cache_ttl_5m_s: Annotated[float, Field(gt=0)] = 300.0
    anthropic_cache_ttl_1h_s: Annotated[float, Field(gt=0)] = 3600.0
    anthropic_cache_minimums: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: dict(DEFAULT_ANTHROPIC_CACHE_MINIMUMS)
    )
    anthropic_cache_lookback_blocks: Annotated[int, Field(ge=1)] = 20
    cache_max_entries: Annotated[int, Field(ge=16)] = 500_000
    """Bound on stored prefixes (both providers); expired entries go first, then the oldest."""
    reasoning_models: tuple[str, ...] = ("o1", "o3", "o4", "gpt-5")
    """Model-name prefixes that spend hidden reasoning tokens (counted in completion_tokens)."""
    batch_completion_delay_s: Annotated[float, Field(ge=0)] = 0.0
    """How long after creation a batch completes; 0 completes it on the first poll."""
    rate_limits: RateLimits = RateLimits()
    faults: dict[str, FaultSpec] = Field(default_factory=dict)
    """Faults by model name (``*`` for every model); a value may be written in the text form."""
    api_keys: tuple[str, ...] = ()
    """When not empty, requests must carry one of these keys (401 otherwise)."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    timeout_fault_max_s: Annotated[float, Field(gt=0)] = 600.0
    """A ``timeout`` fault hangs at most this long, then answers 504."""

    @field_validator("faults", mode="before")
    @classmethod
    def _fault_text(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {model: FaultSpec.parse(spec) if isinstance(spec, str) else spec for model, spec in value.items()}

    @model_validator(mode="after")
    def _answer_range(self) -> SimulatorConfig:
        if self.answer_min_tokens > self.answer_max_tokens:
            raise ValueError("answer_min_tokens must not exceed answer_max_tokens")
        if "" not in self.anthropic_cache_minimums:
            raise ValueError('anthropic_cache_minimums needs a default entry under ""')
        return self

    def anthropic_cache_minimum(self, model: str) -> int:
        name = model.lower()
        best, found = "", self.anthropic_cache_minimums[""]
        for prefix, minimum in self.anthropic_cache_minimums.items():
            if len(prefix) > len(best) and name.startswith(prefix):
                best, found = prefix, minimum
        return found

    def is_reasoning_model(self, model: str) -> bool:
        return model.lower().startswith(self.reasoning_models)


def load_simulator_config(path: str | Path) -> SimulatorConfig:
    """Read a YAML or JSON file; raises ``ConfigError`` naming the file and every problem."""
    document = load_document(path)
    if document is None:
        return SimulatorConfig()
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        return SimulatorConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, str(path))) from None
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None


def describe_validation_error(error: ValidationError, source: str) -> str:
    """Every problem on one line, worded as thrifty's config files word theirs (``fault: rate:
    Input should be less than or equal to 1; bogus: unknown key``): the simulator's copy of
    ``thrifty.config.files.describe_validation_error`` without a model (so no "did you mean"),
    kept here so that the stand-in for the providers needs nothing from the config layer."""
    problems: list[str] = []
    for detail in error.errors(include_url=False):
        where = _place(detail["loc"])
        message, kind = str(detail["msg"]), detail["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required, but missing"
        elif message.startswith("Value error, "):  # our own validators: the message says it all
            own = message.removeprefix("Value error, ")
            problems.append(f"{where}: {own}" if where else own)
            continue
        problems.append(f"{where or '(top level)'}: {message}")
    return f"{source}: " + "; ".join(problems)


def _place(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
