"""``thrifty serve``: run the gateway (with ``--demo``, in front of the built-in simulator)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from thrifty.cli.common import CliError

if TYPE_CHECKING:
    import uvicorn

    from thrifty.cli.supervisor import Notify
    from thrifty.config.gateway import GatewayConfig
    from thrifty.core.pricing import Catalogue
    from thrifty.core.tokens.encodings import Encodings
    from thrifty.gateway.runtime import Runtime
    from thrifty.gateway.serving import ConfigSource
from thrifty.core.redact import redact_log_handlers, redact_url
from thrifty.web.logfmt import LogFormat, configure_logging

__all__ = ["serve"]

log = logging.getLogger("thrifty.gateway")


class _WorkerCount(click.ParamType):  # type: ignore[type-arg]  # click's stubs make ParamType generic
    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        if not text.isdigit() or int(text) < 1:
            self.fail(f"{value!r}: give a number of workers, 1 or more, or auto (one per core)", param, ctx)
        return int(text)


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
@click.option(
    "--workers",
    type=_WorkerCount(),
    default="1",
    show_default=True,
    envvar="THRIFTY_WORKERS",
    help="Worker processes on the one port: a number, or auto (the cores this process may run on). "
    "With more than one, a supervisor replaces a worker that dies. Env: THRIFTY_WORKERS.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="THRIFTY_DRAIN_TIMEOUT",
    help="On SIGTERM or SIGINT, how long requests in flight (streams included) may take to finish "
    "before they are cut; seconds. Env: THRIFTY_DRAIN_TIMEOUT.",
)
@click.option(
    "--listen",
    "listen_mode",
    type=click.Choice(["reuseport", "shared"]),
    # Measured (bench/gateway/workers_balance.py): the kernel spreads connections over SO_REUSEPORT
    # sockets evenly; on one shared socket whichever worker wakes first takes them, and with
    # kept-alive connections two workers of four were left idle. Elsewhere than Linux
    # SO_REUSEPORT does not spread connections.
    default="reuseport" if sys.platform.startswith("linux") else "shared",
    hidden=True,  # for bench/gateway/workers_balance.py, which measures both
    help="Several workers: each accepts on a socket of its own (SO_REUSEPORT), or all on one shared socket.",
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    demo: bool,
    log_level: str,
    log_format: LogFormat,
    access_log: bool,
    workers: int,
    drain_timeout: float,
    listen_mode: str,
) -> None:
    """Run the OpenAI- and Anthropic-compatible gateway.

    SIGTERM or SIGINT: stop taking connections, let requests in flight finish (up to
    --drain-timeout), write the ledger, exit 0. SIGHUP (or POST /admin/reload): re-read the config
    file; a file with problems is refused and the running config stays."""
    from thrifty.config.files import ConfigError

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
        simulator_socket = _bound_socket("127.0.0.1", 0)
        simulator_url = f"http://127.0.0.1:{simulator_socket.getsockname()[1]}"
    config, base_dir = _load(config_path, simulator_url, host, port)
    listen_host = host or config.server.host
    listen_port = port or config.server.port
    reuse_port = workers > 1 and listen_mode == "reuseport"
    try:
        if reuse_port:  # a port that others hold with SO_REUSEPORT too would be shared with them, silently
            _bound_socket(listen_host, listen_port).close()
        gateway_socket = _bound_socket(listen_host, listen_port, reuse_port=reuse_port)
    except OSError as error:
        raise CliError(f"cannot listen on {listen_host}:{listen_port}: {error.strerror}") from None
    from thrifty.telemetry import multiproc

    multiproc.prepare(workers, config.metrics.enabled)  # before prometheus_client is imported

    from thrifty.core.pricing import Catalogue
    from thrifty.core.tokens.encodings import Encodings
    from thrifty.gateway.runtime import Runtime
    from thrifty.gateway.serving import ConfigSource

    catalogue, encodings = Catalogue(), Encodings()  # read-only: shared by reloads, and by forked workers
    try:
        runtime = Runtime.from_config(config, base_dir, catalogue=catalogue, encodings=encodings)
    except (ConfigError, ValueError, LookupError) as error:
        raise CliError(str(error)) from None
    _banner(runtime, f"{listen_host}:{listen_port}", listen_host, simulator_url)
    source = None if config_path is None else ConfigSource(config_path, listen_host, catalogue, encodings)
    plan = Plan(
        config=config,
        base_dir=base_dir,
        source=source,
        catalogue=catalogue,
        encodings=encodings,
        listen_host=listen_host,
        listen_port=listen_port,
        drain_timeout=drain_timeout,
        gateway_socket=gateway_socket,
        simulator_socket=simulator_socket,
        workers=workers,
        reuse_port=reuse_port,
    )
    if workers == 1:
        _settle_memory()
        plan.serve_here(runtime)
        return
    click.echo(f"  workers: {workers}; each response names its own (x-thrifty-worker: PID)", err=True)
    code = plan.start_workers(runtime)
    if code:
        raise SystemExit(code)


def _load(
    config_path: Path | None, simulator_url: str | None, host: str | None, port: int | None
) -> tuple[GatewayConfig, Path]:
    """The config to serve and the folder its relative paths are relative to."""
    from thrifty.config.files import ConfigError
    from thrifty.config.gateway import load_gateway_config

    if simulator_url is not None:
        from thrifty.gateway.demo import demo_config

        home = Path(os.environ.get("THRIFTY_HOME", ".thrifty"))
        return demo_config(simulator_url, home, host or "127.0.0.1", port or 4000), Path.cwd()
    assert config_path is not None
    try:
        config = load_gateway_config(config_path)
    except ConfigError as error:
        raise CliError(str(error)) from None
    _refuse_missing_keys(config, config_path)
    return config, config_path.parent


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


def _bound_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@dataclass
class Plan:
    """How this ``thrifty serve`` runs: one process serving, or a supervisor and its workers."""

    config: GatewayConfig
    base_dir: Path
    source: ConfigSource | None
    """The config file, for reloads (None: ``--demo``)."""
    catalogue: Catalogue
    encodings: Encodings
    listen_host: str
    listen_port: int
    drain_timeout: float
    gateway_socket: socket.socket
    simulator_socket: socket.socket | None
    workers: int
    reuse_port: bool

    def serve_here(self, runtime: Runtime, notify: Notify | None = None) -> None:
        """Serve in this process until told to stop (``notify``: in a worker, how it tells its
        supervisor it is ready and that a reload over HTTP wants the others reloaded)."""
        from thrifty.gateway.serving import Serving
        from thrifty.web.server import Served, run_servers

        def after_admin_reload() -> None:
            if notify is not None:
                notify("reload")

        serving = Serving(runtime, self.source, worker_header=self.workers > 1, after_admin_reload=after_admin_reload)
        served = Served(self._uvicorn(serving, self.drain_timeout), self.gateway_socket)
        helpers = []
        if self.simulator_socket is not None and notify is None:  # the demo's simulator, in this process
            helpers.append(Served(self._uvicorn(_simulator_app(), None), self.simulator_socket))
        run_servers(
            served,
            helpers,
            on_drain=serving.drain,
            on_hangup=lambda: serving.reload_soon("SIGHUP"),
            on_started=None if notify is None else (lambda: notify("ready")),
            parent_pid=None if notify is None else os.getppid(),
        )

    def start_workers(self, runtime: Runtime) -> int:
        """Fork the workers and supervise them until they are all done; the exit status."""
        from thrifty.cli.supervisor import Supervisor

        semantic = runtime.config.cache.semantic
        if semantic.enabled and not semantic.index.startswith(("postgresql", "postgres")):
            click.echo(
                "  WARNING: each worker keeps an in-process semantic index of its own (one shared: pgvector)", err=True
            )
        asyncio.run(runtime.stop())  # its stores were opened to check them: each worker opens its own
        _settle_memory()
        # Shared: connections queue from now on while the workers start. With SO_REUSEPORT each
        # worker binds a socket of its own, and this one, never listening, only holds the port.
        if not self.reuse_port:
            self.gateway_socket.listen(2048)

        simulator = self.simulator_socket
        supervisor = Supervisor(
            self.workers,
            self._worker,
            drain_timeout=self.drain_timeout,
            check=None if self.source is None else self._check,
            start_helper=None if simulator is None else self._simulator,
            held=[self.gateway_socket],
        )
        return supervisor.run()

    def _worker(self, notify: Notify) -> None:
        from thrifty.gateway.runtime import Runtime

        if self.simulator_socket is not None:
            self.simulator_socket.close()
        if self.reuse_port:  # a socket of its own; the supervisor's only holds the port
            self.gateway_socket.close()
            self.gateway_socket = _bound_socket(self.listen_host, self.listen_port, reuse_port=True)
        runtime = Runtime.from_config(self.config, self.base_dir, catalogue=self.catalogue, encodings=self.encodings)
        runtime.keys.listen_on(self.listen_host)
        self.serve_here(runtime, notify)

    def _simulator(self, notify: Notify) -> None:
        from thrifty.web.server import Served, run_servers

        assert self.simulator_socket is not None
        self.gateway_socket.close()
        run_servers(Served(self._uvicorn(_simulator_app(), None), self.simulator_socket))

    def _check(self) -> bool:
        """The config file again, for workers started from now on: True when it is good; its
        problems logged otherwise."""
        from thrifty.gateway.serving import read_config

        assert self.source is not None
        config, problems = read_config(self.source)
        if config is None:
            for line in problems:
                log.error("reload refused: %s", line)
            log.error(
                "reload: %s not applied (%d problem(s)); the running config stays", self.source.path, len(problems)
            )
            return False
        self.config = config
        return True

    def _uvicorn(self, app: object, drain_timeout: float | None) -> uvicorn.Config:
        from thrifty.web.guard import uvicorn_config

        config = uvicorn_config(app, self.config.server, drain_timeout_s=drain_timeout)
        redact_log_handlers()  # uvicorn's own handlers, just configured (its loggers do not propagate)
        return config


def _simulator_app() -> object:
    from thrifty.simulator import create_app

    return create_app()
