"""Routing in the pipeline: choose the tier, serve the cheapest capable model, check the answer and
escalate a tier up when it fails; record the decision, its reason and what it saved.

Escape hatches: a pinned model (``routing.pinned_models``), the request header
``x-thrifty-tier: <tier>`` (that tier, whatever the policy says), and ``x-thrifty-route: off``
(served as asked) or ``shadow`` (decided and recorded, not applied); ``on`` is the default. An
unknown tier or directive is the client's error: a 400 in its API's error shape.

Money: when routing changes the model, ``savings["routing"]`` is the requested model's price for
the same usage less the actual cost (the ledger's counterfactual is the cost plus the savings).
The calls routing itself adds -- a classifier's, an answer that failed its check and was
escalated -- are recorded as rows of their own with a negative routing saving (their whole cost)
and so a counterfactual of zero: the sum of the routing savings over the ledger is what routing
saved, net.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.core.pricing import Cost, PriceBook, UnknownModelError
from thrifty.core.routing.checks import (
    Answer,
    AnswerCheck,
    answer_from_body,
    answer_from_stream,
    run_checks,
)
from thrifty.core.routing.decision import Decision, DecisionSource, Escalation, header_safe
from thrifty.core.routing.features import RequestFacts
from thrifty.core.routing.rules import RuleSet
from thrifty.core.routing.tiers import Choice, TierTable
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.errors import error_body
from thrifty.pipeline.call import Call, CallTrace, Next, Result, extra_call_listener, instruction_call
from thrifty.wire.openai_chat import first_message_text

if TYPE_CHECKING:  # numpy: loaded only when a learned router is configured, not by every gateway
    from thrifty.core.routing.embedding import Embedder, Vector
    from thrifty.core.routing.learned import LearnedRouter
    from thrifty.pipeline.services import Sections, Services

__all__ = [
    "ROUTE_HEADER",
    "ClassifierSettings",
    "LearnedSettings",
    "Pricer",
    "RouterStep",
]

log = logging.getLogger("thrifty.routing")

ROUTE_HEADER = b"x-thrifty-route"

_WORD = re.compile(r"[a-z0-9_-]+")
_DIRECTIVES = frozenset({"", "on", "off", "shadow"})


class Pricer:
    """Prices a usage at a public model's rates: its price-book name and provider come from
    ``resolve`` (the gateway's routes; the model's own name in-process)."""

    def __init__(self, prices: PriceBook, resolve: Callable[[str], tuple[str, str | None]]) -> None:
        self.prices = prices
        self.resolve = resolve

    def cost(self, model: str, usage: Usage, at: datetime) -> Decimal | None:
        priced_as, provider = self.resolve(model)
        try:
            return self.prices.price(usage, priced_as, provider=provider, at=at).cost.total
        except UnknownModelError:
            return None


@dataclass(frozen=True, slots=True)
class ClassifierSettings:
    model: str
    prompt: str
    max_tokens: int
    max_input_chars: int


@dataclass(frozen=True, slots=True)
class LearnedSettings:
    router: LearnedRouter
    embedder: Embedder
    thresholds: tuple[float, ...]


class RouterStep:
    """Sets ``call.model`` to the model to serve and ``call.route`` to the decision."""

    def __init__(
        self,
        *,
        tiers: TierTable,
        policies: Sequence[str],
        rules: RuleSet,
        default_tier: int,
        shadow: bool,
        upgrade: bool,
        pinned: frozenset[str],
        expected_output_tokens: int,
        counter: TokenCounter,
        pricer: Pricer,
        priced_as: Callable[[str], str],
        classifier: ClassifierSettings | None = None,
        learned: LearnedSettings | None = None,
        checks: Sequence[AnswerCheck] = (),
        check_streams: bool = False,
        max_escalations: int = 1,
    ) -> None:
        self.tiers = tiers
        self.policies = tuple(policies)
        self.rules = rules
        self.default_tier = default_tier
        self.shadow = shadow
        self.upgrade = upgrade
        self.pinned = pinned
        self.expected_output_tokens = expected_output_tokens
        self.counter = counter
        self.pricer = pricer
        self.priced_as = priced_as
        self.classifier = classifier
        self.learned = learned
        self.checks = tuple(checks)
        self.check_streams = check_streams
        self.max_escalations = max_escalations

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> RouterStep | None:
        """``routing:``, over the tier table, rules, learned router and checks that
        ``services.optimisation`` compiled from it and ``tiers:`` once."""
        spec, facts = sections.routing, services.optimisation
        if spec is None or facts is None or facts.tiers is None:
            return None
        classifier = None
        if spec.classifier is not None:
            c = spec.classifier
            classifier = ClassifierSettings(c.model, c.prompt, c.max_tokens, c.max_input_chars)
        default = facts.tiers.index(spec.default_tier) if spec.default_tier is not None else 0
        return cls(
            tiers=facts.tiers,
            policies=spec.policies,
            rules=facts.rules,
            default_tier=default or 0,
            shadow=spec.shadow,
            upgrade=spec.upgrade,
            pinned=frozenset(spec.pinned_models),
            expected_output_tokens=spec.expected_output_tokens,
            counter=facts.counter,
            pricer=facts.pricer,
            priced_as=facts.priced_as,
            classifier=classifier,
            learned=facts.learned,
            checks=facts.checks,
            check_streams=spec.escalation.streams,
            max_escalations=spec.escalation.max_steps,
        )

    # -- the step ---------------------------------------------------------------------------

    async def __call__(self, call: Call, next_step: Next) -> Result:
        rows: list[tuple[Call, Result]] = []  # a classifier's call, an escalated attempt: rows of their own
        result = await self._route(call, next_step, rows)
        result.records.extend(rows)
        return result

    async def _route(self, call: Call, next_step: Next, rows: list[tuple[Call, Result]]) -> Result:
        requested = call.model
        directive = call.hints.get("route", "").strip().lower()
        if directive == "internal":  # thrifty's own call (a summary): served as asked, its route kept
            return await next_step(call)
        forced = (call.hints.get("tier") or "").strip()
        problem = self._bad_directive(directive, forced)
        if problem is not None:
            body = error_body(call.client_api, 400, problem, "invalid_request_error")
            return Result(status=400, body=body, error=problem, billed=False)
        if directive == "off":
            return await self._unrouted(call, next_step, Decision("off", requested, requested, "x-thrifty-route: off"))
        if requested in self.pinned:
            return await self._unrouted(call, next_step, Decision("pinned", requested, requested, "a pinned model"))
        requested_tier = self.tiers.tier_of(requested)
        if requested_tier is None:
            decision = Decision("unrouted", requested, requested, "the model is in no tier")
            return await self._unrouted(call, next_step, decision)
        shadow = self.shadow or directive == "shadow"
        ceiling = self.tiers.top if self.upgrade else requested_tier
        facts = self._facts(call)
        index = self.tiers.index(forced) if forced else None
        if index is not None:
            source: DecisionSource = "header"
            tier, reason = index, "x-thrifty-tier"
            ceiling = max(ceiling, index)
        else:
            source, tier, reason = await self._policy(call, facts, next_step, rows)
        if tier > ceiling:
            tier, reason = ceiling, f"{reason}; capped at the requested model's tier"
        choice = self._choose(facts, tier, ceiling)
        if choice is None:
            reason = f"{reason}; no model of tier {self.tiers.names[tier]} or above meets the request's needs"
            decision = Decision(source, requested, requested, reason, self.tiers.names[requested_tier], shadow)
        else:
            decision = Decision(
                source, requested, choice.model.name, reason, self.tiers.names[choice.model.tier], shadow
            )
        if shadow:
            return await self._unrouted(call, next_step, decision)
        routed = call.replace(model=decision.model)
        result = await next_step(routed)
        result, decision = await self._escalate(routed, next_step, result, decision, facts, ceiling, rows)
        self._annotate(call, decision)
        if decision.served != requested:
            call.cost_listeners.append(self._counterfactual(call, requested))
        result.headers.append((ROUTE_HEADER, header_safe(decision.describe()).encode()))
        return result

    def _bad_directive(self, directive: str, tier: str) -> str | None:
        """What is wrong with the x-thrifty-route and x-thrifty-tier headers, if anything."""
        if directive not in _DIRECTIVES:
            return f"x-thrifty-route: expected on, off or shadow; got {header_safe(directive, 40)!r}"
        if tier and self.tiers.index(tier) is None:
            return f"x-thrifty-tier: no tier {header_safe(tier, 40)!r}; tiers: {', '.join(self.tiers.names)}"
        return None

    async def _unrouted(self, call: Call, next_step: Next, decision: Decision) -> Result:
        self._annotate(call, decision)
        result = await next_step(call)
        result.headers.append((ROUTE_HEADER, header_safe(decision.describe()).encode()))
        return result

    @staticmethod
    def _annotate(call: Call, decision: Decision) -> None:
        call.trace.route = decision.describe()
        call.details["routing"] = decision.as_details()

    def _facts(self, call: Call) -> RequestFacts:
        model = self.priced_as(call.model)
        counter = self.counter

        def count_request(request: Any) -> int:
            tokens = call.input_tokens.get(model)
            if tokens is None:
                tokens = call.input_tokens[model] = counter.count_request(request, model).input_tokens
            return tokens

        return RequestFacts(
            call.request,
            body_size=call.body_size or len(orjson.dumps(call.body)),
            count_text=lambda text: counter.count_text(text, model).input_tokens,
            count_request=count_request,
            feature=call.attribution.feature,
            tags=call.attribution.tags,
        )

    # -- policies ---------------------------------------------------------------------------

    def _choose(self, facts: RequestFacts, tier: int, ceiling: int) -> Choice | None:
        """The cheapest model from ``tier`` up to ``ceiling`` that meets the request's needs."""
        return self.tiers.choose(
            tier,
            ceiling,
            facts.needs,
            input_bound=facts.body_size,
            input_tokens=lambda: facts.context_tokens,
            max_output=facts.max_output,
            expected_output=self.expected_output_tokens,
        )

    async def _policy(
        self, call: Call, facts: RequestFacts, next_step: Next, rows: list[tuple[Call, Result]]
    ) -> tuple[DecisionSource, int, str]:
        for policy in self.policies:
            if policy == "rules":
                rule = self.rules.match(facts)
                if rule is not None:
                    return "rules", rule.tier, f"rule {rule.name}"
            elif policy == "cheapest":
                return "cheapest", 0, "cheapest capable"
            elif policy == "learned" and self.learned is not None:
                score = self._learned_score(call, facts.text, self.learned)
                tier = self.learned.router.tier(score, self.learned.thresholds, len(self.tiers.names))
                return "learned", tier, f"score {score:.3f}"
            elif policy == "classifier" and self.classifier is not None:
                tier, reason = await self._classify(call, facts.text, next_step, self.classifier, rows)
                return "classifier", tier, reason
        return "default", self.default_tier, "no rule matched" if "rules" in self.policies else "default tier"

    def _learned_score(self, call: Call, text: str, learned: LearnedSettings) -> float:
        embedder = learned.embedder
        vector: Vector | None = call.embeddings.get(embedder.name)
        if vector is None:
            vector = embedder.embed([text])[0]
            call.embeddings[embedder.name] = vector
        return learned.router.score(vector, text)

    async def _classify(
        self, call: Call, text: str, next_step: Next, settings: ClassifierSettings, rows: list[tuple[Call, Result]]
    ) -> tuple[int, str]:
        names = self.tiers.names
        prompt = settings.prompt.replace("{tiers}", ", ".join(names))
        classifier_call = instruction_call(
            call,
            settings.model,
            prompt,
            text[: settings.max_input_chars] or "(no text)",
            settings.max_tokens,
            purpose="routing classifier",
            route="classifier: deciding the tier",
            saving_key="routing",
        )
        try:
            result = await next_step(classifier_call)
        except Exception as error:  # a classifier failure must not fail the call
            log.warning("routing classifier failed: %s", error)
            return self.tiers.middle, f"classifier failed ({type(error).__name__}); middle tier"
        rows.append((classifier_call, result))
        answer = first_message_text(result.body) if result.status == 200 else None
        if answer is None:
            return self.tiers.middle, f"classifier answered {result.status}; middle tier"
        lowered = answer.strip().lower()
        for index, name in enumerate(names):
            if lowered.strip(" .'\"`") == name.lower():
                return index, f"classifier said {name}"
        words = set(_WORD.findall(lowered))
        found = [i for i, name in enumerate(names) if name.lower() in words]
        if len(found) == 1:
            return found[0], f"classifier said {names[found[0]]}"
        return self.tiers.middle, f"unexpected classifier answer {header_safe(answer, 40)!r}; middle tier"

    # -- escalation -------------------------------------------------------------------------

    async def _escalate(
        self,
        call: Call,
        next_step: Next,
        result: Result,
        decision: Decision,
        facts: RequestFacts,
        ceiling: int,
        rows: list[tuple[Call, Result]],
    ) -> tuple[Result, Decision]:
        if not self.checks:
            return result, decision
        steps = 0
        while True:
            if result.status != 200 or (result.events is not None and not self.check_streams):
                return result, decision
            current = self.tiers.tier_of(call.model)
            if current is None or current >= ceiling or steps >= self.max_escalations:
                return result, decision
            result, failure = await self._check(call, result)
            if failure is None:
                return result, decision
            choice = self._choose(facts, current + 1, ceiling)
            if choice is None:
                return result, decision
            rows.append((self._attempt(call, decision, failure), result))
            escalation = Escalation(choice.model.name, self.tiers.names[choice.model.tier], failure, call.model)
            decision = decision.escalated(escalation)
            call = call.replace(model=choice.model.name)
            result = await next_step(call)
            steps += 1

    async def _check(self, call: Call, result: Result) -> tuple[Result, str | None]:
        response_format = call.request.extra.get("response_format")
        json_requested = isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        )
        schema = None
        if json_requested and isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
        answer: Answer | None
        if result.events is not None:
            result = await _buffered(result)
            state = result.stream_state
            if state is None or state.error is not None:
                return result, None
            answer = answer_from_stream(
                "".join(state.output_text),
                state.finish_reason,
                model=result.served_model,
                json_requested=json_requested,
                json_schema=schema,
            )
        else:
            tools = {tool.name: dict(tool.parameters) for tool in call.request.tools}
            answer = answer_from_body(
                result.body or b"",
                call.client_api,
                model=result.served_model,
                json_requested=json_requested,
                json_schema=schema,
                tools=tools,
            )
            if answer is None:
                return result, None
        return result, run_checks(answer, self.checks)

    @staticmethod
    def _attempt(call: Call, decision: Decision, failure: str) -> Call:
        """The failed answer's own row: what the client asked, what served, why it failed. Its
        result carries what the steps inside set aside for it (a budget's reservation)."""
        attempt = call.replace(
            trace=CallTrace(
                details={**call.details, "routing": {**decision.as_details(), "failed_check": failure}},
                route=header_safe(f"{decision.describe()}; failed check: {failure}; escalated"),
                record_id=call.trace.record_id,
            )
        )
        call.trace.record_id = None  # the attempt's row supersedes the first dispatch's intent; the call's, the next
        attempt.cost_listeners.append(extra_call_listener(attempt, "routing"))
        for key in ("attempts", "context_fallback", "translation"):
            call.details.pop(key, None)
        return attempt

    def _counterfactual(self, call: Call, requested: str) -> Callable[[Cost | None, Usage], None]:
        """What the call would have cost served by the model the client asked for."""

        def listener(cost: Cost | None, usage: Usage) -> None:
            counterfactual = self.pricer.cost(requested, usage, call.ts)
            if counterfactual is not None and cost is not None:
                call.savings["routing"] = counterfactual - cost.total

        return listener


async def _buffered(result: Result) -> Result:
    """The stream read to its end (so its answer can be checked), then replayed as it came."""
    events = result.events
    assert events is not None
    chunks: list[bytes] = []
    try:
        async for chunk in events:
            chunks.append(chunk)
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()

    async def replay() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    result.events = replay()
    return result
