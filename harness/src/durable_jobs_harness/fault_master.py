"""A fault-injecting fake Spark standalone master, for the fault soak (issue 11).

Two ports on 127.0.0.1, like a real master: the REST submission server (``/v1/submissions/create``,
``status/<id>``, ``kill/<id>``, ``readyz``) and the master UI (``/json/``, and ``/log/`` standing in for the
worker's log page). The answers have the shapes Spark 4.3.0 gives (see durable_jobs_harness.fake_spark and
docs/spark-standalone.md): ``/json/`` is ``ALIVE`` with driver entries ``{id, starttime (string ms), state, cores,
memory, submitdate, worker, mainclass}``.

Each driver has a scripted end: it is ``RUNNING`` until its ``end_at`` (``time.monotonic()``), then
``FINISHED`` (or the state given). The test switches the whole master between phases:

* ``healthy``: answers as Spark does;
* ``down``: both listening sockets are closed, and every open connection with them (connection refused);
* ``503``: every request gets an HTML 503 page;
* ``429``: every request gets 429 with ``Retry-After`` (seconds);
* ``reset``: every request's connection is reset (RST) without an answer.

Every request that reaches the server is counted, with its time, route and the phase it met
(:attr:`FaultMaster.hits`). A refused connection never reaches the server: count those at the client.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from durable_jobs_harness.ports import free_port

PHASES = ("healthy", "down", "503", "429", "reset")
SPARK_VERSION = "4.3.0"
TOKEN_PROPERTY = "spark.durable_jobs.submission_tag"
_HTML_503 = (
    "<html><head><title>503 Service Unavailable</title></head><body><h1>HTTP ERROR 503 Service Unavailable</h1>"
    "<table><tr><th>URI:</th><td>/</td></tr><tr><th>STATUS:</th><td>503</td></tr></table>"
    "<hr/><a href='https://jetty.org/'>Powered by Jetty:// 10.0.20</a></body></html>"
)


@dataclass
class Driver:
    id: str
    main_class: str
    token: str
    start_ms: int
    end_at: float | None = None  # time.monotonic() at which it ends; None: runs until told
    end_state: str = "FINISHED"

    def state(self, now: float) -> str:
        return self.end_state if self.end_at is not None and now >= self.end_at else "RUNNING"


@dataclass(frozen=True, slots=True)
class Hit:
    at: float  # time.monotonic()
    route: str
    phase: str


class FaultMaster:
    """The fake master. ``await start()``, ``await set_phase(...)``, ``await stop()``."""

    def __init__(self, *, retry_after: int = 1, worker_id: str = "worker-20261121100158-127.0.0.1-7078") -> None:
        self.rest_port = free_port()
        self.ui_port = free_port()
        self.retry_after = retry_after
        self.worker_id = worker_id
        self.phase = "healthy"
        self.drivers: dict[str, Driver] = {}
        self.creates = 0  # create requests that made a driver
        self.hits: list[Hit] = []
        self.phase_log: list[tuple[float, str]] = []  # (time.monotonic(), phase entered)
        self._runners: list[web.AppRunner] = []
        self._stamp = time.strftime("%Y%m%d%H%M%S")

    # --- addresses -----------------------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def connection(self, password: str | None = None) -> dict[str, Any]:
        """An Airflow connection (``AIRFLOW_CONN_<ID>`` JSON) of type ``spark_standalone_rest`` for this master."""
        conn: dict[str, Any] = {
            "conn_type": "spark_standalone_rest",
            "host": "127.0.0.1",
            "port": self.rest_port,
            "extra": {"master_ui_urls": self.ui_url},
        }
        if password:
            conn["password"] = password
        return conn

    # --- counting ------------------------------------------------------------------------------------------

    def counts(self, start: float = float("-inf"), end: float = float("inf")) -> Counter[str]:
        """Requests per route that reached the server in ``[start, end)`` (monotonic)."""
        return Counter(h.route for h in self.hits if start <= h.at < end)

    def per_second(self, start: float, end: float) -> list[int]:
        """Requests that reached the server in each second of ``[start, end)``."""
        n = max(0, int(end - start + 0.999999))
        out = [0] * n
        for h in self.hits:
            if start <= h.at < end:
                out[min(n - 1, int(h.at - start))] += 1
        return out

    # --- the driver script ---------------------------------------------------------------------------------

    def end_driver(self, driver_id: str, at: float, state: str = "FINISHED") -> None:
        d = self.drivers[driver_id]
        d.end_at = at
        d.end_state = state

    def state_of(self, driver_id: str) -> str | None:
        d = self.drivers.get(driver_id)
        return None if d is None else d.state(time.monotonic())

    # --- phases --------------------------------------------------------------------------------------------

    async def set_phase(self, phase: str) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; one of {', '.join(PHASES)}")
        if phase == "down":
            self.phase = phase
            await self._close()
        else:
            if not self._runners:
                await self._open()
            self.phase = phase
        self.phase_log.append((time.monotonic(), phase))

    async def start(self) -> FaultMaster:
        await self.set_phase("healthy")
        return self

    async def stop(self) -> None:
        await self._close()

    async def _open(self) -> None:
        for port, routes in ((self.rest_port, self._rest_routes()), (self.ui_port, self._ui_routes())):
            app = web.Application(middlewares=[self._faults])
            for method, path, name, handler in routes:
                app.router.add_route(method, path, handler, name=name)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()

    async def _close(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()  # closes the listening socket and every open connection

    # --- the fault layer -----------------------------------------------------------------------------------

    @web.middleware
    async def _faults(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.name or "other"
        self.hits.append(Hit(time.monotonic(), route, self.phase))
        phase = self.phase
        if phase in ("reset", "down"):  # "down": a request that raced the close
            _reset(request)
            return web.Response(status=500)  # never written: the connection is gone
        if phase == "503":
            return web.Response(status=503, text=_HTML_503, content_type="text/html")
        if phase == "429":
            return web.Response(
                status=429,
                text="Too Many Requests",
                content_type="text/plain",
                headers={"Retry-After": str(self.retry_after)},
            )
        return await handler(request)

    # --- REST ----------------------------------------------------------------------------------------------

    def _rest_routes(self) -> list[tuple[str, str, str, Any]]:
        return [
            ("POST", "/v1/submissions/create", "create", self._create),
            ("GET", "/v1/submissions/status/{id}", "status", self._status),
            ("POST", "/v1/submissions/kill/{id}", "kill", self._kill),
            ("GET", "/v1/submissions/readyz", "readyz", self._readyz),
        ]

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        props = body.get("sparkProperties") or {}
        self.creates += 1
        driver_id = f"driver-{self._stamp}-{self.creates - 1:04d}"
        self.drivers[driver_id] = Driver(
            id=driver_id,
            main_class=str(body.get("mainClass", "")),
            token=str(props.get(TOKEN_PROPERTY, "")),
            start_ms=int(time.time() * 1000),
        )
        return web.json_response(
            {
                "action": "CreateSubmissionResponse",
                "message": f"Driver successfully submitted as {driver_id}",
                "serverSparkVersion": SPARK_VERSION,
                "submissionId": driver_id,
                "success": True,
            }
        )

    async def _status(self, request: web.Request) -> web.Response:
        driver_id = request.match_info["id"]
        d = self.drivers.get(driver_id)
        if d is None:
            return web.json_response(
                {
                    "action": "SubmissionStatusResponse",
                    "serverSparkVersion": SPARK_VERSION,
                    "submissionId": driver_id,
                    "success": False,
                }
            )
        return web.json_response(
            {
                "action": "SubmissionStatusResponse",
                "driverState": d.state(time.monotonic()),
                "serverSparkVersion": SPARK_VERSION,
                "submissionId": driver_id,
                "success": True,
                "workerHostPort": "127.0.0.1:7078",
                "workerId": self.worker_id,
            }
        )

    async def _kill(self, request: web.Request) -> web.Response:
        driver_id = request.match_info["id"]
        d = self.drivers.get(driver_id)
        now = time.monotonic()
        if d is not None and d.state(now) == "RUNNING":
            self.end_driver(driver_id, now, "KILLED")
            return web.json_response(
                {
                    "action": "KillSubmissionResponse",
                    "message": f"Kill request for {driver_id} submitted",
                    "serverSparkVersion": SPARK_VERSION,
                    "submissionId": driver_id,
                    "success": True,
                }
            )
        return web.json_response(
            {
                "action": "KillSubmissionResponse",
                "message": f"Driver {driver_id} has already finished or does not exist",
                "serverSparkVersion": SPARK_VERSION,
                "submissionId": driver_id,
                "success": False,
            }
        )

    async def _readyz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"action": "ReadyzResponse", "message": "", "serverSparkVersion": SPARK_VERSION, "success": True}
        )

    # --- master UI -----------------------------------------------------------------------------------------

    def _ui_routes(self) -> list[tuple[str, str, str, Any]]:
        return [("GET", "/json/", "json", self._json), ("GET", "/log/", "log", self._log)]

    def _entry(self, d: Driver, state: str) -> dict[str, Any]:
        return {
            "id": d.id,
            "starttime": str(d.start_ms),
            "state": state,
            "cores": 1,
            "memory": 512,
            "resources": [],
            "submitdate": time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(d.start_ms / 1000)),
            "worker": self.worker_id,
            "mainclass": d.main_class,
        }

    async def _json(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        active: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []
        for d in self.drivers.values():
            state = d.state(now)
            (active if state == "RUNNING" else done).append(self._entry(d, state))
        worker = {
            "id": self.worker_id,
            "host": "127.0.0.1",
            "port": 7078,
            "webuiaddress": self.ui_url,
            "cores": 1024,
            "coresused": len(active),
            "coresfree": 1024 - len(active),
            "memory": 1 << 20,
            "memoryused": 512 * len(active),
            "memoryfree": (1 << 20) - 512 * len(active),
            "resources": {},
            "resourcesused": {},
            "resourcesfree": {},
            "state": "ALIVE",
            "lastheartbeat": int(time.time() * 1000),
        }
        return web.json_response(
            {
                "url": f"spark://127.0.0.1:{self.rest_port}",
                "workers": [worker],
                "aliveworkers": 1,
                "cores": 1024,
                "coresused": len(active),
                "memory": 1 << 20,
                "memoryused": 512 * len(active),
                "resources": [],
                "resourcesused": [],
                "activeapps": [],
                "completedapps": [],
                "activedrivers": active,
                "completeddrivers": done,
                "status": "ALIVE",
            }
        )

    async def _log(self, request: web.Request) -> web.Response:
        d = self.drivers.get(request.query.get("driverId", ""))
        if d is None:
            return web.Response(status=404, text="no such driver")
        launch = (
            'Launch Command: "/usr/lib/jvm/java-17/bin/java" "-cp" "/opt/spark/jars/*" "-Xmx512M" '
            f'"-D{TOKEN_PROPERTY}={d.token}" "org.apache.spark.deploy.worker.DriverWrapper" '
            f'"spark://Worker@127.0.0.1:7078" "{d.main_class}"\n'
            "========================================\n"
        )
        return web.Response(text=launch)


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset, answering nothing."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


__all__ = ["PHASES", "Driver", "FaultMaster", "Hit", "free_port"]
