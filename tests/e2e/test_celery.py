"""Issue 15, item 7: the worker-kill rows and the two-triggerer row for Spark, on CeleryExecutor.

This module has an Airflow of its own (module-scoped) next to the session's Spark cluster: CeleryExecutor with a
private Redis broker (Debian's ``redis-server``, our own process on a free 127.0.0.1 port), the Celery result
backend on the PostgreSQL metadata database, and two Celery workers, each its own process (``airflow celery
worker``). Its DAGs are the matrix's Spark DAGs (``dags_celery/``). Rows (system ``spark``, executor ``celery``):

* ``celery_crash_<point>``: the task process exits at each protocol step in try 1, as in the matrix; its Celery
  worker lives on, and the supervisor reports the failure at once;
* ``celery_two_triggerers``: two triggerers; the one running ``job_0``'s trigger is SIGKILLed;
* ``celery_worker_sigkill_after_submit``: the **whole** Celery worker (its main process, its pool, the supervisor
  and the task runner) is SIGKILLed while try 1 stands at ``after_submit``: the job exists, its id is not saved.
  Celery acknowledges late (``task_acks_late``), so the message stays in Redis's ``unacked`` hash; nobody reports
  the try, so the scheduler fails it when its heartbeat times out and the retry adopts the job by its token; the
  broker redelivers the old message when the visibility timeout passes, and the execution API refuses to start a
  try that is over. Both are measured, with the timeouts shortened (production: 300 s and 24 h) in the same order.

Order: the worker-kill run goes first, alone (a dead worker takes every task on it along, and the other rows must
not lose theirs); once the worker is dead, every other row is triggered at once and the worker started again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from durable_jobs_harness.airflow_env import AirflowEnv, wait_until

from .conftest import Report, database_name
from .dags.e2e_common import CRASH, ONCE_ROOT_ENV, SYSTEMS_ENV, dag_id
from .observe import wait_watching
from .systems import E2ESystem
from .test_crash_matrix import (
    RUN_TIMEOUT,
    Run,
    assert_clean,
    check_crash,
    check_two_triggerers,
    finish,
    log_events,
    track,
)

pytestmark = [pytest.mark.spark, pytest.mark.airflow, pytest.mark.timeout(1500)]

SYSTEM = "spark"
EXECUTOR = "celery"
HERE = Path(__file__).resolve().parent
WORKER_SIGKILL = "worker_sigkill"  # the DAG dags_celery/e2e_celery.py adds: try 1 stops itself at after_submit
KILL_ROW = "celery_worker_sigkill_after_submit"
# row scenario -> the matrix scenario (DAG) it runs
BATCH = {f"celery_{s}": s for s in (*CRASH, "two_triggerers")}
# shortened, in production's order: the scheduler fails a silent try first, the broker redelivers much later
HEARTBEAT_TIMEOUT = 30  # [scheduler] task_instance_heartbeat_timeout (default 300 s)
VISIBILITY_TIMEOUT = 90  # [celery_broker_transport_options] visibility_timeout (the provider's default: 24 h)
# a Celery worker took a message: "<time> [info] [<celery task id>] Executing workload in Celery: ... ti=...(id=UUID(
# '<task instance id>')..."
DELIVERY_RE = re.compile(
    r"^(\S+Z) .*\[([0-9a-f-]{36})\] Executing workload in Celery: .*\bti=\w+\(id=UUID\('([0-9a-f-]{36})'\)"
)
# the api-server's access log line of a worker's request to start a try
START_RE = re.compile(r"^(\S+Z) .*method=PATCH path=/execution/task-instances/([0-9a-f-]{36})/run .*status_code=(\d+)")


@dataclass(frozen=True)
class Delivery:
    """A Celery worker took a message (from its log)."""

    at: float  # epoch seconds
    worker: str
    celery_id: str  # the Celery task id
    ti_id: str  # the task instance id the workload names
    dag_id: str
    try_number: int


@dataclass(frozen=True)
class WorkerKill:
    run: Run
    worker: str  # the component that ran try 1, SIGKILLed
    task_pid: int  # try 1's task runner, stopped at after_submit
    message: Delivery  # try 1's message
    unacked: bool  # the message was in Redis's unacked hash when the worker died
    killed_at: float  # epoch seconds


@dataclass(frozen=True)
class CeleryRuns:
    kill: WorkerKill
    runs: dict[str, Run]  # row scenario -> run, triggered together
    triggerer_job: int  # the triggerer SIGKILLed in celery_two_triggerers


@pytest.fixture(scope="module")
def celery_airflow(e2e_root: Path, systems: dict[str, E2ESystem], report: Report) -> Iterator[AirflowEnv]:
    if SYSTEM not in systems:
        raise RuntimeError("the CeleryExecutor rows run Spark: DURABLE_JOBS_E2E_SYSTEMS must select spark")
    env = {
        SYSTEMS_ENV: SYSTEM,
        ONCE_ROOT_ENV: str(e2e_root / "failpoints-celery"),
        # the DAG file imports the matrix's DAG modules
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE / "dags"), os.environ.get("PYTHONPATH")])),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        # two workers and their supervisors beside everything else: the api-server answers slowly at times
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        **systems[SYSTEM].airflow_env(),
    }
    started = time.monotonic()
    af = AirflowEnv(
        HERE / "dags_celery",
        home=e2e_root / "airflow-celery",
        env=env,
        database="postgres",
        executor="CeleryExecutor",
        celery_workers=2,
    )
    af.start()
    try:
        af.wait_dags([dag_id(SYSTEM, s) for s in (WORKER_SIGKILL, *BATCH.values())])
        report.time("celery_airflow_start", time.monotonic() - started)
        if not report.systems:  # this module alone: the session's Airflow (which names them) did not start
            report.database, report.systems = database_name(af), [SYSTEM]
        print(f"\nCelery Airflow ready in {time.monotonic() - started:.1f}s at {af.base_url} (home {af.home})")
        yield af
    finally:
        af.stop(keep_home=True)
        report.time("celery_module", time.monotonic() - started)


def start(af: AirflowEnv, row: str, scenario: str) -> Run:
    name = dag_id(SYSTEM, scenario)
    return Run(SYSTEM, row, name, af.api.trigger(name))


def deliveries(af: AirflowEnv) -> list[Delivery]:
    """Every message a Celery worker took, from the workers' logs, oldest first."""
    out = []
    for name, comp in af.components.items():
        if not name.startswith("celery-worker") or not comp.log.exists():
            continue
        for line in comp.log.read_text("utf-8", "replace").splitlines():
            if match := DELIVERY_RE.match(line):
                dag = re.search(r"dag_id='([^']+)'", line)
                attempt = re.search(r"/attempt=(\d+)\.log", line)
                dag_id, try_number = dag[1] if dag else "", int(attempt[1]) if attempt else 0
                out.append(Delivery(epoch(match[1]), name, match[2], match[3], dag_id, try_number))
    return sorted(out, key=lambda d: d.at)


def start_answers(af: AirflowEnv, ti_id: str) -> list[tuple[float, int]]:
    """(epoch seconds, HTTP status) of the api-server's answers to requests to start try ``ti_id``."""
    log = af.components["api-server"].log.read_text("utf-8", "replace")
    return [(epoch(m[1]), int(m[3])) for m in map(START_RE.match, log.splitlines()) if m and m[2] == ti_id]


def unacked(af: AirflowEnv) -> str:
    """Redis's ``unacked`` hash (Celery's messages delivered and not acknowledged yet), as one string."""
    assert af.redis is not None
    return " ".join(map(str, af.redis.command("HGETALL", "unacked") or ()))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stopped_pid(marker: Path) -> int | None:
    """The pid a ``stop`` fail-point wrote, once that process is stopped."""
    try:
        pid = int(marker.read_text())
        return pid if psutil.Process(pid).status() == psutil.STATUS_STOPPED else None
    except (OSError, ValueError, psutil.Error):
        return None


def kill_worker_at_after_submit(af: AirflowEnv) -> WorkerKill:
    """Run the worker-kill DAG; SIGKILL the Celery worker whose task stopped itself at after_submit."""
    run = start(af, KILL_ROW, WORKER_SIGKILL)
    marker = Path(af.env[ONCE_ROOT_ENV]) / run.dag_id / run.run_id.replace("/", "_") / "job.-1" / "fired-after_submit"
    pid = wait_until("try 1 to stop itself at after_submit", lambda: stopped_pid(marker), timeout=RUN_TIMEOUT)
    worker = af.component_of_pid(pid)
    # the message of the try that stopped (usually try 1; a start that timed out on a busy machine costs a try)
    message = [d for d in deliveries(af) if d.dag_id == run.dag_id][-1]
    held = message.celery_id in unacked(af)
    af.kill(worker)
    af.wait_exited(worker)
    killed_at = time.time()
    wait_until("try 1's task runner to die with its worker", lambda: gone(pid), timeout=10)
    return WorkerKill(run, worker, pid, message, held, killed_at)


@pytest.fixture(scope="module")
def celery_runs(celery_airflow: AirflowEnv, report: Report) -> CeleryRuns:
    """The worker kill first, alone; then every other row at once, and the two-triggerer kill."""
    af = celery_airflow
    kill = kill_worker_at_after_submit(af)
    if len(af.triggerers()) < 2:
        af.start_triggerer()
    runs = {row: start(af, row, scenario) for row, scenario in BATCH.items()}
    two = runs["celery_two_triggerers"]
    wait_watching(af, two.dag_id, two.run_id, "job_1")
    job_id = min(wait_watching(af, two.dag_id, two.run_id, "job_0"))
    victim = af.triggerer_for_job(job_id)
    af.kill(victim)
    af.wait_exited(victim)
    af.start_celery_worker(kill.worker)  # two workers again for the retries
    return CeleryRuns(kill, {KILL_ROW: kill.run, **runs}, job_id)


@pytest.mark.parametrize("scenario", CRASH)
def test_celery_task_process_killed_at_failpoint(
    scenario: str,
    request: pytest.FixtureRequest,
    celery_airflow: AirflowEnv,
    systems: dict[str, E2ESystem],
    report: Report,
    celery_runs: CeleryRuns,
) -> None:
    """The task process exits at a protocol step under a Celery worker; the retry adopts or reattaches: one job."""
    run = celery_runs.runs[f"celery_{scenario}"]
    track(request, run.dag_id, run.run_id)
    notes = f"CeleryExecutor; the task process exits at {scenario.removeprefix('crash_')} in try 1"
    row = finish(celery_airflow, systems[SYSTEM], report, run, notes, executor=EXECUTOR)
    check_crash(celery_airflow, systems[SYSTEM], run, row, scenario)


def test_celery_two_triggerers_one_killed(
    request: pytest.FixtureRequest,
    celery_airflow: AirflowEnv,
    systems: dict[str, E2ESystem],
    report: Report,
    celery_runs: CeleryRuns,
) -> None:
    """Two triggerers beside Celery workers; the one running job_0's trigger is SIGKILLed: one event per task."""
    run, job_id = celery_runs.runs["celery_two_triggerers"], celery_runs.triggerer_job
    track(request, run.dag_id, run.run_id)
    notes = f"CeleryExecutor; 2 tasks; triggerer job {job_id} SIGKILLed, the other took over"
    row = finish(celery_airflow, systems[SYSTEM], report, run, notes, executor=EXECUTOR)
    check_two_triggerers(celery_airflow, run, row, job_id)


def test_celery_worker_sigkill_after_submit(
    request: pytest.FixtureRequest,
    celery_airflow: AirflowEnv,
    systems: dict[str, E2ESystem],
    report: Report,
    celery_runs: CeleryRuns,
) -> None:
    """The whole Celery worker dies at after_submit: the heartbeat timeout fails try 1, try 2 adopts the job, and
    the message the broker redelivers later starts nothing: one job, two tries."""
    af, kill = celery_airflow, celery_runs.kill
    run, message = kill.run, kill.message
    track(request, run.dag_id, run.run_id)
    assert kill.unacked, "try 1's message was not in Redis's unacked hash (acks_late) when its worker died"
    # the broker redelivers the message once the visibility timeout has passed; the retry is long under way
    again: list[Delivery] = wait_until(
        "the broker to redeliver try 1's message",
        lambda: [d for d in deliveries(af) if d.celery_id == message.celery_id][1:],
        timeout=VISIBILITY_TIMEOUT + 180,
        interval=2.0,
    )
    wait_until("the redelivered message to be acknowledged", lambda: message.celery_id not in unacked(af), timeout=120)
    refused = wait_until(
        "the api-server to answer the redelivered message's start request",
        lambda: [status for at, status in start_answers(af, message.ti_id) if at >= again[0].at],
        timeout=60,
    )
    tries = {int(t["try_number"]): t for t in af.api.tries(run.dag_id, run.run_id, "job")}
    n = message.try_number  # the try whose worker died
    failed_after = epoch(tries[n]["end_date"]) - kill.killed_at
    retried_after = epoch(tries[n + 1]["start_date"]) - kill.killed_at
    redelivered_after = again[0].at - kill.killed_at
    notes = (
        f"CeleryExecutor; the whole Celery worker SIGKILLed at after_submit in try {n}; the scheduler failed that try "
        f"{failed_after:.0f}s later (heartbeat timeout {HEARTBEAT_TIMEOUT}s) and try {n + 1} started after "
        f"{retried_after:.0f}s; the broker redelivered try {n}'s message after {redelivered_after:.0f}s (visibility "
        f"timeout {VISIBILITY_TIMEOUT}s) to {again[0].worker}, whose start request got HTTP {refused[0]}"
    )
    row = finish(af, systems[SYSTEM], report, run, notes)
    print(f"\n{KILL_ROW}: {notes}")
    assert row.final_state == "success", row
    assert row.tries == n + 1, row  # the redelivered message started no further try
    assert_clean(row, submissions=1)
    assert len(again) == 1, again  # redelivered once
    assert failed_after < redelivered_after, notes  # retried first, as in production
    # the message names a try that is over: its task instance id names no task instance any more (404), or one
    # that runs (409, which the celery provider ignores); either way nothing starts
    assert refused[0] in (404, 409), notes
    assert tries[n]["state"] in ("failed", "up_for_retry") and tries[n + 1]["state"] == "success", tries
    adopted = systems[SYSTEM].after_crash["crash_after_submit"]
    later = log_events(af, run, "job", n + 1)
    assert any(e.startswith(adopted) for e in later), later


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
