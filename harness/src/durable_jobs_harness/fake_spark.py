"""A small fake of the Spark master REST server and ``/json/``, for error shapes a real master
produces only in rare situations (HTML 500 pages, standby masters, outages on demand), and for hostile
answers (wrong types, truncated bodies, redirects, hangs, resets) served over real sockets.
The real-master behaviour is covered by tests/spark_standalone against Spark itself.

Hostile answers are injected per request kind (``create``, ``status``, ``kill``, ``json``, ``log``,
``readyz``) with :attr:`FakeSparkMaster.faults`: a function of the request that returns a response to send
instead of the real one, or None for the real one. The helpers below build the usual ones.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from durable_jobs_harness.ports import free_port as free_port

Fault = Callable[[web.Request], Awaitable[web.StreamResponse | None] | web.StreamResponse | None]


@dataclass
class FakeSparkMaster:
    port: int = field(default_factory=free_port)
    drivers: dict[str, str] = field(default_factory=dict)  # id -> driverState
    standby: bool = False
    next_error: tuple[int, str, str] | None = None  # (status, content type, body) for the next request
    requests: list[str] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    launch: dict[str, str] = field(default_factory=dict)  # driver id -> stderr (launch command); placed on worker-1
    # --- hostile and realistic extras -------------------------------------------------------------------------
    faults: dict[str, Fault] = field(default_factory=dict)  # request kind -> hostile answer (None: the real one)
    bearer: str | None = None  # REST requires "Authorization: Bearer <bearer>" (Spark's JWSFilter): 403 otherwise
    protect_ui: bool = False  # /json/ requires the bearer too (spark.ui.filters)
    clock_skew: float = 0.0  # seconds the master's clock is ahead of the real one (Date header, starttime)
    starttime: dict[str, float] = field(default_factory=dict)  # driver id -> epoch ms in the master's clock
    rest_forgets: set[str] = field(default_factory=set)  # REST answers success:false, /json/ still lists them
    json_hidden: set[str] = field(default_factory=set)  # /json/ does not list them, REST still knows them
    auth_seen: list[str] = field(default_factory=list)  # the Authorization header of every request
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def now_ms(self) -> float:
        return (time.time() + self.clock_skew) * 1000.0

    def _err(self) -> web.Response | None:
        if self.next_error is None:
            return None
        status, ctype, body = self.next_error
        self.next_error = None
        return web.Response(status=status, text=body, content_type=ctype)

    async def _hostile(self, kind: str, request: web.Request, *, protected: bool = True) -> web.StreamResponse | None:
        self.requests.append(kind)
        self.auth_seen.append(request.headers.get("Authorization", ""))
        if (e := self._err()) is not None:
            return e
        fault = self.faults.get(kind)
        if fault is not None:
            out = fault(request)
            if inspect.isawaitable(out):
                out = await out
            if out is not None:
                return out
        if protected and self.bearer is not None and request.headers.get("Authorization") != f"Bearer {self.bearer}":
            # what JWSFilter answers (an HTML page, 403)
            return web.Response(
                status=403, text="<html><body>JWT Validate Fail</body></html>", content_type="text/html"
            )
        return None

    async def _create(self, request: web.Request) -> web.StreamResponse:
        if (e := await self._hostile("create", request)) is not None:
            return e
        if self.standby:
            return web.json_response(
                {
                    "action": "CreateSubmissionResponse",
                    "success": False,
                    "message": "Current state is not alive: STANDBY. "
                    "Can only accept driver submissions in ALIVE state.",
                }
            )
        driver_id = self.create_driver(await request.json())
        return web.json_response(
            {
                "action": "CreateSubmissionResponse",
                "submissionId": driver_id,
                "success": True,
                "serverSparkVersion": "4.3.0",
                "message": f"Driver successfully submitted as {driver_id}",
            }
        )

    def create_driver(self, body: dict[str, Any]) -> str:
        """What the master does with a CreateSubmissionRequest (a fault may call it, then answer badly)."""
        self.created.append(body)
        driver_id = f"driver-20261121100236-{len(self.created):04d}"
        self.drivers[driver_id] = "RUNNING"
        self.starttime[driver_id] = self.now_ms()
        props = body.get("sparkProperties", {})
        name = props.get("spark.app.name", "")
        tag = props.get("spark.durable_jobs.submission_tag", "")
        self.launch.setdefault(
            driver_id,
            f'Launch Command: "java" "-cp" "x" "-Dspark.app.name={name}" '
            f'"-Dspark.durable_jobs.submission_tag={tag}" "org.apache.spark.deploy.worker.DriverWrapper"\n',
        )
        return driver_id

    async def _status(self, request: web.Request) -> web.StreamResponse:
        if (e := await self._hostile("status", request)) is not None:
            return e
        driver_id = request.match_info["id"]
        if self.standby:
            return web.json_response(
                {
                    "action": "SubmissionStatusResponse",
                    "success": False,
                    "submissionId": driver_id,
                    "message": "Exception from the cluster:\njava.lang.Exception: Current state is "
                    "not alive: STANDBY. Can only request driver status in ALIVE state.",
                }
            )
        if driver_id not in self.drivers or driver_id in self.rest_forgets:
            return web.json_response(
                {
                    "action": "SubmissionStatusResponse",
                    "serverSparkVersion": "4.3.0",
                    "submissionId": driver_id,
                    "success": False,
                }
            )
        state = self.drivers[driver_id]
        out = {"action": "SubmissionStatusResponse", "driverState": state, "submissionId": driver_id, "success": True}
        if state == "ERROR":
            out["message"] = "Exception from the cluster:\njava.io.FileNotFoundException: /nope.jar\n\tat x.y"
        return web.json_response(out)

    async def _kill(self, request: web.Request) -> web.StreamResponse:
        if (e := await self._hostile("kill", request)) is not None:
            return e
        driver_id = request.match_info["id"]
        if self.drivers.get(driver_id) in ("RUNNING", "SUBMITTED"):
            self.drivers[driver_id] = "KILLED"
            return web.json_response(
                {
                    "action": "KillSubmissionResponse",
                    "success": True,
                    "message": f"Kill request for {driver_id} submitted",
                }
            )
        return web.json_response(
            {
                "action": "KillSubmissionResponse",
                "success": False,
                "message": f"Driver {driver_id} has already finished or does not exist",
            }
        )

    async def _readyz(self, request: web.Request) -> web.StreamResponse:
        if (e := await self._hostile("readyz", request)) is not None:
            return e
        return web.json_response({"action": "ReadyzResponse", "success": not self.standby, "message": ""})

    async def _clear(self, request: web.Request) -> web.StreamResponse:
        """Spark 4's ``/v1/submissions/clear``: forget every completed driver."""
        if (e := await self._hostile("clear", request)) is not None:
            return e
        for d, s in list(self.drivers.items()):
            if s not in ("RUNNING", "SUBMITTED"):
                del self.drivers[d]
        return web.json_response({"action": "ClearResponse", "success": True})

    def json_document(self) -> dict[str, Any]:
        """``/json/`` as Spark 4 shapes it (the fields the library reads, and a few it does not)."""

        def entry(d: str, s: str) -> dict[str, Any]:
            worker = "worker-1" if d in self.launch else "None"
            start = self.starttime.get(d, 0.0)
            main = "demo.Main"
            for i, body in enumerate(self.created, 1):
                if d.endswith(f"-{i:04d}"):
                    main = body.get("mainClass", main)
            return {"id": d, "starttime": str(int(start)), "state": s, "mainclass": main, "worker": worker, "cores": 1}

        shown = {d: s for d, s in self.drivers.items() if d not in self.json_hidden}
        active = [entry(d, s) for d, s in shown.items() if s in ("RUNNING", "SUBMITTED")]
        done = [entry(d, s) for d, s in shown.items() if s not in ("RUNNING", "SUBMITTED")]
        workers = [{"id": "worker-1", "webuiaddress": self.url, "state": "ALIVE", "cores": 8}]
        return {
            "url": "spark://127.0.0.1:7077",
            "status": "STANDBY" if self.standby else "ALIVE",
            "workers": workers,
            "activeapps": [],
            "completedapps": [],
            "activedrivers": active,
            "completeddrivers": done,
        }

    def _date(self) -> str:
        return email.utils.formatdate(time.time() + self.clock_skew, usegmt=True)

    async def _json(self, request: web.Request) -> web.StreamResponse:
        if (e := await self._hostile("json", request, protected=self.protect_ui)) is not None:
            return e
        return web.json_response(self.json_document(), headers={"Date": self._date()})

    async def _log(self, request: web.Request) -> web.StreamResponse:
        if (e := await self._hostile("log", request, protected=False)) is not None:
            return e
        text = self.launch.get(request.query.get("driverId", ""))
        if text is None:
            return web.Response(status=404, text="no such driver")
        return web.Response(text=text)

    async def start(self) -> FakeSparkMaster:
        app = web.Application()
        app.router.add_post("/v1/submissions/create", self._create)
        app.router.add_get("/v1/submissions/status/{id}", self._status)
        app.router.add_post("/v1/submissions/kill/{id}", self._kill)
        app.router.add_get("/v1/submissions/readyz", self._readyz)
        app.router.add_post("/v1/submissions/clear", self._clear)
        app.router.add_get("/json/", self._json)
        app.router.add_get("/log/", self._log)
        # a hanging handler is cancelled when its client gives up, and does not hold the shutdown
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# --- hostile answers ---------------------------------------------------------------------------------------------


def json_body(data: Any, status: int = 200) -> web.Response:
    """Any JSON value (wrong types included) as an answer."""
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def raw_body(body: bytes | str, status: int = 200, content_type: str = "application/json") -> web.Response:
    data = body.encode() if isinstance(body, str) else body
    return web.Response(status=status, body=data, content_type=content_type)


def html(
    status: int, text: str = "<html><body><h2>HTTP ERROR</h2><pre>Server Error</pre></body></html>"
) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/html")


def nested(depth: int = 100_000) -> bytes:
    """A JSON document nested deeper than any decoder allows."""
    return b"[" * depth + b"]" * depth


def redirect(location: str, status: int = 307) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


async def truncated(request: web.Request, body: bytes, declared: int | None = None) -> web.StreamResponse:
    """Headers promise ``declared`` bytes (default: more than sent); the body stops half way, the socket closes."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.content_length = declared if declared is not None else len(body) * 2 + 10
    await resp.prepare(request)
    await resp.write(body[: max(1, len(body) // 2)])
    assert request.transport is not None
    request.transport.close()
    return resp


async def reset(request: web.Request) -> web.StreamResponse:
    """Close the connection with a TCP RST before answering."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return web.Response(status=200)  # never sent


async def hang(request: web.Request, seconds: float = 3600.0) -> web.StreamResponse:
    """Never answer (until the client gives up)."""
    await asyncio.sleep(seconds)
    return web.Response(status=504)


def echo_headers_401(request: web.Request) -> web.Response:
    """A proxy's 401 page that echoes every request header, the Authorization header included."""
    lines = "".join(f"<li>{k}: {v}</li>" for k, v in request.headers.items())
    return web.Response(
        status=401,
        text=f"<html><body><h1>401 Unauthorized</h1><p>Your request:</p><ul>{lines}</ul></body></html>",
        content_type="text/html",
    )


class ThreadedFakeSparkMaster:
    """The fake master on its own event loop in a thread, for sync code (the operator on a worker)."""

    def __init__(self) -> None:
        import threading

        self.master = FakeSparkMaster()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeSparkMaster:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.master.start(), self.loop).result(10)
        return self.master

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.master.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
