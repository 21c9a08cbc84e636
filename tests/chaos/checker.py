"""The campaign's checker: once every fault healed, it reads the endpoints' own job lists and Airflow's final states
and counts the violations of each invariant.

Jobs are attributed to a task instance and generation through their token (``tests/e2e/systems``), never through
our client code. Per task instance (a DAG run's map index):

* **duplicates**: jobs beyond one per generation (two jobs carrying one token);
* **orphans**: jobs still active on the endpoint when the task instance is finished (after a grace period for
  a cancel to land);
* **lost jobs**: a task instance that succeeded without a succeeded job of its recorded generation on the
  endpoint, or a job the task state store records (this generation's or an earlier one's) that the endpoint never
  had;
* **not terminal**: a task instance not finished when the settle period ends (the checker waits; it never clears);
* **re-runs of succeeded jobs**: a job of generation g+n submitted although the job of generation g succeeded.
  The campaign's operators keep ``rerun_on_clear`` off, so even a clear after success (which the nemesis does)
  must return the recorded result: every such re-run counts.

``unowned`` (informational) counts endpoint jobs whose generation the record does not name (e.g. a crashed try's
job that the next try adopted is owned; one it never learned about is not).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from durable_jobs.record import STATE_KEY
from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.airflow_env.api import FINISHED_RUN_STATES, FINISHED_TI_STATES

from ..e2e.observe import _json_lines
from ..e2e.systems import E2ESystem, Job
from ..e2e.systems.spark import SparkSystem

# a job state that means it ran to success, per system
SUCCEEDED = {"spark": frozenset({"FINISHED"}), "kubernetes": frozenset({"Complete"})}
INVARIANTS = ("duplicates", "orphans", "lost_jobs", "not_terminal", "reruns_after_success")


@dataclass(frozen=True)
class Run:
    system: str
    dag_id: str
    run_id: str


@dataclass
class Findings:
    """Each invariant's violations (one line each), and the figures of the run."""

    violations: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in INVARIANTS})
    unowned: list[str] = field(default_factory=list)
    tasks: dict[str, Counter[str]] = field(default_factory=dict)  # system -> final TI states
    jobs: dict[str, Counter[str]] = field(default_factory=dict)  # system -> job end states
    generations: dict[str, Counter[int]] = field(default_factory=dict)  # system -> jobs by generation
    unattributed: dict[str, int] = field(default_factory=dict)  # system -> jobs no token could be read from
    failed: list[str] = field(default_factory=list)  # each failed task instance and why (its last error line)

    @property
    def passed(self) -> bool:
        return not any(self.violations.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "invariants": {name: len(v) for name, v in self.violations.items()},
            "violations": {name: v for name, v in self.violations.items() if v},
            "unowned": len(self.unowned),
            "unowned_jobs": self.unowned,
            "tasks": {s: {"total": sum(c.values()), **dict(sorted(c.items()))} for s, c in self.tasks.items()},
            "jobs": {s: {"total": sum(c.values()), **dict(sorted(c.items()))} for s, c in self.jobs.items()},
            "jobs_by_generation": {s: {str(g): n for g, n in sorted(c.items())} for s, c in self.generations.items()},
            "unattributed_jobs": self.unattributed,
            "failed_tasks": self.failed,
        }


def wait_settled(af: AirflowEnv, runs: Sequence[Run], timeout: float, log: Callable[[str], None] = print) -> float:
    """Wait (at most ``timeout`` s) for every run to finish; return the seconds waited."""
    started = time.monotonic()
    left = list(runs)
    while left and time.monotonic() - started < timeout:
        try:
            left = [r for r in left if af.api.dag_run(r.dag_id, r.run_id).get("state") not in FINISHED_RUN_STATES]
        except Exception as exc:  # the api-server busy: try again
            log(f"[checker] {type(exc).__name__}: {exc}")
        if left:
            time.sleep(3)
    log(f"[checker] {len(runs) - len(left)}/{len(runs)} runs finished after {time.monotonic() - started:.0f}s")
    return time.monotonic() - started


def endpoint_ids(system: E2ESystem, jobs: Sequence[Job]) -> set[str]:
    """Every job id the endpoint knows: the attributed jobs, and on Spark every driver the master lists (a driver
    killed before a worker launched it carries no readable token but still exists)."""
    ids = {j.id for j in jobs}
    if isinstance(system, SparkSystem) and system.cluster is not None:
        state = system.cluster.json_state()
        ids |= {str(d.get("id")) for d in (*state.get("activedrivers", ()), *state.get("completeddrivers", ()))}
    return ids


def _task_keys(tis: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted({(str(ti["task_id"]), int(ti.get("map_index", -1))) for ti in tis})


def _entry_ids(system: E2ESystem, entry: Any) -> set[str]:
    return system.recorded_ids({"job": entry.get("job")}) if isinstance(entry, dict) else set()


def check(
    af: AirflowEnv,
    systems: dict[str, E2ESystem],
    runs: Sequence[Run],
    *,
    grace: float = 90.0,
    log: Callable[[str], None] = print,
) -> Findings:
    """Count every invariant's violations over ``runs``; waits up to ``grace`` s for cancels to land first."""
    found = Findings()
    tis_of = {r: af.api.call("GET", _tis_path(r), params={"limit": 100}).get("task_instances", ()) for r in runs}

    def jobs_now() -> dict[Run, list[Job]]:
        return {r: systems[r.system].jobs(r.dag_id, r.run_id, _task_keys(tis_of[r])) for r in runs}

    deadline = time.monotonic() + grace
    jobs = jobs_now()
    while time.monotonic() < deadline and (
        any(systems[s].unattributed() for s in systems) or any(j.active for js in jobs.values() for j in js)
    ):
        time.sleep(2)
        jobs = jobs_now()
    tis_of = {r: af.api.call("GET", _tis_path(r), params={"limit": 100}).get("task_instances", ()) for r in runs}
    for name, system in systems.items():
        found.unattributed[name] = len(system.unattributed())
    known = {
        name: endpoint_ids(system, [j for r in runs if r.system == name for j in jobs[r]])
        for name, system in systems.items()
    }
    for run in runs:
        system = systems[run.system]
        succeeded = SUCCEEDED[run.system]
        tasks = found.tasks.setdefault(run.system, Counter())
        ends = found.jobs.setdefault(run.system, Counter())
        gens = found.generations.setdefault(run.system, Counter())
        for ti in tis_of[run]:
            task_id, map_index, state = str(ti["task_id"]), int(ti.get("map_index", -1)), str(ti.get("state"))
            where = f"{run.dag_id}/{run.run_id}/{task_id}[{map_index}]"
            tasks[state] += 1
            mine = sorted(
                (j for j in jobs[run] if (j.task_id, j.map_index) == (task_id, map_index)), key=lambda j: j.generation
            )
            ends.update(j.state for j in mine)
            gens.update(j.generation for j in mine)
            per_gen = Counter(j.generation for j in mine)
            for gen, n in sorted(per_gen.items()):
                if n > 1:
                    ids = [j.id for j in mine if j.generation == gen]
                    found.violations["duplicates"] += [f"{where} generation {gen}: {n} jobs {ids}"] * (n - 1)
            finished = state in FINISHED_TI_STATES
            if state == "failed":
                found.failed.append(f"{where} try {ti.get('try_number')}: {why_failed(af, run, task_id, map_index)}")
            if not finished:
                found.violations["not_terminal"].append(f"{where} is {state} ({_ti_detail(ti)})")
            for j in mine:
                if j.active and finished:
                    found.violations["orphans"].append(f"{where} is {state}; job {j.id} gen {j.generation} {j.state}")
            first_success = next((j.generation for j in mine if j.state in succeeded), None)
            if first_success is not None:
                for j in mine:
                    if j.generation > first_success:
                        found.violations["reruns_after_success"].append(
                            f"{where}: job {j.id} gen {j.generation} after gen {first_success} succeeded"
                        )
            record = af.api.state_store(run.dag_id, run.run_id, task_id, map_index).get(STATE_KEY)
            entries = [record, *(record.get("history") or ())] if isinstance(record, dict) else []
            owned_gens = set()
            for entry in entries:
                ids = _entry_ids(system, entry)
                if not ids:
                    continue
                owned_gens.add(int(entry.get("generation", -1)))
                if not ids & known[run.system]:
                    found.violations["lost_jobs"].append(
                        f"{where}: recorded job {sorted(ids)} gen {entry.get('generation')} is not on the endpoint"
                    )
            if state == "success":
                current = _entry_ids(system, record) if isinstance(record, dict) else set()
                if not any(j.id in current and j.state in succeeded for j in mine):
                    found.violations["lost_jobs"].append(
                        f"{where} succeeded without a succeeded job of its record (record job {sorted(current)}, "
                        f"endpoint jobs {[(j.id, j.generation, j.state) for j in mine]})"
                    )
            found.unowned += [
                f"{where}: job {j.id} gen {j.generation} {j.state}" for j in mine if j.generation not in owned_gens
            ]
    for name, lines in found.violations.items():
        for line in lines:
            log(f"[checker] {name}: {line}")
    return found


def why_failed(af: AirflowEnv, run: Run, task_id: str, map_index: int) -> str:
    """The last error of the task instance's latest try log that has one (a task marked failed may have none)."""
    logs = af.task_logs(run.dag_id, run.run_id, task_id)
    tries = sorted(
        (p for p in logs if p.parent.name == f"map_index={map_index}" and ".trigger." not in p.name),
        key=lambda p: int(p.name.split("=", 1)[1].split(".", 1)[0]),
    )
    for path in reversed(tries):
        lines = _json_lines(logs[path])
        errors = [line for line in lines if str(line.get("level", "")).lower() in ("error", "critical")]
        if errors:
            detail = (errors[-1].get("error_detail") or [{}])[0]
            return f"{path.name}: {errors[-1].get('event', '')}: {str(detail.get('exc_value', ''))[:300]}"
    return "no error logged (marked failed?)"


def _ti_detail(ti: dict[str, Any]) -> str:
    """What tells a stuck task instance's cause apart: its try, where it runs, since when, who queued it."""
    keys = ("try_number", "hostname", "pid", "queued_when", "start_date", "queued_by_job_id", "executor")
    return ", ".join(f"{k} {ti[k]}" for k in keys if ti.get(k) not in (None, ""))


def _tis_path(run: Run) -> str:
    return f"/api/v2/dags/{quote(run.dag_id, safe='')}/dagRuns/{quote(run.run_id, safe='')}/taskInstances"
