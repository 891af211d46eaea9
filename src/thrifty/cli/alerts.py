"""``thrifty alerts``: the spend-anomaly and token-drift alerts of a gateway config. ``test`` sends
a sample to the configured webhook (in its format) and says whether it arrived; ``check`` shows
what the ledger would fire now (or at ``--at``), without claiming or sending anything."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from thrifty.cli.common import CliError, emit_json, json_option, parse_when, store_error

if TYPE_CHECKING:
    from thrifty.config.gateway import GatewayConfig

__all__ = ["alerts"]

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="THRIFTY_CONFIG",
    required=True,
    help="The gateway config whose alerts: section (and storage.ledger) to use. Env: THRIFTY_CONFIG.",
)


@click.group()
def alerts() -> None:
    """Spend anomalies and token drift (the config's alerts: section)."""


def _config(path: Path) -> GatewayConfig:
    from thrifty.config.files import ConfigError
    from thrifty.config.gateway import load_gateway_config

    if not path.is_file():
        raise CliError(f"--config: no file {path}")
    try:
        return load_gateway_config(path)
    except ConfigError as error:
        raise CliError(str(error)) from None


@alerts.command("test")
@_CONFIG
@json_option
def alerts_test(config_path: Path, as_json: bool) -> None:
    """Send a sample alert to alerts.webhook_url, as the watcher would (Slack's format if set)."""
    from thrifty.pipeline.watch import AlertClaims, SpendWatch, sample_event
    from thrifty.stores.ledger import open_ledger

    config = _config(config_path)
    spec = config.alerts
    if spec.webhook_url is None:
        raise CliError(f"{config_path}: alerts.webhook_url is not set: there is nowhere to send a sample")
    event = sample_event()
    body: dict[str, Any] = {"text": event["text"]} if spec.webhook_format == "slack" else event

    async def send() -> str | None:
        watch = SpendWatch(spec, open_ledger("sqlite:///:memory:"), AlertClaims("sqlite:///:memory:"), None)
        try:
            return await watch.post(body, str(event["id"]))
        finally:
            await watch.stop()

    problem = asyncio.run(send())
    from thrifty.core.redact import url_origin

    where = url_origin(spec.webhook_url)
    if as_json:
        emit_json({"sent": problem is None, "webhook": where, "format": spec.webhook_format, "problem": problem})
    elif problem is None:
        click.echo(f"sent a sample {event['type']} alert to {where} ({spec.webhook_format})")
    if problem is not None:
        raise CliError(f"the sample alert did not arrive at {where}: {problem}")


@alerts.command("check")
@_CONFIG
@click.option("--at", "at_text", metavar="TIME", help="Check as of this UTC time (default: now).")
@json_option
def alerts_check(config_path: Path, at_text: str | None, as_json: bool) -> None:
    """Show the anomalies and drifts the ledger holds now (nothing is claimed or sent)."""
    from datetime import UTC, datetime

    from thrifty.pipeline.watch import find_alerts
    from thrifty.stores.ledger import open_ledger

    config = _config(config_path)
    now = parse_when(at_text, "--at") or datetime.now(UTC)
    url = config.storage.ledger
    try:
        store = open_ledger(url)
    except Exception as error:
        raise store_error("the ledger", url, error) from None
    try:
        found = find_alerts(store, config.alerts, now)
    finally:
        store.close()
    if as_json:
        emit_json({"at": now.isoformat(), "alerts": [alert.event() for alert in found]})
        return
    if not found:
        click.echo(f"no anomaly or drift at {now:%Y-%m-%d %H:%M} UTC")
    for alert in found:
        click.echo(f"{alert.event()['type']}: {alert.describe()}")
