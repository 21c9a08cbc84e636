"""What does waiting for 1,000 Kubernetes Jobs cost in one triggerer process: watch connections, requests, memory?

The contract fake apiserver runs in its own process (``python -m durable_jobs_harness.fake_kube``, so its memory and CPU
are not measured), over TLS, with its simulated Job controller and kubelet running each Job's ``sleep``. This
process does what a triggerer does: N ``KubernetesTrigger.run()`` on one event loop, each resolving the
connection ``AIRFLOW_CONN_*`` through the hook, sharing one ApiClient and one poller. For each mode it reports
the watch connections opened, the requests per poll interval while the jobs run, the requests needed to collect
every outcome, RSS and event-loop lag. Modes: ``watch`` (the library: one list+watch per namespace and kind) and
``poll`` (the baseline, connection extra ``watch: false``: one GET per job per interval, what per-trigger polling
costs, batched by the same poller).

    python benchmarks/kube_watch_scale.py            # 1,000 jobs, both modes; writes build/bench/kube_watch_scale.json
    python benchmarks/kube_watch_scale.py --jobs 200 --modes watch
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

import aiohttp  # noqa: E402
from bench_probe import rss_kb, stop_child  # noqa: E402

from durable_jobs.clients.kubernetes import KubeObject, KubernetesClient  # noqa: E402
from durable_jobs.hooks.kubernetes import KubernetesHook  # noqa: E402
from durable_jobs.record import make_token  # noqa: E402
from durable_jobs.transport.http import close_sessions  # noqa: E402
from durable_jobs.triggers.kubernetes import KubernetesTrigger  # noqa: E402

OUT = ROOT / "build" / "bench" / "kube_watch_scale.json"


class FakeProcess:
    """The fake apiserver in a child process, stopped by closing its stdin (then by its PID)."""

    def __init__(self, directory: Path, time_scale: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "durable_jobs_harness.fake_kube", str(directory), "--time-scale", str(time_scale)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.info = {**info, "ca_file": str(directory / "tls" / "ca.crt")}

    def stop(self) -> None:
        stop_child(self.proc, 15)


class FakeInfo:
    """Where the fake listens, for a measuring child process."""

    def __init__(self, info: dict[str, str]) -> None:
        self.url, self.kubeconfig, self.ca_file = info["url"], info["kubeconfig"], info["ca_file"]

    async def stats(self) -> dict[str, Any]:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/fake/stats", ssl=ctx) as resp:
            data: dict[str, Any] = await resp.json()
            return data


async def lag_monitor(stop: asyncio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.05)
        samples.append(time.perf_counter() - started - 0.05)


async def scenario(fake: FakeInfo, mode: str, jobs: int, interval: float, ticks: int) -> dict[str, Any]:
    namespace = f"bench-{mode}"
    conn_id = f"kube_bench_{mode}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {
            "conn_type": "kubernetes_durable",
            "extra": {"kube_config_path": fake.kubeconfig, "namespace": namespace, "watch": mode == "watch"},
        }
    )
    client = await KubernetesHook.aget_client(conn_id)
    assert isinstance(client, KubernetesClient)
    await client.version()  # connect first: one-time costs (TLS context, imports) are not per job
    gc.collect()
    rss_start = rss_kb()

    # N Jobs that run 12-16 s: sleep 120-159 "script seconds" on the fake's clock (time scale 0.1)
    sem = asyncio.Semaphore(32)

    async def submit(i: int) -> dict[str, Any]:
        container = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", f"sleep {120 + i % 40}"]}
        spec = KubeObject("Job", {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}}})
        async with sem:
            return await client.submit(spec, make_token("bench", mode, "job", i, 0))

    started = time.monotonic()
    locators = await asyncio.gather(*(submit(i) for i in range(jobs)))
    submit_seconds = time.monotonic() - started

    conn = await client.connection()
    per_tick: list[int] = []
    tick_seconds: list[float] = []
    enough = asyncio.Event()
    original = client.statuses

    async def counting(locs: Any) -> Any:  # one call per poller tick
        before, t0 = sum(conn.requests.values()), time.perf_counter()
        out = await original(locs)
        per_tick.append(sum(conn.requests.values()) - before)
        tick_seconds.append(time.perf_counter() - t0)
        if len(per_tick) >= ticks:
            enough.set()
        return out

    client.statuses = counting  # type: ignore[method-assign]
    stop, lag = asyncio.Event(), []
    monitor = asyncio.create_task(lag_monitor(stop, lag))

    async def run_trigger(loc: dict[str, Any], i: int) -> str:
        trigger = KubernetesTrigger(
            job=loc,
            conn_id=conn_id,
            token=make_token("bench", mode, "job", i, 0),
            generation=0,
            poll_interval=interval,
            deadline=time.time() + 600,
        )
        events = [event.payload async for event in trigger.run()]
        return str(events[0]["status"])

    requests_before = Counter(conn.requests)
    waits = [asyncio.create_task(run_trigger(loc, i)) for i, loc in enumerate(locators)]
    await asyncio.wait_for(enough.wait(), 300)
    rss_watching = rss_kb()
    while_watching = Counter(conn.requests) - requests_before
    steady = per_tick[:ticks]
    fake_stats = await fake.stats()
    collect_before, collect_started = sum(conn.requests.values()), time.monotonic()
    statuses = Counter(await asyncio.wait_for(asyncio.gather(*waits), 600))
    collect_seconds = time.monotonic() - collect_started
    stop.set()
    await monitor
    client.statuses = original  # type: ignore[method-assign]
    informers = {f"{k}/{ns}": inf.stats for (k, ns), inf in conn.informers.items()}
    result = {
        "mode": mode,
        "jobs": jobs,
        "poll_interval_s": interval,
        "submit_seconds": round(submit_seconds, 2),
        "events": dict(statuses),
        "watch_connections_opened": fake_stats["watches_opened"].get(f"jobs/{namespace}", 0),
        "watch_requests_by_client": sum(s.watch_requests for s in informers.values()),
        "lists_by_client": sum(s.lists for s in informers.values()),
        "requests_per_poll_interval": steady,
        "requests_per_poll_interval_mean": round(sum(steady) / max(1, len(steady)), 2),
        "requests_per_poll_interval_after_the_first": round(sum(steady[1:]) / max(1, len(steady) - 1), 2),
        "requests_while_watching_by_kind": dict(while_watching),
        "seconds_per_tick_max": round(max(tick_seconds[:ticks]), 4),
        "requests_to_collect_all_outcomes": sum(conn.requests.values()) - collect_before,
        "seconds_from_first_tick_window_to_all_outcomes": round(collect_seconds, 2),
        "rss_mb_before_triggers": round(rss_start / 1024, 1),
        "rss_mb_while_watching": round(rss_watching / 1024, 1),
        "rss_kb_per_watched_job": round((rss_watching - rss_start) / jobs, 1),
        "loop_lag_ms_max": round(1000 * max(lag, default=0.0), 1),
        "loop_lag_ms_p99": round(1000 * sorted(lag)[int(0.99 * (len(lag) - 1))], 1) if lag else 0.0,
    }
    await close_sessions()
    KubernetesHook.clear_cache()
    return result


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each mode in its own child process, so that its RSS is its own."""
    results = []
    with tempfile.TemporaryDirectory(prefix="kube-bench-") as tmp:
        fake = FakeProcess(Path(tmp), time_scale=0.1)
        try:
            for mode in args.modes:
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        *("--jobs", str(args.jobs), "--interval", str(args.interval), "--ticks", str(args.ticks)),
                        *("--child", mode, "--fake", json.dumps(fake.info)),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
                if child.returncode != 0:
                    raise RuntimeError(f"the {mode} run failed:\n{child.stderr[-3000:]}")
                results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        finally:
            fake.stop()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--modes", nargs="+", default=["watch", "poll"], choices=["watch", "poll"])
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval of the triggers (s)")
    parser.add_argument("--ticks", type=int, default=5, help="poller ticks measured while every job runs")
    parser.add_argument("--child", choices=["watch", "poll"], help=argparse.SUPPRESS)
    parser.add_argument("--fake", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fake_info = FakeInfo(json.loads(args.fake))
        print(json.dumps(asyncio.run(scenario(fake_info, args.child, args.jobs, args.interval, args.ticks))))
        sys.exit(0)
    results = main(args)
    keys = [
        "mode",
        "jobs",
        "watch_connections_opened",
        "requests_per_poll_interval",
        "requests_to_collect_all_outcomes",
        "rss_kb_per_watched_job",
        "loop_lag_ms_max",
        "events",
    ]
    for r in results:
        print("  ".join(f"{k}={r[k]}" for k in keys))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"benchmark": "kube_watch_scale", "results": results}, indent=2))
    print(f"wrote {OUT.relative_to(ROOT)}")
