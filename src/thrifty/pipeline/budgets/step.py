"""The budget step: plans, then budgets, around the steps inside."""

from __future__ import annotations

from typing import TYPE_CHECKING

from thrifty.pipeline.budgets.engine import BudgetEngine
from thrifty.pipeline.budgets.estimate import RoutesOf
from thrifty.pipeline.call import Call, Next, Result

if TYPE_CHECKING:
    from thrifty.pipeline.services import Sections, Services

__all__ = ["BudgetStep"]


class BudgetStep:
    """Plans, then budgets: reserve before the call goes on, settle when its cost is known."""

    def __init__(self, engine: BudgetEngine, routes_of: RoutesOf) -> None:
        self.engine = engine
        self.routes_of = routes_of

    @classmethod
    def from_config(cls, sections: Sections, services: Services) -> BudgetStep | None:
        """On wherever budgets are (``budgets:``, ``plans:``, read into ``services.limits``)."""
        if services.limits is None:
            return None
        return cls(services.limits.engine, services.routes_of)

    async def __call__(self, call: Call, next_step: Next) -> Result:
        engine = self.engine
        plan = engine.plan_for(call)
        if plan is not None:
            applied = engine.apply_plan(call, *plan)
            if isinstance(applied, Result):
                return applied
            call = applied
        pairs = engine.covering(call, plan[0] if plan is not None else None)
        if not pairs:
            return await next_step(call)
        held = await engine.reserve(call, pairs, self.routes_of)
        if isinstance(held, Result):
            return held
        if held is None:
            return await next_step(call)
        try:
            result = await next_step(held.call or call)
        except BaseException:
            held.release()
            raise
        result.on_priced.append(held.on_cost)  # settles with the row this very attempt ends up in
        return result
