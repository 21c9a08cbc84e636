"""The fault soak of issue 11: many waiting jobs outlast a sick Spark master, and nothing fails or reruns.

    python benchmarks/soak.py --phase-seconds 15            # the CI length (tests/core/test_soak.py)
    python benchmarks/soak.py --phase-seconds 300 --jobs 200  # `make soak`

What runs, on one event loop, against the fault-injecting fake master of durable_jobs_harness.fault_master
(two real ports on 127.0.0.1):

1. ``--jobs`` tasks each run ``JobProtocol.start()`` (the operator's submit-once path, with an in-memory
   task state store behind Airflow's real accessor) and are submitted once through ``SparkStandaloneClient``.
2. Each job is watched by a real ``SparkStandaloneTrigger.run()`` (its connection from an
   ``AIRFLOW_CONN_<ID>`` variable, poll interval ``--interval``, deadline a day away, unknown budget a day).
3. After a healthy warm-up the master is **down** (sockets closed: connection refused), then answers
   **503** (an HTML page), then **429** (``Retry-After: 1``), then **resets** every connection, each for
   ``--phase-seconds``; then it is healthy again. A third of the drivers end during the faults, a third all
   at once just after the recovery, the rest spread over one interval after it.
4. During each sick phase a new try runs ``JobProtocol.start()`` for a few jobs: it must defer, never submit.
5. Every event goes through ``JobProtocol.complete()``.

Counted: creates at the server (resubmissions = creates - jobs), events and their status (failures = any
job without exactly one ``succeeded`` event and a ``Finished`` decision), each event's latency after the
later of the recovery and the job's end (late = more than interval + 1 s, or no event), and the requests:
at the server (per route, per second, per phase) and as the library sent them (a counting transport under
the policy layer, so refused connections count too). A poll of the shared poller starts with its one
``/json/`` request; the requests of one poll interval are those from one poll's ``/json/`` to the next
poll's, and while sick they must stay within ``1 + status_concurrency + --slack``, never grow with the
number of jobs, and polls must be at least an interval apart.

Writes ``--out`` (default build/soak-report.json) and ends with one line:
``soak: jobs=N phases=down,503,429,reset phase_seconds=S failures=0 resubmissions=0 late_events=0
max_requests_per_interval=X``. Exit status 1 when any expectation fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# keep Airflow away from ~/airflow when run as a script
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="durable-jobs-soak-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")  # a line per sickness, not per retry

from durable_jobs.clients.spark_standalone import SparkApplication  # noqa: E402
from durable_jobs.errors import TransientError  # noqa: E402
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook  # noqa: E402
from durable_jobs.polling import active_pollers  # noqa: E402
from durable_jobs.protocol import Defer, Finished, JobProtocol, ProtocolSettings  # noqa: E402
from durable_jobs.record import TaskIdentity  # noqa: E402
from durable_jobs.testing.state_store import InMemoryStateStore  # noqa: E402
from durable_jobs.transport.base import Request, Response, Transport  # noqa: E402
from durable_jobs.transport.http import close_sessions, current_transport, use_transport  # noqa: E402
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger  # noqa: E402
from durable_jobs_harness.fault_master import FaultMaster  # noqa: E402

FAULTS = ("down", "503", "429", "reset")
DAG_ID = "soak"
RUN_ID = "manual__soak"
DAY = 86400.0

# who sent a request: the shared poller (the triggers), or the worker-side protocol (submit, re-check, complete)
LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("soak_label", default="poll")


@dataclass(frozen=True)
class SoakConfig:
    jobs: int = 50
    phase_seconds: float = 15.0
    interval: float = 5.0
    phases: tuple[str, ...] = FAULTS
    retry_after: int = 1
    recheck_jobs: int = 2  # per sick phase
    slack: int = 2  # requests per poll interval allowed beyond 1 /json/ + status_concurrency
    warmup: float | None = None  # default: interval + 1
    out: Path | None = ROOT / "build" / "soak-report.json"
    conn_id: str = "spark_soak"

    def __post_init__(self) -> None:
        if self.jobs < 3:
            raise ValueError("--jobs must be at least 3")
        unknown = set(self.phases) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown phases {sorted(unknown)}; choose from {', '.join(FAULTS)}")


# --- the library's side of the wire ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    at: float  # time.monotonic() when the library handed the request to the network
    label: str
    route: str
    outcome: str  # the HTTP status, "refused" (never reached the server) or "no answer"


class CountingTransport(Transport):
    """The real transport, counting every request the library sends (refused connections included)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[Sent] = []

    async def handle(self, request: Request) -> Response:
        at, label, route = time.monotonic(), LABEL.get(), route_of(request.url)
        try:
            resp = await self.inner.handle(request)
        except TransientError as exc:
            self.sent.append(Sent(at, label, route, "refused" if exc.connect_failed else "no answer"))
            raise
        except BaseException:
            self.sent.append(Sent(at, label, route, "error"))
            raise
        self.sent.append(Sent(at, label, route, str(resp.status)))
        return resp

    async def aclose_loop(self) -> None:
        await self.inner.aclose_loop()

    def sessions(self) -> int:
        return self.inner.sessions()


def route_of(url: str) -> str:
    path = url.split("://", 1)[-1].partition("/")[2]
    if path.startswith("json"):
        return "json"
    if path.startswith("v1/submissions/"):
        return path[len("v1/submissions/") :].split("/", 1)[0]
    return path.split("/", 1)[0] or "other"


# --- one job -----------------------------------------------------------------------------------------------


@dataclass
class Job:
    index: int
    group: str  # "during faults", "at once", "spread"
    driver_id: str = ""
    token: str = ""
    end_at: float | None = None
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    decision: str = ""  # what JobProtocol.complete() made of the event
    raised: str = ""

    @property
    def task_id(self) -> str:
        return f"job_{self.index:04d}"


def spec_of(job: Job) -> SparkApplication:
    return SparkApplication(
        app_resource="file:/opt/soak/sleep.jar", main_class="soak.Sleep", name=f"soak-{job.index}", app_args=["1"]
    )


# --- the run -----------------------------------------------------------------------------------------------


async def run_soak(cfg: SoakConfig) -> dict[str, Any]:
    """Run the soak on the running loop; return the report (also written to ``cfg.out``)."""
    master = await FaultMaster(retry_after=cfg.retry_after).start()
    env_key = f"AIRFLOW_CONN_{cfg.conn_id.upper()}"
    previous = os.environ.get(env_key)
    os.environ[env_key] = json.dumps(master.connection())
    SparkStandaloneHook.clear_cache()
    counting = CountingTransport(current_transport())
    store = InMemoryStateStore()
    try:
        with store.installed(), use_transport(counting):
            report = await _soak(cfg, master, counting, store)
    finally:
        if previous is None:
            os.environ.pop(env_key, None)
        else:
            os.environ[env_key] = previous
        SparkStandaloneHook.clear_cache()
        await close_sessions()
        await master.stop()
    if cfg.out is not None:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        cfg.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


async def _soak(
    cfg: SoakConfig, master: FaultMaster, counting: CountingTransport, store: InMemoryStateStore
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    client = await SparkStandaloneHook.aget_client(cfg.conn_id)
    interval = cfg.interval
    warmup = cfg.warmup if cfg.warmup is not None else interval + 1.0

    def on_loop(aw: Awaitable[Any]) -> Any:
        """The worker's ``run``: the client's coroutines on the soak's loop (one pool, one counting transport)."""
        return asyncio.run_coroutine_threadsafe(aw, loop).result()

    def protocol(job: Job, try_number: int) -> JobProtocol:
        return JobProtocol(
            client=client,
            store=store.accessor(DAG_ID, RUN_ID, job.task_id),
            identity=TaskIdentity(DAG_ID, RUN_ID, job.task_id, -1, try_number, 0),
            spec=lambda _record: spec_of(job),
            run=on_loop,
            settings=ProtocolSettings(timeout=DAY),
            sleep=lambda s: None,
        )

    n = cfg.jobs
    third = n // 3
    jobs = [Job(i, "during faults" if i < third else "at once" if i < 2 * third else "spread") for i in range(n)]

    # 1. submit every job once, through the protocol (intent, submit, record)
    t_start = time.monotonic()

    def submit_all() -> list[str]:
        LABEL.set("submit")
        problems = []
        for job in jobs:
            decision = protocol(job, 1).start()
            if not isinstance(decision, Defer) or decision.record.job is None:
                problems.append(f"{job.task_id}: {decision!r}")
                continue
            job.driver_id = decision.record.job["driver_id"]
            job.token = decision.record.token
        return problems

    submit_problems = await asyncio.to_thread(submit_all)
    if submit_problems:
        raise RuntimeError(f"submitting failed: {submit_problems[:3]}")
    creates_after_submit = master.creates

    # 2. one real trigger per job, all on this loop
    async def watch(job: Job, trigger: SparkStandaloneTrigger) -> None:
        async for event in trigger.run():
            job.events.append((time.monotonic(), event.payload))

    tasks = []
    for job in jobs:
        trigger = SparkStandaloneTrigger(
            job={"driver_id": job.driver_id},
            conn_id=cfg.conn_id,
            token=job.token,
            generation=0,
            poll_interval=interval,
            deadline=time.time() + DAY,
            unknown_budget=DAY,
            lost_confirmations=3,
        )
        tasks.append(asyncio.create_task(watch(job, trigger), name=f"soak-{job.task_id}"))
    t_watch = time.monotonic()
    await asyncio.sleep(warmup)
    early = [j.task_id for j in jobs if j.events]

    # 3. the faults, with a re-check by a new try in each
    t_faults = time.monotonic()
    fault_span = cfg.phase_seconds * len(cfg.phases)
    during = [j for j in jobs if j.group == "during faults"]
    for k, job in enumerate(during):
        job.end_at = t_faults + fault_span * (k + 0.5) / len(during)
        master.end_driver(job.driver_id, job.end_at)
    later = [j for j in jobs if j.group != "during faults"]
    windows: list[tuple[str, float, float]] = [("warmup", t_watch, t_faults)]
    rechecks: dict[str, list[dict[str, Any]]] = {}
    for p, phase in enumerate(cfg.phases):
        await master.set_phase(phase)
        start = time.monotonic()
        await asyncio.sleep(min(cfg.phase_seconds / 3, interval))
        chosen = later[(p * cfg.recheck_jobs) % len(later) :][: cfg.recheck_jobs]
        rechecks[phase] = await asyncio.to_thread(_recheck, protocol, master, chosen)
        await asyncio.sleep(max(0.0, start + cfg.phase_seconds - time.monotonic()))
        windows.append((phase, start, time.monotonic()))
    await master.set_phase("healthy")
    t_recovery = time.monotonic()

    # 4. the rest end: a third at once, the others spread over an interval
    spread = [j for j in jobs if j.group == "spread"]
    for job in jobs:
        if job.group == "at once":
            job.end_at = t_recovery + interval / 2
        elif job.group == "spread":
            job.end_at = t_recovery + interval * (spread.index(job) + 1) / len(spread)
        else:
            continue
        master.end_driver(job.driver_id, job.end_at)
    last_end = max(j.end_at or t_recovery for j in jobs)
    wait_until = max(t_recovery, last_end) + interval + 1.0 + 5.0  # past every expected event, with room
    pending = set(tasks)
    while pending and time.monotonic() < wait_until:
        _, pending = await asyncio.wait(pending, timeout=max(0.0, wait_until - time.monotonic()))
    t_done = time.monotonic()
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for poller in active_pollers():
        poller.poke()  # pollers with nothing left to watch end now, not after their nap
    await asyncio.sleep(0.05)
    windows.append(("recovery", t_recovery, t_done))

    # 5. every event through JobProtocol.complete(), as execute_complete() does
    def complete_all() -> None:
        LABEL.set("complete")
        for job in jobs:
            if len(job.events) != 1:
                continue
            try:
                decision = protocol(job, 1).complete(job.events[0][1])
            except Exception as exc:
                job.raised = f"{type(exc).__name__}: {exc}"
                continue
            job.decision = type(decision).__name__

    await asyncio.to_thread(complete_all)

    return _report(
        cfg=cfg,
        client_concurrency=int(client.status_concurrency),
        ui_urls=len(client.config.ui_urls),
        master=master,
        counting=counting,
        jobs=jobs,
        windows=windows,
        rechecks=rechecks,
        marks={
            "start": t_start,
            "watch": t_watch,
            "faults": t_faults,
            "recovery": t_recovery,
            "done": t_done,
        },
        early=early,
        creates_after_submit=creates_after_submit,
    )


def _recheck(protocol: Any, master: FaultMaster, chosen: Sequence[Job]) -> list[dict[str, Any]]:
    """A new try of a few tasks while the master is sick: ``start()`` must defer to the recorded job."""
    LABEL.set("recheck")
    out = []
    for job in chosen:
        before = master.creates
        started = time.monotonic()
        row: dict[str, Any] = {"job": job.task_id}
        try:
            decision = protocol(job, 2).start()
        except Exception as exc:
            row["decision"] = f"raised {type(exc).__name__}: {exc}"
        else:
            row["decision"] = type(decision).__name__
            row["same_job"] = decision.record.job == {"driver_id": job.driver_id}
            if decision.status is not None:
                row["state"] = decision.status.state.value
        row["creates"] = master.creates - before
        row["seconds"] = round(time.monotonic() - started, 2)
        row["ok"] = row["decision"] == "Defer" and row.get("same_job") is True and row["creates"] == 0
        out.append(row)
    return out


# --- the report --------------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 3)


def _sliding_max(times: Iterable[float], width: float) -> int:
    """The most timestamps in any half-open window ``[t, t + width)``."""
    ts = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ts):
        while ts[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _polls(sent: Sequence[Sent]) -> list[list[Sent]]:
    """The poller's requests, one list per poll interval: from a poll's ``/json/`` to the next one's."""
    groups: list[list[Sent]] = []
    for s in sorted((s for s in sent if s.label == "poll"), key=lambda s: s.at):
        if s.route == "json" or not groups:
            groups.append([])
        groups[-1].append(s)
    return groups


def _report(
    *,
    cfg: SoakConfig,
    client_concurrency: int,
    ui_urls: int,
    master: FaultMaster,
    counting: CountingTransport,
    jobs: Sequence[Job],
    windows: Sequence[tuple[str, float, float]],
    rechecks: dict[str, list[dict[str, Any]]],
    marks: dict[str, float],
    early: Sequence[str],
    creates_after_submit: int,
) -> dict[str, Any]:
    interval = cfg.interval
    bound = ui_urls + client_concurrency + cfg.slack
    polls = _polls(counting.sent)
    sick = set(cfg.phases)

    phases: dict[str, Any] = {}
    for name, start, end in windows:
        hits = [h for h in master.hits if start <= h.at < end]
        sent = [s for s in counting.sent if start <= s.at < end]
        mine = [p for p in polls if start <= p[0].at < end]  # polls that started in this phase
        json_at = [p[0].at for p in mine if p[0].route == "json"]
        gaps = [b - a for a, b in itertools.pairwise(json_at)]
        per_poll = [len(p) for p in mine]
        phases[name] = {
            "seconds": round(end - start, 2),
            "sick": name in sick,
            "server": {
                "requests": len(hits),
                "routes": dict(Counter(h.route for h in hits)),
                "requests_per_second_max": max(master.per_second(start, end), default=0),
                "requests_per_interval_max": _sliding_max((h.at for h in hits), interval),
            },
            "client": {
                "requests": len(sent),
                "by_label": dict(Counter(s.label for s in sent)),
                "routes": dict(Counter(s.route for s in sent if s.label == "poll")),
                "outcomes": dict(Counter(s.outcome for s in sent if s.label == "poll")),
                "polls": len(mine),
                "requests_per_interval": per_poll,
                "requests_per_interval_max": max(per_poll, default=0),
                "poll_gap_min_s": round(min(gaps), 3) if gaps else None,
                "sliding_window_max": _sliding_max((s.at for s in sent if s.label == "poll"), interval),
            },
        }
    sick_max = max((phases[p]["client"]["requests_per_interval_max"] for p in cfg.phases), default=0)
    gaps_sick = [phases[p]["client"]["poll_gap_min_s"] for p in cfg.phases if phases[p]["client"]["poll_gap_min_s"]]
    # a poll late by scheduling jitter is fine; two polls within one interval are not
    polls_too_close = [g for g in gaps_sick if g < interval * 0.95]

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    late: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    by_group: dict[str, list[float]] = {}
    for job in jobs:
        for _, payload in job.events:
            statuses[str(payload.get("status"))] += 1
        ok = (
            len(job.events) == 1 and job.events[0][1].get("status") == "succeeded" and job.decision == Finished.__name__
        )
        if not ok:
            failures.append(
                {
                    "job": job.task_id,
                    "events": [
                        {"status": p.get("status"), "message": str(p.get("message"))[:300]} for _, p in job.events
                    ],
                    "decision": job.decision,
                    "raised": job.raised[:300],
                }
            )
        if not job.events:
            late.append({"job": job.task_id, "group": job.group, "latency_s": None})
            continue
        ref = max(marks["recovery"], job.end_at if job.end_at is not None else marks["recovery"])
        latency = job.events[0][0] - ref
        latencies.append(latency)
        by_group.setdefault(job.group, []).append(latency)
        if latency > interval + 1.0:
            late.append({"job": job.task_id, "group": job.group, "latency_s": round(latency, 3)})

    resubmissions = master.creates - len(jobs)
    recheck_rows = [row for rows in rechecks.values() for row in rows]
    problems = []
    if failures:
        problems.append(f"{len(failures)} jobs without exactly one succeeded event and a Finished decision")
    if resubmissions:
        problems.append(f"{resubmissions} resubmissions (creates at the server: {master.creates})")
    if late:
        problems.append(f"{len(late)} events later than interval + 1 s (or missing)")
    if sick_max > bound:
        problems.append(f"{sick_max} requests in one poll interval while sick, more than {bound}")
    if polls_too_close:
        problems.append(f"polls closer than an interval while sick: {polls_too_close}")
    if not all(row["ok"] for row in recheck_rows):
        problems.append("a re-check during the outage did not defer to the recorded job")
    if early:
        problems.append(f"events before the faults: {list(early)[:5]}")

    return {
        "config": {
            "jobs": cfg.jobs,
            "phases": list(cfg.phases),
            "phase_seconds": cfg.phase_seconds,
            "interval": interval,
            "retry_after": cfg.retry_after,
            "status_concurrency": client_concurrency,
            "bound_requests_per_interval": bound,
            "recheck_jobs_per_phase": cfg.recheck_jobs,
        },
        "seconds": {k: round(v - marks["start"], 2) for k, v in marks.items()},
        "phases": phases,
        "events": {
            "count": sum(len(j.events) for j in jobs),
            "statuses": dict(statuses),
            "missing": sum(1 for j in jobs if not j.events),
            "latency_after_recovery_s": {
                "p50": _percentile(latencies, 0.5),
                "p99": _percentile(latencies, 0.99),
                "max": _percentile(latencies, 1.0),
                "by_group_max": {g: _percentile(v, 1.0) for g, v in by_group.items()},
            },
            "late": late,
        },
        "creates": master.creates,
        "creates_after_submit": creates_after_submit,
        "rechecks": rechecks,
        "failures": len(failures),
        "failed_jobs": failures[:20],
        "resubmissions": resubmissions,
        "late_events": len(late),
        "max_requests_per_interval": sick_max,
        "problems": problems,
        "ok": not problems,
    }


def summary_line(report: dict[str, Any]) -> str:
    cfg = report["config"]
    seconds = cfg["phase_seconds"]
    return (
        f"soak: jobs={cfg['jobs']} phases={','.join(cfg['phases'])} "
        f"phase_seconds={int(seconds) if float(seconds).is_integer() else seconds} "
        f"failures={report['failures']} resubmissions={report['resubmissions']} "
        f"late_events={report['late_events']} max_requests_per_interval={report['max_requests_per_interval']}"
    )


def _print_table(report: dict[str, Any]) -> None:
    print(f"{'phase':<9} {'s':>6} {'server':>7} {'srv/s max':>9} {'sent':>6} {'polls':>5} {'req/interval max':>16}")
    for name, ph in report["phases"].items():
        print(
            f"{name:<9} {ph['seconds']:>6.1f} {ph['server']['requests']:>7} "
            f"{ph['server']['requests_per_second_max']:>9} {ph['client']['requests']:>6} {ph['client']['polls']:>5} "
            f"{ph['client']['requests_per_interval_max']:>16}"
        )
    ev = report["events"]
    lat = ev["latency_after_recovery_s"]
    print(
        f"events={ev['count']} statuses={ev['statuses']} latency after recovery/end: "
        f"p50={lat['p50']}s p99={lat['p99']}s max={lat['max']}s creates={report['creates']}"
    )
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--phase-seconds", type=float, default=15.0, help="seconds of each fault phase (CI 15)")
    ap.add_argument("--jobs", type=int, default=50, help="jobs (and triggers) on the one master")
    ap.add_argument("--interval", type=float, default=5.0, help="the triggers' poll interval, seconds")
    ap.add_argument("--phases", default=",".join(FAULTS), help="fault phases, in order")
    ap.add_argument("--retry-after", type=int, default=1, help="the 429 phase's Retry-After, seconds")
    ap.add_argument("--recheck-jobs", type=int, default=2, help="jobs re-checked by a new try in each sick phase")
    ap.add_argument("--slack", type=int, default=2, help="requests per interval allowed past 1 + status_concurrency")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "soak-report.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = SoakConfig(
        jobs=args.jobs,
        phase_seconds=args.phase_seconds,
        interval=args.interval,
        phases=tuple(p for p in args.phases.split(",") if p),
        retry_after=args.retry_after,
        recheck_jobs=args.recheck_jobs,
        slack=args.slack,
        out=args.out,
    )
    report = asyncio.run(run_soak(cfg))
    _print_table(report)
    print(f"report: {args.out}")
    print(summary_line(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
