"""In-process use: ``thrifty.wrap(client)`` around the official OpenAI and Anthropic SDK clients.

Every chat call of the wrapped client runs thrifty's pipeline (priced, recorded in the ledger,
retried) and the client otherwise behaves exactly as before::

    import openai, thrifty
    client = thrifty.wrap(openai.OpenAI(), user="alice", feature="search")

To share one ledger writer and HTTP pool among several clients, make a ``Thrifty`` and wrap with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from pydantic import ValidationError

from thrifty.client.runtime import InProcessRuntime
from thrifty.client.transport import AsyncThriftyTransport, ThriftyTransport
from thrifty.config.files import describe_validation_error
from thrifty.config.gateway import RetrySpec
from thrifty.gateway.intake import Binding

__all__ = ["Thrifty", "wrap"]

C = TypeVar("C")


class Thrifty:
    """One in-process runtime: a ledger, a price book, an HTTP pool. Wrap any number of clients."""

    def __init__(
        self,
        *,
        ledger: str | None = None,
        journal_dir: str | Path | None = None,
        prices: str | Path | None = None,
        limits: str | Path | dict[str, Any] | None = None,
        optimise: str | Path | dict[str, Any] | None = None,
        checks: Sequence[Callable[[Any], str | None]] = (),
        cache: str | Path | dict[str, Any] | None = None,
        retry: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        """``limits``: budgets, plans and rate limits (a YAML file, or a mapping, with the gateway
        config's ``budgets:``, ``plans:`` and ``rate_limits:`` sections; env: THRIFTY_LIMITS).
        ``optimise``: routing, compression and output caps (a YAML file or a mapping with the
        gateway config's ``tiers:``, ``routing:``, ``compression:`` and ``output_caps:``);
        ``checks``: your own escalation checks, each taking a ``thrifty.core.routing.Answer`` and
        returning why it fails (or None). ``cache``: the exact and semantic response caches (a
        mapping like the gateway config's ``cache:`` section, or a YAML file holding one; default:
        the exact cache on, the semantic cache off). ``retry``: the gateway config's ``retry:``
        section (``attempts``, ``attempt_timeout_s``, backoff...), with the gateway's defaults;
        ``timeout``: each attempt's limit in seconds (``retry.attempt_timeout_s``). An SDK client's
        own ``timeout=`` (or a call's) wins over both for its calls."""
        from thrifty.config.budgets import load_limits_config
        from thrifty.config.cache import load_cache_spec
        from thrifty.config.prices import load_price_book
        from thrifty.config.routing import load_optimisation_spec

        home = Path(os.environ.get("THRIFTY_HOME", ".thrifty"))
        url = ledger or os.environ.get("THRIFTY_LEDGER_URL") or f"sqlite:///{home / 'thrifty.db'}"
        journal = Path(journal_dir) if journal_dir is not None else _journal_beside(url, home)
        limits_source = limits if limits is not None else os.environ.get("THRIFTY_LIMITS")
        self.runtime = InProcessRuntime(
            ledger_url=url,
            retry=_retry_spec(retry, timeout),
            journal_dir=journal,
            prices=load_price_book(prices or os.environ.get("THRIFTY_PRICES")),
            limits=load_limits_config(limits_source) if limits_source else None,
            optimise=load_optimisation_spec(optimise) if optimise is not None else None,
            checks=checks,
            cache=load_cache_spec(cache) if cache is not None else None,
        )

    def wrap(
        self,
        client: C,
        *,
        user: str | None = None,
        team: str | None = None,
        feature: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> C:
        """A copy of ``client`` whose calls go through thrifty. Attribution given here is fixed for
        every call, as a virtual key's is: ``x-thrifty-*`` headers on a call (``extra_headers=``)
        fill in only what it leaves open, and with a ``team`` a header-named user is an end user
        within that team (``team:TEAM/NAME``)."""
        binding = Binding(user=user, team=team, feature=feature) if user or team or feature else None
        defaults: dict[str, str] = {}
        if tags:
            defaults["x-thrifty-tags"] = ",".join(tags)
        copy = getattr(client, "copy", None)
        if copy is None:
            raise TypeError(f"thrifty.wrap takes an OpenAI or Anthropic SDK client, not {type(client).__name__}")
        http_client: Any
        if _is_async(client):
            transport = AsyncThriftyTransport(self.runtime, httpx2.AsyncHTTPTransport(), defaults, binding)
            http_client = httpx2.AsyncClient(transport=transport, timeout=None)
        else:
            http_client = httpx2.Client(
                transport=ThriftyTransport(self.runtime, httpx2.HTTPTransport(), defaults, binding), timeout=None
            )
        # thrifty retries (with the provider's own waits); the SDK retrying too would multiply attempts.
        wrapped: C = copy(http_client=http_client, max_retries=0)
        return wrapped

    def feedback(self, request_id: str, verdict: str, *, note: str | None = None) -> dict[str, Any]:
        """Say a call's answer was ``"wrong"`` (or ``"right"``): a wrong one is evicted from the
        caches at once, so no one is served it again, and the verdict is kept as a label for
        ``thrifty cache calibrate --from-feedback``. ``request_id``: the call's
        ``x-thrifty-request-id`` response header. Raises ``thrifty.errors.InvalidRequest`` for a
        bad verdict and ``thrifty.errors.NotFound`` for an id not in the ledger."""
        from thrifty.core.feedback import parse_feedback

        body: dict[str, Any] = {"request_id": request_id, "verdict": verdict}
        if note is not None:
            body["note"] = note
        checked = parse_feedback(body)
        runtime = self.runtime
        runtime.writer.flush(timeout=5.0)  # the call's row is in the ledger before it is looked up
        outcome = runtime.submit(runtime.feedback.submit(checked, None)).result()
        return outcome.as_json()

    def close(self) -> None:
        """Write out the ledger and stop (also done at interpreter exit)."""
        self.runtime.close()


def wrap(client: C, **attribution: Any) -> C:
    """Wrap one client with a runtime of its own (``Thrifty().wrap(client, ...)``)."""
    return Thrifty().wrap(client, **attribution)


def _retry_spec(retry: dict[str, Any] | None, timeout: float | None) -> RetrySpec:
    document = dict(retry or {})
    if timeout is not None:
        document["attempt_timeout_s"] = timeout
    try:
        return RetrySpec.model_validate(document)
    except ValidationError as error:
        raise ValueError(describe_validation_error(error, "Thrifty(retry=..., timeout=...)")) from None


def _is_async(client: object) -> bool:
    names = [cls.__name__ for cls in type(client).__mro__]
    return any(name.startswith("Async") for name in names)


def _journal_beside(url: str, home: Path) -> Path:
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        return Path(url.removeprefix("sqlite:///")).parent / "journal"
    return home / "journal"
