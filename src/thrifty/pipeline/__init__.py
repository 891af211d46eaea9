"""The pipeline: steps composed middleware-style around the dispatcher. Every face runs it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence

from thrifty.pipeline.call import Attribution, Call, Next, Result, Step

__all__ = ["Attribution", "Call", "Pipeline", "Result", "Step"]


class Pipeline:
    """``steps[0]`` runs first and sees the result last. Each step is ``step(call, next_step)``.

    Bound with ``functools.partial`` rather than wrapper coroutines: every frame between the
    server and the upstream socket is walked again each time the request resumes from I/O."""

    def __init__(self, steps: Sequence[Step], terminal: Callable[[Call], Awaitable[Result]]) -> None:
        self.steps = tuple(steps)  # what the chain is made of, outermost first (for reading, not running)
        handler: Next = terminal
        for step in reversed(steps):
            handler = functools.partial(step, next_step=handler)
        self.run: Next = handler
