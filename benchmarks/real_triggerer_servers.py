"""The fake endpoints of benchmarks/real_triggerer.py: bench_servers.py's fakes, with three changes for a real
triggerer that runs for minutes.

* Counting never restarts: ``POST /_start`` only fixes the jobs' schedule origin, so the requests a triggerer
  sends while it picks its triggers up are counted too (bench_servers resets its tallies there).
* ``GET /_hist?system=&origin=&bucket=`` returns the requests per ``bucket`` seconds since ``origin``
  (a wall-clock time), by kind, and the distinct client sockets; the harness cuts its own windows from it.
* ``POST /_down {"system", "seconds"}``: the endpoint answers every request with 503 for that long (a master
  restarting behind its load balancer), still counting each request: the restart storm.

    python benchmarks/real_triggerer_servers.py DIR     # prints {"control": URL, "spark": URL, ...} on one line
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from aiohttp import web  # noqa: E402
from bench_servers import BenchSparkMaster, Servers, Tally, _spark_kind, counting  # noqa: E402


class DownAware:
    """Per-system 'answer 503 until' times, read by a middleware in front of every fake."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}

    def middleware(self, system: str) -> Any:
        @web.middleware
        async def down(request: web.Request, handler: Any) -> web.StreamResponse:
            if not request.path.startswith("/_") and time.time() < self.until.get(system, 0.0):
                return web.Response(status=503, text="down for the benchmark's restart storm")
            response: web.StreamResponse = await handler(request)
            return response

        return down


DOWN = DownAware()


class StormSparkMaster(BenchSparkMaster):
    """The bench's fake master, with the 503 switch after the counting middleware."""

    async def start(self) -> StormSparkMaster:
        app = web.Application(middlewares=[counting(lambda: self.tally, _spark_kind), DOWN.middleware("spark")])
        app.router.add_get("/v1/submissions/status/{id}", self._status)
        app.router.add_get("/json/", self._json)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=4096).start()
        return self


class RealTriggererServers(Servers):
    async def start(self) -> dict[str, str]:
        import bench_servers

        original = bench_servers.BenchSparkMaster
        bench_servers.BenchSparkMaster = StormSparkMaster  # type: ignore[misc]
        try:
            info = await super().start()
        finally:
            bench_servers.BenchSparkMaster = original  # type: ignore[misc]
        info.pop("control")
        app = web.Application()
        app.router.add_post("/_setup", self._setup)
        app.router.add_post("/_start", self._start)
        app.router.add_post("/_down", self._down)
        app.router.add_get("/_hist", self._hist)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        from durable_jobs_harness.fake_spark import free_port

        await web.TCPSite(runner, "127.0.0.1", port := free_port()).start()
        return {"control": f"http://127.0.0.1:{port}", **info}

    async def _start(self, request: web.Request) -> web.Response:
        """The schedule's origin; the tally keeps counting (unlike bench_servers)."""
        system = (await request.json())["system"]
        return web.json_response({"t0": self.scripts[system].start()})

    async def _down(self, request: web.Request) -> web.Response:
        spec = await request.json()
        DOWN.until[spec["system"]] = time.time() + float(spec["seconds"])
        return web.json_response({"down_until": DOWN.until[spec["system"]]})

    async def _hist(self, request: web.Request) -> web.Response:
        q = request.query
        tally: Tally = self.tallies[q["system"]]
        origin, bucket = float(q["origin"]), float(q.get("bucket", "1"))
        by_kind: dict[str, Counter[int]] = {}
        for kind, times in tally.kind_times.items():
            c = by_kind.setdefault(kind, Counter())
            for t in times:
                if t >= origin:
                    c[int((t - origin) // bucket)] += 1
        script = self.scripts.get(q["system"])
        return web.json_response(
            {
                "origin": origin,
                "bucket": bucket,
                "by_kind": {k: sorted(c.items()) for k, c in by_kind.items()},
                "requests_total": len(tally.times),
                "client_sockets": len(tally.peers),
                "finished_by_script": script.finished if script else 0,
                "t0": script.t0 if script else None,
            }
        )


def main(directory: Path) -> None:
    async def run() -> None:
        servers = RealTriggererServers(directory)
        info = await servers.start()
        print(json.dumps(info), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await servers.kube.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
