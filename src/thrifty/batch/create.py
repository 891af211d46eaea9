"""Creating a batch: the input file read line by line from disk and every line checked (JSON, the
batch's endpoint, a unique custom_id, a model this gateway serves through a provider with a batch
API, a valid request) before anything is queued; each line is attributed, looked up in the exact
cache (a hit is answered now and never sent), and held against the budgets at batch rates.

The lines to send are written as each provider's input file (one per provider and model) while
the input is read, so no line is held in memory; a refused batch leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from thrifty.batch.budget import BatchBudget
from thrifty.batch.job import BatchJob, Group, line_record_id
from thrifty.config.cache import ExactCacheSpec
from thrifty.core.cache_key import exact_key, namespace_for
from thrifty.core.ledger import LedgerRecord
from thrifty.core.pricing.rates import Cost
from thrifty.errors import Rejection
from thrifty.pipeline.call import Call, Result
from thrifty.pipeline.steps.cache import ExactCacheStep, bypass_reason
from thrifty.pipeline.steps.dispatch import Route, Routes
from thrifty.wire.openai_batches import LineProblem, output_line, read_input_line

__all__ = ["Prepared", "prepare"]

_SHOWN_PROBLEMS = 10
MakeCall = Callable[[dict[str, Any]], Call]
"""A line's body as a ``Call`` (the face's own intake: attribution from the key and the create
call's headers); raises ``Rejection`` for a request that is not valid."""


@dataclass(slots=True)
class Prepared:
    """A batch that passed every check, its files written, its budget not yet reserved."""

    job: BatchJob
    budget: BatchBudget | None
    hits: list[LedgerRecord] = field(default_factory=list)


@dataclass(slots=True)
class _Writers:
    folder: Path
    batch_id: str
    groups: dict[tuple[str, str], tuple[Group, IO[bytes]]] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)
    extras: list[IO[bytes]] = field(default_factory=list)

    def group_for(self, route: Route) -> tuple[Group, IO[bytes]]:
        key = (route.upstream.name, route.upstream_model)
        found = self.groups.get(key)
        if found is None:
            name = f"{self.batch_id}.g{len(self.groups)}"
            path = self.folder / f"{name}.jsonl"
            self.paths.append(path)
            group = Group(key=name, upstream=route.upstream.name, model=route.upstream_model, lines=0, path=str(path))
            found = self.groups[key] = (group, open(path, "wb"))  # noqa: SIM115 (closed by close())
        return found

    def open_file(self, path: Path) -> IO[bytes]:
        self.paths.append(path)
        out = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.extras.append(out)
        return out

    def close(self) -> None:
        for _, out in self.groups.values():
            out.close()
        for extra in self.extras:
            extra.close()

    def discard(self) -> None:
        self.close()
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


async def _queued(call: Call) -> Result:
    """The innermost step for a line at create time: not answered from the cache, so queued for
    its provider (202: nothing to store, nothing billed)."""
    return Result(status=202, billed=False)


async def prepare(
    job: BatchJob,
    input_path: Path,
    folder: Path,
    *,
    make_call: MakeCall,
    routes: Routes,
    cache: ExactCacheStep | None,
    cache_spec: ExactCacheSpec,
    budget: BatchBudget | None,
    max_lines: int,
) -> Prepared:
    """Check and split ``input_path``; raises ``Rejection`` (400) naming the bad lines."""
    lines = _Lines(job, _Writers(folder, job.id), make_call, routes, cache, cache_spec, budget, max_lines)
    try:
        with open(input_path, "rb") as source:
            for number, raw in enumerate(source, 1):
                if raw.strip() and not await lines.take(number, raw):
                    break
    except BaseException:
        lines.writers.discard()
        raise
    lines.writers.close()
    if lines.problems or lines.total > max_lines or lines.total == 0:
        lines.writers.discard()
        raise _refusal(lines.problems, lines.total, max_lines)
    job.groups = [group for group, _ in lines.writers.groups.values()]
    job.counts["total"] = lines.total
    job.model = lines.models.pop() if len(lines.models) == 1 else None
    return lines.prepared


@dataclass(slots=True)
class _Lines:
    """The input's lines, taken one at a time: checked, then answered from the cache or queued."""

    job: BatchJob
    writers: _Writers
    make_call: MakeCall
    routes: Routes
    cache: ExactCacheStep | None
    cache_spec: ExactCacheSpec
    budget: BatchBudget | None
    max_lines: int
    problems: list[LineProblem] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    total: int = 0
    prepared: Prepared = field(init=False)
    index: IO[bytes] = field(init=False)
    cached: IO[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.prepared = Prepared(self.job, self.budget)
        self.index = self.writers.open_file(Path(self.job.index_path))
        self.cached = self.writers.open_file(Path(self.job.cached_path))

    async def take(self, number: int, raw: bytes) -> bool:
        """Take one line; False once enough problems were found to stop reading."""
        try:
            custom_id, call, route = self._checked(number, raw)
        except LineProblem as problem:
            self.problems.append(problem)
            return len(self.problems) < 1000
        self.total += 1
        if self.total > self.max_lines or self.problems:
            return True  # refused anyway: nothing to look up
        self.models.add(call.model)
        call.details.update({"batch_id": self.job.id, "custom_id": custom_id})
        if self.cache is not None:
            result = await self.cache(call, _queued)
            if result.cache_status == "hit" and result.body is not None:
                self._answered(number, custom_id, call, result)
                return True
        self._queue(number, custom_id, call, route)
        return True

    def _checked(self, number: int, raw: bytes) -> tuple[str, Call, Route]:
        custom_id, body = read_input_line(raw, number, self.job.endpoint)
        if custom_id in self.seen:
            message = f"The custom_id {custom_id!r} is used more than once."
            raise LineProblem(number, "duplicate_custom_id", message, "custom_id")
        self.seen.add(custom_id)
        call, route = _line_call(number, body, self.make_call, self.routes)
        if self.budget is not None:
            try:
                call = self.budget.add(call, route)
            except ValueError as error:
                raise LineProblem(number, "budget_refused", str(error)) from None
        return custom_id, call, route

    def _answered(self, number: int, custom_id: str, call: Call, result: Result) -> None:
        job = self.job
        assert result.body is not None
        self.prepared.hits.append(_hit_record(job, number, custom_id, call, result))
        line_id = f"batch_req_{job.id}_{number}"
        self.cached.write(output_line(line_id, custom_id, 200, call.request_id, orjson.loads(result.body)) + b"\n")
        job.cached += 1

    def _queue(self, number: int, custom_id: str, call: Call, route: Route) -> None:
        group, out = self.writers.group_for(route)
        sent = dict(call.body)
        sent["model"] = route.upstream_model
        out.write(orjson.dumps({"custom_id": custom_id, "method": "POST", "url": self.job.endpoint, "body": sent}))
        out.write(b"\n")
        group.lines += 1
        key = None
        if self.cache is not None and bypass_reason(call, self.cache_spec) is None:
            who = call.attribution
            namespace = namespace_for(self.cache_spec.scope, team=who.team, key_id=who.key_id, user=who.user)
            key = [namespace, exact_key(call.body, call.client_api, call.model, call.cache_version)]
        self.index.write(orjson.dumps([custom_id, number, call.model, route.priced_as, key]) + b"\n")


def _line_call(number: int, body: dict[str, Any], make_call: MakeCall, routes: Routes) -> tuple[Call, Route]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise LineProblem(
            number, "missing_required_parameter", "Missing required parameter: 'body.model'.", "body.model"
        )
    route = routes.get(model)
    if route is None:
        served = ", ".join(routes.names())
        raise LineProblem(
            number,
            "model_not_found",
            f"The model {model!r} is not served by this gateway; it serves: {served}.",
            "body.model",
        )
    if route.upstream.kind != "openai":
        upstream = route.upstream
        message = f"The model {model!r} is served by {upstream.name} ({upstream.kind}): its batch API is not used yet."
        raise LineProblem(number, "unsupported_model", message, "body.model")
    try:
        return make_call(body), route
    except Rejection as rejection:
        raise LineProblem(number, "invalid_request", rejection.message, "body") from None


def _hit_record(job: BatchJob, number: int, custom_id: str, call: Call, result: Result) -> LedgerRecord:
    """The row of a line answered from the cache: cost 0, marked, the saving recorded."""
    who = call.attribution
    return LedgerRecord(
        id=line_record_id(job.id, job.created_at, number),
        requested_model=call.model,
        ts=call.ts,
        request_id=call.request_id,
        user=who.user,
        team=who.team,
        feature=who.feature,
        key_id=who.key_id,
        tags=who.tags,
        provider=result.provider,
        served_model=result.served_model,
        cost=Cost(),
        counterfactual_cost=call.counterfactual_cost,
        savings=dict(call.savings),
        latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
        status="ok",
        http_status=200,
        cache_status="hit",
        batch=True,
        details=dict(call.details),
    )


def _refusal(problems: list[LineProblem], total: int, max_lines: int) -> Rejection:
    if problems:
        shown = "; ".join(p.describe() for p in problems[:_SHOWN_PROBLEMS])
        more = f" (and {len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
        count = f"{len(problems)} bad line{'s' if len(problems) > 1 else ''}"
        message = f"input_file_id: the file has {count}, so the batch was not created: {shown}{more}"
        return Rejection(400, message, code=problems[0].code)
    if total == 0:
        return Rejection(400, "input_file_id: the file has no requests", code="empty_file")
    message = (
        f"input_file_id: the file has {total:,} requests, more than a batch takes ({max_lines:,}; batch.max_lines)"
    )
    return Rejection(400, message, code="too_many_requests")
