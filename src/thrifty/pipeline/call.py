"""What travels through the pipeline: the call, and what comes back."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from thrifty.core.messages import ChatRequest
from thrifty.core.pricing.rates import Cost
from thrifty.core.usage import Usage
from thrifty.wire.openai_chat import parse_openai_request

__all__ = [
    "Attribution",
    "Call",
    "CallTrace",
    "CostListener",
    "Next",
    "Result",
    "Step",
    "StreamState",
    "extra_call_listener",
    "instruction_call",
    "internal_call",
]

ClientAPI = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a call is for. From a virtual key first, then the x-thrifty-* headers, then the body."""

    user: str | None = None
    team: str | None = None
    feature: str | None = None
    key_id: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(slots=True)
class CallTrace:
    """What the steps learn about a call on its way through: shared by every copy of the call (a
    step that changes what is sent passes a copy on, see ``Call.replace``), read by the record step
    once the answer is known. Nothing here changes what is sent."""

    route: str | None = None
    """The routing decision, as the ledger and ``x-thrifty-route`` say it."""
    counterfactual_cost: Decimal | None = None
    """Set by a cache hit: what the stored answer cost (otherwise the record step works it out)."""
    savings: dict[str, Decimal] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    cost_listeners: list[CostListener] = field(default_factory=list)
    """Told the call's cost and usage once the record step knows them (a stream: when it ends)."""
    record_id: str | None = None
    """The ledger id of the call's next row: set by the dispatcher when it journals the call's
    intent (the row supersedes it), taken by the record step; None: a new id."""


@dataclass(frozen=True, slots=True)
class Call:
    """One request, as the face received it, and who it is for: immutable. A step that changes
    what is sent (the model, the body) passes on ``call.replace(...)``; what steps learn goes in the
    shared ``trace`` (and how the call was answered comes back in the ``Result``)."""

    request_id: str
    client_api: ClientAPI
    body: dict[str, Any]
    """The request JSON as it is to be sent: the client's, validated, or a step's replacement."""
    request: ChatRequest
    """The same request, normalised; for counting and decisions, never sent as is."""
    model: str
    """The public model name: the one the client asked for, or in a copy a step passed on (a
    router's choice, a budget's downgrade) the one to serve."""
    stream: bool
    attribution: Attribution
    ts: datetime
    started: float
    """``time.perf_counter()`` when the request arrived."""
    body_size: int = 0
    """The request body's size in bytes: an upper bound on its tokens, checked before counting them."""
    include_usage: bool = False
    """OpenAI clients only: the client asked for the usage chunk (``stream_options.include_usage``)."""
    cache_status: str = "miss"
    """What the cache steps decided on the way in (``bypass``, ``miss``; ``internal`` for
    thrifty's own calls), for rows written before the call returns (a lost attempt). How the call
    was answered comes back in ``Result.cache_status``."""
    cache_directive: str | None = None
    """``x-thrifty-cache``: ``off`` skips the caches, ``force`` caches a sampled request."""
    cache_version: str | None = None
    """``x-thrifty-cache-version``: entries of another version never answer (say, a hash of the
    documents an answer came from)."""
    urgent: bool = False
    """``x-thrifty-urgent``: a plan may allow such calls a larger max_tokens cap."""
    input_tokens: dict[str, int] = field(default_factory=dict)
    """The request's input tokens, counted once per model by the first step that needs them (a
    memo: a copy with another body starts a new one)."""
    hints: dict[str, str] = field(default_factory=dict)
    """Routing and output-cap directives from the ``x-thrifty-tier``, ``-route`` (off, shadow),
    ``-plan`` and ``-urgency`` headers, keyed without the prefix; thrifty's own calls (a classifier,
    a summary) carry ``route: internal``, ``caps: off`` and ``compress: off``."""
    embeddings: dict[str, Any] = field(default_factory=dict)
    """The last user message's embedding by embedder name: computed once, by whichever step
    (semantic cache, learned router) needs it first."""
    trace: CallTrace = field(default_factory=CallTrace)

    def replace(self, **changes: Any) -> Call:
        """A copy with ``changes`` to what is sent, for the steps inside; it shares this call's
        trace. A new body or request gets its own token counts."""
        if ("body" in changes or "request" in changes) and "input_tokens" not in changes:
            changes["input_tokens"] = {}
        return dataclasses.replace(self, **changes)

    # The trace, read through the call (its containers are filled in place).
    @property
    def details(self) -> dict[str, Any]:
        return self.trace.details

    @property
    def savings(self) -> dict[str, Decimal]:
        return self.trace.savings

    @property
    def cost_listeners(self) -> list[CostListener]:
        return self.trace.cost_listeners

    @property
    def route(self) -> str | None:
        return self.trace.route

    @property
    def counterfactual_cost(self) -> Decimal | None:
        return self.trace.counterfactual_cost


@dataclass(slots=True)
class StreamState:
    """What a stream has told us so far; read when it ends, however it ends."""

    usage: Usage | None = None
    """From the provider (the usage chunk, or message_start + message_delta). None if it never came."""
    output_text: list[str] = field(default_factory=list)
    """What the model generated, to estimate the output tokens of a stream cut short."""
    first_token_at: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    client_disconnected: bool = False


@dataclass(slots=True)
class Result:
    """What the pipeline answers. Exactly one of ``body`` and ``events`` is set."""

    status: int
    body: bytes | None = None
    """The whole response, in the client's format."""
    events: AsyncIterator[bytes] | None = None
    """SSE bytes in the client's format; closing it early (a client gone) closes the upstream."""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    served_model: str | None = None
    """The public name of the model that answered (it differs from the asked one after a fallback)."""
    upstream_model: str | None = None
    provider: str | None = None
    provider_id: str | None = None
    """The price catalogue's provider id, when known."""
    priced_as: str | None = None
    usage: Usage | None = None
    stream_state: StreamState | None = None
    first_byte_at: float | None = None
    output_text: str | None = None
    """The generated text, kept only when the provider reported no usage and thrifty must count it."""
    error: str | None = None
    sent: Call | None = None
    """The call as the dispatcher sent it (after compression, caps, routing): what the record step
    counts when the provider reported no usage."""
    cache_status: str | None = None
    """How the caches dealt with the call, set on the way out: ``hit`` or ``semantic`` (answered
    from one), ``miss`` (looked up, not found), ``bypass`` (left alone). None: no cache step
    has seen it yet (the record step then takes the call's inward decision)."""
    billed: bool = True
    """False when the provider did not bill (it refused the request): cost is a known zero."""
    on_priced: list[CostListener] = field(default_factory=list)
    """Told this result's recorded cost and usage: what a step set aside for this very attempt (a
    budget's reservation) settles with it, whichever row it ends up in."""
    records: list[tuple[Call, Result]] = field(default_factory=list)
    """Rows of their own that steps made on the way (a routing classifier's call, a history
    summary, an escalated attempt, a provider embedding): the record step prices and records each
    beside the call's own."""


Next = Callable[[Call], Awaitable[Result]]
CostListener = Callable[[Cost | None, Usage], None]
"""Called with the recorded cost (None: unknown) and usage of a call."""


class Step(Protocol):
    """A pipeline step: does its part, calls ``next_step`` (or answers without it)."""

    def __call__(self, call: Call, next_step: Next) -> Awaitable[Result]: ...


def internal_call(
    parent: Call,
    model: str,
    body: dict[str, Any],
    purpose: str,
    *,
    request: ChatRequest | None = None,
    started: float | None = None,
) -> Call:
    """A call thrifty makes on its own behalf for ``parent`` (a classifier, a summary, an
    embedding): same attribution and request id, OpenAI-shaped, never routed, capped or compressed
    itself, and no cache decision of its own (cache status ``internal``, out of the hit share).
    ``request``: when ``body`` is not a chat request (an embedding)."""
    return Call(
        request_id=parent.request_id,
        client_api="openai",
        body=body,
        request=request if request is not None else parse_openai_request(body),
        model=model,
        stream=False,
        attribution=parent.attribution,
        ts=datetime.now(UTC),
        started=time.perf_counter() if started is None else started,
        cache_status="internal",
        hints={"route": "internal", "caps": "off", "compress": "off"},
        trace=CallTrace(details={"purpose": purpose}),
    )


def instruction_call(
    parent: Call, model: str, instruction: str, text: str, max_tokens: int, *, purpose: str, route: str, saving_key: str
) -> Call:
    """An ``internal_call`` that asks a cheap ``model`` to follow ``instruction`` on ``text`` (a
    routing classifier, a history summary), deterministically, within ``max_tokens``; its cost
    is charged against the ``saving_key`` optimisation that made it."""
    body = {
        "model": model,
        "messages": [{"role": "system", "content": instruction}, {"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    call = internal_call(parent, model, body, purpose)
    call.trace.route = route
    call.cost_listeners.append(extra_call_listener(call, saving_key))
    return call


def extra_call_listener(call: Call, saving_key: str) -> CostListener:
    """For a call an optimisation added: it would not have happened without it, so its whole
    cost counts against that optimisation's savings (and its counterfactual, the cost plus the
    savings, comes to zero)."""

    def listener(cost: Cost | None, usage: Usage) -> None:
        if cost is not None:
            call.savings[saving_key] = -cost.total

    return listener
