"""The Docmill app in the test process: the fast layer's server.

The real app (`create_app`, its lifespan: the local dispatcher with its pool of worker
processes, and the sweeper) on SQLite with the local blob store in a temp folder, driven through
Starlette's TestClient: no `docmill serve` process, no port, no start-up wait. It stands in for
`DocmillServer` where a test only talks HTTP to the app (faces' translation, bad input, the
contract); tests that kill, restart or reach the server by URL keep the real process.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import httpx
import psutil

with warnings.catch_warnings():  # Starlette would rather have httpx2; httpx is what runs here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from server import DocmillServer

BASE_URL = "http://testserver"


@dataclass
class InProcessServer(DocmillServer):
    """`DocmillServer`'s interface (keys, `client`, `cli`, `database_url`, `worker_pids`)
    over the app in this process. `url` is the TestClient's base URL: it answers only through
    `client`, never over a socket."""

    test_client: TestClient | None = None
    saved_env: dict[str, str | None] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return BASE_URL

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["DOCMILL_PUBLIC_URL"] = BASE_URL
        return env

    def start(self, timeout: float = 60) -> InProcessServer:
        from docmill.app import create_app
        from docmill.settings import get_settings

        docmill_env = {k: v for k, v in self.env.items() if k.startswith("DOCMILL_")}
        self.saved_env = {k: os.environ.get(k) for k in docmill_env}
        os.environ.update(docmill_env)
        get_settings.cache_clear()
        self.test_client = TestClient(create_app(), base_url=BASE_URL)
        self.test_client.__enter__()  # the lifespan: dispatcher and sweeper start
        return self

    def anonymous(self, **kwargs: object) -> httpx.Client:
        """A client of the app sharing the TestClient's event loop (the one the lifespan
        runs in) through its transport."""
        assert self.test_client is not None, "start() first"
        return httpx.Client(base_url=BASE_URL, transport=self.test_client._transport,
                            timeout=60, **kwargs)  # type: ignore[arg-type]

    def worker_pids(self) -> list[int]:
        """The pool's worker processes: the children of the dispatcher's pool host."""
        assert self.test_client is not None
        host = self.test_client.app.state.dispatcher.host  # type: ignore[attr-defined]
        try:
            return [child.pid for child in psutil.Process(host.process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def stop(self, *args: object, **kwargs: object) -> None:
        from docmill.settings import get_settings

        if self.test_client is not None:
            self.test_client.__exit__(None, None, None)
            self.test_client = None
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.saved_env = {}
        get_settings.cache_clear()
