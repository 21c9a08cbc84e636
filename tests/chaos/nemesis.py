"""The nemesis: a seeded random schedule of faults against a real Airflow and its endpoints, each logged and healed.

:func:`plan` draws the whole schedule from the seed before anything runs (when, which kind, how long, and a number
that picks the target among those alive at that moment), so a seed replays the same sequence of faults; what a
target is at fire time (which task runner, which map index) depends on the run. At most one fault per component
class is active at a time, so the deployment can always recover. :class:`Nemesis` fires the faults at their times,
heals each when its duration ends, and :meth:`Nemesis.heal_all` heals whatever is still active at the end.

Kinds (class in brackets):

* ``runner_sigkill`` / ``runner_sigstop`` [runner]: a task process (``airflow worker -- <ti id>``) or its supervisor
  (the LocalExecutor worker running it), SIGKILLed, or SIGSTOPped for the duration;
* ``triggerer_sigkill`` [triggerer]: one of the triggerers SIGKILLed, a new one started when the duration ends;
  ``triggerer_sigstop``: one SIGSTOPped with its trigger runner for the duration (the other takes its triggers
  over meanwhile, and the stopped one finds them gone when it wakes);
* ``scheduler_sigkill`` [scheduler]: the scheduler and its LocalExecutor workers SIGKILLed, restarted when the
  duration ends; ``scheduler_sigstop``: the scheduler and its workers SIGSTOPped for the duration;
* ``spark_sigstop`` / ``kubernetes_sigstop`` [the endpoint]: the endpoint's process SIGSTOPped (Spark: under its
  ``max_pause``, past which its master drops the worker); ``spark_503`` / ``spark_reset`` /
  ``kubernetes_reset``: the endpoint's fault proxies answer 503 or reset every connection (the Kubernetes
  apiserver speaks TLS: resets only);
* ``api_clear`` / ``api_mark_failed`` [api, instant]: a random mapped task instance cleared, or one not yet
  finished marked failed, through Airflow's REST API;
* ``clock_jump`` [clock]: the wall clock of the scheduler and its LocalExecutor workers (libfaketime, preloaded
  into them alone) jumps by ``offset`` seconds for the duration, then back.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import random
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.fault_proxy import FaultProxy

from ..e2e.systems import E2ESystem

# kind -> (component class, shortest and longest duration in seconds; 0 for an instant fault)
KINDS: dict[str, tuple[str, float, float]] = {
    "runner_sigkill": ("runner", 0, 0),
    "runner_sigstop": ("runner", 5, 40),
    "triggerer_sigkill": ("triggerer", 0, 20),
    "triggerer_sigstop": ("triggerer", 5, 40),
    "scheduler_sigkill": ("scheduler", 2, 15),
    "scheduler_sigstop": ("scheduler", 5, 25),
    "spark_sigstop": ("spark", 5, 35),
    "spark_503": ("spark", 5, 45),
    "spark_reset": ("spark", 5, 45),
    "kubernetes_sigstop": ("kubernetes", 5, 45),
    "kubernetes_reset": ("kubernetes", 5, 45),
    "api_clear": ("api", 0, 0),
    "api_mark_failed": ("api", 0, 0),
    "clock_jump": ("clock", 20, 60),
}
# a wall-clock jump stays below the scheduler's task heartbeat timeout (the campaign sets it to 90 s): beyond it the
# scheduler fails every running task as a zombie, which is Airflow's behaviour, not what the campaign probes
CLOCK_OFFSETS = (15, 60)
GAP = (3.0, 12.0)  # seconds between two faults
QUIET = 5.0  # a class stays free this long after its fault healed
TARGET_WAIT = 30.0  # a runner fault that finds no task process looks again every second for this long
TASK_PROCESS = re.compile(r"^airflow worker -- [0-9a-f]{8}-[0-9a-f-]{27}")
SUPERVISOR = re.compile(r"^airflow worker -- LocalExecutor[^:]*: (?!<idle>)")
NOT_FINISHED = frozenset({"scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule"})
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@dataclass
class Fault:
    """One fault of the schedule; the fields after ``pick`` are filled in when it fires and heals."""

    index: int
    at: float  # seconds after the start, as planned
    kind: str
    duration: float  # seconds until it heals (0: instant)
    pick: float  # in [0, 1): which target among the candidates at fire time
    offset: float = 0.0  # clock_jump: seconds
    fired_at: float | None = None  # seconds after the start, as it happened
    fired_utc: str = ""  # the same, as a UTC timestamp (to line it up with Airflow's and the endpoints' logs)
    healed_at: float | None = None
    target: str = ""
    note: str = ""
    skipped: bool = False  # no target existed at fire time (e.g. no task process running)

    @property
    def component_class(self) -> str:
        return KINDS[self.kind][0]

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def plan(seed: int, seconds: float, kinds: Sequence[str] = tuple(KINDS)) -> list[Fault]:
    """The campaign's faults over ``seconds``, drawn from ``seed`` alone; at most one active per component class."""
    rng = random.Random(seed)
    busy_until: dict[str, float] = {}
    faults: list[Fault] = []
    t = rng.uniform(*GAP) + 10.0  # the first wave's tasks get going first
    while t < seconds:
        free = [k for k in kinds if busy_until.get(KINDS[k][0], 0.0) <= t]
        if free:
            kind = rng.choice(free)
            cls, low, high = KINDS[kind]
            duration = round(rng.uniform(low, high), 1) if high else 0.0
            offset = round(rng.choice((-1, 1)) * rng.uniform(*CLOCK_OFFSETS), 1) if kind == "clock_jump" else 0.0
            faults.append(Fault(len(faults), round(t, 1), kind, duration, rng.random(), offset))
            busy_until[cls] = t + duration + QUIET
        t += rng.uniform(*GAP)
    return faults


def faketime_env(timestamp_file: Path) -> dict[str, str]:
    """The environment that preloads libfaketime with an offset read from ``timestamp_file`` at every call.

    The monotonic clock jumps with the wall clock: Debian's libfaketime 0.9.10 fails every absolute
    ``clock_nanosleep`` on ``CLOCK_MONOTONIC`` with EINVAL when ``FAKETIME_DONT_FAKE_MONOTONIC=1`` (Python's
    ``time.sleep`` raises ``OSError: [Errno 22]``, and the scheduler dies), so the jump is harsher than an NTP
    step: timers in flight in the preloaded processes fire early (forward) or late (back).
    """
    if not LIBFAKETIME.exists():
        raise RuntimeError(f"{LIBFAKETIME} is missing: apt-get install libfaketime (.ci/apt-packages.txt)")
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(timestamp_file),
        "FAKETIME_NO_CACHE": "1",
    }


def set_clock(timestamp_file: Path, offset: float) -> None:
    tmp = timestamp_file.with_suffix(".tmp")
    tmp.write_text(f"{offset:+.0f}\n", "utf-8")
    tmp.replace(timestamp_file)  # atomic: a reader never sees an empty file


@dataclass
class Deployment:
    """What the nemesis can reach: Airflow, the endpoints and their proxies, the clock file, the runs so far."""

    af: AirflowEnv
    systems: dict[str, E2ESystem]
    proxies: dict[str, list[FaultProxy]]  # system -> the proxies in front of its ports
    clock_file: Path
    runs: list[tuple[str, str]] = field(default_factory=list)  # (dag_id, run_id), appended as waves start
    triggerers: int = 2  # kept running


class Nemesis:
    """Fires :func:`plan`'s faults at their times (call :meth:`step` often) and heals them; logs each one."""

    def __init__(self, faults: list[Fault], deployment: Deployment, log: Callable[[str], None] = print) -> None:
        self.pending = [(f.at, f.index, f) for f in faults]  # heap by due time
        heapq.heapify(self.pending)
        self.done: list[Fault] = []
        self.d = deployment
        self.log = log
        self.started = time.monotonic()
        self._heals: list[tuple[float, int, Fault, Callable[[], None]]] = []  # heap by due time

    def now(self) -> float:
        return time.monotonic() - self.started

    def step(self) -> None:
        """Heal what is due, then fire what is due."""
        while self._heals and self._heals[0][0] <= self.now():
            _, _, fault, heal = heapq.heappop(self._heals)
            self._heal(fault, heal)
        while self.pending and self.pending[0][0] <= self.now():
            self._fire(heapq.heappop(self.pending)[2])

    def next_due(self) -> float:
        due = [self._heals[0][0]] if self._heals else []
        due += [self.pending[0][0]] if self.pending else []
        return min(due, default=float("inf"))

    def heal_all(self) -> None:
        """Heal every active fault now, and make sure every component runs (the end of the campaign)."""
        self.pending.clear()
        while self._heals:
            _, _, fault, heal = heapq.heappop(self._heals)
            self._heal(fault, heal)
        set_clock(self.d.clock_file, 0)
        for proxies in self.d.proxies.values():
            for proxy in proxies:
                proxy.set_mode("pass")
        if not self.d.af.components["scheduler"].running:
            self.d.af.restart("scheduler")
        while len(self.d.af.triggerers()) < self.d.triggerers:
            self.d.af.start_triggerer()

    # --- firing -----------------------------------------------------------------------------------------

    def _fire(self, fault: Fault) -> None:
        fault.fired_at = self.now()
        fault.fired_utc = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        fault.skipped = False
        try:
            heal = getattr(self, f"_{fault.kind}")(fault)
        except Exception as exc:  # a fault that could not be applied is logged, never fatal to the campaign
            fault.note = f"{fault.note} error: {type(exc).__name__}: {exc}".strip()
            heal = None
        if fault.skipped and fault.kind.startswith("runner_") and fault.fired_at - fault.at < TARGET_WAIT:
            # task processes live for seconds (a deferred task has none): look again in a second
            heapq.heappush(self.pending, (fault.fired_at + 1.0, fault.index, fault))
            return
        self.log(
            f"[nemesis] {fault.fired_at:7.1f}s #{fault.index} {fault.kind} {fault.target or '-'}"
            + (f" for {fault.duration:g}s" if heal else "")
            + (" (skipped: no target)" if fault.skipped else "")
            + (f" {fault.note}" if fault.note else "")
        )
        if heal is None:
            fault.healed_at = fault.fired_at
            self.done.append(fault)
        else:
            heapq.heappush(self._heals, (fault.fired_at + fault.duration, fault.index, fault, heal))

    def _heal(self, fault: Fault, heal: Callable[[], None]) -> None:
        try:
            heal()
        except Exception as exc:
            fault.note = f"{fault.note} heal error: {type(exc).__name__}: {exc}".strip()
        fault.healed_at = self.now()
        self.done.append(fault)
        self.log(f"[nemesis] {fault.healed_at:7.1f}s #{fault.index} {fault.kind} healed")

    def _choose(self, fault: Fault, candidates: Sequence[Any]) -> Any:
        if not candidates:
            fault.skipped = True
            return None
        return candidates[int(fault.pick * len(candidates))]

    # --- the kinds (each returns its heal, or None for an instant or skipped fault) ---------------------

    def _preloaded(self) -> int:
        """How many processes of the scheduler's tree have libfaketime mapped (the evidence a jump reaches them)."""
        comp = self.d.af.components["scheduler"]
        count = 0
        for pid in [comp.pid, *(p.pid for p in comp.descendants())]:
            with contextlib.suppress(OSError):
                count += LIBFAKETIME.name in Path(f"/proc/{pid}/maps").read_text("utf-8", "replace")
        return count

    def _runners(self) -> list[psutil.Process]:
        comp = self.d.af.components["scheduler"]
        out = []
        for proc in comp.descendants():
            with contextlib.suppress(psutil.Error):
                title = " ".join(proc.cmdline())
                if TASK_PROCESS.match(title) or SUPERVISOR.match(title):
                    out.append(proc)
        return sorted(out, key=lambda p: p.pid)

    def _describe(self, proc: psutil.Process) -> str:
        with contextlib.suppress(psutil.Error):
            return f"pid {proc.pid} {' '.join(proc.cmdline())[:120]}"
        return f"pid {proc.pid}"

    def _runner_sigkill(self, fault: Fault) -> None:
        proc = self._choose(fault, self._runners())
        if proc is not None:
            fault.target = self._describe(proc)
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)

    def _runner_sigstop(self, fault: Fault) -> Callable[[], None] | None:
        proc = self._choose(fault, self._runners())
        if proc is None:
            return None
        fault.target = self._describe(proc)
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGSTOP)

        def heal() -> None:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)

        return heal

    def _triggerer(self, fault: Fault) -> str | None:
        name: str | None = self._choose(fault, sorted(self.d.af.triggerers()))
        if name is not None:
            fault.target = f"{name} (job {self.d.af.components[name].job_id})"
        return name

    def _triggerer_sigkill(self, fault: Fault) -> Callable[[], None] | None:
        name = self._triggerer(fault)
        if name is None:
            return None
        self.d.af.kill(name, signal.SIGKILL)
        self.d.af.wait_exited(name)

        def heal() -> None:
            if len(self.d.af.triggerers()) < self.d.triggerers:
                fault.note = f"started {self.d.af.start_triggerer()}"

        return heal

    def _triggerer_sigstop(self, fault: Fault) -> Callable[[], None] | None:
        name = self._triggerer(fault)
        return None if name is None else self._stop_component(name)

    def _stop_component(self, name: str) -> Callable[[], None]:
        comp = self.d.af.components[name]
        comp.signal(signal.SIGSTOP, group=True)  # its whole tree, as a frozen host or container

        def heal() -> None:
            comp.signal(signal.SIGCONT, group=True)

        return heal

    def _scheduler_sigkill(self, fault: Fault) -> Callable[[], None]:
        fault.target = f"scheduler pid {self.d.af.pid('scheduler')} and its LocalExecutor workers"
        self.d.af.kill("scheduler", signal.SIGKILL)
        self.d.af.wait_exited("scheduler")
        return lambda: self.d.af.restart("scheduler")

    def _scheduler_sigstop(self, fault: Fault) -> Callable[[], None]:
        fault.target = f"scheduler pid {self.d.af.pid('scheduler')}"
        return self._stop_component("scheduler")

    def _endpoint_pause(self, fault: Fault, system: str) -> Callable[[], None]:
        fault.target = system
        self.d.systems[system].pause()
        return self.d.systems[system].resume

    def _proxy_mode(self, fault: Fault, system: str, mode: str) -> Callable[[], None]:
        proxies = self.d.proxies[system]
        fault.target = f"{system} proxies :{','.join(str(p.port) for p in proxies)}"
        for proxy in proxies:
            proxy.set_mode(mode)

        def heal() -> None:
            for proxy in proxies:
                proxy.set_mode("pass")

        return heal

    def _spark_sigstop(self, fault: Fault) -> Callable[[], None]:
        return self._endpoint_pause(fault, "spark")

    def _kubernetes_sigstop(self, fault: Fault) -> Callable[[], None]:
        return self._endpoint_pause(fault, "kubernetes")

    def _spark_503(self, fault: Fault) -> Callable[[], None]:
        return self._proxy_mode(fault, "spark", "503")

    def _spark_reset(self, fault: Fault) -> Callable[[], None]:
        return self._proxy_mode(fault, "spark", "reset")

    def _kubernetes_reset(self, fault: Fault) -> Callable[[], None]:
        return self._proxy_mode(fault, "kubernetes", "reset")

    def _task_instances(self, states: frozenset[str] | None) -> list[tuple[str, str, int, str]]:
        out = []
        for dag_id, run_id in self.d.runs:
            for ti in self.d.af.api.task_instances(dag_id, run_id):
                state = str(ti.get("state"))
                if states is None or state in states:
                    out.append((dag_id, run_id, int(ti.get("map_index", -1)), state))
        return sorted(out)

    def _api_clear(self, fault: Fault) -> None:
        chosen = self._choose(fault, self._task_instances(None))
        if chosen is not None:
            dag_id, run_id, map_index, state = chosen
            fault.target = f"{dag_id}/{run_id}/job[{map_index}] ({state})"
            body = {
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": [["job", map_index]],
                "only_failed": False,
                "reset_dag_runs": True,
            }
            self.d.af.api.call("POST", f"/api/v2/dags/{quote(dag_id, safe='')}/clearTaskInstances", body=body)

    def _api_mark_failed(self, fault: Fault) -> None:
        chosen = self._choose(fault, self._task_instances(NOT_FINISHED))
        if chosen is not None:
            dag_id, run_id, map_index, state = chosen
            fault.target = f"{dag_id}/{run_id}/job[{map_index}] ({state})"
            self.d.af.api.set_state(dag_id, run_id, "job", "failed", map_index)

    def _clock_jump(self, fault: Fault) -> Callable[[], None]:
        fault.target = f"scheduler and its workers {fault.offset:+.0f}s"
        set_clock(self.d.clock_file, fault.offset)
        fault.note = f"libfaketime loaded in {self._preloaded()} processes"
        return lambda: set_clock(self.d.clock_file, 0)


def histogram(faults: Sequence[Fault]) -> dict[str, int]:
    """Faults applied (not skipped) by kind, every kind listed."""
    counts = dict.fromkeys(KINDS, 0)
    for f in faults:
        if not f.skipped and "error:" not in f.note:
            counts[f.kind] += 1
    return counts


def env_seed(raw: str | None) -> int:
    """``DURABLE_JOBS_CHAOS_SEED`` or a fresh random seed."""
    return int(raw) if raw else int.from_bytes(os.urandom(4), "big")
