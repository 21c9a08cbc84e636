"""A small fake of the Spark master REST server and ``/json/``, for error shapes a real master
produces only in rare situations (HTML 500 pages, standby masters, outages on demand).
The real-master behaviour is covered by tests/integration against Spark itself."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeSparkMaster:
    port: int = field(default_factory=free_port)
    drivers: dict[str, str] = field(default_factory=dict)  # id -> driverState
    standby: bool = False
    next_error: tuple[int, str, str] | None = None  # (status, content type, body) for the next request
    requests: list[str] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    launch: dict[str, str] = field(default_factory=dict)  # driver id -> stderr (launch command); placed on worker-1
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _err(self) -> web.Response | None:
        if self.next_error is None:
            return None
        status, ctype, body = self.next_error
        self.next_error = None
        return web.Response(status=status, text=body, content_type=ctype)

    async def _create(self, request: web.Request) -> web.Response:
        self.requests.append("create")
        if (e := self._err()) is not None:
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
        body = await request.json()
        self.created.append(body)
        driver_id = f"driver-20261121100236-{len(self.created):04d}"
        self.drivers[driver_id] = "RUNNING"
        return web.json_response(
            {
                "action": "CreateSubmissionResponse",
                "submissionId": driver_id,
                "success": True,
                "serverSparkVersion": "4.3.0",
                "message": f"Driver successfully submitted as {driver_id}",
            }
        )

    async def _status(self, request: web.Request) -> web.Response:
        self.requests.append("status")
        if (e := self._err()) is not None:
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
        if driver_id not in self.drivers:
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

    async def _kill(self, request: web.Request) -> web.Response:
        self.requests.append("kill")
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

    async def _json(self, request: web.Request) -> web.Response:
        self.requests.append("json")

        def entry(d: str, s: str) -> dict[str, Any]:
            worker = "worker-1" if d in self.launch else "None"
            return {"id": d, "state": s, "starttime": "0", "mainclass": "demo.Main", "worker": worker}

        active = [entry(d, s) for d, s in self.drivers.items() if s in ("RUNNING", "SUBMITTED")]
        done = [entry(d, s) for d, s in self.drivers.items() if s not in ("RUNNING", "SUBMITTED")]
        workers = [{"id": "worker-1", "webuiaddress": self.url, "state": "ALIVE"}]
        return web.json_response(
            {
                "status": "STANDBY" if self.standby else "ALIVE",
                "workers": workers,
                "activedrivers": active,
                "completeddrivers": done,
            }
        )

    async def _log(self, request: web.Request) -> web.Response:
        self.requests.append("log")
        text = self.launch.get(request.query.get("driverId", ""))
        if text is None:
            return web.Response(status=404, text="no such driver")
        return web.Response(text=text)

    async def start(self) -> FakeSparkMaster:
        app = web.Application()
        app.router.add_post("/v1/submissions/create", self._create)
        app.router.add_get("/v1/submissions/status/{id}", self._status)
        app.router.add_post("/v1/submissions/kill/{id}", self._kill)
        app.router.add_get("/json/", self._json)
        app.router.add_get("/log/", self._log)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


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
