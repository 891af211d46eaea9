"""The ``tiers:``, ``routing:``, ``compression:`` and ``output_caps:`` sections of the config.

Tiers order the models from cheapest to strongest; routing picks a tier for each request and
serves the cheapest capable model of that tier (or above); compression and output caps send
fewer tokens in and let fewer come out. Every part is off unless configured.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thrifty.config.files import ConfigError, describe_validation_error, load_document

__all__ = [
    "DEFAULT_CLASSIFIER_PROMPT",
    "DEFAULT_CONCISE_INSTRUCTION",
    "DEFAULT_SUMMARY_PROMPT",
    "CheckName",
    "ClassifierSpec",
    "CompressionSpec",
    "EscalationSpec",
    "HistorySpec",
    "LearnedSpec",
    "OptimisationSpec",
    "OutputCapsSpec",
    "PolicyName",
    "RetrievalSpec",
    "RoutingSpec",
    "RuleSpec",
    "SummariseSpec",
    "WhitespaceSpec",
    "check_references",
    "load_optimisation_spec",
    "reference_problems",
]

PolicyName = Literal["rules", "classifier", "learned", "cheapest"]
CheckName = Literal["empty", "refusal", "invalid_json", "length", "tool_schema"]
Capability = Literal["tools", "vision", "json", "streaming"]
ALL_CHECKS: tuple[CheckName, ...] = ("empty", "refusal", "invalid_json", "length", "tool_schema")

DEFAULT_CLASSIFIER_PROMPT = (
    "You decide which tier of language models should answer a request. The tiers, from the "
    "cheapest and weakest to the strongest: {tiers}. Reply with the name of the cheapest tier "
    "whose models will answer the request below correctly and well. Reply with the tier name only."
)
DEFAULT_SUMMARY_PROMPT = (
    "Summarise the conversation below for the assistant that will continue it. Keep every fact, "
    "decision, name, number and open question the rest of the conversation may need; drop "
    "pleasantries and repetition. Write plain prose, at most {max_words} words."
)
DEFAULT_CONCISE_INSTRUCTION = "Answer concisely: no preamble, no repetition of the question, no closing summary."


def _compiled(patterns: list[str]) -> list[str]:
    """The patterns, once each is known to compile (a bad one is a config error, not a 500)."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {error}") from None
    return patterns


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSpec(_Strict):
    """A rule: when every condition given holds, the request goes to ``tier``. Rules are tried in
    order; the first that matches decides. A rule with no condition always matches."""

    name: str | None = None
    tier: str
    min_prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    """The last user message's tokens."""
    max_prompt_tokens: Annotated[int, Field(ge=0)] | None = None
    min_context_tokens: Annotated[int, Field(ge=0)] | None = None
    """The whole request's input tokens (system prompt, history, tools)."""
    max_context_tokens: Annotated[int, Field(ge=0)] | None = None
    has_code: bool | None = None
    """Code in the last user message (a fenced block, or lines that look like code)."""
    keywords: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Any of these words or phrases in the last user message (case-insensitive, whole words)."""
    regex: list[str] = Field(default_factory=list)
    """Any of these regular expressions found in the last user message (Python syntax)."""
    features: list[str] = Field(default_factory=list)
    """The call's feature (attribution) is one of these."""
    tags: list[str] = Field(default_factory=list)
    """The call carries any of these tags."""
    capabilities: list[Capability] = Field(default_factory=list)
    """The request needs all of these (tools, vision, json, streaming)."""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        return _compiled(patterns)

    @property
    def label(self) -> str:
        return self.name or f"-> {self.tier}"


class ClassifierSpec(_Strict):
    model: str
    """A model from ``models:`` (a cheap one); its calls are priced and recorded like any other."""
    prompt: str = DEFAULT_CLASSIFIER_PROMPT
    """The system prompt; ``{tiers}`` becomes the tier names, cheapest first."""
    max_tokens: Annotated[int, Field(ge=1, le=64)] = 8
    max_input_chars: Annotated[int, Field(ge=100)] = 4000
    """The request's text sent to the classifier is cut to this many characters."""


class LearnedSpec(_Strict):
    path: str
    """A router file from ``thrifty router train`` (relative to the config file)."""
    thresholds: list[Annotated[float, Field(ge=0, le=1)]] | None = None
    """Scores (the router's probability that a stronger model is needed) at which a request moves
    up a tier: one fewer than the tiers, ascending. Default: the router's trained threshold
    between the lowest and the highest tier."""

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and any(b < a for a, b in itertools.pairwise(values)):
            raise ValueError("thresholds must be in ascending order")
        return values


class EscalationSpec(_Strict):
    enabled: bool = True
    checks: list[CheckName] = Field(default_factory=lambda: list(ALL_CHECKS))
    """Built-in checks of a cheaper model's answer; failing one retries the request a tier up."""
    custom: list[str] = Field(default_factory=list)
    """Your own checks, as ``package.module:function``; each takes a ``thrifty.core.routing.Answer``
    and returns a reason (str) when the answer fails, ``None`` when it passes."""
    refusal_patterns: list[str] = Field(default_factory=list)
    """Regular expressions that mark an answer as a refusal, on top of the built-in ones."""
    streams: bool = False
    """Check streamed answers too. The stream is held back until it is complete, so the client
    sees no token before the check passes; off by default."""
    max_steps: Annotated[int, Field(ge=1, le=4)] = 1

    @field_validator("refusal_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in _compiled(patterns):
            try:  # they are joined into one expression, each as (?:pattern)
                re.compile(f"(?:{pattern})")
            except re.error as error:
                raise ValueError(
                    f"{pattern!r} cannot be one of several patterns: {error} (they match case-insensitively "
                    "already; a flag for part of one is written (?i:...))"
                ) from None
        return patterns


class RoutingSpec(_Strict):
    policy: PolicyName | list[PolicyName] = "rules"
    """One policy, or several tried in order: the first that names a tier decides (rules name one
    only when a rule matches; the others always do)."""
    shadow: bool = False
    """Compute and record the decision, but serve the requested model."""
    default_tier: str | None = None
    """When no policy names a tier. Default: the cheapest tier."""
    upgrade: bool = False
    """Whether routing may serve a model of a tier above the requested model's. Off: routing and
    escalation never go above what the client asked for."""
    pinned_models: list[str] = Field(default_factory=list)
    """Requests for these models are always served as asked."""
    expected_output_tokens: Annotated[int, Field(ge=1)] = 500
    """Output assumed when comparing costs, when the request's max_tokens is higher or unset."""
    rules: list[RuleSpec] = Field(default_factory=list)
    classifier: ClassifierSpec | None = None
    learned: LearnedSpec | None = None
    escalation: EscalationSpec = Field(default_factory=EscalationSpec)

    @property
    def policies(self) -> tuple[PolicyName, ...]:
        return (self.policy,) if isinstance(self.policy, str) else tuple(self.policy)

    @model_validator(mode="after")
    def _policies_configured(self) -> RoutingSpec:
        policies = self.policies
        if not policies:
            raise ValueError("policy: name at least one policy")
        if "classifier" in policies and self.classifier is None:
            raise ValueError("policy classifier needs a classifier: section (its model)")
        if "learned" in policies and self.learned is None:
            raise ValueError("policy learned needs a learned: section (the router file's path)")
        return self


class WhitespaceSpec(_Strict):
    enabled: bool = True


class SummariseSpec(_Strict):
    model: str
    """A model from ``models:`` that writes the summary of the dropped turns (priced and recorded)."""
    max_tokens: Annotated[int, Field(ge=16, le=8192)] = 400
    prompt: str = DEFAULT_SUMMARY_PROMPT
    """``{max_words}`` becomes about three quarters of max_tokens."""
    cache_entries: Annotated[int, Field(ge=0)] = 10_000


class HistorySpec(_Strict):
    enabled: bool = True
    max_turns: Annotated[int, Field(ge=1)] | None = None
    """Keep at most this many recent turns (a turn: a user message and what follows it)."""
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    """Keep the system prompt and the most recent turns that fit in this many tokens (the last
    turn is always kept)."""
    summarise: SummariseSpec | None = None
    """Replace the dropped turns by a summary written by a cheap model (cached)."""


class RetrievalSpec(_Strict):
    enabled: bool = True
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Chunks scoring below this are dropped. The score is the one the request gives
    (``"thrifty_chunk": 0.83``), or else thrifty's lexical similarity to the last user message."""
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    """The best chunks are kept within this many tokens (all of a request's chunks together)."""


class CompressionSpec(_Strict):
    whitespace: WhitespaceSpec | None = None
    history: HistorySpec | None = None
    retrieval: RetrievalSpec | None = None

    @property
    def active(self) -> bool:
        return any(part is not None and part.enabled for part in (self.whitespace, self.history, self.retrieval))


class OutputCapsSpec(_Strict):
    plans: dict[str, Annotated[int, Field(ge=1)]]
    """max_tokens by plan, e.g. ``{free: 256, pro: 1024, enterprise: 4096}``."""
    default_plan: str | None = None
    """The plan of a call no mapping below names; none: such calls are not capped."""
    users: dict[str, str] = Field(default_factory=dict)
    teams: dict[str, str] = Field(default_factory=dict)
    features: dict[str, str] = Field(default_factory=dict)
    keys: dict[str, str] = Field(default_factory=dict)
    """Plans by virtual key id, user, team or feature (looked up in that order)."""
    plan_header: bool = False
    """Trust the client's ``x-thrifty-plan`` header (only where clients are your own code)."""
    urgency: dict[str, Annotated[float, Field(gt=0, le=10)]] = Field(
        default_factory=lambda: {"low": 0.5, "normal": 1.0, "high": 1.5}
    )
    """Multipliers of the plan's cap by the ``x-thrifty-urgency`` header; ``normal`` when absent."""
    concise: bool = False
    """Add an instruction to answer concisely (a separate system message or block; the client's
    own system prompt is never changed)."""
    concise_instruction: str = DEFAULT_CONCISE_INSTRUCTION

    @model_validator(mode="after")
    def _plans_exist(self) -> OutputCapsSpec:
        known = set(self.plans)
        mappings = (("keys", self.keys), ("users", self.users), ("teams", self.teams), ("features", self.features))
        for where, mapping in mappings:
            for name, plan in mapping.items():
                if plan not in known:
                    raise ValueError(f"{where}.{name}: no plan {plan!r} (plans: {', '.join(sorted(known))})")
        if self.default_plan is not None and self.default_plan not in known:
            raise ValueError(f"default_plan: no plan {self.default_plan!r}")
        return self


class OptimisationSpec(_Strict):
    """The four sections together, as the in-process client takes them (``Thrifty(optimise=...)``)."""

    tiers: dict[str, list[str]] = Field(default_factory=dict)
    routing: RoutingSpec | None = None
    compression: CompressionSpec | None = None
    output_caps: OutputCapsSpec | None = None

    @model_validator(mode="after")
    def _references(self) -> OptimisationSpec:
        problem = check_references(self.tiers, self.routing, self.compression, None)
        if problem:
            raise ValueError(problem)
        return self


def check_references(
    tiers: dict[str, list[str]],
    routing: RoutingSpec | None,
    compression: CompressionSpec | None,
    models: Collection[str] | None,
) -> str | None:
    """The first reference that does not resolve (see ``reference_problems``), or None."""
    problems = reference_problems(tiers, routing, compression, models)
    return problems[0] if problems else None


def reference_problems(
    tiers: dict[str, list[str]] | None,
    routing: RoutingSpec | None,
    compression: CompressionSpec | None,
    models: Collection[str] | None,
) -> list[str]:
    """Every reference that does not resolve (a tier naming an unknown model, a rule naming an
    unknown tier, ...). ``models`` None: any model name is accepted (in-process, or a fragment);
    ``tiers`` None: unknown (a section that did not validate), so routing's tiers go unchecked."""
    problems: list[str] = []
    for tier, names in (tiers or {}).items():
        if not names:
            problems.append(f"tiers.{tier}: list at least one model")
        problems += [
            f"tiers.{tier}: no model named {name!r} in models:"
            for name in names
            if models is not None and name not in models
        ]
    if routing is not None and tiers is not None:
        problems += _routing_references(tiers, routing)
    if routing is not None and models is not None:
        if routing.classifier is not None and routing.classifier.model not in models:
            problems.append(f"routing.classifier.model: no model named {routing.classifier.model!r}")
        problems += [
            f"routing.pinned_models: no model named {name!r}" for name in routing.pinned_models if name not in models
        ]
    if compression is not None and compression.history is not None and compression.history.summarise is not None:
        model = compression.history.summarise.model
        if models is not None and model not in models:
            problems.append(f"compression.history.summarise.model: no model named {model!r}")
    return problems


def _routing_references(tiers: dict[str, list[str]], routing: RoutingSpec) -> list[str]:
    if not tiers:
        return ["routing: needs tiers: (the models by tier, cheapest tier first)"]
    problems = [
        f"routing.rules[{index}].tier: no tier {rule.tier!r} (tiers: {', '.join(tiers)})"
        for index, rule in enumerate(routing.rules)
        if rule.tier not in tiers
    ]
    if routing.default_tier is not None and routing.default_tier not in tiers:
        problems.append(f"routing.default_tier: no tier {routing.default_tier!r}")
    thresholds = routing.learned.thresholds if routing.learned is not None else None
    if thresholds is not None and len(thresholds) != len(tiers) - 1:
        problems.append(f"routing.learned.thresholds: give {len(tiers) - 1} (one fewer than the tiers)")
    return problems


def load_optimisation_spec(source: str | Path | Mapping[str, Any] | OptimisationSpec) -> OptimisationSpec:
    """The in-process client's ``tiers:``, ``routing:``, ``compression:`` and ``output_caps:``: a
    YAML or JSON file (a gateway config file will do: its other sections are ignored), or a mapping."""
    if isinstance(source, OptimisationSpec):
        return source
    where = "optimise"
    document: Any = source
    if isinstance(source, str | Path):
        where = str(source)
        document = load_document(source) or {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"{where}: expected a mapping (tiers:, routing:, compression:, output_caps:)")
    sections = {k: v for k, v in document.items() if k in ("tiers", "routing", "compression", "output_caps")}
    try:
        return OptimisationSpec.model_validate(sections)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, where)) from None
