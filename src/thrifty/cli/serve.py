"""``thrifty serve``: run the gateway (with ``--demo``, in front of the built-in simulator)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from thrifty.cli.common import CliError

if TYPE_CHECKING:
    from thrifty.config.gateway import GatewayConfig, ServerSpec
from thrifty.core.redact import redact_log_handlers, redact_url
from thrifty.web.logfmt import LogFormat, configure_logging

__all__ = ["serve"]


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="THRIFTY_CONFIG",
    help="The gateway config (YAML). Env: THRIFTY_CONFIG.",
)
@click.option("--host", default=None, help="Interface to listen on (default: the config's, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: the config's, 4000).")
@click.option("--demo", is_flag=True, help="Built-in models served by the simulated upstream: no keys needed.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="THRIFTY_LOG_FORMAT",
    help="json: one JSON object a line (access lines carry their fields at the top level). Env: THRIFTY_LOG_FORMAT.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    envvar="THRIFTY_ACCESS_LOG",
    help="One line per request (model, status, cache, cost, latency; never the prompt or a key).",
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    demo: bool,
    log_level: str,
    log_format: LogFormat,
    access_log: bool,
) -> None:
    """Run the OpenAI- and Anthropic-compatible gateway."""
    from thrifty.config.files import ConfigError
    from thrifty.config.gateway import load_gateway_config

    configure_logging(log_level, log_format)
    if not access_log:
        logging.getLogger("thrifty.access").setLevel(logging.WARNING)
    redact_log_handlers()  # no password of a URL reaches a log line
    for noisy in ("uvicorn.access", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if demo and config_path is not None:
        raise CliError("--demo uses its own config; drop --config (or drop --demo)")
    if not demo and config_path is None:
        raise CliError("give --config FILE (or THRIFTY_CONFIG), or --demo to try it with the simulator")
    simulator_socket = None
    simulator_url: str | None = None
    if demo:
        from thrifty.gateway.demo import demo_config

        simulator_socket = _bound_socket("127.0.0.1", 0)
        simulator_url = f"http://127.0.0.1:{simulator_socket.getsockname()[1]}"
        home = Path(os.environ.get("THRIFTY_HOME", ".thrifty"))
        config = demo_config(simulator_url, home, host or "127.0.0.1", port or 4000)
        base_dir = Path.cwd()
    else:
        assert config_path is not None
        try:
            config = load_gateway_config(config_path)
        except ConfigError as error:
            raise CliError(str(error)) from None
        base_dir = config_path.parent
        _refuse_missing_keys(config, config_path)
    listen_host = host or config.server.host
    listen_port = port or config.server.port
    try:
        gateway_socket = _bound_socket(listen_host, listen_port)
    except OSError as error:
        raise CliError(f"cannot listen on {listen_host}:{listen_port}: {error.strerror}") from None

    from thrifty.gateway.app import Gateway
    from thrifty.gateway.runtime import Runtime

    try:
        runtime = Runtime.from_config(config, base_dir)
    except (ConfigError, ValueError, LookupError) as error:
        raise CliError(str(error)) from None
    _banner(runtime, f"{listen_host}:{listen_port}", listen_host, simulator_url)
    _settle_memory()
    _run(Gateway(runtime), config.server, gateway_socket, simulator_socket)


def _refuse_missing_keys(config: GatewayConfig, path: Path) -> None:
    """A provider whose key variable is unset would answer every call 401: refuse to start, unless
    the config says ``allow_missing_keys: true`` (then warn, loudly, once per provider)."""
    from thrifty.config.gateway import missing_keys

    problems = missing_keys(config)
    if not problems:
        return
    if not config.allow_missing_keys:
        listed = "; ".join(problems)
        raise CliError(f"{path}: {listed} (set it, or allow_missing_keys: true to start anyway)")
    for problem in problems:
        click.echo(f"  WARNING: {problem}: its calls will be refused by the provider", err=True)


def _banner(runtime: Any, address: str, listen_host: str, simulator_url: str | None) -> None:
    """What the gateway serves, where its ledger is (no password), and whether keys are required."""
    from thrifty.gateway.auth import is_loopback

    storage = runtime.config.storage
    click.echo(f"thrifty gateway on http://{address}", err=True)
    click.echo(f"  models: {', '.join(runtime.routes.names())}", err=True)
    click.echo(f"  ledger: {redact_url(storage.ledger)}", err=True)
    if storage.redis:
        click.echo(f"  redis: {redact_url(storage.redis)}", err=True)
    runtime.keys.listen_on(listen_host)
    runtime.keys.load()
    click.echo(f"  keys: {runtime.keys.why}", err=True)
    if not runtime.keys.required and not is_loopback(listen_host):
        warning = f"  WARNING: keys are not checked (auth: none) and {listen_host} is reachable beyond loopback"
        click.echo(warning, err=True)
    if simulator_url is not None:
        click.echo(
            f"  demo: models served by the simulated upstream at {simulator_url} (no provider is contacted)", err=True
        )


def _settle_memory() -> None:
    """Everything loaded so far (the price catalogue, the vocabularies: hundreds of thousands of
    objects) lives as long as the process. Freezing it keeps the garbage collector from walking
    it again and again, and a higher first threshold keeps it from running every few requests:
    together they cut the gateway's CPU a request by a tenth, measured."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _run(
    app: object, server_spec: ServerSpec, gateway_socket: socket.socket, simulator_socket: socket.socket | None
) -> None:
    import uvicorn
    import uvloop

    from thrifty.web.guard import uvicorn_config

    def server(asgi: object) -> uvicorn.Server:
        config = uvicorn_config(asgi, server_spec)
        redact_log_handlers()  # uvicorn's own handlers, just configured (its loggers do not propagate)
        return uvicorn.Server(config)

    async def main() -> None:
        servers = [(server(app), gateway_socket)]
        if simulator_socket is not None:
            from thrifty.simulator import create_app

            servers.append((server(create_app()), simulator_socket))
        await asyncio.gather(*(s.serve(sockets=[sock]) for s, sock in servers))

    try:
        uvloop.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
