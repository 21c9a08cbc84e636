"""What a scenario did, read from the outside: the endpoint (through its adapter), Airflow's REST API and the logs.

Submissions are counted on the endpoint: every job carries its token (a hash of dag_id, run_id, task_id,
map_index and generation), so each job is attributed to exactly one task instance and generation of one run
(see ``systems/`` for how each system shows the token).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from durable_jobs.reaper.orphan import CALLBACK_PATH
from durable_jobs.record import STATE_KEY
from durable_jobs_harness.airflow_env import AirflowEnv, wait_until
from durable_jobs_harness.callbacks import callbacks

from .systems import E2ESystem, Job

FINISHED = frozenset({"success", "failed", "skipped", "upstream_failed"})


@dataclass
class Row:
    """One row of ``build/e2e-report.json``, keyed by (system, scenario)."""

    system: str
    scenario: str
    dag_id: str
    run_id: str
    submissions: int  # jobs of this run on the endpoint
    duplicates: int  # jobs beyond one per (task, map_index, generation)
    unowned: int  # jobs of this run that no recorded generation owns
    orphans: int  # jobs still active at the end (unowned, or of a finished task)
    tries: int  # the highest try number of the run's task instances
    final_state: str  # the task instances' final state(s)
    events: int  # trigger events fired for the run's task instances, over every triggerer
    seconds: float  # from the run's start to its end
    jobs: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""
    executor: str = "local"  # the executor that ran the tasks: "local" (LocalExecutor) or "celery"

    @property
    def key(self) -> tuple[str, str]:
        return self.system, self.scenario

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def reaper_callbacks(af: AirflowEnv, run: Any) -> list[tuple[str, str]]:
    """(state, output) of the reaper's callbacks for the run, read from Airflow's callback table (no REST API
    shows it; the output is the callback's one line)."""
    return [
        (str(c.state), str(c.output))
        for c in callbacks(af, CALLBACK_PATH)
        if (c.kwargs.get("dag_id"), c.kwargs.get("run_id")) == (run.dag_id, run.run_id)
    ]


def trigger_logs(af: AirflowEnv, dag_id: str, run_id: str) -> dict[Path, list[dict[str, Any]]]:
    """The triggerers' per-try log files of a run (``attempt=N.log.trigger.<job id>.log``), parsed."""
    out: dict[Path, list[dict[str, Any]]] = {}
    for path, text in af.task_logs(dag_id, run_id).items():
        if ".trigger." in path.name:
            out[path] = _json_lines(text)
    return out


def worker_log(
    af: AirflowEnv, dag_id: str, run_id: str, task_id: str, try_number: int, *, map_index: int = -1
) -> list[dict[str, Any]]:
    for path, text in af.task_logs(dag_id, run_id, task_id).items():
        mine = map_index < 0 or path.parent.name == f"map_index={map_index}"
        if mine and path.name == f"attempt={try_number}.log":
            return _json_lines(text)
    return []


def events_of(lines: list[dict[str, Any]]) -> list[str]:
    return [str(line.get("event", "")) for line in lines]


# the outcome line our trigger logs just before it yields its event (triggers/base.py)
_OUTCOME = re.compile(r": (succeeded|failed|cancelled|lost|unknown|error|timeout) ")


def count_trigger_events(af: AirflowEnv, dag_id: str, run_id: str) -> int:
    """Task instance tries whose trigger fired an event.

    A try counts once, however many triggers ran for it: when a triggerer's heartbeat is late (13 to 15 s on a
    loaded CI machine), Airflow hands its triggers to another triggerer while the first still runs them, so both
    can fire for the same try (seen in CI; the task resumes once and the endpoint still shows one job).

    Airflow's own "Trigger fired event" line is sometimes missing from a per-trigger log file: the file can be
    closed before the line lands (seen for 6 of 50 triggers of the overload row, whose tasks resumed fine). Our
    trigger's own outcome line, written before the event is yielded, counts too. Both lines can also land in the
    triggerer's own log instead (seen once in CI, for a deadline event), so that log is read as well.
    """
    fired: set[tuple[str, int, int]] = set()
    for path, lines in trigger_logs(af, dag_id, run_id).items():
        if _fired(events_of(lines)):
            fired.add(_try_of(path))
    per_try: dict[tuple[str, int, int], list[str]] = {}
    for key, event in triggerer_log_events(af, dag_id, run_id):
        per_try.setdefault(key, []).append(event)
    return len(fired | {key for key, events in per_try.items() if _fired(events)})


def _fired(events: list[str]) -> bool:
    return "Trigger fired event" in events or any(_OUTCOME.search(e) for e in events)


def _try_of(path: Path) -> tuple[str, int, int]:
    """(task_id, map_index, try_number) of a log file: ``task_id=T[/map_index=M]/attempt=N.log...``."""
    parts = {p.split("=", 1)[0]: p.split("=", 1)[1] for p in path.parts if "=" in p}
    try_number = int(path.name.removeprefix("attempt=").split(".", 1)[0])
    return parts["task_id"], int(parts.get("map_index", -1)), try_number


# a line of a triggerer's own log: "<time> [<level>  ] <event>   [<logger>] key=value key=value ..."
_CONSOLE = re.compile(r"^\S+ \[\w+\s*\] (?P<event>.*?)\s+\[(?P<logger>[\w.]+)\](?P<kv> .*)?$")


def triggerer_log_events(af: AirflowEnv, dag_id: str, run_id: str) -> list[tuple[tuple[str, int, int], str]]:
    """The run's trigger lines that landed in the triggerers' own logs, with their (task_id, map_index, try).

    Airflow writes a trigger's lines to its per-trigger file, but a line logged after that file is closed (often
    "trigger completed", sometimes the event itself) goes to the triggerer's log, with the task's fields.
    """
    out: list[tuple[tuple[str, int, int], str]] = []
    for log in sorted(af.logs_dir.glob("triggerer*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if f" run_id={run_id}" not in line or (m := _CONSOLE.match(line)) is None:
                continue
            kv = dict(re.findall(r" (dag_id|run_id|task_id|map_index|try_number)=(\S+)", m["kv"] or ""))
            if kv.get("dag_id") == dag_id and kv.get("run_id") == run_id and "task_id" in kv and "try_number" in kv:
                key = (kv["task_id"], int(kv.get("map_index", -1)), int(kv["try_number"]))
                out.append((key, m["event"]))
    return out


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


def task_keys(tis: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted({(str(ti["task_id"]), int(ti.get("map_index", -1))) for ti in tis})


def observe(
    system: E2ESystem,
    scenario: str,
    af: AirflowEnv,
    dag_id: str,
    run_id: str,
    *,
    settle: float = 60.0,
    notes: str = "",
    executor: str = "local",
) -> Row:
    """The row of a finished run. Waits (up to ``settle`` s) for its jobs to stop before counting orphans."""
    tis = af.api.task_instances(dag_id, run_id)
    keys = task_keys(tis)
    wait_until("every job to be attributable", lambda: not system.unattributed(), timeout=settle)

    def settled() -> list[Job] | None:
        jobs = system.jobs(dag_id, run_id, keys)
        return None if any(j.active for j in jobs) else jobs

    try:
        jobs = wait_until("the run's jobs to stop", settled, timeout=settle, interval=1.0)
    except Exception:  # still active after the grace period: they are counted as orphans below
        jobs = system.jobs(dag_id, run_id, keys)
    owned: set[str] = set()
    for task_id, map_index in keys:
        record = af.api.state_store(dag_id, run_id, task_id, map_index).get(STATE_KEY)
        owned |= system.recorded_ids(record)
    per_generation = Counter((j.task_id, j.map_index, j.generation) for j in jobs)
    finished = all(str(ti.get("state")) in FINISHED for ti in tis)
    orphans = [j for j in jobs if j.active and (finished or j.id not in owned)]
    run = af.api.dag_run(dag_id, run_id)
    states = sorted({str(ti.get("state")) for ti in tis})
    return Row(
        system=system.name,
        scenario=scenario,
        dag_id=dag_id,
        run_id=run_id,
        submissions=len(jobs),
        duplicates=sum(n - 1 for n in per_generation.values()),
        unowned=sum(1 for j in jobs if j.id not in owned),
        orphans=len(orphans),
        tries=max((int(ti.get("try_number") or 0) for ti in tis), default=0),
        final_state="/".join(states),
        events=count_trigger_events(af, dag_id, run_id),
        seconds=round(_seconds(run), 1),
        jobs=[j.to_json() for j in jobs],
        notes=notes,
        executor=executor,
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
