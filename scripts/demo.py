#!/usr/bin/env python
"""``make demo``: a real Airflow 3.3 and a real Spark cluster, and a worker killed in the worst place.

What it does, all local and self-contained (nothing outside a temporary directory is touched; every server
listens on 127.0.0.1 on a free port from the kernel's ephemeral range, so an Airflow or Spark already running
on its default ports, 8080 for both UIs, is left alone):

1. starts a Spark standalone Master + Worker from the ``pyspark`` wheel and builds the test jar;
2. starts Airflow 3.3 in a temporary ``AIRFLOW_HOME`` (SQLite, LocalExecutor) as four processes:
   api-server, scheduler, dag-processor and triggerer, with the example DAG file from ``examples/`` as
   the DAGs folder and the connection ``spark_standalone_default`` pointing at the cluster;
3. arms the ``after_submit`` fail-point once (``DURABLE_JOBS_FAILPOINTS=after_submit=exit``): the first
   try's worker process exits right after Spark accepted the driver and *before* the driver id is
   recorded, the window a naive "submit, then save the id" operator cannot close;
4. triggers the quickstart DAG through the REST API and follows it: try 1 submits and dies; try 2 finds
   the driver by the token try 1 recorded as its intent, adopts it and defers; the triggerer watches the
   driver; the task succeeds;
5. prints a short table (tries, driver ids, submissions counted on the Spark master, final state, where
   to look), then what the "Durable jobs" view (docs/ui.md, served by the same api-server) lists for the
   run, and stops everything. The last line is the summary; the exit code is 0 only for ``state=success``
   with one submission per task and every task's job listed by the view.

Options: ``--keep-running`` (``make demo-ui``) leaves Airflow and Spark running after the table and
prints the URLs (the Durable jobs view's among them) and the admin password, until Ctrl-C;
``--no-crash`` for a plain run; ``--dag durable_spark_python`` for the PySpark example (a task plus a
mapped task; the first task to submit crashes); ``--keep`` keeps the temporary directory (DB, logs, driver logs).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from durable_jobs.clients.spark_standalone import TOKEN_PROPERTY
from durable_jobs.record import STATE_KEY
from durable_jobs_harness.airflow_env import FINISHED_RUN_STATES, AirflowEnv
from durable_jobs_harness.spark_cluster import SparkCluster, build_test_apps
from durable_jobs_harness.waiting import wait_for_interrupt

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
QUICKSTART = "durable_spark_quickstart"
PYTHON_DAG = "durable_spark_python"
DAG_FILES = {QUICKSTART: "spark_standalone_quickstart.py", PYTHON_DAG: "spark_standalone_pyspark.py"}
CONN_ID = "spark_standalone_default"
RUN_TIMEOUT = 600.0
_TOKEN_RE = re.compile(rf"-D{re.escape(TOKEN_PROPERTY)}=(dj[0-9a-f]{{20}})")


def say(message: str = "") -> None:
    print(f"[demo] {message}" if message else "[demo]", flush=True)


def follow(af: AirflowEnv, dag_id: str, run_id: str) -> dict[str, Any]:
    """Print every task instance state change until the run ends; return the run."""
    started = time.monotonic()
    seen: dict[tuple[str, int], tuple[Any, Any]] = {}
    while True:
        for ti in af.api.task_instances(dag_id, run_id):
            key = (str(ti["task_id"]), int(ti["map_index"]))
            now = (ti.get("try_number"), ti.get("state"))
            if seen.get(key) != now:
                seen[key] = now
                name = key[0] if key[1] < 0 else f"{key[0]}[{key[1]}]"
                what = f"try {now[0]} {now[1]}" if now[1] else "waiting to be scheduled"
                say(f"  {time.monotonic() - started:5.1f}s  {name}: {what}")
        run = af.api.dag_run(dag_id, run_id)
        if run.get("state") in FINISHED_RUN_STATES:
            return run
        if time.monotonic() - started > RUN_TIMEOUT:
            raise TimeoutError(f"the run did not finish within {RUN_TIMEOUT:.0f}s")
        time.sleep(1.0)


def drivers_on_master(cluster: SparkCluster) -> list[dict[str, str]]:
    """Every driver the master knows, with the token its launch command carries (the cluster is ours alone)."""
    state = cluster.json_state()
    out = []
    for d in (*state.get("activedrivers", ()), *state.get("completeddrivers", ())):
        driver_id = str(d.get("id"))
        match = _TOKEN_RE.search(cluster.driver_log(driver_id, "stderr"))
        out.append({"id": driver_id, "state": str(d.get("state")), "token": match[1] if match else "?"})
    return sorted(out, key=lambda d: d["id"])


# the log lines that tell the story: the protocol's decisions, the crash, the deferral, the trigger's wait
_STORY_SOURCES = ("protocol.py", "polling.py")
_STORY_EVENTS = ("Process exited abnormally", "Pausing task as DEFERRED", "Trigger fired event", "Watching ")


def story(af: AirflowEnv, dag_id: str, run_id: str) -> list[str]:
    """What each try and each trigger did, from the task and trigger log files, in time order."""
    lines: list[tuple[str, str]] = []
    for path, text in af.task_logs(dag_id, run_id).items():
        task = path.parent.name.removeprefix("task_id=")
        if path.parent.name.startswith("map_index="):
            task = f"{path.parent.parent.name.removeprefix('task_id=')}[{path.parent.name.removeprefix('map_index=')}]"
        attempt = path.name.split(".", 1)[0].removeprefix("attempt=")
        who = f"{task} try {attempt}" + (" trigger" if ".trigger." in path.name else "")
        for raw in text.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            event = str(entry.get("event", ""))
            if entry.get("filename") in _STORY_SOURCES or event.startswith(_STORY_EVENTS):
                if event == "Process exited abnormally":
                    event = f"the task process died (exit code {entry.get('exit_code')}): the fail-point fired"
                elif event == "Trigger fired event":
                    event = "the trigger fired its one event"
                lines.append((str(entry.get("timestamp", "")), f"{who:<24} {event[:140]}"))
    return [line for _, line in sorted(lines)]


def report(af: AirflowEnv, cluster: SparkCluster, dag_id: str, run: dict[str, Any]) -> tuple[str, list[Any]]:
    run_id = str(run["dag_run_id"])
    tis = af.api.task_instances(dag_id, run_id)
    drivers = drivers_on_master(cluster)
    say()
    say("what happened:")
    for line in story(af, dag_id, run_id):
        say(f"  {line}")
    say()
    say(f"{'task':<16} {'tries':>5}  {'state':<8} {'recorded driver':<30}  gen  token")
    for ti in sorted(tis, key=lambda t: (t["task_id"], t["map_index"])):
        name = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
        rec = af.api.state_store(dag_id, run_id, ti["task_id"], ti["map_index"]).get(STATE_KEY) or {}
        job = rec.get("job") or {}
        say(
            f"{name:<16} {ti['try_number']:>5}  {ti['state']!s:<8} {job.get('driver_id', '-')!s:<30}  "
            f"{rec.get('generation', '-')!s:>3}  {rec.get('token', '-')}"
        )
    say()
    say(f"Spark master: {len(drivers)} driver(s) submitted")
    for d in drivers:
        say(f"  {d['id']}  {d['state']:<9} token {d['token']}")
    say()
    say("where to look (stopped at the end unless --keep-running, which `make demo-ui` passes):")
    say(f"  Airflow UI   {af.base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}  (tries, logs, XCom links)")
    say(f"  Spark master {cluster.master_ui_url}  (Completed Drivers)")
    say(f"  task logs    {af.logs_dir}/dag_id={dag_id}/run_id={run_id}/")
    say(f"  driver logs  {cluster.work_dir}/<driver id>/stdout")
    return str(run.get("state")), tis


def view(af: AirflowEnv, dag_id: str, run_id: str, tis: list[Any]) -> bool:
    """What the Durable jobs view's API lists for the run, as the UI's page shows it; True if every task is there."""
    rows = [
        r
        for r in af.api.call("GET", "/durable-jobs/api/records", params={"dag_id": dag_id, "limit": 500})["records"]
        if r["run_id"] == run_id
    ]
    say()
    say(f"the Durable jobs view lists {len(rows)} record(s) for this run ({af.base_url}/durable-jobs/):")
    for r in rows:
        name = r["task_id"] if r["map_index"] < 0 else f"{r['task_id']}[{r['map_index']}]"
        tries = ", ".join(f"try {t['try']} {t['decision']}" for t in r.get("tries") or ())
        say(f"  {name:<16} {r['system']}  gen {r['generation']}  {r['phase']} {r.get('outcome') or ''}".rstrip())
        say(f"  {'':<16} job {r['job_id']}  ({tries or 'no decision recorded'})")
    listed = {(r["task_id"], r["map_index"]) for r in rows}
    return all((ti["task_id"], ti["map_index"]) in listed for ti in tis)


def summary(dag_id: str, drivers: list[dict[str, str]], tis: list[Any], state: str) -> str:
    driver_ids = ",".join(d["id"] for d in drivers) or "none"
    tries = max((int(ti["try_number"]) for ti in tis), default=0)
    return f"demo: dag={dag_id} driver={driver_ids} submissions={len(drivers)} tries={tries} state={state}"


class Outcome:
    """The summary line, kept up to date so that it can be printed last whatever happens."""

    def __init__(self, dag_id: str) -> None:
        self.line = f"demo: dag={dag_id} driver=none submissions=0 tries=0 state=failed"


def run(args: argparse.Namespace, home: Path, outcome: Outcome) -> int:
    started = time.monotonic()
    say(f"working directory {home}")
    cluster = SparkCluster(home / "spark", worker_cores=4, worker_memory="2g")
    af: AirflowEnv | None = None
    try:
        cluster.start()
        apps = build_test_apps(home / "apps")
        say(f"Spark master {cluster.master_url} (REST {cluster.rest_url}, UI {cluster.master_ui_url})")
        env = {
            f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
                {
                    "conn_type": "spark_standalone_rest",
                    "host": "127.0.0.1",
                    "port": cluster.ports.rest,
                    "extra": {"master_ui_urls": cluster.master_ui_url},
                }
            ),
            "DURABLE_JOBS_EXAMPLE_JAR": str(apps.jar),
            "DURABLE_JOBS_EXAMPLE_MAIN_CLASS": apps.main_class,
            "DURABLE_JOBS_EXAMPLE_PY": str(apps.python_script),
        }
        if not args.no_crash:
            # every worker process reads these; the marker directory makes the crash happen once
            env["DURABLE_JOBS_FAILPOINTS"] = "after_submit=exit"
            env["DURABLE_JOBS_FAILPOINTS_ONCE"] = str(home / "failpoints")
        # a DAGs folder with just the demo's example: nothing else in examples/ needs to parse here
        dags = home / "dags"
        dags.mkdir()
        shutil.copy2(EXAMPLES / DAG_FILES[args.dag], dags / DAG_FILES[args.dag])
        af = AirflowEnv(dags, home=home / "airflow", env=env)
        say("starting Airflow 3.3: api-server, scheduler, dag-processor, triggerer (LocalExecutor, SQLite)")
        af.start()
        af.wait_dags([args.dag])
        say(f"Airflow ready at {af.base_url} ({time.monotonic() - started:.0f}s so far)")
        if not args.no_crash:
            say("fail-point armed: try 1's worker exits right after Spark accepts the driver, before its id is saved")
        run_id = af.api.trigger(args.dag)
        say(f"triggered {args.dag} run {run_id}")
        finished = follow(af, args.dag, run_id)
        state, tis = report(af, cluster, args.dag, finished)
        drivers = drivers_on_master(cluster)
        outcome.line = summary(args.dag, drivers, tis, state)
        listed = view(af, args.dag, run_id, tis)
        if not listed:
            say("the Durable jobs view does not list every task's job")
        ok = state == "success" and len(drivers) == len(tis) and listed
        if args.keep_running:
            say()
            say("Airflow and Spark keep running; click through:")
            say(f"  Airflow UI   {af.base_url}  user admin  password {af.admin_password()}")
            say(f"  Durable jobs {af.base_url}/plugin/durable-jobs  (Browse > Durable jobs; alone: /durable-jobs/)")
            say(f"  Spark master {cluster.master_ui_url}")
            say(f"  Spark worker {cluster.worker_ui_url}")
            say("press Ctrl-C to stop everything")
            print(outcome.line, flush=True)
            wait_for_interrupt()
        return 0 if ok else 1
    finally:
        say("stopping Airflow and Spark")
        if af is not None:
            af.stop()
        cluster.stop()
        say(f"done in {time.monotonic() - started:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--dag", default=QUICKSTART, choices=[QUICKSTART, PYTHON_DAG])
    parser.add_argument("--no-crash", action="store_true", help="do not kill the worker after submit")
    parser.add_argument(
        "--keep-running", action="store_true", help="leave Airflow and Spark running for the UI until Ctrl-C"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (DB, logs, driver logs)")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="durable-jobs-demo-")).resolve()
    outcome = Outcome(args.dag)
    try:
        return run(args, home, outcome)
    finally:
        if args.keep:
            say(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
        print(outcome.line, flush=True)  # always the last line


if __name__ == "__main__":
    sys.exit(main())
