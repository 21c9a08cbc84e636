"""A real HTTP server on 127.0.0.1 answering fixed pages, for clients that must read a service's odd answers.

Some answers are not worth a whole fake: Airflow's health endpoint, or a Spark master's web UI where the
REST server was expected. :class:`StubHTTPServer` answers each ``(method, path)`` with a fixed
:class:`Page` (or a default one), records what it was asked, and can hang a request until it stops (a
server that accepted the connection and never answers). It runs in a thread, for sync and async tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Page:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # accept the request and answer nothing until the server stops


class StubHTTPServer:
    """``with StubHTTPServer({("GET", "/x"): Page(...)}) as s: s.url``; ``s.requests`` lists ``(method, path)``."""

    def __init__(self, pages: dict[tuple[str, str], Page] | None = None, default: Page | None = None) -> None:
        self.pages = dict(pages or {})
        self.default = default or Page(404, b"not found", "text/plain")
        self.requests: list[tuple[str, str]] = []
        self._stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                stub.requests.append((self.command, path))
                page = stub.pages.get((self.command, path), stub.default)
                if page.hang:
                    stub._stopping.wait(60)
                    return
                self.send_response(page.status)
                self.send_header("Content-Type", page.content_type)
                self.send_header("Content-Length", str(len(page.body)))
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(page.body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StubHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


__all__ = ["Page", "StubHTTPServer"]
