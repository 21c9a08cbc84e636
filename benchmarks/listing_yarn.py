"""Does a huge YARN listing stall the event loop? (issue 11: no call may block it for more than 50 ms)

A hostile (or just big) ResourceManager runs in a separate process on 127.0.0.1 and answers every
``GET /ws/v1/cluster/apps`` with all its N applications, whatever the filter (so the batched poll's
``applicationTags=<100 tags>`` query and find's ``applicationTags=<token>`` both get the whole cluster),
and every ``GET /ws/v1/cluster/apps/<id>`` with a report whose diagnostics are as large as that list.
This process runs the real :class:`~durable_jobs.clients.yarn.YarnClient` calls that a triggerer and a
worker make, ``statuses()`` for 100 watched applications, ``find()`` and ``links()``, while a probe task
sleeps 5 ms at a time and records how late it wakes up: the longest lateness is the longest time one call
held the loop.

    python benchmarks/listing_yarn.py              # 10,000 applications; prints, writes build/bench/listing_yarn.json
    python benchmarks/listing_yarn.py --apps 20000 --runs 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from loop_probe import (  # noqa: E402
    PERIOD,
    LoopProbe,
    child_process,
    local_socket,
    ms,
    percentile,
    print_rows,
    serve_until_stdin_closes,
    write_report,
)

OUT = ROOT / "build" / "bench" / "listing_yarn.json"
WATCHED = 100
CLUSTER_TS = 1_700_000_000_000
BUDGET_MS = 50.0


def token(i: int) -> str:
    return f"dj{i:020x}"


def app_id(i: int) -> str:
    return f"application_{CLUSTER_TS}_{i:05d}"


def app_json(i: int, diagnostics: str = "") -> dict[str, Any]:
    """An application as Hadoop 3 reports it (``deSelects=resourceRequests``), about 1 KB."""
    state, final = [
        ("RUNNING", "UNDEFINED"),
        ("FINISHED", "SUCCEEDED"),
        ("FAILED", "FAILED"),
        ("ACCEPTED", "UNDEFINED"),
    ][i % 4]
    return {
        "id": app_id(i),
        "user": "etl",
        "name": f"nightly-{i}",
        "queue": "root.default",
        "state": state,
        "finalStatus": final,
        "progress": 100.0 if state != "RUNNING" else 42.0,
        "trackingUI": "History",
        "trackingUrl": f"http://rm.example.com:8088/proxy/{app_id(i)}/",
        "diagnostics": diagnostics,
        "clusterId": CLUSTER_TS,
        "applicationType": "SPARK",
        "applicationTags": f"airflow,{token(i)}",
        "priority": 0,
        "startedTime": CLUSTER_TS + i,
        "launchTime": CLUSTER_TS + i + 5,
        "finishedTime": 0 if state == "RUNNING" else CLUSTER_TS + i + 60_000,
        "elapsedTime": 60_000,
        "amContainerLogs": (
            f"http://nm{i % 50}.example.com:8042/node/containerlogs/container_{CLUSTER_TS}_{i:05d}_01_000001/etl"
        ),
        "amHostHttpAddress": f"nm{i % 50}.example.com:8042",
        "allocatedMB": -1,
        "allocatedVCores": -1,
        "runningContainers": -1,
        "memorySeconds": 123456,
        "vcoreSeconds": 120,
        "queueUsagePercentage": 0.0,
        "clusterUsagePercentage": 0.0,
        "preemptedResourceMB": 0,
        "preemptedResourceVCores": 0,
        "numNonAMContainerPreempted": 0,
        "numAMContainerPreempted": 0,
        "logAggregationStatus": "SUCCEEDED",
        "unmanagedApplication": False,
        "appNodeLabelExpression": "",
        "amNodeLabelExpression": "",
    }


# --- the RM, in its own process --------------------------------------------------------------------------


def serve(apps: int) -> None:
    """The child: answer with precomputed bodies until stdin closes (the parent ends it by closing stdin)."""
    from aiohttp import web

    listing = json.dumps({"apps": {"app": [app_json(i) for i in range(apps)]}}).encode()
    big = json.dumps({"app": app_json(0, diagnostics="x" * len(listing))}).encode()
    info = json.dumps({"clusterInfo": {"id": CLUSTER_TS, "state": "STARTED", "haState": "ACTIVE"}}).encode()

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/ws/v1/cluster/apps":
            return web.Response(body=listing, content_type="application/json")
        if request.path.startswith("/ws/v1/cluster/apps/"):
            wanted = request.path.rsplit("/", 1)[1]
            body = big if wanted == app_id(0) else json.dumps({"app": app_json(int(wanted[-5:]))}).encode()
            return web.Response(body=body, content_type="application/json")
        return web.Response(body=info, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        sock, url = local_socket()
        await serve_until_stdin_closes(app, sock, {"url": url, "list_bytes": len(listing), "app_bytes": len(big)})

    asyncio.run(main())


# --- the measurement -------------------------------------------------------------------------------------


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> dict[str, Any]:
    seconds: list[float] = []
    lags: list[float] = []
    held: list[float] = []
    for _ in range(runs):
        await asyncio.sleep(0.05)  # settle, before the probe starts
        # lags: how late each wake-up was (wall clock, other processes included); held: the CPU time the loop's
        # thread spent between two wake-ups (how long our code held the loop, whatever else runs)
        async with LoopProbe() as probe, probe.measuring("call"):  # the probe runs before the call starts
            t0 = time.perf_counter()
            await call()
            seconds.append(time.perf_counter() - t0)
        lags.extend(probe.lates())
        held.extend(probe.cpus())
    return {
        "runs": runs,
        "seconds_median": round(statistics.median(seconds), 4),
        "max_loop_held_ms": ms(max(held)),
        "p99_loop_held_ms": ms(percentile(held, 0.99, lower=True)),
        "max_loop_lag_ms": ms(max(lags)),
        "p99_loop_lag_ms": ms(percentile(lags, 0.99, lower=True)),
        "probe_samples": len(lags),
    }


async def _measure(url: str, runs: int, max_body: int) -> dict[str, Any]:
    from durable_jobs.clients.yarn import YarnApplication, YarnClient, YarnConfig, decode_listing
    from durable_jobs.status import JobState
    from durable_jobs.transport.http import close_sessions

    client = YarnClient(YarnConfig(rm_urls=(url,), user="etl", max_body=max_body))
    watched = [{"application_id": app_id(i), "tag": token(i)} for i in range(1, WATCHED + 1)]
    spec = YarnApplication(name="bench", command="true")
    try:
        out = await client.statuses(watched)  # warm up (pooled connection) and check the answers are read
        assert len(out) == WATCHED and all(st.state is not JobState.UNKNOWN for st in out.values()), out
        assert await client.find(token(7), since=0, spec=spec) == {"application_id": app_id(7), "tag": token(7)}
        assert "tracking_url" in await client.links({"application_id": app_id(0), "tag": token(0)})
        results: dict[str, Any] = {
            "statuses": await timed(lambda: client.statuses(watched), runs),
            "find": await timed(lambda: client.find(token(7), since=0, spec=spec), runs),
            "links": await timed(lambda: client.links({"application_id": app_id(0), "tag": token(0)}), runs),
        }
        resp_body = json.dumps({"apps": {"app": [app_json(i) for i in range(len(watched))]}}).encode()
        t0 = time.perf_counter()
        decode_listing(resp_body, what="reference")
        results["decode_100_apps_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        return results
    finally:
        await close_sessions()


def measure(n: int = 10_000, runs: int = 5) -> dict[str, Any]:
    """Serve ``n`` applications from a separate process and time statuses()/find()/links() with a lag probe."""
    server = [sys.executable, __file__, "--serve", "--apps", str(n)]
    with child_process(server, what="the RM process", stop_timeout=20) as rm:
        list_bytes, app_bytes = rm["list_bytes"], rm["app_bytes"]
        max_body = max(16 * 1024 * 1024, 2 * max(list_bytes, app_bytes))
        results = asyncio.run(_measure(rm["url"], runs, max_body))
    worst = max(results[op]["max_loop_held_ms"] for op in ("statuses", "find", "links"))
    worst_wall = max(results[op]["max_loop_lag_ms"] for op in ("statuses", "find", "links"))
    return {
        "apps": n,
        "list_bytes": list_bytes,
        "app_bytes": app_bytes,
        "watched": WATCHED,
        "probe_period_ms": 1000 * PERIOD,
        "budget_ms": BUDGET_MS,
        "worst_loop_held_ms": worst,
        "worst_loop_lag_ms": worst_wall,
        "within_budget": worst <= BUDGET_MS,
        "load_average": os.getloadavg()[0],
        "operations": {op: results[op] for op in ("statuses", "find", "links")},
        "decode_100_apps_ms": results["decode_100_apps_ms"],
        "python": sys.version.split()[0],
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"YARN listing of {report['apps']} applications ({report['list_bytes'] / 1e6:.1f} MB; one report of "
        f"{report['app_bytes'] / 1e6:.1f} MB), loop-lag probe every {report['probe_period_ms']:.0f} ms"
    )
    columns = [("call", "<10"), ("median s", ">9.3f"), ("held max ms", ">12.1f"), ("held p99 ms", ">12.1f")]
    columns += [("lag max ms", ">11.1f"), ("lag p99 ms", ">11.1f")]
    keys = ("seconds_median", "max_loop_held_ms", "p99_loop_held_ms", "max_loop_lag_ms", "p99_loop_lag_ms")
    print_rows(columns, [(op, *(r[k] for k in keys)) for op, r in report["operations"].items()])
    verdict = "within" if report["within_budget"] else "OVER"
    print(
        f"longest hold of the loop {report['worst_loop_held_ms']:.1f} ms (CPU time between two probe wake-ups): "
        f"{verdict} the {report['budget_ms']:.0f} ms budget; longest wall-clock lag {report['worst_loop_lag_ms']:.1f} "
        f"ms at load average {report['load_average']:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.apps)
        return 0
    report = measure(args.apps, args.runs)
    print_report(report)
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
