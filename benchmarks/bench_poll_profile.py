"""Where one steady poll of 100,000 waiting Spark triggers spends its time (issue 12, item 6).

    python benchmarks/bench_poll_profile.py                 # N = 100,000, 6 polls timed, py-spy over 10 polls
    python benchmarks/bench_poll_profile.py --jobs 10000 --no-pyspy

The endpoints run in their own process (``bench_servers.py``: the fake master's ``/json/`` with N RUNNING
drivers, rendered once). This process runs N real :class:`SparkStandaloneTrigger` instances as
``triggerer_scale.py`` does (INFO logging as the triggerer's runner configures it, the connection's
``max_response_bytes`` at 64 MiB), waits until every trigger waits and the first full poll is done, then:

1. **times the steady poll by stage** (``time.thread_time`` and ``perf_counter`` around the library's own
   stages, wrapped from outside: nothing in ``src/`` changes). The stages nest::

       StatusPoller._cycle                      one poll, all of it
         keys + locators lists                  = _cycle - statuses - _offer
         SparkStandaloneClient.statuses         the client's batch
           wanted set + per-locator mapping     = statuses - _listed_states
           _listed_states                       GET, decode, the id/state walk
             _fetch_listing                     GET + top-level decode (drivers kept raw)
               request (the transport)          the GET: 26 MB read
               Response.decode (_Listing)       the top-level decode
             slices: decode_json(list[_DriverState])  the drivers, 4,096 at a time
             walk                               = _listed_states - _fetch_listing - slices
         StatusPoller._offer                    every watch offered its status

2. **times the floor on the same document**: the same GET on one aiohttp session, then
   ``msgspec.json.decode`` of the body into ``(id, state)`` structs, nothing else (and ``json.loads`` for
   comparison);
3. **samples the steady polls with py-spy** (1,000 Hz, ``--native`` off, idle frames dropped): the functions
   with the most self time, and the library's functions by inclusive share;
4. the longest turn of the loop during the timed polls.

Writes ``build/bench/poll_profile.json`` and prints a table (µs per job per poll for each stage).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

OUT = ROOT / "build" / "bench" / "poll_profile.json"
CALLERS = ("durable_jobs", "structlog", "airflow", "bench_children", "bench_probe")


class Stages:
    """CPU (thread time) and wall time per stage, summed over the timed polls."""

    def __init__(self) -> None:
        self.cpu: collections.Counter[str] = collections.Counter()
        self.wall: collections.Counter[str] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self.on = False

    def wrap_async(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return await original(*args, **kwargs)
            # thread time of this coroutine only would need a task-local clock: the stages run with nothing
            # else on the loop (every trigger waits, nothing ends), so the loop thread's time is theirs
            c, w = time.thread_time(), time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.cpu[stage] += time.thread_time() - c
                self.wall[stage] += time.perf_counter() - w
                self.calls[stage] += 1

        setattr(owner, name, timed)

    def wrap_async_gen(self, owner: Any, name: str, stage: str) -> None:
        """An async generator method: the time spent inside it between its yields (its own work)."""
        original = getattr(owner, name)

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            gen = original(*args, **kwargs)
            while True:
                c, w = time.thread_time(), time.perf_counter()
                try:
                    item = await gen.__anext__()
                except StopAsyncIteration:
                    return
                finally:
                    if self.on:
                        self.cpu[stage] += time.thread_time() - c
                        self.wall[stage] += time.perf_counter() - w
                yield item

        setattr(owner, name, timed)

    def wrap_sync(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return original(*args, **kwargs)
            c, w = time.thread_time(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.cpu[stage] += time.thread_time() - c
                self.wall[stage] += time.perf_counter() - w
                self.calls[stage] += 1

        setattr(owner, name, timed)


async def floor_costs(url: str, rounds: int) -> dict[str, float]:
    """GET + typed decode of the same document, and json.loads of it: seconds per round (CPU)."""
    import aiohttp
    import msgspec

    driver = msgspec.defstruct("Driver", [("id", str), ("state", str)], gc=False)
    listing = msgspec.defstruct("Listing", [("activedrivers", list[driver]), ("completeddrivers", list[driver])])
    decoder = msgspec.json.Decoder(listing)
    out: collections.Counter[str] = collections.Counter()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/json/") as resp:  # the connection, once
            await resp.read()
        for _ in range(rounds):
            c = time.thread_time()
            async with session.get(f"{url}/json/") as resp:
                body = await resp.read()
            out["get"] += time.thread_time() - c
            c = time.thread_time()
            doc = decoder.decode(body)
            out["typed_decode"] += time.thread_time() - c
            del doc
            c = time.thread_time()
            raw = json.loads(body)
            out["json_loads"] += time.thread_time() - c
            del raw
    out["bytes"] = len(body) * rounds
    return {k: v / rounds for k, v in out.items()}


def pyspy(pid: int, seconds: float, path: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return None
    cmd = [exe, "record", "--pid", str(pid), "--rate", "1000", "--duration", str(int(seconds))]
    return subprocess.Popen(
        [*cmd, "--format", "raw", "--output", str(path), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def read_collapsed(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares of the sampled stacks (``raw`` = collapsed: ``frame;frame;... count``)."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    callers: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        # the thread line comes first ("process 123:..."/"thread (0x..)"): keep only Python frames
        frames = [f for f in frames if "(" in f and not f.startswith(("process", "thread"))]
        if not frames:
            continue
        if any(f.startswith(("select (selectors", "_run_once (asyncio")) for f in frames[-1:]):
            continue  # the loop waiting in select: idle
        total += n
        own[frames[-1]] += n
        # who called it: the nearest frame of the library, Airflow or structlog below the leaf
        leaf = frames[-1].split(" (")[0]
        caller = next((f for f in reversed(frames[:-1]) if any(p in f for p in CALLERS)), "?")
        callers[leaf][caller.rsplit(":", 1)[0] + ")" if caller != "?" else "?"] += n
        for f in set(frames):
            incl[f] += n

    def short(f: str) -> str:
        return f.replace(str(ROOT) + "/", "").replace("/root/.pyenv/versions/3.11.7/lib/python3.11/", "")

    def func(f: str) -> str:
        name, _, where = f.partition(" (")
        return f"{name} ({where.rsplit(':', 1)[0]})" if where else f

    own_fn: collections.Counter[str] = collections.Counter()
    for f, c in own.items():
        own_fn[func(f)] += c
    return {
        "samples": total,
        "self_by_function": [(short(f), round(c / total, 4)) for f, c in own_fn.most_common(top)] if total else [],
        "self": [(short(f), round(c / total, 4)) for f, c in own.most_common(top)] if total else [],
        "callers_of_top": {
            short(func(f)): [(short(c), round(k / total, 4)) for c, k in callers[f.split(" (")[0]].most_common(4)]
            for f, _ in own_fn.most_common(6)
        }
        if total
        else {},
        "inclusive_library": [
            (short(f), round(c / total, 4)) for f, c in incl.most_common() if "durable_jobs" in f and c / total > 0.005
        ][:top]
        if total
        else [],
    }


async def run(args: argparse.Namespace, urls: dict[str, str], setup: dict[str, Any], tmp: Path) -> dict[str, Any]:
    import bench_children
    from bench_probe import LoopBlocks, configure_triggerer_logging

    from durable_jobs.clients import spark_standalone as spark
    from durable_jobs.clients.spark_standalone import client as spark_client
    from durable_jobs.clients.spark_standalone import find as spark_find
    from durable_jobs.clients.spark_standalone import listing as spark_listing
    from durable_jobs.polling import StatusPoller, active_pollers
    from durable_jobs.transport import base as transport_base

    configure_triggerer_logging("INFO")
    n, interval = args.jobs, args.interval
    spec = {"urls": urls, "setup": setup, "interval": interval}
    system = await bench_children.durable_spark(spec)
    loop = asyncio.get_running_loop()
    tasks = []
    gc.collect()
    before = collections.Counter(type(o).__name__ for o in gc.get_objects())
    # (a collection shows as the Python line that allocated when it started: KeyedLocator.__init__ mostly)
    startup_spy = pyspy(os.getpid(), 3600, tmp / "startup.txt") if args.pyspy_startup else None
    t = time.monotonic()
    for i in range(n):
        await asyncio.sleep(0)
        tasks.append(loop.create_task(system.job(i)))
    assert system.first_full_poll is not None
    assert await system.first_full_poll(n, 600.0), "the first full poll did not come"
    startup = time.monotonic() - t
    if startup_spy is not None:
        startup_spy.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
        await asyncio.to_thread(startup_spy.wait, 60)
    gc.collect()
    after = collections.Counter(type(o).__name__ for o in gc.get_objects())
    tracked = {k: round((after[k] - before[k]) / n, 3) for k in after if (after[k] - before[k]) / n >= 0.05}
    tracked = dict(sorted(tracked.items(), key=lambda kv: -kv[1]))

    stages = Stages()
    stages.wrap_async(StatusPoller, "_cycle", "cycle")
    stages.wrap_async(StatusPoller, "_offer", "offer")
    # _listed_states, _fetch_listing and _drivers live on its listing mixin: set on the client class, the
    # wrappers shadow them for every client
    stages.wrap_async(spark.SparkStandaloneClient, "statuses", "statuses")
    stages.wrap_async(spark.SparkStandaloneClient, "_listed_states", "listed_states")
    stages.wrap_async(spark.SparkStandaloneClient, "_fetch_listing", "fetch_listing")
    stages.wrap_async_gen(spark.SparkStandaloneClient, "_drivers", "drivers_gen")
    stages.wrap_sync(transport_base.Response, "decode", "top_decode")
    # patched in each module that calls them (the package only re-exports the client): /json/ and the
    # slices in listing, the REST follow-ups in client, the worker log pages in find
    timed_request = _timed_request(stages, spark_listing.request)  # type: ignore[attr-defined]
    for module in (spark_listing, spark_client, spark_find):
        module.request = timed_request  # type: ignore[attr-defined]
    timed_decode = _timed_sync(stages, spark_listing.decode_json, "slices_decode")  # type: ignore[attr-defined]
    spark_listing.decode_json = timed_decode  # type: ignore[attr-defined]

    poller = active_pollers()[0]
    blocks = LoopBlocks(loop)
    blocks.install()
    polls0 = poller.polls
    # the timed polls: wait for a poll to start, then count whole polls
    await until(lambda: poller._nap is not None)
    stages.on = True
    proc_cpu0 = time.process_time()
    t0 = time.monotonic()
    await until(lambda: poller.polls >= polls0 + args.polls + 1 and poller._nap is not None)
    timed_polls = stages.calls["cycle"]
    wall = time.monotonic() - t0
    proc_cpu = time.process_time() - proc_cpu0
    stages.on = False
    blocks.uninstall()
    longest = sorted((b for _, b in blocks.blocks), reverse=True)[:5]

    profile: dict[str, Any] = {}
    if not args.no_pyspy:
        raw = tmp / "pyspy.txt"
        seconds = args.pyspy_polls * interval
        proc = pyspy(os.getpid(), seconds, raw)
        if proc is not None:
            await asyncio.sleep(seconds + 3)
            await asyncio.to_thread(proc.wait, 60)
            if raw.exists():
                profile = read_collapsed(raw)
                shutil.copy(raw, OUT.with_name("poll_profile_pyspy.txt"))
    floor = await floor_costs(urls["spark"], args.polls)
    for t_ in tasks:
        t_.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    per = max(1, timed_polls)

    def us(stage: str) -> float:
        return round(1e6 * stages.cpu[stage] / per / n, 4)

    derived = {
        "cycle": us("cycle"),
        "keys_and_locators (cycle - statuses - offer)": round(us("cycle") - us("statuses") - us("offer"), 4),
        "statuses": us("statuses"),
        "wanted_and_mapping (statuses - listed_states)": round(us("statuses") - us("listed_states"), 4),
        "listed_states": us("listed_states"),
        "fetch_listing": us("fetch_listing"),
        "request (GET)": us("request"),
        "top_decode": us("top_decode"),
        "slices_decode": us("slices_decode"),
        "walk (listed_states - fetch_listing - slices_decode)": round(
            us("listed_states") - us("fetch_listing") - us("slices_decode"), 4
        ),
        "offer": us("offer"),
    }
    return {
        "jobs": n,
        "interval": interval,
        "startup_seconds": round(startup, 1),
        "timed_polls": timed_polls,
        "document_bytes": int(floor.pop("bytes")),
        "process_cpu_us_per_job_poll": round(1e6 * proc_cpu / per / n, 4),
        "wall_seconds": round(wall, 2),
        "stages_us_per_job_poll": derived,
        "stages_wall_ms_per_poll": {k: round(1000 * v / per, 2) for k, v in stages.wall.items()},
        "floor_us_per_job_poll": {k: round(1e6 * v / n, 4) for k, v in floor.items()},
        "longest_loop_turns_s": [round(b, 4) for b in longest],
        "gc_tracked_objects_per_job": tracked,
        "pyspy": profile,
        "pyspy_startup": read_collapsed(tmp / "startup.txt") if (tmp / "startup.txt").exists() else {},
    }


async def until(condition: Any, period: float = 0.05, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in iter(int, 1):
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(period)


def _timed_request(stages: Stages, original: Any) -> Any:
    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        if not stages.on:
            return await original(*args, **kwargs)
        c = time.thread_time()
        try:
            return await original(*args, **kwargs)
        finally:
            stages.cpu["request"] += time.thread_time() - c
            stages.calls["request"] += 1

    return timed


def _timed_sync(stages: Stages, original: Any, stage: str) -> Any:
    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if not stages.on:
            return original(*args, **kwargs)
        c = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            stages.cpu[stage] += time.thread_time() - c
            stages.calls[stage] += 1

    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--polls", type=int, default=6, help="polls timed by stage")
    parser.add_argument("--pyspy-polls", type=int, default=10, help="polls sampled by py-spy")
    parser.add_argument("--no-pyspy", action="store_true")
    parser.add_argument("--pyspy-startup", action="store_true", help="also sample the creation of the N triggers")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from triggerer_scale import Servers

    with tempfile.TemporaryDirectory(prefix="poll-profile-") as tmpdir:
        tmp = Path(tmpdir)
        servers = Servers(tmp)
        try:
            setup = servers.setup({"system": "spark", "n": args.jobs, "first": 1, "last": 2, "fraction": 1e-9})
            os.environ.setdefault("AIRFLOW_HOME", str(tmp / "airflow-home"))
            report = asyncio.run(run(args, servers.urls, setup, tmp))
        finally:
            servers.stop()
    report["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"N = {report['jobs']:,}, {report['timed_polls']} polls timed, /json/ {report['document_bytes'] / 1e6:.1f} MB"
    )
    print(f"process CPU per job per poll: {report['process_cpu_us_per_job_poll']} us")
    for stage, v in report["stages_us_per_job_poll"].items():
        print(f"  {stage:55s} {v:8.4f} us/job/poll")
    print("floor (same GET, same document):")
    for stage, v in report["floor_us_per_job_poll"].items():
        print(f"  {stage:55s} {v:8.4f} us/job/poll")
    print("longest loop turns (s):", report["longest_loop_turns_s"])
    print("GC-tracked objects per job:", report["gc_tracked_objects_per_job"])
    for part in ("pyspy", "pyspy_startup"):
        for f, cs in report[part].get("callers_of_top", {}).items():
            print(f"  {part} callers of {f}: {cs}")
    for f, share in report["pyspy"].get("self_by_function", [])[:20]:
        print(f"  self {share:6.1%}  {f}")
    for f, share in report["pyspy_startup"].get("self_by_function", [])[:25]:
        print(f"  start-up self {share:6.1%}  {f}")
    for f, share in report["pyspy"].get("inclusive_library", [])[:20]:
        print(f"  incl {share:6.1%}  {f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
