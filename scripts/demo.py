#!/usr/bin/env python
"""``make demo``: run the quickstart DAG against a throwaway Spark cluster, with a crash in the worst place.

What it does, all local and self-contained:

1. creates a temporary ``AIRFLOW_HOME`` with a SQLite metadata DB (``airflow db migrate``) whose dags
   folder is ``examples/``;
2. starts a Spark standalone Master + Worker from the ``pyspark`` wheel and builds the test jar;
3. points the connection ``spark_standalone_default`` and the quickstart DAG at them;
4. arms the ``after_submit`` fail-point once: the first try dies right after Spark accepted the driver
   and *before* the driver id is recorded (the window a naive "submit, then save the id" operator
   cannot close);
5. runs the DAG with ``dag.test()``. Try 1 submits and crashes; try 2 finds the driver by the token the
   crashed try recorded as its intent, adopts it, defers, and succeeds;
6. prints the drivers the master knows (one: nothing was submitted twice), the task's tries and state,
   and a one-line summary. Exit code 0 only for ``state=success`` with exactly one submission per task.

``dag.test()`` runs the task in this very process, so the crash is simulated by raising
:class:`durable_jobs.failpoints.SimulatedCrash` (a ``BaseException`` nothing in the operator catches)
instead of killing the process; what the retry sees (an intent with a token, no driver id, a running
driver on the cluster) is exactly what a killed worker leaves behind.

Options: ``--no-crash`` for a plain run, ``--dag durable_spark_python`` for the PySpark example (one
task plus a mapped task with two map indexes; the first task to submit crashes), ``--keep`` to keep the
temporary directory (DB, logs, driver logs). ``DEMO_AIRFLOW_LOG_LEVEL=WARNING`` quiets Airflow's log.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
QUICKSTART = "durable_spark_quickstart"
PYTHON_DAG = "durable_spark_python"
CONN_ID = "spark_standalone_default"
RETRY_DELAY = timedelta(seconds=3)  # the DAG's default is minutes; the demo should not wait that long


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# structlog's console format: "<ts> [<level>] <event> [<logger>] key=value ..."
_LOG_LINE = re.compile(r"^(?P<ts>\S+)\s+\[(?P<level>\w+)\s*\]\s+(?P<event>.*?)\s+\[(?P<logger>[^\]]+)\](?P<kv>.*)$")
_NEW_STATE = re.compile(r"new_state=(\w+)")


class Timeline(io.TextIOBase):
    """Passes everything through to the real stdout and keeps the lines that tell the durable_jobs story.

    Installed as ``sys.stdout`` before airflow is imported, because Airflow's log renderer binds the stream
    it writes to when logging is configured.
    """

    def __init__(self, out: Any) -> None:
        self._out = out
        self._partial = ""
        self.events: list[str] = []

    def isatty(self) -> bool:
        return bool(self._out.isatty())

    def fileno(self) -> int:
        return int(self._out.fileno())

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._out.flush()

    def write(self, text: str) -> int:
        self._out.write(text)
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._keep(_ANSI.sub("", line))
        return len(text)

    def _keep(self, line: str) -> None:
        if line.startswith("durable_jobs.failpoints.SimulatedCrash"):
            self.events.append(f"{'':8}  crash: {line}")
            return
        m = _LOG_LINE.match(line)
        if m is None:
            return
        ts = m["ts"][11:19]
        if "durable_jobs" in m["logger"]:
            self.events.append(f"{ts}  {m['event']}")
        elif (state := _NEW_STATE.search(m["kv"])) is not None:
            self.events.append(f"{ts}  task instance -> {state[1]}")


def airflow_env(home: Path) -> dict[str, str]:
    """Settings for the temporary Airflow; set before airflow is imported, inherited by subprocesses."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("DEMO_AIRFLOW_LOG_LEVEL", "INFO"),
    }


def start_migration(home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        stdin=subprocess.DEVNULL,
        stdout=(home / "db-migrate.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def finish_migration(proc: subprocess.Popen[bytes], home: Path) -> None:
    if proc.wait(300) != 0:
        log = (home / "db-migrate.log").read_text("utf-8", "replace")
        raise RuntimeError(f"airflow db migrate failed with exit code {proc.returncode}:\n{log[-4000:]}")


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    if bag.import_errors:
        raise RuntimeError(f"import errors in {EXAMPLES}: {bag.import_errors}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise RuntimeError(f"no DAG {dag_id!r} in {EXAMPLES} (found {sorted(bag.dags)})")
    return dag


def task_instances(dag_id: str, run_id: str) -> list[Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = list(
            session.scalars(
                select(TaskInstance)
                .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
                .order_by(TaskInstance.task_id, TaskInstance.map_index)
            )
        )
        session.expunge_all()
    return tis


def stored_records(dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The durable_jobs records in the task state store, per (task_id, map_index)."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    from durable_jobs.record import STATE_KEY

    with create_session() as session:
        rows = session.execute(
            text(
                "SELECT task_id, map_index, value FROM task_state_store "
                "WHERE dag_id = :dag_id AND run_id = :run_id AND key = :key"
            ),
            {"dag_id": dag_id, "run_id": run_id, "key": STATE_KEY},
        ).all()
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for task_id, map_index, value in rows:
        try:
            out[(task_id, int(map_index))] = json.loads(value) if isinstance(value, str) else dict(value)
        except (TypeError, ValueError):
            out[(task_id, int(map_index))] = {"raw": value}
    return out


def run(args: argparse.Namespace, home: Path, timeline: Timeline) -> int:
    started = time.monotonic()
    crash = not args.no_crash

    os.environ.update(airflow_env(home))
    say(f"AIRFLOW_HOME={home}")
    migration = start_migration(home)  # runs while the Spark daemons start

    from durable_jobs.testing.spark_cluster import SparkCluster, build_test_apps  # stdlib only

    cluster = SparkCluster(home / "spark", worker_cores=4, worker_memory="2g")
    try:
        cluster.start()
        apps = build_test_apps(home / "apps")
        say(f"Spark master {cluster.master_url}, REST {cluster.rest_url}, UI {cluster.master_ui_url}")
        finish_migration(migration, home)
        say(f"metadata DB migrated ({time.monotonic() - started:.1f}s so far)")

        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {
                "conn_type": "spark_standalone_rest",
                "host": "127.0.0.1",
                "port": cluster.ports.rest,
                "extra": {"master_ui_urls": cluster.master_ui_url},
            }
        )
        os.environ["DURABLE_JOBS_EXAMPLE_JAR"] = str(apps.jar)
        os.environ["DURABLE_JOBS_EXAMPLE_MAIN_CLASS"] = apps.main_class
        os.environ["DURABLE_JOBS_EXAMPLE_PY"] = str(apps.python_script)

        from durable_jobs import failpoints

        if crash:
            # Fire once: the retry that follows must survive.
            os.environ["DURABLE_JOBS_FAILPOINTS_ONCE"] = str(home / "failpoints")
            failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")
            say("fail-point armed: try 1 crashes after the driver is submitted, before its id is recorded")

        dag = load_dag(args.dag)
        for task in dag.tasks:
            task.retry_delay = RETRY_DELAY
        say(f"running {args.dag} with dag.test()")
        try:
            dr = dag.test()
        finally:
            failpoints.configure("")

        tis = task_instances(dr.dag_id, dr.run_id)
        records = stored_records(dr.dag_id, dr.run_id)
        master = cluster.json_state()
    finally:
        if migration.poll() is None:
            migration.kill()
            migration.wait()
        cluster.stop()

    say("what the task did (from the Airflow log above):")
    for event in timeline.events:
        say(f"  {event}")
    drivers = [*master.get("activedrivers", ()), *master.get("completeddrivers", ())]
    say(f"drivers on the master ({len(drivers)}):")
    for d in sorted(drivers, key=lambda d: str(d.get("id"))):
        say(f"  {d.get('id')}  {d.get('state')}  {d.get('mainclass')}  worker={d.get('worker')}")
        stdout = cluster.driver_log(str(d.get("id")), "stdout").strip()
        if stdout:
            say(f"    stdout: {stdout.splitlines()[-1]}")
    say("task instances:")
    for ti in tis:
        rec = records.get((ti.task_id, ti.map_index), {})
        job = rec.get("job") or {}
        say(
            f"  {ti.task_id}[{ti.map_index}]  state={ti.state}  tries={ti.try_number}  "
            f"driver={job.get('driver_id')}  record: phase={rec.get('phase')} generation={rec.get('generation')} "
            f"outcome={rec.get('outcome')} token={rec.get('token')}"
        )
    say(f"dag run {dr.run_id}: {dr.state}")
    say(f"master UI (while it ran): {cluster.master_ui_url}; driver logs: {cluster.work_dir}/<driver id>/")
    if args.keep:
        say(f"kept {home} (airflow.db, logs/, spark/)")
    say(f"done in {time.monotonic() - started:.1f}s")

    ok = bool(tis) and all(str(ti.state) == "success" for ti in tis)
    state = "success" if ok else "failed"
    submissions = len(drivers)
    tries = max((int(ti.try_number) for ti in tis), default=0)
    driver_ids = ",".join(str(d.get("id")) for d in drivers) or "none"
    print(f"demo: dag={args.dag} driver={driver_ids} submissions={submissions} tries={tries} state={state}", flush=True)
    # one driver per task instance: anything more means something was submitted twice
    return 0 if ok and submissions == len(tis) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--dag", default=QUICKSTART, choices=[QUICKSTART, PYTHON_DAG])
    parser.add_argument("--no-crash", action="store_true", help="do not simulate the crash after submit")
    parser.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME and Spark dirs")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="durable-jobs-demo-")).resolve()
    real_stdout = sys.stdout
    timeline = Timeline(real_stdout)
    sys.stdout = timeline  # before airflow is imported: its log renderer binds the stream once
    try:
        return run(args, home, timeline)
    finally:
        sys.stdout = real_stdout
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
