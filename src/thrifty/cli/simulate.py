"""``thrifty simulate``: run the simulated upstream (OpenAI and Anthropic wire formats, no models)."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from thrifty.cli.common import CliError

__all__ = ["simulate"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4010, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="THRIFTY_SIMULATOR_CONFIG",
    help="Simulator settings (YAML or JSON): answer lengths, cache TTLs, rate limits, faults by model. "
    "Env: THRIFTY_SIMULATOR_CONFIG.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning",
    show_default=True,
    help="Server log level (info logs every request).",
)
def simulate(host: str, port: int, config_file: Path | None, log_level: str) -> None:
    """Run a SIMULATED upstream that speaks OpenAI's and Anthropic's APIs, for tests, demos and
    benchmarks: no keys, no network, no real model.

    Answers are deterministic filler text; usage is exact (prompt caching included); rate-limit
    headers and faults (errors, latency, dropped streams, hangs) are configurable. Point an OpenAI
    client at http://HOST:PORT/v1 and an Anthropic client at http://HOST:PORT. Inject a fault per
    request with the header "x-simulator-fault: 429;retry-after=0.5", or queue faults with
    POST /_simulator/faults; GET /_simulator/stats counts requests.
    """
    import uvicorn

    from thrifty.config.files import ConfigError
    from thrifty.simulator import SimulatorConfig, create_app, load_simulator_config

    try:
        config = load_simulator_config(config_file) if config_file is not None else SimulatorConfig()
    except ConfigError as error:
        raise CliError(str(error)) from None
    app = create_app(config)
    # Bind before anything starts: a busy port is one line and exit 2, not uvicorn's log noise.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    port = sock.getsockname()[1]
    click.echo(
        f"thrifty simulator (simulated upstream, no real models) on http://{host}:{port}\n"
        f"  OpenAI base URL:    http://{host}:{port}/v1\n"
        f"  Anthropic base URL: http://{host}:{port}",
        err=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_level=log_level,
            access_log=log_level in ("info", "debug"),
            server_header=False,
            date_header=True,
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
