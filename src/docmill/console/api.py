"""The console's only way to data: the public native API, called in-process.

Each call is an ASGI request into the same application (auth, organization scoping, error
shapes and all), carrying the signed-in user's key as a bearer token, so a page can show
nothing the key could not fetch with curl. Unlike httpx's ASGITransport, responses stream,
which downloads and the SSE progress stream need.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.types import ASGIApp, Message


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> dict[str, Any]:
        """The native `{"error": {code, message, details}}` body (or a stand-in)."""
        try:
            body = self.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return body["error"]
        return {"code": "http_error", "message": f"HTTP {self.status}"}


class StreamedResponse:
    """An API response whose body is read as it is produced; `close()` ends the call."""

    def __init__(self, status: int, headers: dict[str, str], messages: asyncio.Queue,
                 finished: asyncio.Event, task: asyncio.Task) -> None:
        self.status, self.headers = status, headers
        self._messages, self._finished, self._task = messages, finished, task
        self._more = True

    async def body(self) -> AsyncIterator[bytes]:
        try:
            while self._more:
                message = await self._messages.get()
                if message is None:
                    return
                if message["type"] == "http.response.body":
                    if message.get("body"):
                        yield message["body"]
                    self._more = message.get("more_body", False)
        finally:
            await self.close()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.body()])

    async def close(self) -> None:
        self._finished.set()  # the app's receive() now answers http.disconnect
        if not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except (TimeoutError, Exception):  # noqa: BLE001 - the call is over
                self._task.cancel()


class Api:
    """The native API as the holder of `key` sees it."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key

    async def stream(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                     body: bytes | AsyncIterator[bytes] = b"",
                     headers: dict[str, str] | None = None) -> StreamedResponse:
        query = {k: v for k, v in (query or {}).items() if v not in (None, "")}
        sent_headers = {"host": "console.internal", "authorization": f"Bearer {self.key}",
                        **(headers or {})}
        if isinstance(body, bytes):
            sent_headers.setdefault("content-length", str(len(body)))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": urlencode(query, doseq=True).encode(), "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in sent_headers.items()],
            "client": ("127.0.0.1", 0), "server": ("console.internal", 80),
        }
        chunks = _chunks(body)
        finished = asyncio.Event()
        messages: asyncio.Queue = asyncio.Queue()
        request_done = False

        async def receive() -> Message:
            nonlocal request_done
            if not request_done:
                chunk, more = await anext(chunks, (b"", False))
                request_done = not more
                return {"type": "http.request", "body": chunk, "more_body": more}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            await messages.put(message)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                await messages.put(None)

        task = asyncio.create_task(run())
        start = await messages.get()
        if start is None or start["type"] != "http.response.start":
            await task  # re-raises what broke the call
            raise RuntimeError(f"{method} {path} sent no response")
        response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return StreamedResponse(start["status"], response_headers, messages, finished, task)

    async def call(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                   json_body: Any = None, body: bytes | AsyncIterator[bytes] = b"",
                   headers: dict[str, str] | None = None) -> ApiResponse:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["content-type"] = "application/json"
        response = await self.stream(method, path, query=query, body=body, headers=headers)
        return ApiResponse(response.status, response.headers, await response.read())

    async def get(self, path: str, **query: Any) -> ApiResponse:
        return await self.call("GET", path, query=query)


async def _chunks(body: bytes | AsyncIterator[bytes]) -> AsyncIterator[tuple[bytes, bool]]:
    """(chunk, more_body) pairs of a request body."""
    if isinstance(body, bytes):
        yield body, False
        return
    previous: bytes | None = None
    async for chunk in body:
        if previous is not None:
            yield previous, True
        previous = chunk
    yield previous or b"", False
