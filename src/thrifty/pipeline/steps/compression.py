"""Compression and output caps in the pipeline: fewer tokens in, fewer allowed out.

``CompressionStep`` prunes retrieved chunks, normalises whitespace and trims history (with a
summary of the dropped turns by a cheap model, cached so it is paid for once); it records the
tokens it saved in the call's details and their value in ``savings["compression"]``. Whatever it
produces is checked to be a valid request for the client's API; if it is not, the original is
sent. ``OutputCapStep`` lowers max_tokens to the caller's plan (times the urgency factor), never
raising a lower limit the client set, and may add an instruction to answer concisely.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.core.compression.caps import PlanTable, add_instruction, apply_cap
from thrifty.core.compression.compress import CompressionSettings, Prepared, finish, history_saving, prepare
from thrifty.core.compression.validity import conversation_problem
from thrifty.core.compression.whitespace import normalise_whitespace
from thrifty.core.compression.wire import message_text
from thrifty.core.messages import ChatRequest, RequestError
from thrifty.core.pricing import Cost
from thrifty.core.routing.decision import header_safe
from thrifty.core.tokens.counter import TokenCounter
from thrifty.core.usage import Usage
from thrifty.errors import error_body
from thrifty.pipeline.call import Call, Next, Result, instruction_call
from thrifty.pipeline.steps.routing import Pricer
from thrifty.wire.anthropic_messages import parse_anthropic_request
from thrifty.wire.openai_chat import first_message_text, parse_openai_request

if TYPE_CHECKING:
    from thrifty.pipeline.services import Sections, Services

__all__ = ["CompressionStep", "OutputCapStep", "SummarySettings", "TextCounter"]

log = logging.getLogger("thrifty.compression")


class _DroppedTurns:
    """What the dropped turns weighed, which only the ledger needs, counted off the request's path:
    a task counts them at the first point the rest of the pipeline waits (a budget store, the
    upstream's answer) and adds them to the call's compression details, once. Every ledger row
    written after that (an escalated attempt's too) carries them; ``settle`` counts them at record
    time if the task has not run (an upstream that answered without the loop ever waiting)."""

    def __init__(self, prepared: Prepared, summary_tokens: int, details: dict[str, Any]) -> None:
        self._prepared = prepared
        self._summary_tokens = summary_tokens
        self._details = details
        self._added = False
        self.task = asyncio.ensure_future(self._count())

    async def _count(self) -> None:
        self._add()

    def _add(self) -> None:
        if self._added:
            return
        self._added = True
        tokens = history_saving(self._prepared, self._summary_tokens)
        if tokens > 0:
            self._details["history"] = tokens
            self._details["tokens_saved"] += tokens

    def settle(self) -> None:
        self.task.cancel()
        self._add()


class TextCounter:
    """Token counts and whitespace normalisations of texts, remembered: a conversation sends its
    earlier messages again with every turn, so each is worked on once. Bounded (cleared when full)."""

    def __init__(self, counter: TokenCounter, limit: int = 50_000) -> None:
        self.counter = counter
        self.limit = limit
        self._known: dict[tuple[str, str], int] = {}
        self._normalised: dict[str, str] = {}

    def normalise(self, text: str) -> str:
        known = self._normalised.get(text)
        if known is None:
            if len(self._normalised) >= self.limit:
                self._normalised.clear()
            known = self._normalised[text] = normalise_whitespace(text)
        return known

    def count(self, text: str, model: str) -> int:
        if not text:
            return 0
        key = (model, text)
        tokens = self._known.get(key)
        if tokens is None:
            if len(self._known) >= self.limit:
                self._known.clear()
            tokens = self._known[key] = self.counter.text_tokens(text, model)
        return tokens


@dataclasses.dataclass(frozen=True, slots=True)
class SummarySettings:
    model: str
    max_tokens: int
    prompt: str
    cache_entries: int


class _SummaryCache:
    """Summaries by the hash of the conversation prefix they summarise; concurrent requests for the
    same summary wait for the one call that writes it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._pending: dict[str, asyncio.Future[str | None]] = {}

    def get(self, key: str) -> str | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        if self.limit <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)


def _parse(body: dict[str, Any], api: str) -> ChatRequest:
    return parse_openai_request(body) if api == "openai" else parse_anthropic_request(body)


class CompressionStep:
    def __init__(
        self,
        settings: CompressionSettings,
        *,
        counter: TextCounter,
        pricer: Pricer,
        priced_as: Callable[[str], str],
        summary: SummarySettings | None = None,
    ) -> None:
        self.settings = settings
        self.counter = counter
        self.pricer = pricer
        self.priced_as = priced_as
        self.summary = summary
        self._summaries = _SummaryCache(summary.cache_entries if summary is not None else 0)

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> CompressionStep | None:
        """``compression:``: on when any of its parts is."""
        spec, facts = sections.compression, services.optimisation
        if spec is None or not spec.active or facts is None:
            return None
        history = spec.history if spec.history is not None and spec.history.enabled else None
        retrieval = spec.retrieval if spec.retrieval is not None and spec.retrieval.enabled else None
        settings = CompressionSettings(
            whitespace=spec.whitespace is not None and spec.whitespace.enabled,
            retrieval=retrieval is not None,
            min_score=retrieval.min_score if retrieval is not None else 0.0,
            chunk_tokens=retrieval.max_tokens if retrieval is not None else None,
            history=history is not None,
            max_turns=history.max_turns if history is not None else None,
            max_tokens=history.max_tokens if history is not None else None,
        )
        summary = None
        if history is not None and history.summarise is not None:
            s = history.summarise
            summary = SummarySettings(s.model, s.max_tokens, s.prompt, s.cache_entries)
        return cls(
            settings, counter=facts.text_counter, pricer=facts.pricer, priced_as=facts.priced_as, summary=summary
        )

    async def __call__(self, call: Call, next_step: Next) -> Result:
        if call.hints.get("compress") == "off":
            return await next_step(call)
        rows: list[tuple[Call, Result]] = []  # a history summary's call: a row of its own
        result = await self._compress(call, next_step, rows)
        result.records.extend(rows)
        return result

    async def _compress(self, call: Call, next_step: Next, rows: list[tuple[Call, Result]]) -> Result:
        model = self.priced_as(call.model)
        counter = self.counter

        def count_text(text: str) -> int:
            return counter.count(text, model)

        settings = self.settings
        fixed = self._fixed_tokens(call, count_text) if settings.history and settings.max_tokens else 0
        prepared = prepare(
            call.body, call.client_api, settings, count_text, fixed_tokens=fixed, normalise=counter.normalise
        )
        if not prepared.changed:
            return await next_step(call)
        summary: str | None = None
        if prepared.history is not None and self.summary is not None:
            summary = await self._summarise(call, prepared, next_step, self.summary, rows)
        summary_tokens = count_text(summary) if summary else 0
        body = finish(prepared, summary, summary_tokens, count_history=False)
        problem = conversation_problem(body, call.client_api)
        request: ChatRequest | None = None
        if problem is None:
            try:
                request = _parse(body, call.client_api)
            except RequestError as error:
                problem = str(error)
        if request is None:
            log.warning("compression produced an invalid request (%s); sending the original", problem)
            call.details["compression"] = {"skipped": f"invalid result: {problem}"}
            return await next_step(call)
        call = call.replace(body=body, request=request, body_size=0)
        details = call.details["compression"] = {"tokens_saved": sum(prepared.saved.values()), **prepared.saved}
        details.update(prepared.notes)
        # A long conversation seen for the first time must not wait for its dropped turns' count.
        dropped = _DroppedTurns(prepared, summary_tokens, details) if prepared.history else None
        try:
            result = await next_step(call)
        except BaseException:
            if dropped is not None:
                dropped.task.cancel()
            raise
        call.cost_listeners.append(self._savings(call, result, details, dropped))
        return result

    def _fixed_tokens(self, call: Call, count_text: Callable[[str], int]) -> int:
        """Tokens outside the messages that the history budget must hold: Anthropic's system
        prompt, and the tool definitions."""
        tokens = 0
        system = call.body.get("system")
        if isinstance(system, str):
            tokens += count_text(system)
        elif isinstance(system, list):
            tokens += sum(count_text(str(b.get("text", ""))) for b in system if isinstance(b, dict))
        tools = call.body.get("tools")
        if tools:
            tokens += count_text(orjson.dumps(tools).decode())
        return tokens

    def _savings(
        self, call: Call, result: Result, details: dict[str, Any], dropped: _DroppedTurns | None
    ) -> Callable[[Cost | None, Usage], None]:
        """The saved input tokens (the history's added once counted) priced at the counterfactual
        model's rates: the requested model's when routing changed it (routing's listener ran
        first), else the served one's."""

        def listener(cost: Cost | None, usage: Usage) -> None:
            if dropped is not None:
                dropped.settle()
            saved = int(details["tokens_saved"])
            if saved <= 0:
                return
            model = call.request.model if "routing" in call.savings else (result.served_model or call.model)
            before = self.pricer.cost(model, usage, call.ts)
            after = self.pricer.cost(
                model, dataclasses.replace(usage, input_tokens=usage.input_tokens + saved), call.ts
            )
            if before is None or after is None:
                return
            call.savings["compression"] = after - before

        return listener

    # -- summaries --------------------------------------------------------------------------

    async def _summarise(
        self,
        call: Call,
        prepared: Prepared,
        next_step: Next,
        settings: SummarySettings,
        rows: list[tuple[Call, Result]],
    ) -> str | None:
        dropped = prepared.dropped_messages()
        keys = _prefix_keys(dropped, settings, prepared.api)
        cache = self._summaries
        final = keys[-1]
        cached = cache.get(final)
        if cached is not None:
            prepared.notes["summary"] = "cached"
            return cached
        pending = cache._pending.get(final)
        if pending is not None:
            prepared.notes["summary"] = "shared"
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        cache._pending[final] = future
        try:
            # Start from the longest earlier prefix already summarised: only what was dropped
            # since is sent, with that summary.
            base, start = None, 0
            for index in range(len(keys) - 2, -1, -1):
                base = cache.get(keys[index])
                if base is not None:
                    start = index + 1
                    break
            text = await self._write_summary(call, base, dropped[start:], next_step, settings, rows)
            if text:
                cache.put(final, text)
            prepared.notes["summary"] = "incremental" if base is not None else "new"
            future.set_result(text)
            return text
        except BaseException:
            future.set_result(None)
            raise
        finally:
            cache._pending.pop(final, None)

    async def _write_summary(
        self,
        call: Call,
        base: str | None,
        messages: list[Any],
        next_step: Next,
        settings: SummarySettings,
        rows: list[tuple[Call, Result]],
    ) -> str | None:
        lines = []
        if base:
            lines.append(f"(Summary of what came before)\n{base}\n")
        for message in messages:
            if isinstance(message, dict):
                lines.append(f"{message.get('role', 'user')}: {message_text(message)}")
        prompt = settings.prompt.replace("{max_words}", str(max(10, settings.max_tokens * 3 // 4)))
        summary_call = instruction_call(
            call,
            settings.model,
            prompt,
            "\n\n".join(lines),
            settings.max_tokens,
            purpose="history summary",
            route="compression: summary of dropped turns",
            saving_key="compression",
        )
        try:
            result = await next_step(summary_call)
        except Exception as error:
            log.warning("history summary failed: %s", error)
            return None
        rows.append((summary_call, result))
        return first_message_text(result.body) if result.status == 200 else None


def _prefix_keys(messages: list[Any], settings: SummarySettings, api: str) -> list[str]:
    """A key for each prefix of ``messages`` (a rolling hash), so a longer conversation finds the
    summary of its earlier part."""
    digest = hashlib.blake2b(f"{settings.model}\0{settings.prompt}\0{api}".encode(), digest_size=16).digest()
    keys = []
    for message in messages:
        digest = hashlib.blake2b(digest + orjson.dumps(message, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        keys.append(digest.hex())
    return keys


class OutputCapStep:
    def __init__(self, plans: PlanTable, *, plan_header: bool, concise: str | None) -> None:
        self.plans = plans
        self.plan_header = plan_header
        self.concise = concise

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> OutputCapStep | None:
        """``output_caps:``: on when the section is there."""
        caps = sections.output_caps
        if caps is None:
            return None
        table = PlanTable(
            plans=caps.plans,
            default_plan=caps.default_plan,
            keys=caps.keys,
            users=caps.users,
            teams=caps.teams,
            features=caps.features,
            urgency=caps.urgency,
        )
        return cls(table, plan_header=caps.plan_header, concise=caps.concise_instruction if caps.concise else None)

    async def __call__(self, call: Call, next_step: Next) -> Result:
        hints = call.hints
        if hints.get("caps") == "off":
            return await next_step(call)
        asked = hints.get("urgency")
        if asked is not None and asked not in self.plans.urgency:
            known = ", ".join(self.plans.urgency)
            problem = f"x-thrifty-urgency: expected one of {known}; got {header_safe(asked, 40)!r}"
            error = error_body(call.client_api, 400, problem, "invalid_request_error")
            return Result(status=400, body=error, error=problem, billed=False)
        who = call.attribution
        plan = self.plans.plan_for(
            key_id=who.key_id,
            user=who.user,
            team=who.team,
            feature=who.feature,
            asked=hints.get("plan") if self.plan_header else None,
        )
        body = call.body
        note: dict[str, Any] = {}
        request = call.request
        if plan is not None:
            # x-thrifty-urgency: low | normal | high; the budgets' x-thrifty-urgent: 1 counts as high.
            urgency = asked or ("high" if call.urgent else None)
            capped = apply_cap(body, call.client_api, self.plans.cap(plan, urgency))
            note = {
                "plan": plan,
                "urgency": urgency or "normal",
                "cap": self.plans.cap(plan, urgency),
                "client_max_tokens": capped.before,
                "max_tokens": capped.after,
                "applied": capped.applied,
            }
            if capped.applied:
                body = capped.body
                request = dataclasses.replace(request, max_tokens=capped.after)
        if self.concise is not None:
            body = add_instruction(body, call.client_api, self.concise)
            try:
                request = _parse(body, call.client_api)
            except RequestError:
                body, request = call.body, call.request
            else:
                note["concise"] = True
        if body is not call.body:
            if note.get("concise"):  # another prompt: counted anew
                call = call.replace(body=body, request=request, body_size=0)
            else:  # only max_tokens changed: the input's counts hold
                call = call.replace(body=body, request=request, input_tokens=call.input_tokens)
        if note:
            call.details["output_cap"] = note
        return await next_step(call)
