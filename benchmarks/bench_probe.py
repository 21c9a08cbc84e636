"""What benchmarks/triggerer_scale.py measures inside one trigger process, and how it runs the triggers.

Standard library only (plus Airflow's own logging set-up, present in both venvs), because the same code
measures our triggers (the project's venv) and the providers' triggers (``build/bench-venv``): the figures
must come from one ruler.

The runner does what Airflow 3.3's triggerer runner does for deferred tasks: its ``create_triggers`` takes the
triggers its supervisor handed over one per loop turn (an ``asyncio.sleep(0)`` before each), and each trigger
runs as one asyncio task (``run_trigger``): the trigger's log context bound in it, ``trigger.run()`` iterated
until its first event, then ``cleanup()``. Not reproduced: the triggerer's own per-trigger bookkeeping (its
task name, span, greenback portal, "trigger starting/fired" lines), which every trigger pays alike and no
library can change (``docs/performance-triggerer.md`` measures the real triggerer).

One run has three windows, each measured on its own, with the harness's own work kept out of all of them:

* **start-up**: from the first trigger's creation until the first poll that covers every trigger has been
  handed out (the library's pollers say when; for the other systems one interval and a second after the last
  creation, when each of their per-job polls has run);
* **steady**: ``steady_intervals`` poll intervals with every trigger waiting and no job ending;
* **events**: the scripted schedule starts (``/_start``): a fraction of the jobs end spread over
  ``[first, last]`` seconds; the window lasts ``events_seconds``, the same wall time for every system.

Between start-up and steady the harness collects garbage and reads RSS (its own pause, outside the windows).
CPU is the process's user + system time less the harness's sampler thread (read from its own CPU clock). Lag is
measured without a probe task (:class:`LoopBlocks`): the longest turn of the loop, i.e. the longest a ready
callback could wait.
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
from dataclasses import dataclass, field
from typing import Any


def end_offsets(n: int, first: float, last: float, fraction: float = 1.0) -> list[float]:
    """Seconds after the schedule's start at which job i ends (``inf``: not during the run).

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


def _status_kb(field_name: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name):
                return int(line.split()[1])
    return 0


def rss_kb() -> int:
    return _status_kb("VmRSS:")


def hwm_kb() -> int:
    """Peak RSS (VmHWM) since the process started, or since :func:`reset_hwm`."""
    return _status_kb("VmHWM:")


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


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


def process_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def configure_triggerer_logging(level: str = "INFO") -> None:
    """Log as the triggerer's runner process does: JSON lines via structlog, with the trigger's context.

    The runner calls ``configure_logging(json_output=True, sending_to_supervisor=True)`` at ``[logging]
    logging_level`` and sends the lines to its supervisor over a socket; here they go to /dev/null, so
    formatting every line is paid and terminal or disk I/O is not.
    """
    from airflow.sdk.log import configure_logging

    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = level
    configure_logging(
        json_output=True,
        log_level=level,
        output=open(os.devnull, "wb"),  # noqa: SIM115
        sending_to_supervisor=True,
    )
    logging.getLogger("asyncio").setLevel(logging.ERROR)


class Sampler(threading.Thread):
    """Peak open sockets, sampled off the event loop. Its CPU (wake-ups included) is read by :meth:`cpu`."""

    def __init__(self, period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.peak_sockets = 0
        self._halt = threading.Event()
        self._clock: int | None = None
        self._last = 0.0

    def run(self) -> None:
        self._clock = time.pthread_getcpuclockid(threading.get_ident())
        while not self._halt.is_set():
            self.peak_sockets = max(self.peak_sockets, open_sockets())
            self._halt.wait(self.period)

    def cpu(self) -> float:
        """This thread's CPU seconds so far (read while it runs: its clock ends with it)."""
        if self._clock is not None and self.is_alive():
            with contextlib.suppress(OSError):
                self._last = time.clock_gettime(self._clock)
        return self._last

    def start(self) -> None:
        super().start()
        while self._clock is None and self.is_alive():
            time.sleep(0.001)

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


class LoopBlocks:
    """The loop's blocks: how long each turn of the event loop ran callbacks before it could wait again.

    ``loop._run_once`` (one turn: wait in ``select``, then run every ready callback and due timer) and the
    selector's ``select`` are wrapped, and each turn's time outside ``select`` is its block: a timer or socket
    that became ready meanwhile waited that long. So the longest block is the loop's lag, measured without a
    probe task: a probe wakes the loop (on this VM each wake-up costs 70-300 us of CPU, which would be charged to
    the system measured). Turns blocked 1 ms or more are kept with their end time; every turn is counted.
    """

    KEEP = 0.001

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop: Any = loop
        self.blocks: list[tuple[float, float]] = []  # (monotonic end, seconds) of turns blocked >= KEEP
        self.harness_blocks: list[float] = []  # turns in which the harness itself worked (its collection)
        self.turns = 0
        self._waited = 0.0
        self._harness = False

    def mark_harness(self) -> None:
        """The current turn is the harness's own (its block is kept apart, in no window)."""
        self._harness = True

    def install(self) -> None:
        loop = self.loop
        selector = loop._selector
        run_once, select = loop._run_once, selector.select
        perf, mono, keep = time.perf_counter, time.monotonic, self.KEEP

        def timed_select(timeout: float | None = None) -> Any:
            started = perf()
            try:
                return select(timeout)
            finally:
                self._waited += perf() - started

        def timed_run_once() -> None:
            self._waited = 0.0
            self._harness = False
            started = perf()
            try:
                run_once()
            finally:
                busy = perf() - started - self._waited
                self.turns += 1
                if self._harness:
                    self.harness_blocks.append(busy)
                elif busy >= keep:
                    self.blocks.append((mono(), busy))

        selector.select = timed_select
        loop._run_once = timed_run_once

    def uninstall(self) -> None:
        with contextlib.suppress(AttributeError):
            del self.loop._run_once
        with contextlib.suppress(AttributeError):
            del self.loop._selector.select

    def between(self, start: float, end: float) -> list[float]:
        """Blocks of the turns that ended in [start, end]."""
        return [b for t, b in self.blocks if start <= t <= end]


@dataclass
class System:
    """What bench_children hands the runner: job i's coroutine, and how to tell the first full poll is done."""

    job: Callable[[int], Awaitable[Any]]
    # awaited once every trigger is created: returns when a poll covering all of them has been handed out
    first_full_poll: Callable[[int, float], Awaitable[bool]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Control:
    """The endpoint process, seen from the measured process (calls run in a thread: the loop keeps going)."""

    reset: Callable[[], Any]  # start counting requests now
    start: Callable[[], float]  # start the jobs' schedule; its t0 (epoch s)


async def _generic_first_full_poll(interval: float) -> bool:
    """Per-job pollers poll each job as it starts: one interval and a second after the last creation covers it."""
    await asyncio.sleep(interval + 1.0)
    return True


async def run_phases(
    system: System,
    *,
    n: int,
    interval: float,
    steady_intervals: float,
    ends: list[float],
    events_seconds: float,
    control: Control,
    pickup_per_second: float = 0.0,
    bind_context: bool = True,
    gc_freeze: bool = False,
) -> dict[str, Any]:
    """Run ``system.job(i)`` (a trigger's first event) for every job as triggerer tasks; measure the windows."""
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
            status = await system.job(i)
        except Exception as exc:  # a trigger that raises is an error event for the triggerer
            status = "raised"
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
        arrived[i] = time.time()
        outcomes[str(status)] = outcomes.get(str(status), 0) + 1

    # --- the harness's own set-up, outside every window
    gc.collect()
    if gc_freeze:  # what a triggerer could do once its imports are done: the collector never walks them again
        gc.freeze()
    hwm_reset = reset_hwm()
    rss_base = rss_kb()
    sockets_base = open_sockets()
    await asyncio.to_thread(control.reset)
    gc_pauses = GcPauses().__enter__()
    loop = asyncio.get_running_loop()
    probe = LoopBlocks(loop)
    sampler = Sampler()
    sampler.start()
    probe.install()

    def cpu() -> float:
        """The process's CPU less the harness's sampler thread."""
        return process_cpu() - sampler.cpu()

    tasks: list[asyncio.Task[None]] = []

    # --- start-up: creation one per loop turn, then the first poll that covers every trigger
    c0, w0 = cpu(), time.monotonic()
    paced = pickup_per_second > 0
    for i in range(n):
        await asyncio.sleep(0)
        if paced and i and i % max(1, int(pickup_per_second)) == 0:
            await asyncio.sleep(max(0.0, w0 + i / pickup_per_second - time.monotonic()))
        tasks.append(loop.create_task(one(i), name=f"bench-trigger-{i}"))
    await asyncio.sleep(0)
    created_at = time.monotonic()
    c_created = cpu()
    wait = system.first_full_poll or (lambda _n, _t: _generic_first_full_poll(interval))
    full_poll_seen = await wait(n, 3 * interval + 60.0)
    c1, w1 = cpu(), time.monotonic()
    hwm_startup = hwm_kb()
    waiting_after_startup = sum(1 for t in tasks if not t.done())

    # --- the harness: a full collection and the RSS mark (its own pause, in no window)
    probe.mark_harness()
    x0 = time.monotonic()
    gc.collect()
    rss_waiting = rss_kb()
    sockets_waiting = open_sockets()
    x1 = time.monotonic()

    # --- steady: every trigger waiting, nothing ending
    c2, w2, e2 = cpu(), time.monotonic(), time.time()
    await asyncio.sleep(steady_intervals * interval)
    c3, w3, e3 = cpu(), time.monotonic(), time.time()

    # --- events: the schedule starts
    t0 = await asyncio.to_thread(control.start)
    c4, w4 = cpu(), time.monotonic()
    pending = [tasks[i] for i in range(n) if math.isfinite(ends[i]) and not tasks[i].done()]
    remaining = t0 + events_seconds - time.time()
    if pending and remaining > 0:
        await asyncio.wait(pending, timeout=remaining)
    all_done_at = time.monotonic()
    await asyncio.sleep(max(0.0, t0 + events_seconds - time.time()))  # a fixed wall time for every system
    c5, w5, e5 = cpu(), time.monotonic(), time.time()
    overrun = time.time() - (t0 + events_seconds)  # a saturated loop gets back to us late
    hwm_end = hwm_kb()
    still = [t for t in tasks if not t.done()]
    for t in still:
        t.cancel()
    if still:
        await asyncio.gather(*still, return_exceptions=True)
    harness_cpu = sampler.cpu()
    probe.uninstall()
    sampler.stop()
    gc_pauses.__exit__()

    ending = [i for i in range(n) if math.isfinite(ends[i])]
    missed = [i for i in ending if i not in arrived]
    wrong = [i for i in arrived if not math.isfinite(ends[i])]
    latencies = [arrived[i] - (t0 + ends[i]) for i in arrived if math.isfinite(ends[i])]
    # a missed event's latency is at least the time from its job's end to the end of the window: with those
    # lower bounds in, a percentile they reach is itself only a lower bound ("censored")
    run_end = t0 + events_seconds + max(0.0, overrun)
    bounds = sorted(latencies + [run_end - (t0 + ends[i]) for i in missed])
    floor_of_missed = min((run_end - (t0 + ends[i]) for i in missed), default=math.inf)

    def pct(q: float) -> tuple[float | None, bool]:
        v = percentile(bounds, q)
        return (None, False) if v is None else (round(v, 3), v >= floor_of_missed)

    (p50, p50_censored), (p99, p99_censored) = pct(0.5), pct(0.99)
    lag_startup = probe.between(w0, w1)
    lag_steady = probe.between(w2, w3)
    lag_events = probe.between(w4, w5)
    lag_all = probe.between(w0, w5)
    worst = max(((t, b) for t, b in probe.blocks if w0 <= t <= w5), key=lambda s: s[1], default=None)
    auto_gc = [p for p in gc_pauses.pauses if not x0 <= p[0] <= x1]

    def gc_max(a: float, b: float) -> float:
        return round(max((p[2] for p in auto_gc if a <= p[0] <= b), default=0.0), 4)

    def gc_sum(a: float, b: float) -> float:
        return round(sum(p[2] for p in auto_gc if a <= p[0] <= b), 4)

    steady_cpu, steady_s = c3 - c2, w3 - w2
    events_cpu, events_s = c5 - c4, w5 - w4
    n_events = len(arrived)
    steady_rate = steady_cpu / steady_s if steady_s > 0 else 0.0
    polls = steady_s / interval
    hwm_peak = max(hwm_startup, hwm_end)
    return {
        "jobs": n,
        "ending_jobs": len(ending),
        "events": n_events,
        "missed": len(missed),
        "wrong_events": len(wrong),
        "outcomes": outcomes,
        "errors": errors,
        "windows": {  # epoch seconds, for the endpoint's request counts
            "steady": [e2, e3],
            "events": [t0, e5],
        },
        # start-up
        "startup_seconds": round(w1 - w0, 3),
        "creation_seconds": round(created_at - w0, 3),
        "startup_full_poll_seen": full_poll_seen,
        "startup_cpu_seconds": round(c1 - c0, 3),
        "creation_cpu_seconds": round(c_created - c0, 3),
        "startup_cpu_ms_per_job": round(1000 * (c1 - c0) / n, 4),
        "startup_lag_max_s": round(max(lag_startup, default=0.0), 4),
        "startup_gc_pause_max_s": gc_max(w0, w1),
        "startup_gc_seconds": gc_sum(w0, w1),
        "waiting_after_startup": waiting_after_startup,
        # steady
        "steady_seconds": round(steady_s, 3),
        "steady_cpu_seconds": round(steady_cpu, 4),
        "steady_cpu_us_per_job_poll": round(1e6 * steady_cpu / n / polls, 3) if polls else None,
        "steady_cpu_share": round(steady_rate, 4),  # cores used while waiting
        "steady_lag_max_s": round(max(lag_steady, default=0.0), 4),
        # events
        "events_seconds": round(events_s, 3),
        "events_cpu_seconds": round(events_cpu, 4),
        "cpu_ms_per_event": round(1000 * (events_cpu - steady_rate * events_s) / n_events, 4) if n_events else None,
        "events_lag_max_s": round(max(lag_events, default=0.0), 4),
        # the whole run
        "cpu_seconds": round(c5 - c0, 3),
        "lag_max_s": round(max(lag_all, default=0.0), 4),
        "lag_over_0_05_s": sum(1 for lag in lag_all if lag > 0.05),
        "lag_over_0_1_s": sum(1 for lag in lag_all if lag > 0.1),
        "lag_max_at_s": None if worst is None else round(worst[0] - w0, 2),
        "overrun_seconds": round(max(0.0, overrun), 2),
        "seconds_to_last_event": round(all_done_at - w4, 3),
        "gc_collections": len(auto_gc),
        "gc_pause_max_s": round(max((p[2] for p in auto_gc), default=0.0), 4),
        "steady_gc_pause_max_s": gc_max(w2, w3),
        "steady_gc_seconds": gc_sum(w2, w3),
        # memory
        "rss_base_mb": round(rss_base / 1024, 1),
        "rss_kb_per_job": round((rss_waiting - rss_base) / n, 3),
        "hwm_mb": round(hwm_peak / 1024, 1),
        "hwm_kb_per_job": round((hwm_peak - rss_base) / n, 3),
        "hwm_reset": hwm_reset,
        "sockets_waiting": sockets_waiting - sockets_base,
        "sockets_peak": max(0, max(sampler.peak_sockets, sockets_waiting) - sockets_base),
        # latency
        "latency_p50_s": p50,
        "latency_p50_at_least": p50_censored,
        "latency_p99_s": p99,
        "latency_p99_at_least": p99_censored,
        "latency_max_s": None if not latencies else round(max(latencies), 3),
        # the harness's own share, taken out of the figures above
        "harness": {
            "loop_turns": probe.turns,
            "sampler_cpu_seconds": round(harness_cpu, 4),
            "paused_seconds": round(x1 - x0, 3),
        },
    }
