"""The pipeline: steps composed middleware-style around the dispatcher. Every face runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from thrifty.pipeline.call import Attribution, Call, Next, Result, Step

__all__ = ["Attribution", "Call", "Pipeline", "Result", "Step"]


class Pipeline:
    def __init__(self, steps: Sequence[Step], terminal: Callable[[Call], Awaitable[Result]]) -> None:
        handler: Next = terminal
        for step in reversed(steps):
            handler = _bind(step, handler)
        self._handler = handler

    async def run(self, call: Call) -> Result:
        return await self._handler(call)


def _bind(step: Step, next_step: Next) -> Next:
    async def run(call: Call) -> Result:
        return await step(call, next_step)

    return run
