"""Does a huge EMR listing stall the event loop? Poll, find, links and the lost check over N steps and runs.

A fake EMR (``durable_jobs_harness.moto_emr.FakeEmr``: awsJson1_1 for ``ElasticMapReduce.*``, REST-JSON for EMR
Serverless and EMR on EKS, pages of 50 like AWS) runs in a **separate process** on 127.0.0.1 with a
history of N steps on one cluster, N clusters, and N runs on one Serverless application and one EKS
virtual cluster. In this process the real clients (aiobotocore, botocore's parse, the typed decoding)
run each call while a probe task sleeps 5 ms in a loop and records how late it wakes up: the worst
lateness during a call is the longest time that call held the event loop.

Calls measured (each the worst case its listing allows):

* ``poll``: one ``statuses()`` of 300 watched steps of which 290 ended long ago (the active listing, a
  bounded look at ended steps, the rest by id, 10 per request, then ``DescribeStep`` for none);
* ``find`` / ``find_miss``: the token is on the oldest step, or on none, with the intent older than the
  whole history, so every page is read;
* ``links``: the console and log links of a step;
* the same for Serverless and EKS runs (``poll`` of 300 runs, ``find`` over N, ``lost_check``: a run the
  get call denies, confirmed absent by reading the container's whole run history), and ``find`` over N
  clusters.

    python benchmarks/listing_emr.py            # N = 10,000; prints a table, writes build/bench/listing_emr.json
    python benchmarks/listing_emr.py --n 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from loop_probe import PERIOD, GcPauses, LoopProbe, ms, percentile, print_rows, write_report  # noqa: E402

from durable_jobs.clients.emr import EmrCluster, EmrClusterClient, EmrStep, EmrStepClient  # noqa: E402
from durable_jobs.clients.emr.eks import EmrEksClient, EmrEksJob  # noqa: E402
from durable_jobs.clients.emr.runs import JobRunClient  # noqa: E402
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob  # noqa: E402
from durable_jobs.record import make_token  # noqa: E402
from durable_jobs.transport.http import close_sessions  # noqa: E402
from durable_jobs_harness.moto_emr import EKS_RELEASE, ROLE_ARN, FakeEmr  # noqa: E402

TOKEN = make_token("bench", "run", "oldest", -1, 0)
ABSENT = make_token("bench", "run", "absent", -1, 0)
WATCHED = 300
BUDGET_MS = 50.0


# --- the server process ----------------------------------------------------------------------------------


def _serve(pipe: Any, n: int) -> None:
    asyncio.run(_serve_async(pipe, n))


async def _serve_async(pipe: Any, n: int) -> None:
    fake = FakeEmr()
    now = time.time()
    created = [now - 3600 + 3000 * i / n for i in range(n)]  # the last hour, oldest first
    cluster = fake.add_cluster("history", created=now - 7200)
    states = ("COMPLETED", "FAILED", "CANCELLED", "COMPLETED")
    for i in range(n):
        name = f"etl [{TOKEN}]" if i == 0 else f"step-{i}"
        fake.add_step(cluster, name, state=states[i % len(states)], created=created[i])
    for i in range(WATCHED // 30):  # a few still running, newest
        fake.add_step(cluster, f"running-{i}", state="RUNNING")
    for i in range(n):
        fake.add_cluster(f"etl [{TOKEN}]" if i == 0 else f"cluster-{i}", state="TERMINATED", created=created[i])
    app, vc = fake.add_application(), fake.add_virtual_cluster()
    for container, done in ((app, "SUCCESS"), (vc, "COMPLETED")):
        for i in range(n):
            name = f"etl [{TOKEN}]" if i == 0 else f"run-{i}"
            tags = {"durable-jobs:token": TOKEN} if i == 0 else {}
            token = TOKEN if i == 0 else None
            fake.add_run(container, name=name, state=done, client_token=token, tags=tags, created=created[i])
        for i in range(WATCHED // 30):
            fake.add_run(container, name=f"running-{i}", state="RUNNING")
    await fake.start()
    pipe.send({"endpoint": fake.endpoint, "cluster": cluster, "app": app, "vc": vc})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pipe.recv)  # until the parent says stop
    await fake.stop()


async def timed(name: str, call: Callable[[], Awaitable[Any]], requests: Callable[[], int]) -> dict[str, Any]:
    """One call under the loop probe (the probe waiting before it starts, a block at its very end seen too), with
    the durations of the collector's full (generation 2) collections: pauses no library code controls."""
    with GcPauses() as gc_pauses:
        async with LoopProbe() as probe, probe.measuring(name):
            before = requests()
            started = time.perf_counter()
            result = await call()
            seconds = time.perf_counter() - started
    lags = probe.lates() or [0.0]
    full = gc_pauses.seconds(generation=2)
    return {
        "call": name,
        "seconds": round(seconds, 3),
        "requests": requests() - before,
        "max_lag_ms": ms(max(lags)),
        "p99_lag_ms": ms(percentile(lags, 0.99)),
        "median_lag_ms": round(statistics.median(lags) * 1000, 2),
        "full_gc_count": len(full),
        "full_gc_max_ms": ms(max(full, default=0.0)),
        "result": _summary(result),
    }


def _summary(result: Any) -> str:
    if isinstance(result, dict) and result and all(hasattr(v, "state") for v in result.values()):
        counts: dict[str, int] = {}
        for status in result.values():
            counts[status.state.value] = counts.get(status.state.value, 0) + 1
        return json.dumps(counts, sort_keys=True)
    if hasattr(result, "state"):
        return str(result.state.value)
    return json.dumps(result, sort_keys=True, default=str)[:120]


# --- the measurement ------------------------------------------------------------------------------------


class Counter:
    """Counts the requests the clients send (botocore's before-send event)."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, **kwargs: Any) -> None:
        self.sent += 1


async def _measure(n: int, endpoint: str, ids: dict[str, str]) -> dict[str, Any]:
    from durable_jobs.clients.emr.aws_config import AwsConfig

    config = AwsConfig(
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="AKIABENCH00000000001",
        aws_secret_access_key="bench-secret",
        read_timeout=60,
        label="aws_bench",
    )
    counter = Counter()
    steps, clusters = EmrStepClient(config), EmrClusterClient(config)
    serverless, eks = EmrServerlessClient(config), EmrEksClient(config)
    rows: list[dict[str, Any]] = []
    for client in (steps, serverless, eks):
        rows.append(await timed(f"{client.service}: first client (models load)", client.client, lambda: counter.sent))
        (await client.client()).meta.events.register("before-send", counter)

    def count() -> int:
        return counter.sent

    cluster = ids["cluster"]
    # the watched steps: 10 running, 290 that ended long ago (deep in the history)
    listed = await _all_steps(steps, cluster)
    running = [s for s in listed if s.startswith("s-")][: WATCHED // 30]
    ended = listed[-(WATCHED - len(running)) :]
    watched = [{"cluster_id": cluster, "step_id": sid} for sid in [*running, *ended]]
    long_ago = time.time() - 4 * 3600
    spec = EmrStep(cluster_id=cluster, name="etl")
    rows.append(await timed("steps: poll 300 watched (290 ended)", lambda: steps.statuses(watched), count))
    rows.append(await timed(f"steps: find over {n}", lambda: steps.find(TOKEN, since=long_ago, spec=spec), count))
    rows.append(await timed(f"steps: find_miss over {n}", lambda: steps.find(ABSENT, since=long_ago, spec=spec), count))
    rows.append(await timed("steps: links", lambda: steps.links(watched[0]), count))
    rows.append(
        await timed(
            "steps: lost_check",
            lambda: steps.status({"cluster_id": cluster, "step_id": "s-NOSUCHSTEP0001"}),
            count,
        )
    )
    cspec = EmrCluster(name="etl", job_flow={"Instances": {}})
    rows.append(
        await timed(f"clusters: find over {n}", lambda: clusters.find(TOKEN, since=long_ago, spec=cspec), count)
    )
    for name, client, container, field in (
        ("serverless", serverless, ids["app"], "application_id"),
        ("eks", eks, ids["vc"], "virtual_cluster_id"),
    ):
        runs = await _all_runs(client, container)
        locs = [{field: container, "job_run_id": r} for r in runs[: WATCHED // 30] + runs[-(WATCHED - WATCHED // 30) :]]
        run_spec = _run_spec(name, container)
        rows.append(await timed(f"{name}: poll 300 watched (290 ended)", lambda c=client, w=locs: c.statuses(w), count))
        rows.append(
            await timed(
                f"{name}: find over {n}",
                lambda c=client, s=run_spec: c.find(TOKEN, since=long_ago, spec=s),
                count,
            )
        )
        rows.append(await timed(f"{name}: links", lambda c=client, w=locs: c.links(w[0]), count))
        gone = {field: container, "job_run_id": "00nosuchrun"}
        rows.append(await timed(f"{name}: lost_check over {n}", lambda c=client, g=gone: c.status(g), count))
    await close_sessions()
    steady = [r for r in rows if "first client" not in r["call"]]
    return {
        "n": n,
        "watched": WATCHED,
        "probe_interval_ms": PERIOD * 1000,
        "budget_ms": BUDGET_MS,
        "max_lag_ms": max(r["max_lag_ms"] for r in steady),
        "within_budget": all(r["max_lag_ms"] <= BUDGET_MS for r in steady),
        "calls": rows,
    }


async def _all_steps(client: EmrStepClient, cluster: str) -> list[str]:
    """Ids of the cluster's steps, newest first (the running ones first)."""
    ids: list[str] = []

    def keep(items: list[Any]) -> bool:
        ids.extend(i["Id"] for i in items)
        return False

    await client.pages(
        "list_steps", {"ClusterId": cluster}, what="list", items="Steps", marker_in="Marker", on_page=keep
    )
    return ids


async def _all_runs(client: JobRunClient[Any], container: str) -> list[str]:
    ids: list[str] = []

    def keep(items: list[Any]) -> bool:
        ids.extend(i["id"] for i in items)
        return False

    await client.pages(
        "list_job_runs",
        {client.container_param: container},
        what="list",
        items="jobRuns",
        marker_in="nextToken",
        on_page=keep,
    )
    return ids


def _run_spec(name: str, container: str) -> Any:
    if name == "serverless":
        return EmrServerlessJob(
            application_id=container,
            execution_role_arn=ROLE_ARN,
            job_driver={"sparkSubmit": {"entryPoint": "s3://b/x.py"}},
            name="etl",
        )
    return EmrEksJob(
        virtual_cluster_id=container,
        name="etl",
        execution_role_arn=ROLE_ARN,
        release_label=EKS_RELEASE,
        job_driver={"sparkSubmitJobDriver": {"entryPoint": "s3://b/x.py"}},
    )


def measure(n: int = 10_000) -> dict[str, Any]:
    """Start the fake EMR in its own process with ``n`` steps, clusters and runs, and measure every call."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, n), daemon=True)
    server.start()
    try:
        if not parent.poll(300):
            raise RuntimeError("the fake EMR did not start within 300 s")
        ids = parent.recv()
        return asyncio.run(_measure(n, ids["endpoint"], ids))
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            parent.send("stop")
        server.join(30)
        if server.is_alive():
            server.terminate()
            server.join(10)


def print_table(report: dict[str, Any]) -> None:
    print(f"EMR listings of {report['n']}: worst loop hold {report['max_lag_ms']} ms (budget {report['budget_ms']} ms)")
    columns = [("call", "<44"), ("s", ">7"), ("requests", ">8"), ("max lag ms", ">10"), ("p99 ms", ">7")]
    columns += [("full GCs", ">8"), ("GC ms", ">6"), ("result", "")]
    keys = ("call", "seconds", "requests", "max_lag_ms", "p99_lag_ms", "full_gc_count", "full_gc_max_ms")
    print_rows(columns, [[*(row[k] for k in keys), row["result"][:60]] for row in report["calls"]])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "build" / "bench" / "listing_emr.json"))
    args = parser.parse_args()
    result = measure(args.n)
    print_table(result)
    write_report(Path(args.out), result)
