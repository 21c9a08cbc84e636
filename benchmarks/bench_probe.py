"""What benchmarks/triggerer_scale.py measures inside one trigger process, and how it runs the triggers.

Standard library only (plus Airflow's own logging set-up, present in both venvs), because the same code
measures our triggers (the project's venv) and the providers' triggers (``build/bench-venv``): the figures
must come from one ruler.

The runner does what Airflow 3.3's ``TriggerRunner.run_trigger`` does for a deferred task: one asyncio task
per trigger, the trigger's log context bound in it, ``trigger.run()`` iterated until its first event, then
``cleanup()``. Not reproduced: the triggerer's own per-trigger bookkeeping (its task name, span, greenback
portal, "trigger starting/fired" lines), which every trigger pays alike and no library can change.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import resource
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

LAG_PERIOD = 0.05  # the probe's sleep: its oversleep is the loop lag
CREATE_BATCH = 50  # triggers created between two yields ([triggerer] max_trigger_to_select_per_loop)


def end_offsets(n: int, first: float, last: float, fraction: float = 1.0) -> list[float]:
    """Seconds after the run's start at which job i ends (``inf``: not during the run).

    Every ``1/fraction``-th job ends, the ends evenly spread over [first, last]; the others keep running, as
    most of a triggerer's jobs do at any moment.
    """
    every = max(1, round(1 / fraction))
    ending = list(range(0, n, every))
    step = (last - first) / (len(ending) - 1) if len(ending) > 1 else 0.0
    out = [math.inf] * n
    for k, i in enumerate(ending):
        out[i] = first + k * step
    return out


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop_child(proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Stop an endpoint process this benchmark started: close its stdin (it exits on EOF), then kill it by PID."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # our own child, by its PID
        proc.wait(timeout)


def open_sockets() -> int:
    n = 0
    for entry in os.scandir("/proc/self/fd"):
        try:
            if os.readlink(entry.path).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def configure_triggerer_logging() -> None:
    """Log as the triggerer's runner process does: INFO, JSON lines via structlog, with the trigger's context.

    The runner sends those lines to its supervisor over a socket; here they go to /dev/null, so formatting
    every line is paid and terminal or disk I/O is not.
    """
    from airflow.sdk.log import configure_logging

    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    configure_logging(json_output=True, output=open(os.devnull, "wb"), sending_to_supervisor=True)  # noqa: SIM115
    logging.getLogger("asyncio").setLevel(logging.ERROR)


class Sampler(threading.Thread):
    """Peak RSS and open sockets, sampled off the event loop (listing 10,000 fds takes a while)."""

    def __init__(self, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.peak_rss_kb = 0
        self.peak_sockets = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak_rss_kb = max(self.peak_rss_kb, rss_kb())
            self.peak_sockets = max(self.peak_sockets, open_sockets())
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


class GcPauses:
    """How long the cyclic garbage collector stopped the world (it runs inside whatever callback allocates)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int, float]] = []  # (monotonic end, generation, seconds)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.monotonic(), int(info.get("generation", -1)), time.perf_counter() - self._started))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class LagProbe:
    """Oversleep of a ``sleep(LAG_PERIOD)`` loop: how long the loop could not run a ready callback."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (monotonic time, lag seconds)
        self.skip_next = False  # set before a deliberate stop of the loop (the RSS mark's collection)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_PERIOD)
            lag = time.perf_counter() - started - LAG_PERIOD
            if self.skip_next:
                self.skip_next = False
                continue
            self.samples.append((time.monotonic(), max(0.0, lag)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, start: float, end: float) -> list[float]:
        return [lag for t, lag in self.samples if start <= t <= end]


async def run_jobs(
    start_job: Callable[[int], Awaitable[Any]],
    *,
    n: int,
    t0: float,
    ends: list[float],
    run_seconds: float,
    settle_seconds: float,
    bind_context: bool = True,
) -> dict[str, Any]:
    """Run ``start_job(i)`` (a trigger's first event) for every job as triggerer tasks; measure the process.

    ``t0`` is the epoch second the scripted schedule starts from (job i ends at ``t0 + ends[i]``); the run
    ends ``run_seconds`` after it, and whatever still waits is cancelled: an ending job still waiting was
    missed, an event from a job that never ended is wrong. RSS per job
    is taken ``settle_seconds`` before the first job ends, after a full collection (the lag probe ignores
    that collection), when every trigger has started and polled and none has finished.
    """
    bind = None
    if bind_context:
        from structlog.contextvars import bind_contextvars

        bind = bind_contextvars

    arrived: dict[int, float] = {}
    outcomes: dict[str, int] = {}
    errors: list[str] = []

    async def one(i: int) -> None:
        if bind is not None:
            bind(trigger_id=i + 1, dag_id="bench", task_id=f"job_{i}", run_id="bench", try_number=1, map_index=-1)
        try:
            status = await start_job(i)
        except Exception as exc:  # a trigger that raises is an error event for the triggerer
            status = "raised"
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
        arrived[i] = time.time()
        outcomes[str(status)] = outcomes.get(str(status), 0) + 1

    gc.collect()
    gc_pauses = GcPauses().__enter__()
    rss_base = rss_kb()
    sockets_base = open_sockets()
    probe = LagProbe()
    sampler = Sampler()
    sampler.start()
    probe.start()
    cpu_start = cpu_seconds()
    wall_start = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    # RSS with every trigger waiting: just before the first job ends
    mark = t0 + min(ends) - settle_seconds
    for i in range(n):
        tasks.append(loop.create_task(one(i), name=f"bench-trigger-{i}"))
        if i % CREATE_BATCH == CREATE_BATCH - 1 and time.time() < mark:
            # let the loop run between batches, as the triggerer does; a loop too busy to get through them
            # before the first job ends gets the rest at once (else start-up alone would outlast the run)
            await asyncio.sleep(0)
    created_at = time.monotonic()
    startup_seconds = created_at - wall_start

    await asyncio.sleep(max(0.0, mark - time.time()))
    probe.skip_next = True
    gc.collect()
    rss_mark_at = time.monotonic()
    rss_waiting = rss_kb()
    sockets_waiting = open_sockets()
    waiting_when_measured = sum(1 for t in tasks if not t.done())

    remaining = t0 + run_seconds - time.time()
    pending = [tasks[i] for i in range(n) if math.isfinite(ends[i]) and not tasks[i].done()]
    if pending and remaining > 0:
        await asyncio.wait(pending, timeout=remaining)
    all_done_at = time.monotonic()
    await asyncio.sleep(max(0.0, t0 + run_seconds - time.time()))  # a fixed wall time for every system
    # the fixed wall time is over: whatever still waits is missed
    cpu_end = cpu_seconds()
    wall_end = time.monotonic()
    overrun = time.time() - (t0 + run_seconds)  # a saturated loop gets back to us late
    still = [t for t in tasks if not t.done()]
    for t in still:
        t.cancel()
    if still:
        await asyncio.gather(*still, return_exceptions=True)
    await probe.stop()
    sampler.stop()
    gc_pauses.__exit__()

    ending = [i for i in range(n) if math.isfinite(ends[i])]
    missed = [i for i in ending if i not in arrived]
    wrong = [i for i in arrived if not math.isfinite(ends[i])]
    latencies = [arrived[i] - (t0 + ends[i]) for i in arrived if math.isfinite(ends[i])]
    # a missed event's latency is at least the time from its job's end to the end of the run: with those lower
    # bounds in, a percentile they reach is itself only a lower bound ("censored")
    run_end = t0 + run_seconds + max(0.0, overrun)
    bounds = sorted(latencies + [run_end - (t0 + ends[i]) for i in missed])
    floor_of_missed = min((run_end - (t0 + ends[i]) for i in missed), default=math.inf)

    def pct(q: float) -> tuple[float | None, bool]:
        v = percentile(bounds, q)
        return (None, False) if v is None else (round(v, 3), v >= floor_of_missed)

    (p50, p50_censored), (p99, p99_censored) = pct(0.5), pct(0.99)
    # steady: from the RSS mark (every trigger created, started and polled at least once) to the end, which
    # is when the jobs end and the events fire; start-up: N triggers arriving at once, which a triggerer
    # never sees (it takes max_trigger_to_select_per_loop of them per loop)
    steady = probe.between(rss_mark_at, wall_end)
    startup = probe.between(wall_start, rss_mark_at)
    worst = max((s for s in probe.samples if rss_mark_at <= s[0] <= wall_end), key=lambda s: s[1], default=None)
    # the collection at the RSS mark is the benchmark's own, not the run's
    auto_gc = [p for p in gc_pauses.pauses if p[0] > rss_mark_at + 0.01 and p[0] <= wall_end]
    startup_gc = [p for p in gc_pauses.pauses if p[0] < rss_mark_at - 0.01]
    return {
        "jobs": n,
        "ending_jobs": len(ending),
        "events": len(arrived),
        "missed": len(missed),
        "wrong_events": len(wrong),
        "outcomes": outcomes,
        "errors": errors,
        "startup_seconds": round(startup_seconds, 3),
        "cpu_seconds": round(cpu_end - cpu_start, 3),
        "wall_seconds": round(wall_end - wall_start, 3),
        "overrun_seconds": round(max(0.0, overrun), 2),
        "seconds_to_last_event": round(all_done_at - wall_start, 3),
        "rss_base_mb": round(rss_base / 1024, 1),
        "rss_kb_per_job": round((rss_waiting - rss_base) / n, 2),
        "rss_peak_kb_per_job": round((max(sampler.peak_rss_kb, rss_waiting) - rss_base) / n, 2),
        "triggers_waiting_at_rss_mark": waiting_when_measured,
        "sockets_waiting": sockets_waiting - sockets_base,
        "sockets_peak": max(0, max(sampler.peak_sockets, sockets_waiting) - sockets_base),
        "lag_max_s": round(max(steady, default=0.0), 4),
        "lag_p99_s": round(percentile(steady, 0.99) or 0.0, 4),
        "lag_over_0_1_s": sum(1 for lag in steady if lag > 0.1),
        "lag_over_0_2_s": sum(1 for lag in steady if lag > 0.2),
        "lag_max_at_s": None if worst is None else round(worst[0] - wall_start, 2),
        "startup_lag_max_s": round(max(startup, default=0.0), 4),
        "startup_gc_pause_max_s": round(max((p[2] for p in startup_gc), default=0.0), 4),
        "gc_collections": len(auto_gc),
        "gc_pause_max_s": round(max((p[2] for p in auto_gc), default=0.0), 4),
        "latency_p50_s": p50,
        "latency_p50_at_least": p50_censored,
        "latency_p99_s": p99,
        "latency_p99_at_least": p99_censored,
        "latency_max_s": None if not latencies else round(max(latencies), 3),
    }
