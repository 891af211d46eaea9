"""Serving a simulator in the background of a process: for tests and in-process demos.

    with BackgroundSimulator() as sim:
        client = openai.OpenAI(base_url=sim.openai_base_url, api_key="unused")

The server is uvicorn (uvloop, httptools) on its own thread and event loop, bound to a free port
unless one is given; ``start`` returns once it accepts connections.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from thrifty.core.tokens.counter import TokenCounter
from thrifty.simulator.app import SimulatorApp, create_app
from thrifty.simulator.config import SimulatorConfig

__all__ = ["BackgroundSimulator"]


class BackgroundSimulator:
    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        counter: TokenCounter | None = None,
        log_level: str = "warning",
    ) -> None:
        self.app: SimulatorApp = create_app(config, counter=counter)
        self._host = host
        self._port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self, timeout: float = 30.0) -> BackgroundSimulator:
        self.app.sim.warm()  # here, not on the server's loop: the caller waits for it anyway
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.listen(2048)
        port = sock.getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_level=self._log_level,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="thrifty-simulator", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the simulator did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> BackgroundSimulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
