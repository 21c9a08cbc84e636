"""Does a Spark master listing 100,000 drivers stall the event loop? (issue 11: no call may block it > 50 ms)

A second process serves a Spark-4-shaped ``/json/`` with N drivers (1,000 active, the rest completed; about
26 MB at N = 100,000) from a real aiohttp server on 127.0.0.1, with the worker log page find reads. This
process runs the real :class:`SparkStandaloneClient` (``max_response_bytes`` raised to 64 MiB) and, beside
it, a probe task that sleeps 5 ms at a time and records how late it wakes: the longest lateness is the
longest time the loop was blocked. Measured for a batched poll of 2,000 drivers (``statuses``), a ``find``
of the crashed try's driver, and ``links``, each a few times, with the collector's pauses recorded too.

    python benchmarks/listing_spark.py            # N = 100,000; prints figures, writes build/bench/listing_spark.json
    python benchmarks/listing_spark.py --n 20000

``measure(n)`` returns the same figures as a dict, for a combined benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]

from loop_probe import (  # noqa: E402
    GcPauses,
    LoopProbe,
    child_process,
    local_socket,
    ms,
    print_rows,
    serve_until_stdin_closes,
    write_report,
)

BUDGET_MS = 50.0
MAIN_CLASS = "demo.SleepExit"
TOKEN = "dj0123456789abcdef0123"
WORKER = "worker-20261121100200-127.0.0.1-40000"
ACTIVE = 1_000


def driver_id(i: int) -> str:
    return f"driver-20261121100236-{i:06d}"


# --- the server process -------------------------------------------------------------------------------------------


def master_document(n: int, worker_ui: str) -> bytes:
    """``/json/`` as a Spark 4.3 master sends it: every field of every driver, starttime a string of epoch ms."""
    old = str(int((time.time() - 2 * 86400) * 1000))  # two days ago: outside find's window
    now = str(int(time.time() * 1000))

    def entry(i: int) -> dict[str, Any]:
        return {
            "id": driver_id(i),
            "starttime": now if i == n - 1 else old,
            "state": "RUNNING" if i < ACTIVE else "FINISHED",
            "cores": 1,
            "memory": 1024,
            "resources": {},
            "submitdate": "Sat Nov 21 10:02:36 UTC 2026",
            "worker": WORKER,
            "mainclass": MAIN_CLASS,
        }

    doc = {
        "url": "spark://127.0.0.1:7077",
        "workers": [
            {
                "id": WORKER,
                "host": "127.0.0.1",
                "port": 40000,
                "webuiaddress": worker_ui,
                "cores": 64,
                "coresused": ACTIVE,
                "coresfree": 0,
                "memory": 262144,
                "memoryused": 0,
                "memoryfree": 0,
                "resources": {},
                "resourcesused": {},
                "resourcesfree": {},
                "state": "ALIVE",
                "lastheartbeat": int(time.time() * 1000),
            }
        ],
        "aliveworkers": 1,
        "cores": 64,
        "coresused": ACTIVE,
        "memory": 262144,
        "memoryused": 0,
        "resources": [],
        "resourcesused": [],
        "activeapps": [],
        "completedapps": [],
        "activedrivers": [entry(i) for i in range(ACTIVE)],
        "completeddrivers": [entry(i) for i in range(ACTIVE, n)],
        "status": "ALIVE",
    }
    return json.dumps(doc).encode()


def serve(n: int) -> None:
    """Serve ``/json/`` and ``/log/`` until stdin closes; print the base URL first."""
    from aiohttp import web

    async def main() -> None:
        sock, url = local_socket()
        body = master_document(n, url)
        launch = (
            f'Launch Command: "java" "-Dspark.app.name=bench [{TOKEN}]" '
            f'"-Dspark.durable_jobs.submission_tag={TOKEN}" "org.apache.spark.deploy.worker.DriverWrapper"\n'
        )

        async def listing(request: web.Request) -> web.Response:
            return web.Response(
                body=body,
                content_type="application/json",
                headers={"Date": email.utils.formatdate(time.time(), usegmt=True)},
            )

        async def log_page(request: web.Request) -> web.Response:
            return web.Response(text=launch if request.query.get("driverId") == driver_id(n - 1) else "")

        app = web.Application()
        app.router.add_get("/json/", listing)
        app.router.add_get("/log/", log_page)
        await serve_until_stdin_closes(app, sock, {"url": url, "bytes": len(body)})

    asyncio.run(main())


# --- the measured process -------------------------------------------------------------------------------------------


async def _measure(url: str, n: int, rounds: int) -> dict[str, Any]:
    from durable_jobs.clients.spark_standalone import SparkApplication, SparkStandaloneClient, SparkStandaloneConfig
    from durable_jobs.status import JobState
    from durable_jobs.transport.http import close_sessions

    client = SparkStandaloneClient(
        SparkStandaloneConfig(rest_urls=(url,), ui_urls=(url,), timeout=120, max_response_bytes=64 * 1024 * 1024)
    )
    app = SparkApplication(app_resource="file:/apps/bench.jar", main_class=MAIN_CLASS, name="bench")
    # 2,000 watched drivers: half still running, half finished (every one settled by /json/, no REST follow-up)
    watched = [{"driver_id": driver_id(i)} for i in range(ACTIVE - 1_000, ACTIVE + 1_000)]
    calls: dict[str, Any] = {
        "statuses": lambda: client.statuses(watched),
        "find": lambda: client.find(TOKEN, since=time.time() - 60, spec=app),
        "links": lambda: client.links({"driver_id": driver_id(n - 1)}),
    }
    out: dict[str, Any] = {}
    try:
        for name, call in calls.items():
            walls, lags, cpu_lags, cpus, gcs = [], [], [], [], []
            for _ in range(rounds):
                # the probe is running before the call starts (its first samples are not the call's); a block at
                # the very end of the call is seen too
                with GcPauses() as pauses:
                    async with LoopProbe() as probe, probe.measuring(name, settle=2 * probe.period, lead=0):
                        cpu0, wall0 = time.process_time(), time.perf_counter()
                        result = await call()
                        cpu1, wall1 = time.process_time(), time.perf_counter()
                walls.append(wall1 - wall0)
                cpus.append(cpu1 - cpu0)
                lags.append(probe.worst(name))
                cpu_lags.append(probe.worst_cpu(name))
                gcs.append(pauses.worst())
                del result
            if name == "statuses":
                check = await call()
                assert len(check) == len(watched), len(check)
                assert {s.state for s in check.values()} == {JobState.RUNNING, JobState.SUCCEEDED}
            elif name == "find":
                assert await call() == {"driver_id": driver_id(n - 1)}
            else:
                assert "driver_ui_url" in await call()
            out[name] = {
                "max_loop_block_ms": ms(max(lags)),
                "loop_block_ms_each": [ms(x) for x in lags],
                "max_loop_block_cpu_ms": ms(max(cpu_lags)),
                "loop_block_cpu_ms_each": [ms(x) for x in cpu_lags],
                "wall_ms": ms(min(walls)),
                "cpu_ms": ms(min(cpus)),
                "max_gc_pause_ms": ms(max(gcs)),
            }
    finally:
        await close_sessions()
    return out


class _OneDriver(msgspec.Struct, gc=False):
    id: str
    state: str


class _OnePiece(msgspec.Struct, gc=False):
    status: str
    activedrivers: list[_OneDriver]
    completeddrivers: list[_OneDriver]


def _single_shot(body: bytes) -> dict[str, float]:
    """What decoding the whole listing in one piece would block (the alternatives, for comparison)."""
    started = time.perf_counter()
    msgspec.json.decode(body, type=_OnePiece)
    typed = time.perf_counter() - started
    started = time.perf_counter()
    json.loads(body)
    untyped = time.perf_counter() - started
    return {"typed_one_piece_ms": ms(typed), "json_loads_ms": ms(untyped)}


def measure(n: int = 100_000, rounds: int = 3) -> dict[str, Any]:
    """Serve a listing of ``n`` drivers from another process; the longest loop block of each call."""
    load = os.getloadavg()[0]
    server = [sys.executable, __file__, "--serve", str(n)]
    with child_process(server, what="the listing server", stop_timeout=10) as info:
        figures = asyncio.run(_measure(info["url"], n, rounds))
        import urllib.request

        with urllib.request.urlopen(f"{info['url']}/json/", timeout=60) as resp:
            body = resp.read()
        comparison = _single_shot(body)
        del body
    worst = max(f["max_loop_block_ms"] for f in figures.values())
    worst_cpu = max(f["max_loop_block_cpu_ms"] for f in figures.values())
    return {
        "drivers": n,
        "listing_bytes": info["bytes"],
        "watched_in_statuses": 2_000,
        "budget_ms": BUDGET_MS,
        "max_loop_block_ms": worst,
        "max_loop_block_cpu_ms": worst_cpu,
        # the wall-clock block includes time the OS gave other processes: judged on the CPU the loop spent,
        # and on the wall clock too when the machine was not busy with something else
        "load_average_1min": round(load, 2),
        "within_budget": worst_cpu <= BUDGET_MS and (worst <= BUDGET_MS or load > 1.0),
        "calls": figures,
        "for_comparison": comparison,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="drivers in the listing")
    parser.add_argument("--rounds", type=int, default=3, help="times each call is measured")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    result = measure(args.n, args.rounds)
    print(
        f"Spark /json/ with {result['drivers']:,} drivers ({result['listing_bytes'] / 1e6:.1f} MB), "
        f"budget {BUDGET_MS:.0f} ms of loop block per call"
    )
    columns = [("call", "<10"), ("max block ms", ">13.1f"), ("(cpu ms)", ">9.1f"), ("wall ms", ">9.1f")]
    columns += [("cpu ms", ">8.1f"), ("max gc ms", ">10.1f")]
    keys = ("max_loop_block_ms", "max_loop_block_cpu_ms", "wall_ms", "cpu_ms", "max_gc_pause_ms")
    print_rows(columns, [(name, *(f[k] for k in keys)) for name, f in result["calls"].items()])
    cmp = result["for_comparison"]
    print(
        f"(decoding the listing in one piece would block {cmp['typed_one_piece_ms']:.0f} ms typed, "
        f"{cmp['json_loads_ms']:.0f} ms with json.loads)"
    )
    print(
        f"max loop block {result['max_loop_block_ms']:.1f} ms wall, {result['max_loop_block_cpu_ms']:.1f} ms CPU "
        f"(load average {result['load_average_1min']}): {'OK' if result['within_budget'] else 'OVER BUDGET'}"
    )
    write_report(ROOT / "build" / "bench" / "listing_spark.json", result)
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
