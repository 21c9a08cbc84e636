"""A TCP fault proxy on 127.0.0.1 in front of a real endpoint: passes bytes through, answers 503, or resets.

The chaos campaign puts one in front of each port a connection names (Spark's REST and UI ports, the Kubernetes
apiserver), so that the endpoint itself stays healthy while its clients see it fail. Modes:

* ``pass``: every connection is spliced to the target, byte for byte (TLS included);
* ``503``: a new connection's request is read and answered ``HTTP/1.1 503`` with ``Connection: close`` (plain HTTP
  targets only: a TLS client cannot read it);
* ``reset``: a new connection is reset (RST) at once.

Switching the mode resets every open connection, so that pooled keep-alive connections meet the new mode at
their next request instead of carrying on. The proxy runs its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter

from durable_jobs_harness.ports import free_port

MODES = ("pass", "503", "reset")
_BODY = b"<html><body><h1>503 Service Unavailable</h1>fault proxy</body></html>"
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BODY)}\r\n\r\n".encode()
    + _BODY
)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """``FaultProxy(target_port, http=True).start()``; ``.port`` is where clients connect; ``.set_mode("503")``."""

    def __init__(self, target_port: int, *, http: bool, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.http = http
        self.port = free_port()
        self.mode = "pass"
        self.hits: Counter[str] = Counter()  # connections accepted, by the mode they met
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fault-proxy-{self.port}", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if mode == "503" and not self.http:
            raise ValueError("a 503 needs a plain HTTP target")
        self._call(self._switch(mode))

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            _reset(writer)

    async def _switch(self, mode: str) -> None:
        self.mode = mode
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        self.hits[mode] += 1
        if mode == "reset":
            _reset(writer)
            return
        if mode == "503":
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                writer.write(_503)
                await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
            for w in (writer, up_writer):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            _reset(writer)
