"""What a scenario did, read from the outside: the Spark master, Airflow's REST API and the log files.

Submissions are counted on the master: every driver's launch command (in the worker's work dir) carries
``-Dspark.durable_jobs.submission_tag=<token>``, and the token is a hash of (dag_id, run_id, task_id,
map_index, generation), so each driver is attributed to exactly one task and generation of one run.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from durable_jobs.clients.spark_standalone import TOKEN_PROPERTY
from durable_jobs.record import STATE_KEY, make_token
from durable_jobs_harness.airflow_env import AirflowEnv, wait_until
from durable_jobs_harness.spark_cluster import SparkCluster

TOKEN_RE = re.compile(rf"-D{re.escape(TOKEN_PROPERTY)}=(dj[0-9a-f]{{20}})")
ACTIVE_DRIVER_STATES = frozenset({"SUBMITTED", "RUNNING", "RELAUNCHING", "UNKNOWN"})
MAX_GENERATIONS = 10


@dataclass(frozen=True)
class Driver:
    id: str
    state: str
    task_id: str
    generation: int

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_DRIVER_STATES


@dataclass
class Row:
    """One row of ``build/e2e-report.json``."""

    scenario: str
    dag_id: str
    run_id: str
    submissions: int  # drivers of this run on the master
    duplicates: int  # drivers beyond one per (task, generation)
    unowned: int  # drivers of this run that no recorded generation owns
    orphans: int  # drivers still active at the end (unowned, or of a finished task)
    tries: int  # the highest try number of the run's task instances
    final_state: str  # the task instances' final state(s)
    events: int  # trigger events fired for the run's task instances, over every triggerer
    seconds: float  # from the run's start to its end
    drivers: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def drivers_of_run(cluster: SparkCluster, dag_id: str, run_id: str, task_ids: list[str]) -> list[Driver]:
    """Every driver on the master whose launch command carries a token of one of these (unmapped) tasks."""
    tokens = {
        make_token(dag_id, run_id, task_id, -1, gen): (task_id, gen)
        for task_id in task_ids
        for gen in range(MAX_GENERATIONS)
    }
    state = cluster.json_state()
    out: list[Driver] = []
    for d in (*state.get("activedrivers", ()), *state.get("completeddrivers", ())):
        driver_id = str(d.get("id"))
        match = TOKEN_RE.search(cluster.driver_log(driver_id, "stderr"))
        if match and match[1] in tokens:
            task_id, gen = tokens[match[1]]
            out.append(Driver(driver_id, str(d.get("state")), task_id, gen))
    return sorted(out, key=lambda d: d.id)


def unplaced_drivers(cluster: SparkCluster) -> list[str]:
    """Drivers without a launch command yet (waiting for a worker): not attributable until placed."""
    state = cluster.json_state()
    return [str(d.get("id")) for d in state.get("activedrivers", ()) if not cluster.driver_log(str(d.get("id")))]


def trigger_logs(af: AirflowEnv, dag_id: str, run_id: str) -> dict[Path, list[dict[str, Any]]]:
    """The triggerers' per-try log files of a run (``attempt=N.log.trigger.<job id>.log``), parsed."""
    out: dict[Path, list[dict[str, Any]]] = {}
    for path, text in af.task_logs(dag_id, run_id).items():
        if ".trigger." in path.name:
            out[path] = _json_lines(text)
    return out


def worker_log(af: AirflowEnv, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[dict[str, Any]]:
    for path, text in af.task_logs(dag_id, run_id, task_id).items():
        if path.name == f"attempt={try_number}.log":
            return _json_lines(text)
    return []


def events_of(lines: list[dict[str, Any]]) -> list[str]:
    return [str(line.get("event", "")) for line in lines]


def count_trigger_events(af: AirflowEnv, dag_id: str, run_id: str) -> int:
    return sum(events_of(lines).count("Trigger fired event") for lines in trigger_logs(af, dag_id, run_id).values())


def trigger_job_ids_watching(af: AirflowEnv, dag_id: str, run_id: str, task_id: str, try_number: int) -> set[int]:
    """Job ids of the triggerers whose trigger for this try has started watching the job."""
    out: set[int] = set()
    prefix = f"attempt={try_number}.log.trigger."
    for path, lines in trigger_logs(af, dag_id, run_id).items():
        ours = path.parent.name == f"task_id={task_id}" and path.name.startswith(prefix)
        if ours and any(e.startswith("Watching ") for e in events_of(lines)):
            out.add(int(path.name[len(prefix) :].split(".", 1)[0]))
    return out


def wait_watching(
    af: AirflowEnv,
    dag_id: str,
    run_id: str,
    task_id: str = "job",
    *,
    try_number: int = 1,
    by: int | None = None,
    timeout: float = 180.0,
) -> set[int]:
    """Wait until the try is deferred and a triggerer (job ``by``, if given) runs its trigger.

    Returns the job ids of every triggerer that has run it so far.
    """

    def watching() -> set[int] | None:
        ids = trigger_job_ids_watching(af, dag_id, run_id, task_id, try_number)
        return ids if ids and (by is None or by in ids) else None

    who = f" on triggerer job {by}" if by is not None else ""
    return wait_until(  # type: ignore[no-any-return]
        f"the trigger of {dag_id}/{task_id} try {try_number} to run{who}",
        watching,
        timeout=timeout,
        on_timeout=af.logs_tail,
    )


def recorded_jobs(record: Any) -> set[str]:
    """Driver ids the task state store record owns: the current generation's and its history's."""
    if not isinstance(record, dict):
        return set()
    owned = set()
    for entry in [record, *(record.get("history") or ())]:
        job = entry.get("job") if isinstance(entry, dict) else None
        if isinstance(job, dict) and job.get("driver_id"):
            owned.add(str(job["driver_id"]))
    return owned


def observe(
    scenario: str,
    af: AirflowEnv,
    cluster: SparkCluster,
    dag_id: str,
    run_id: str,
    *,
    settle: float = 60.0,
    notes: str = "",
) -> Row:
    """The row of a finished run. Waits (up to ``settle`` s) for its drivers to stop before counting orphans."""
    tis = af.api.task_instances(dag_id, run_id)
    task_ids = sorted({str(ti["task_id"]) for ti in tis})
    wait_until("every driver to be placed on a worker", lambda: not unplaced_drivers(cluster), timeout=settle)

    def settled() -> list[Driver] | None:
        drivers = drivers_of_run(cluster, dag_id, run_id, task_ids)
        return None if any(d.active for d in drivers) else drivers

    try:
        drivers = wait_until("the run's drivers to stop", settled, timeout=settle, interval=1.0)
    except Exception:  # still active after the grace period: they are counted as orphans below
        drivers = drivers_of_run(cluster, dag_id, run_id, task_ids)
    owned: set[str] = set()
    for task_id in task_ids:
        owned |= recorded_jobs(af.api.state_store(dag_id, run_id, task_id).get(STATE_KEY))
    per_generation: dict[tuple[str, int], int] = {}
    for d in drivers:
        per_generation[(d.task_id, d.generation)] = per_generation.get((d.task_id, d.generation), 0) + 1
    finished = all(str(ti.get("state")) in ("success", "failed", "skipped", "upstream_failed") for ti in tis)
    orphans = [d for d in drivers if d.active and (finished or d.id not in owned)]
    run = af.api.dag_run(dag_id, run_id)
    states = sorted({str(ti.get("state")) for ti in tis})
    return Row(
        scenario=scenario,
        dag_id=dag_id,
        run_id=run_id,
        submissions=len(drivers),
        duplicates=sum(n - 1 for n in per_generation.values()),
        unowned=sum(1 for d in drivers if d.id not in owned),
        orphans=len(orphans),
        tries=max((int(ti.get("try_number") or 0) for ti in tis), default=0),
        final_state="/".join(states),
        events=count_trigger_events(af, dag_id, run_id),
        seconds=round(_seconds(run), 1),
        drivers=[{"id": d.id, "state": d.state, "task": d.task_id, "generation": d.generation} for d in drivers],
        notes=notes,
    )


def _seconds(run: dict[str, Any]) -> float:
    start, end = run.get("start_date") or run.get("queued_at"), run.get("end_date")
    if not start:
        return 0.0
    t0 = datetime.fromisoformat(str(start).replace("Z", "+00:00")).timestamp()
    t1 = datetime.fromisoformat(str(end).replace("Z", "+00:00")).timestamp() if end else time.time()
    return t1 - t0


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
