"""Config for budgets, plans, rate limits, alerts and the admin API (the gateway config's
``budgets:``, ``plans:``, ``rate_limits:`` and ``admin:`` sections)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from thrifty.core.budgets import (
    MAX_USD_LIMIT,
    Budget,
    BudgetError,
    OnExceed,
    RateLimit,
    RateScope,
    Scope,
    Window,
    WindowKind,
    usd_to_units,
)

__all__ = [
    "AdminSpec",
    "AlertsSpec",
    "BudgetSpec",
    "BudgetsSpec",
    "PlanBudgetSpec",
    "PlanSpec",
    "PlansSpec",
    "RateLimitSpec",
    "RateLimitsSpec",
    "budget_store_url",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL = re.compile(r"^[\x20-\x7e]{1,256}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanBudgetSpec(_Strict):
    """A limit over a window: ``usd`` or ``tokens``."""

    usd: Annotated[Decimal, Field(ge=0, le=MAX_USD_LIMIT)] | None = None
    tokens: Annotated[int, Field(ge=0)] | None = None
    window: WindowKind = "day"
    seconds: Annotated[int, Field(ge=60)] | None = None
    """The length of a ``rolling`` window."""
    timezone: str | None = None
    """Where a calendar window begins (an IANA name); default: ``budgets.timezone``."""
    alert_at: list[Annotated[Decimal, Field(gt=0, le=1)]] = Field(default_factory=lambda: [Decimal("0.8")])
    """Fractions of the limit that raise an alert (once per window each)."""
    on_exceed: OnExceed = "refuse"
    downgrade_to: str | None = None
    """With ``on_exceed: downgrade``: the cheaper model calls go to once the limit is reached."""

    @model_validator(mode="after")
    def _one_limit(self) -> PlanBudgetSpec:
        if (self.usd is None) == (self.tokens is None):
            raise ValueError("give exactly one of usd and tokens")
        if self.window == "rolling" and self.seconds is None:
            raise ValueError("a rolling window needs seconds (its length)")
        if self.window != "rolling" and self.seconds is not None:
            raise ValueError("seconds is for rolling windows only")
        if self.on_exceed == "downgrade" and not self.downgrade_to:
            raise ValueError("on_exceed: downgrade needs downgrade_to")
        return self

    def to_budget(self, scope: Scope, value: str | None, default_timezone: str, source: str) -> Budget:
        window = Window(self.window, self.seconds or 0, self.timezone or default_timezone)
        try:
            return Budget(
                scope=scope,
                value=value,
                window=window,
                unit="usd" if self.usd is not None else "tokens",
                limit=usd_to_units(self.usd) if self.usd is not None else int(self.tokens or 0),
                alert_at=tuple(sorted(set(self.alert_at))),
                on_exceed=self.on_exceed,
                downgrade_to=self.downgrade_to,
                source=source,
            )
        except BudgetError as error:
            raise ValueError(str(error)) from None


class BudgetSpec(PlanBudgetSpec):
    """A budget: for one ``scope`` (``value`` names who; absent, each of them separately)."""

    scope: Scope = "global"
    value: str | None = None

    @field_validator("value")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL.match(value):
            raise ValueError("1 to 256 printable ASCII characters")
        return value

    @model_validator(mode="after")
    def _global_has_no_value(self) -> BudgetSpec:
        if self.scope == "global" and self.value is not None:
            raise ValueError("a global budget names no value")
        return self

    def budget(self, default_timezone: str, source: str = "config") -> Budget:
        return self.to_budget(self.scope, self.value, default_timezone, source)


class AlertsSpec(_Strict):
    webhook_url: str | None = None
    """Each alert is POSTed here as JSON (retried); alerts are also logged and written to the ledger."""
    webhook_headers: dict[str, str] = Field(default_factory=dict)
    webhook_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    webhook_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    webhook_backoff_s: Annotated[float, Field(ge=0)] = 0.5

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url


class BudgetsSpec(_Strict):
    store: str | None = None
    """sqlite:///FILE or redis://HOST:PORT/DB. Default: ``storage.redis`` when set, else a
    ``budgets.db`` beside the SQLite ledger (or in ``.thrifty``)."""
    key_prefix: str = "thrifty:budgets:"
    """Redis keys start with this."""
    fail_open: bool = False
    """When the store is unreachable: false refuses calls that a budget covers (503), true lets
    them through uncounted (logged as an error for each call)."""
    timezone: str = "UTC"
    """Where calendar windows (day, week, month) begin, unless a budget names its own."""
    unpriced: Literal["refuse", "allow"] = "refuse"
    """A call to a model without a known price cannot be bounded by a USD budget: refused unless ``allow``."""
    default_max_output_tokens: Annotated[int, Field(ge=1)] = 16_384
    """What a call may generate when neither the client, the model's ``max_output_tokens`` nor its
    context window bounds it: the reservation's assumption."""
    lease_s: Annotated[float, Field(ge=1)] = 15.0
    """A process renews the lease on its reservations every third of this; a process that died
    leaves reservations that lapse after it."""
    refresh_s: Annotated[float, Field(gt=0)] = 2.0
    """How often each process re-reads the budget definitions (set by the CLI or the admin API)."""
    limits: list[BudgetSpec] = Field(default_factory=list)
    """Initial budgets: stored when the gateway starts if no budget has the same id yet (change
    them afterwards with ``thrifty budgets`` or the admin API)."""
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)

    @field_validator("store")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
            raise ValueError("must start with sqlite:///, redis://, rediss:// or unix://")
        return url

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            Window("day", 0, name)
        except BudgetError as error:
            raise ValueError(str(error)) from None
        return name

    def budgets(self) -> list[Budget]:
        return [spec.budget(self.timezone) for spec in self.limits]


class PlanSpec(_Strict):
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    """A cap on each call's max_tokens (a call asking for more, or for none, gets the cap)."""
    urgent_factor: Annotated[Decimal, Field(ge=1)] = Decimal(1)
    """A call flagged urgent (header ``x-thrifty-urgent: 1``) may use this multiple of the cap."""
    models: list[str] | None = None
    """The models the plan may use; absent: all."""
    budgets: list[PlanBudgetSpec] = Field(default_factory=list)
    """Budgets each user of the plan gets on their own."""


class PlansSpec(_Strict):
    tiers: dict[str, PlanSpec] = Field(default_factory=dict)
    """The plans by name, for example free, pro, enterprise."""
    users: dict[str, str] = Field(default_factory=dict)
    """User -> plan."""
    teams: dict[str, str] = Field(default_factory=dict)
    """Team -> plan, for users not listed under ``users``."""
    default: str | None = None
    """The plan of everyone else (absent: no plan applies to them)."""

    @model_validator(mode="after")
    def _plans_exist(self) -> PlansSpec:
        for where, mapping in (("users", self.users), ("teams", self.teams)):
            for who, plan in mapping.items():
                if plan not in self.tiers:
                    raise ValueError(f"{where}.{who}: no plan {plan!r} under tiers")
        if self.default is not None and self.default not in self.tiers:
            raise ValueError(f"default: no plan {self.default!r} under tiers")
        return self

    def plan_of(self, user: str | None, team: str | None) -> str | None:
        if user is not None and user in self.users:
            return self.users[user]
        if team is not None and team in self.teams:
            return self.teams[team]
        return self.default


class RateLimitSpec(_Strict):
    scope: RateScope
    value: str | None = None
    """One key id, user, team, model or deployment (``provider/upstream_model``); absent: each separately."""
    requests_per_minute: Annotated[int, Field(ge=1)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=1)] | None = None
    """Input tokens plus max_tokens, as the providers count them."""
    window_s: Annotated[int, Field(ge=1, le=3600)] = 60
    """The window the two limits hold over: a minute, unless set (tests use shorter ones)."""

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimitSpec:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("give requests_per_minute, tokens_per_minute or both")
        if self.scope == "global" and self.value is not None:
            raise ValueError("a global limit names no value")
        return self

    def limit(self) -> RateLimit:
        return RateLimit(self.scope, self.value, self.requests_per_minute, self.tokens_per_minute, self.window_s)


class RateLimitsSpec(_Strict):
    limits: list[RateLimitSpec] = Field(default_factory=list)
    max_wait_s: Annotated[float, Field(ge=0, le=600)] = 2.0
    """Over a limit, a call waits this long at most for room, then gets 429 with Retry-After."""
    fail_open: bool = False
    """When the store is unreachable: false refuses limited calls (503); true lets them through."""
    provider_pacing: bool = True
    """Read the providers' rate-limit headers and hold calls back before the provider refuses them."""
    pacing_max_wait_s: Annotated[float, Field(ge=0, le=600)] = 10.0
    """The longest a call is held back by pacing (past it, the call is sent and the provider decides)."""


class AdminSpec(_Strict):
    token_env: str | None = None
    """The environment variable holding the admin API's bearer token. The API (``/admin/...``) is
    off unless it is set and the variable holds a token."""

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError("must be the NAME of an environment variable, not a token")
        return name


def budget_store_url(spec: BudgetsSpec, redis_url: str | None, ledger_url: str) -> str:
    """Where budgets live: the explicit store, else the shared Redis, else SQLite beside the ledger."""
    if spec.store is not None:
        return spec.store
    if redis_url is not None:
        return redis_url
    if ledger_url.startswith("sqlite:///") and not ledger_url.endswith(":memory:"):
        return f"sqlite:///{Path(ledger_url.removeprefix('sqlite:///')).parent / 'budgets.db'}"
    return "sqlite:///.thrifty/budgets.db"


def check_references(budgets: BudgetsSpec, plans: PlansSpec | None, model_names: list[str]) -> list[str]:
    """Problems with models named in these sections (downgrade targets, plans' models)."""
    known = set(model_names)
    problems = []
    for index, spec in enumerate(budgets.limits):
        if spec.downgrade_to is not None and spec.downgrade_to not in known:
            problems.append(f"budgets.limits[{index}].downgrade_to: no model named {spec.downgrade_to!r}")
    for name, plan in (plans.tiers if plans is not None else {}).items():
        for model in plan.models or ():
            if model not in known:
                problems.append(f"plans.tiers.{name}.models: no model named {model!r}")
        for index, plan_budget in enumerate(plan.budgets):
            if plan_budget.downgrade_to is not None and plan_budget.downgrade_to not in known:
                problems.append(
                    f"plans.tiers.{name}.budgets[{index}].downgrade_to: no model named {plan_budget.downgrade_to!r}"
                )
    return problems


class LimitsConfig(_Strict):
    """The in-process client's budgets, plans and rate limits: the gateway config's sections of
    the same names, in a file of their own (``thrifty.Thrifty(limits="limits.yaml")``)."""

    budgets: BudgetsSpec = Field(default_factory=BudgetsSpec)
    plans: PlansSpec | None = None
    rate_limits: RateLimitsSpec = Field(default_factory=RateLimitsSpec)


def load_limits_config(source: str | Path | dict[str, Any] | LimitsConfig) -> LimitsConfig:
    from pydantic import ValidationError

    from thrifty.config.files import ConfigError, describe_validation_error, load_document

    if isinstance(source, LimitsConfig):
        return source
    document = source if isinstance(source, dict) else load_document(source)
    where = "limits" if isinstance(source, dict) else str(source)
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: expected a mapping (budgets:, plans:, rate_limits:)")
    try:
        return LimitsConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, where)) from None
