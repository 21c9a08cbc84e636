"""Does a namespace of 10,000 realistic pods stall the event loop? (issue 11: no call may block it > 50 ms)

The TLS contract fake apiserver runs in a second process (``python -m durable_jobs_harness.fake_kube``) on 127.0.0.1,
seeded with N Running pods labelled for the shared watch, each 5-20 KB of JSON shaped like a real pod
(managedFields, env, conditions, a last-applied annotation), and N/5 unwatched pods of the same size in the same
namespace (the apiserver filters them out by the label selector). This process runs the real
:class:`KubernetesClient` and, beside it, a probe task that sleeps 5 ms at a time and records how late it wakes:
the longest lateness is the longest time the loop was blocked (wall), and the loop thread's CPU time over that
window (cpu: what the client itself spent, without the fake's process competing for the same cores).

Measured: the list that fills the shared watch's cache, page by page, for several page sizes (``limit``; the
client's default is chosen from these figures), each page decoded typed; a poll of all N jobs
(``statuses``); the shared poller's ticks with N waiting jobs; ``find`` (one GET of a name derived from a token);
``status`` of one pod (one GET of a 20 KB pod); and ``links``.

    python benchmarks/listing_kubernetes.py            # N = 10,000; writes build/bench/listing_kubernetes.json
    python benchmarks/listing_kubernetes.py --n 2000

``measure(n)`` returns the same figures as a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import ssl
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

import aiohttp  # noqa: E402
import yaml  # noqa: E402
from loop_probe import LoopProbe, child_process, ms, write_report  # noqa: E402

from durable_jobs.clients.base import locator_key  # noqa: E402
from durable_jobs.clients.kubernetes import KubeObject, KubernetesClient, KubernetesConfig  # noqa: E402
from durable_jobs.polling import PollSettings, poller_for, wait_for_outcome  # noqa: E402
from durable_jobs.transport.http import close_sessions  # noqa: E402

OUT = ROOT / "build" / "bench" / "listing_kubernetes.json"
BUDGET_MS = 50.0
OWN_TURN = 0.0005  # the probe's own turn, taken off the CPU time between two of its wake-ups
NAMESPACE = "listing"
PAGE_SIZES = (100, 250, 500, 1000)
TOKEN = "dj0123456789abcdef0123"


class FakeProcess:
    """Where the fake apiserver listens (it runs in a child process: :func:`fake_process`)."""

    def __init__(self, directory: Path, info: dict[str, str]) -> None:
        self.url, self.kubeconfig = info["url"], info["kubeconfig"]
        self.ca_file = str(directory / "tls" / "ca.crt")
        self.token = yaml.safe_load(Path(self.kubeconfig).read_text())["users"][0]["user"]["token"]

    async def seed(self, count: int, *, managed: bool) -> None:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        spec = {"namespace": NAMESPACE, "count": count, "min_size": 5_000, "max_size": 20_000, "managed": managed}
        headers = {"Authorization": f"Bearer {self.token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/fake/seed", json=spec, ssl=ctx, headers=headers) as resp,
        ):
            assert resp.status == 200, await resp.text()


def measuring(probe: LoopProbe, phase: str) -> contextlib.AbstractAsyncContextManager[LoopProbe]:
    """Label the probe's samples with ``phase``: the probe woke at least once since whatever ran before (a
    collection...), and it is waiting in this phase before the call starts; a block at the very end is seen too."""
    return probe.measuring(phase, settle=3 * probe.period)


def block_ms(probe: LoopProbe, phase: str) -> dict[str, float]:
    """The longest loop block of ``phase``: wall clock, and the loop thread's CPU time (less the probe's turn)."""
    return {
        "max_loop_block_ms": ms(probe.worst(phase)),
        "max_loop_block_cpu_ms": ms(probe.worst_cpu(phase, own_turn=OWN_TURN)),
    }


async def until(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the poller did not tick")
        await asyncio.sleep(0.05)


async def timed(probe: LoopProbe, phase: str, call: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, float]]:
    gc.collect()
    async with measuring(probe, phase):
        t0, c0 = time.perf_counter(), time.process_time()
        result = await call()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return result, {**block_ms(probe, phase), "wall_ms": ms(wall), "cpu_ms": ms(cpu)}


async def listing(fake: FakeProcess, probe: LoopProbe, page_size: int, n: int) -> tuple[dict[str, Any], list[Any]]:
    """One client with ``page_size``: the first poll lists the namespace into the watch's cache."""
    config = KubernetesConfig(
        kubeconfig_path=fake.kubeconfig,
        namespace=NAMESPACE,
        page_size=page_size,
        max_response_bytes=64 << 20,  # 1,000 pods of up to 20 KB: more than the 16 MiB default
        timeout=120,
    )
    client = KubernetesClient(config)
    await client.version()  # connect first: the TLS context and the credentials are one-time costs
    probe_loc = {
        "kind": "Pod",
        "namespace": NAMESPACE,
        "name": "pod-000000",
        "uid": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
    }
    _, figures = await timed(probe, f"list/{page_size}", lambda: client.statuses([probe_loc]))
    conn = await client.connection()
    inf = conn.informers[("Pod", NAMESPACE)]
    assert len(inf.objects) == n, (len(inf.objects), n)
    locators = [
        {"kind": "Pod", "namespace": NAMESPACE, "name": name, "uid": cached.uid} for name, cached in inf.objects.items()
    ]
    figures |= {
        "page_size": page_size,
        "pages": inf.stats.list_pages,
        "longest_page_decode_and_apply_ms": ms(inf.stats.longest_page),
        "longest_page_decode_and_apply_cpu_ms": ms(inf.stats.longest_page_cpu),
    }
    return figures, [client, locators]


async def scenario(n: int) -> dict[str, Any]:
    results: dict[str, Any] = {"pods_watched": n, "pods_unwatched": n // 5, "budget_ms": BUDGET_MS, "calls": {}}
    with (
        tempfile.TemporaryDirectory(prefix="kube-listing-") as tmp,
        child_process(
            [sys.executable, "-m", "durable_jobs_harness.fake_kube", tmp, "--time-scale", "0.02"],
            what="the fake apiserver",
            stop_timeout=30,
            cwd=ROOT,
        ) as info,
    ):
        fake = FakeProcess(Path(tmp), info)
        try:
            await fake.seed(n, managed=True)
            await fake.seed(n // 5, managed=False)
            async with LoopProbe() as probe:
                await _calls(fake, probe, n, results)
        finally:
            await close_sessions()
    blocks = [c["max_loop_block_cpu_ms"] for c in results["calls"].values()]
    results["max_loop_block_ms"] = max(c["max_loop_block_ms"] for c in results["calls"].values())
    results["max_loop_block_cpu_ms"] = max(blocks)
    results["within_budget"] = max(blocks) <= BUDGET_MS
    results["load_average_1min"] = round(os.getloadavg()[0], 2)
    return results


async def _calls(fake: FakeProcess, probe: LoopProbe, n: int, results: dict[str, Any]) -> None:
    """The measured calls, into ``results["calls"]`` (and the list's figures for every page size)."""
    per_size = []
    kept: list[Any] = []
    for size in PAGE_SIZES:
        figures, kept = await listing(fake, probe, size, n)
        per_size.append(figures)
        if size != PAGE_SIZES[-1]:
            await close_sessions()
    results["list_by_page_size"] = per_size
    client, locators = kept
    default = KubernetesConfig().page_size
    results["default_page_size"] = default
    results["calls"]["list"] = next(f for f in per_size if f["page_size"] == default)

    statuses, figures = await timed(probe, "poll", lambda: client.statuses(locators))
    assert len(statuses) == n and all(s.state.value == "running" for s in statuses.values())
    results["calls"]["poll"] = figures

    # the shared poller with N waiting jobs, as a triggerer runs them: a few ticks
    settings = PollSettings(interval=0.5)
    waits = []
    for i, loc in enumerate(locators):  # started in batches, as the triggerer starts triggers
        waits.append(asyncio.ensure_future(wait_for_outcome(client, loc, settings, deadline=time.time() + 600)))
        if i % 50 == 49:
            await asyncio.sleep(0)
    poller = poller_for(client, settings.interval)
    await until(lambda: poller.polls >= 1)
    async with measuring(probe, "poller"):
        started = poller.polls
        await until(lambda: poller.polls >= started + 4)
    results["calls"]["poller_ticks"] = {**block_ms(probe, "poller"), "ticks": poller.polls - started, "waiting": n}
    for w in waits:
        w.cancel()
    await asyncio.gather(*waits, return_exceptions=True)

    spec = KubeObject("Pod", {"spec": {"containers": [{"name": "m", "image": "i"}]}}, name="pod")
    found, figures = await timed(probe, "find", lambda: client.find(TOKEN, since=0, spec=spec))
    assert found is None
    results["calls"]["find"] = figures
    one = locators[len(locators) // 2]
    _, figures = await timed(probe, "status", lambda: client.status(one))
    results["calls"]["status_one_pod"] = figures
    _, figures = await timed(probe, "links", lambda: client.links(one))
    results["calls"]["links"] = figures
    assert locator_key(one) in statuses


def measure(n: int = 10_000) -> dict[str, Any]:
    """The figures for ``n`` watched pods (and ``n // 5`` unwatched ones) as a dict."""
    return asyncio.run(scenario(n))


def report(results: dict[str, Any]) -> None:
    print(f"pods watched {results['pods_watched']}, unwatched {results['pods_unwatched']}, budget {BUDGET_MS} ms")
    for f in results["list_by_page_size"]:
        print(
            f"  list, limit={f['page_size']:>4}: {f['pages']:>3} pages, {f['wall_ms']:>7.0f} ms in all, "
            f"longest page decode+apply {f['longest_page_decode_and_apply_ms']:>5.1f} ms "
            f"(cpu {f['longest_page_decode_and_apply_cpu_ms']:.1f}), "
            f"loop blocked max {f['max_loop_block_ms']:>5.1f} ms (cpu {f['max_loop_block_cpu_ms']:.1f} ms)"
        )
    for name, c in results["calls"].items():
        if name == "list":
            continue
        extra = f", {c['wall_ms']:.0f} ms in all" if "wall_ms" in c else ""
        print(
            f"  {name:<15} loop blocked max {c['max_loop_block_ms']:>5.1f} ms (cpu {c['max_loop_block_cpu_ms']:.1f} ms)"
            + extra
        )
    print(
        f"max loop block {results['max_loop_block_ms']} ms wall, {results['max_loop_block_cpu_ms']} ms cpu; "
        f"within budget: {results['within_budget']} (load {results['load_average_1min']})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=10_000, help="watched pods (unwatched: n/5)")
    args = parser.parse_args()
    figures = measure(args.n)
    report(figures)
    write_report(OUT, {"benchmark": "listing_kubernetes", **figures})
