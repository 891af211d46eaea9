"""What a call refused by a budget is told: which budget, what was spent and reserved, what the
call may cost, and when to try again (429 ``budget_exceeded``, with ``Retry-After`` unless the
call can never fit)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from thrifty.core.budgets import Budget, Period, describe_amount
from thrifty.errors import error_body
from thrifty.pipeline.call import Call, Result
from thrifty.stores.budgets import Line

__all__ = ["refused", "refused_message"]


def refused_message(
    call: Call,
    budget: Budget,
    subject: str,
    period: Period,
    line: Line,
    spent: int,
    reserved: int,
    never: bool,
    retry_after_s: float | None,
    now: datetime,
) -> tuple[str, int | None]:
    who = budget.who(subject)
    limit = budget.describe_limit()
    may_cost = describe_amount(budget.unit, line.amount)
    if never:
        what = "use" if budget.unit == "tokens" else "cost"
        return (
            f"this call may {what} up to {may_cost} ({call.model}), more than the whole budget of {limit} for {who}: "
            "it can never fit; lower max_tokens or shorten the prompt",
            None,
        )
    if period.reset is not None:
        retry = max(1, math.ceil((period.reset - now).total_seconds()))
        when = f"it resets at {period.reset.isoformat().replace('+00:00', 'Z')}"
    else:
        retry = max(1, math.ceil(retry_after_s if retry_after_s is not None else budget.window.seconds))
        at = (now + timedelta(seconds=retry)).isoformat(timespec="seconds").replace("+00:00", "Z")
        when = f"spend leaves the rolling window from {at}"
    in_flight = f" plus {describe_amount(budget.unit, reserved)} reserved by calls in flight" if reserved else ""
    return (
        f"budget exceeded: {who} has used {describe_amount(budget.unit, spent)}{in_flight} of {limit}, and this "
        f"call may {'use' if budget.unit == 'tokens' else 'cost'} up to {may_cost}; {when}",
        retry,
    )


def refused(call: Call, message: str, retry_after: int | None) -> Result:
    body = error_body(call.client_api, 429, message, "budget_exceeded", "budget_exceeded")
    headers = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
    return Result(status=429, body=body, headers=headers, error=message, billed=False)
