"""The "Durable jobs" view paging 10,000 records on PostgreSQL (issue 19): is a page under 1 s?

A real Airflow 3.3 of the harness (:class:`~durable_jobs_harness.airflow_env.AirflowEnv`, a private PostgreSQL
cluster, started once) parses 20 DAGs (written here); then its scheduler, triggerer and dag-processor are stopped
(the api-server alone is measured, and nothing moves the seeded rows: a triggerer would run their triggers) and
this process seeds, in bulk through the ORM's tables, outside the measured window:

* 10,000 records (``task_state_store``, key ``durable_jobs.job``), valid :class:`~durable_jobs.record.JobRecord`
  JSON built by the record's own methods (intent, submitted, finished, tombstone, next generation, tries) for
  seven systems, every phase and outcome, a quarter with earlier generations; spread over 30 days;
* their DAG runs (1,000, 50 per DAG) and task instances (four tasks and a mapped task of six per run, in the state
  the record implies: deferred with a trigger row for most submitted jobs, success or failed for finished ones,
  a few orphans), the trigger rows and the link XComs of the systems' declared keys.

Then each request is sent ``--repeat`` times (after 2 unmeasured) to the real api-server (``GET
/durable-jobs/api/records``: the first page, the middle one, the last one, each filter, limit 50 and 500; ``GET
/durable-jobs/api/endpoints``), as ``admin`` and as ``restricted``, a user the harness's
:class:`~durable_jobs_harness.dag_auth.DagListAuthManager` keeps to 3 DAGs; and the same pages directly at the
query layer (:func:`durable_jobs.ui.query.records`, then the API's items), in this process. Wall ms, median and
p95. ``EXPLAIN ANALYZE`` of the page's and the count's SQL (admin, the middle page) is kept in the JSON.

    python benchmarks/ui_paging.py                  # about 3 minutes; writes build/bench/ui_paging.json
    python benchmarks/ui_paging.py --repeat 5 --records 2000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.airflow_env.api import AirflowApi

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "build" / "bench" / "ui_paging.json"
BAR_MS = 1000.0
DAG_PREFIX = "ui_bench_"
PLAIN = ("spark_job", "yarn_job", "kube_job", "emr_job")
MAPPED, MAPS = "mapped_job", 6
RESTRICTED = "restricted"
SYSTEMS = {  # task -> system; the mapped task's by map index
    "spark_job": "spark-standalone",
    "yarn_job": "yarn",
    "kube_job": "kubernetes",
    "emr_job": "emr-step",
}
MAPPED_SYSTEMS = ("databricks", "bigquery", "glue")
CONN = {
    "spark-standalone": "spark_prod",
    "yarn": "yarn_rm",
    "kubernetes": "kube_batch",
    "emr-step": "aws_emr",
    "databricks": "databricks_ws",
    "bigquery": "gcp_analytics",
    "glue": "aws_glue",
}
LINKS = {  # system -> the link XCom keys it pushes (durable_jobs.systems)
    "spark-standalone": ("master_ui_url", "driver_ui_url"),
    "yarn": ("rm_app_url", "tracking_url"),
    "kubernetes": ("console_url",),
    "emr-step": ("emr_console_url", "emr_logs_url"),
    "databricks": ("run_page_url",),
    "bigquery": ("bigquery_job_url",),
    "glue": ("glue_run_url",),
}

DAG_FILE = '''"""The UI paging benchmark's DAGs: benchmarks/ui_paging.py seeds their runs and task instances."""
from airflow.sdk import DAG, task

for i in range({dags}):
    with DAG(dag_id=f"{prefix}{{i:02d}}", schedule=None, catchup=False) as dag:

        @task
        def spark_job(): ...

        @task
        def yarn_job(): ...

        @task
        def kube_job(): ...

        @task
        def emr_job(): ...

        @task
        def mapped_job(x): ...

        spark_job(); yarn_job(); kube_job(); emr_job(); mapped_job.expand(x=list(range({maps})))
    globals()[dag.dag_id] = dag
'''


# --- the records ----------------------------------------------------------------------------------------------


def locator(system: str, rng: random.Random, n: int) -> dict[str, Any]:
    """A realistic locator of ``system`` (flat: what each client's ``validate_locator`` returns)."""
    if system == "spark-standalone":
        return {"driver_id": f"driver-20261104{n:06d}-{rng.randrange(10000):04d}", "master": "spark://spark-a:7077"}
    if system == "yarn":
        return {"app_id": f"application_1730000000000_{n:04d}"}
    if system == "kubernetes":
        return {
            "namespace": "batch",
            "kind": "Job",
            "name": f"dj-{n:06d}",
            "uid": str(uuid.UUID(int=rng.getrandbits(128))),
        }
    if system == "emr-step":
        return {"cluster_id": f"j-{rng.getrandbits(48):012X}", "step_id": f"s-{rng.getrandbits(64):016X}"}
    if system == "databricks":
        return {"run_id": 100000 + n}
    if system == "bigquery":
        return {"project": "analytics", "location": "EU", "job_id": f"dj_{n:06d}_{rng.getrandbits(32):08x}"}
    return {"job_name": "nightly_etl", "run_id": f"jr_{rng.getrandbits(128):032x}"}


def build_record(system: str, ident: Any, rng: random.Random, now: float, n: int) -> tuple[Any, str]:
    """A record as the protocol writes it, and the task instance state it implies."""
    from durable_jobs.record import JobRecord, Outcome

    start = now - rng.uniform(0, 30 * 86400)
    rec = JobRecord.intent(
        system=system,
        identity=ident,
        generation=0,
        timeout=86400.0,
        now=start,
        conn_id=CONN[system],
        hook=f"durable_jobs.hooks.{system.replace('-', '_')}.Hook",
    )
    rec = rec.decided(1, "fresh", start)
    for gen in range(1, rng.choice((1, 1, 1, 2, 3, 4)) if rng.random() < 0.25 else 1):
        # an earlier generation failed or was lost: the next try starts the next one
        rec = rec.submitted(locator(system, rng, n * 10 + gen)).finished(
            rng.choice((Outcome.FAILED, Outcome.LOST)), "Exit code 1: java.lang.OutOfMemoryError: Java heap space"
        )
        at = start + gen * 600
        rec = replace(
            rec.next_generation(replace(ident, try_number=gen + 1), 86400.0, conn_id=rec.conn_id, hook=rec.hook),
            intent_at=at,
            deadline=at + 86400.0,
        )
        rec = rec.decided(gen + 1, "next_generation", at)
    roll = rng.random()
    if roll < 0.08:  # intent written, the job may or may not exist
        return rec, rng.choice(("running", "queued", "up_for_retry"))
    rec = rec.submitted(locator(system, rng, n))
    if roll < 0.20:  # in flight: deferred on its trigger, or its try runs
        if rng.random() < 0.1:
            return rec.decided(rec.submitted_try + 1, "adopted", start + 60), "running"
        return rec, "deferred"
    if roll < 0.21:  # an orphan: the task ended with its job still recorded as running
        return rec, "success"
    if roll < 0.25:  # a user marked the task failed while the job ran: a tombstone
        return rec.tombstone("mark_failed", ti_id=str(uuid.UUID(int=rng.getrandbits(128))), now=start + 900), "failed"
    outcome = rng.choices((Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CANCELLED, Outcome.LOST), (75, 15, 4, 6))[0]
    message = {
        Outcome.SUCCEEDED: "FINISHED",
        Outcome.FAILED: "Job failed: stage 3 (task 41) lost executor 7; exit code 137",
        Outcome.CANCELLED: "Cancelled by the job's owner",
        Outcome.LOST: "the system no longer knows this job (3 confirmations)",
    }[outcome]
    state = "success" if outcome is Outcome.SUCCEEDED else "failed"
    return rec.finished(outcome, message, clear_number=0, max_tries=2), state


def bulk(session: Any, model: Any, rows: list[dict[str, Any]], returning: str | None = None) -> list[Any]:
    """One Core INSERT of ``rows`` (ORM attribute names) into ``model``'s table; the ``returning`` column's values."""
    if not rows:
        return []
    table = model.__table__
    names = {a.key: a.columns[0].name for a in model.__mapper__.column_attrs}
    stmt = table.insert()
    values = [{names.get(k, k): v for k, v in row.items()} for row in rows]
    if returning is None:
        session.execute(stmt, values)
        return []
    return list(session.execute(stmt.returning(table.c[returning], sort_by_parameter_order=True), values).scalars())


def seed(dag_ids: list[str], runs_per_dag: int, seed_value: int) -> dict[str, Any]:
    """The DAG runs, task instances, trigger rows, records and link XComs, in bulk; returns counts and time."""
    import uuid6
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import delete, select

    from durable_jobs.record import STATE_KEY, TaskIdentity

    started = time.monotonic()
    rng = random.Random(seed_value)
    now = time.time()
    counts = {"dag_runs": 0, "task_instances": 0, "records": 0, "triggers": 0, "xcoms": 0}
    with create_session() as session:
        for dag_id in dag_ids:
            dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
            if dag is None:
                raise SystemExit(f"{dag_id} is not serialized")
            t0 = timezone.utcnow()
            template = dag.create_dagrun(
                run_id="template",
                logical_date=None,
                run_after=t0,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
                state="success",
                start_date=t0,
                session=session,
            )
            session.flush()
            skip_run = {"id", "run_id", "logical_date", "_state", "start_date", "end_date", "run_after", "queued_at"}
            run_base = {
                c.key: getattr(template, c.key) for c in DagRun.__mapper__.column_attrs if c.key not in skip_run
            }
            run_base["state"] = run_base.pop("_state", None)
            tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id)).all()
            skip_ti = {"id", "run_id", "map_index", "state", "trigger_id", "start_date", "end_date", "try_number"}
            ti_base = {
                ti.task_id: {
                    c.key: getattr(ti, c.key) for c in TaskInstance.__mapper__.column_attrs if c.key not in skip_ti
                }
                for ti in tis
            }
            session.execute(delete(TaskInstance).where(TaskInstance.dag_id == dag_id))
            session.execute(delete(DagRun).where(DagRun.dag_id == dag_id))
            session.commit()
            runs = []
            for r in range(runs_per_dag):
                when = timezone.utcnow() - dt.timedelta(days=30 * (runs_per_dag - r) / runs_per_dag)
                runs.append(
                    {
                        **run_base,
                        "run_id": f"manual__{when.isoformat()}",
                        "run_after": when,
                        "start_date": when,
                        "queued_at": when,
                        "state": "running",
                    }
                )
            run_ids = bulk(session, DagRun, runs, returning="id")
            ti_rows, records, triggers, xcoms, run_states = [], [], [], [], {}
            for run, run_pk in zip(runs, run_ids, strict=True):
                slots = [(t, -1, SYSTEMS[t]) for t in PLAIN] + [
                    (MAPPED, i, MAPPED_SYSTEMS[i % len(MAPPED_SYSTEMS)]) for i in range(MAPS)
                ]
                for task_id, map_index, system in slots:
                    n = counts["records"] + len(records)
                    ident = TaskIdentity(dag_id, run["run_id"], task_id, map_index)
                    rec, state = build_record(system, ident, rng, now, n)
                    ti_id = uuid6.uuid7()
                    written = dt.datetime.fromtimestamp(rec.intent_at + rng.uniform(1, 3600), dt.timezone.utc)
                    ti_rows.append(
                        {
                            **ti_base[task_id],
                            "id": ti_id,
                            "run_id": run["run_id"],
                            "map_index": map_index,
                            "state": state,
                            "trigger_id": None,
                            "next_method": None,
                            "try_number": max(1, rec.submitted_try),
                            "start_date": written,
                            "end_date": None if state in ("running", "queued", "deferred") else written,
                        }
                    )
                    if state == "deferred":
                        triggers.append((len(ti_rows) - 1, system))
                    records.append(
                        {
                            "dag_run_id": run_pk,
                            "dag_id": dag_id,
                            "run_id": run["run_id"],
                            "task_id": task_id,
                            "map_index": map_index,
                            "key": STATE_KEY,
                            "updated_at": written,
                            "value": json.dumps(rec.to_json()),
                        }
                    )
                    if rec.job is not None:
                        for key in LINKS[system]:
                            xcoms.append(
                                {
                                    "dag_run_id": run_pk,
                                    "dag_id": dag_id,
                                    "run_id": run["run_id"],
                                    "task_id": task_id,
                                    "map_index": map_index,
                                    "key": key,
                                    "timestamp": written,
                                    "value": XComModel.serialize_value(f"https://{system}.example.com/jobs/{n}/{key}"),
                                }
                            )
                    if state not in ("success", "failed"):
                        run_states[run["run_id"]] = "running"
            trigger_ids = bulk(
                session,
                Trigger,
                [
                    {
                        "classpath": f"durable_jobs.triggers.{s.replace('-', '_')}.Trigger",
                        "encrypted_kwargs": "{}",
                        "created_date": ti_rows[i]["start_date"],
                    }
                    for i, s in triggers
                ],
                returning="id",
            )
            for (i, _), trigger_id in zip(triggers, trigger_ids, strict=True):
                ti_rows[i].update(trigger_id=trigger_id, next_method="execute_complete")
            bulk(session, TaskInstance, ti_rows)
            bulk(session, TaskStateStoreModel, records)
            if xcoms:
                bulk(session, XComModel, xcoms)
            for run in runs:
                if run["run_id"] not in run_states:
                    session.execute(
                        DagRun.__table__.update()
                        .where(DagRun.dag_id == dag_id, DagRun.run_id == run["run_id"])
                        .values(state="success", end_date=run["run_after"] + dt.timedelta(hours=2))
                    )
            session.commit()
            counts["dag_runs"] += len(runs)
            counts["task_instances"] += len(ti_rows)
            counts["records"] += len(records)
            counts["triggers"] += len(triggers)
            counts["xcoms"] += len(xcoms)
        session.execute(__import__("sqlalchemy").text("ANALYZE"))
    counts["seconds"] = round(time.monotonic() - started, 1)
    return counts


# --- measuring ------------------------------------------------------------------------------------------------


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1), "max_ms": round(ordered[-1], 1)}


def timed(call: Callable[[], Any], repeat: int) -> tuple[dict[str, float], Any]:
    last = None
    for _ in range(2):
        last = call()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        last = call()
        samples.append((time.perf_counter() - t) * 1000)
    return stats(samples), last


def http_get(base: str, token: str, path: str, params: dict[str, Any]) -> Any:
    url = f"{base}/durable-jobs{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def cases(total: int, dag_filter: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, query parameters) of every page measured, for a user who reads ``total`` records."""
    out: list[tuple[str, dict[str, Any]]] = []
    for limit in (50, 500):
        out += [
            (f"first page, limit {limit}", {"limit": limit, "offset": 0}),
            (f"middle page (offset {total // 2}), limit {limit}", {"limit": limit, "offset": total // 2}),
            (f"last page, limit {limit}", {"limit": limit, "offset": max(0, total - limit)}),
            (f"dag_id={dag_filter}, limit {limit}", {"limit": limit, "dag_id": dag_filter}),
            (f"system=yarn, limit {limit}", {"limit": limit, "system": "yarn"}),
            (f"phase=submitted, limit {limit}", {"limit": limit, "phase": "submitted"}),
            (f"outcome=failed, limit {limit}", {"limit": limit, "outcome": "failed"}),
        ]
    out.append(("outcome=failed, middle page, limit 50", {"limit": 50, "outcome": "failed", "offset": -1}))
    return out


def measure_http(
    af: AirflowEnv, user: str, password: Callable[[], str], dag_filter: str, repeat: int
) -> list[dict[str, Any]]:
    token = AirflowApi(af.base_url, user, password).token()
    total = http_get(af.base_url, token, "/api/records", {"limit": 1})["total"]
    failed = http_get(af.base_url, token, "/api/records", {"limit": 1, "outcome": "failed"})["total"]
    rows = []
    for name, params in cases(total, dag_filter):
        params = {**params, "offset": failed // 2} if params.get("offset") == -1 else params
        figures, body = timed(lambda p=params: http_get(af.base_url, token, "/api/records", p), repeat)
        rows.append(
            {
                "layer": "http",
                "user": user,
                "case": name,
                "params": params,
                "total": body["total"],
                "returned": len(body["records"]),
                "unreadable": sum(not r["readable"] for r in body["records"]),
                "with_links": sum(bool(r["links"]) for r in body["records"]),
                **figures,
            }
        )
    figures, body = timed(lambda: http_get(af.base_url, token, "/api/endpoints", {}), repeat)
    rows.append(
        {
            "layer": "http",
            "user": user,
            "case": "GET /api/endpoints",
            "params": {},
            "total": None,
            "returned": len(body["endpoints"]),
            **figures,
        }
    )
    return rows


def baseline_query(rev: str) -> Any:
    """``durable_jobs.ui.query`` as it was at git revision ``rev`` (a module of its own, beside the current one)."""
    import subprocess
    import types

    out = subprocess.run(
        ["git", "-C", str(HERE.parent), "show", f"{rev}:src/durable_jobs/ui/query.py"],
        capture_output=True,
        text=True,
        check=True,
    )
    module = types.ModuleType(f"durable_jobs_ui_query_at_{rev}")
    exec(compile(out.stdout, f"{rev}:src/durable_jobs/ui/query.py", "exec"), module.__dict__)
    return module


def measure_query(
    user: str, dags: set[str], dag_filter: str, repeat: int, layers: dict[str, Any]
) -> list[dict[str, Any]]:
    """The same pages at the query layer (``layers``: name -> a ``query`` module, measured in turns, so that the
    machine's load weighs the same on each): ``records`` then the API's items; ``endpoints``."""
    from airflow.utils.session import create_session

    from durable_jobs.ui import query
    from durable_jobs.ui.filters import Filters
    from durable_jobs.ui.rows import item

    rows = []
    with create_session() as session:
        total, _ = query.records(session, Filters(limit=1), dags)
        failed, _ = query.records(session, Filters.parse(limit=1, outcome="failed"), dags)
        for name, params in [*cases(total, dag_filter), ("GET /api/endpoints", {})]:
            params = {**params, "offset": failed // 2} if params.get("offset") == -1 else params
            calls = {}
            for layer, module in layers.items():

                def call(m: Any = module, p: dict[str, Any] = params) -> tuple[int | None, int]:
                    if not p:
                        return None, len(m.endpoints(m.active_records(session, dags)))
                    n, found = m.records(session, Filters.parse(**p), dags)
                    return n, len([item(r) for r in found])

                calls[layer] = call
            for layer, (figures, (n, returned)) in timed_turns(calls, repeat).items():
                row = {"layer": layer, "user": user, "case": name, "params": params, "total": n, "returned": returned}
                rows.append({**row, **figures})
    return rows


def timed_turns(calls: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[dict[str, float], Any]]:
    """:func:`timed` for several calls, one of each in turn (the order turning too)."""
    last: dict[str, Any] = {}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for n in range(repeat + 2):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            t = time.perf_counter()
            last[name] = calls[name]()
            if n >= 2:
                samples[name].append((time.perf_counter() - t) * 1000)
    return {name: (stats(samples[name]), last[name]) for name in calls}


def explain(dags: set[str], offset: int, layers: dict[str, Any]) -> dict[str, str]:
    """EXPLAIN ANALYZE of the count and page statements the records API sends (admin's DAGs): the middle page,
    and the outcome filter's first page."""
    from airflow.utils.session import create_session
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    from durable_jobs.ui.filters import Filters

    class Recorder:
        """A session that keeps the statements it runs."""

        def __init__(self, session: Any) -> None:
            self.session = session
            self.statements: list[Any] = []

        def scalar(self, stmt: Any) -> Any:
            self.statements.append(stmt)
            return self.session.scalar(stmt)

        def execute(self, stmt: Any) -> Any:
            self.statements.append(stmt)
            return self.session.execute(stmt)

    plans = {}
    for (layer, module), (name, filters) in (
        (lm, nf)
        for lm in layers.items()
        for nf in (
            (f"offset {offset}", Filters(limit=50, offset=offset)),
            ("outcome=failed", Filters.parse(limit=50, outcome="failed")),
        )
    ):
        with create_session() as session:
            recorder = Recorder(session)
            module.records(recorder, filters, dags)
            for i, stmt in enumerate(recorder.statements):
                sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
                plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars().all()
                plans[f"{layer}, {name}: statement {i + 1}"] = sql + "\n---\n" + "\n".join(plan)
    return plans


def print_table(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["case"]) for r in rows)
    lw = max(len(r["layer"]) for r in rows)
    print(f"{'layer':{lw}} {'user':10} {'case':{width}} {'total':>6} {'rows':>5} {'median ms':>10} {'p95 ms':>8}")
    for r in rows:
        total = "" if r["total"] is None else r["total"]
        print(
            f"{r['layer']:{lw}} {r['user']:10} {r['case']:{width}} {total:>6} {r['returned']:>5} "
            f"{r['median_ms']:>10.1f} {r['p95_ms']:>8.1f}"
        )


def compare(before: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row beside the same case of an earlier report (``--compare``): median and p95, before and now."""
    old = {(r["layer"], r["user"], r["case"]): r for r in before["rows"]}
    out = []
    for r in rows:
        b = old.get((r["layer"], r["user"], r["case"]))
        if b is not None:
            out.append(
                {
                    "layer": r["layer"],
                    "user": r["user"],
                    "case": r["case"],
                    "before_median_ms": b["median_ms"],
                    "before_p95_ms": b["p95_ms"],
                    "median_ms": r["median_ms"],
                    "p95_ms": r["p95_ms"],
                }
            )
    width = max(len(c["case"]) for c in out) if out else 10
    print(f"{'layer':6} {'user':10} {'case':{width}} {'before median/p95 ms':>21} {'now median/p95 ms':>18}")
    for c in out:
        was, now = (
            f"{c['before_median_ms']:.0f} / {c['before_p95_ms']:.0f}",
            f"{c['median_ms']:.0f} / {c['p95_ms']:.0f}",
        )
        print(f"{c['layer']:6} {c['user']:10} {c['case']:{width}} {was:>21} {now:>18}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000, help="records to seed (default 10,000)")
    parser.add_argument("--dags", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20, help="measured requests per case (after 2 unmeasured)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--label", default="", help="a label kept in the JSON (e.g. before/after a change)")
    parser.add_argument(
        "--baseline", help="a git revision: its query.py is measured too, in turns with the current one"
    )
    parser.add_argument("--compare", type=Path, help="an earlier report: its figures are printed beside these")
    args = parser.parse_args()
    per_run = len(PLAIN) + MAPS
    runs_per_dag = max(1, args.records // (per_run * args.dags))
    dag_ids = [f"{DAG_PREFIX}{i:02d}" for i in range(args.dags)]
    restricted = set(dag_ids[:3])
    dags_dir = Path(tempfile.mkdtemp(prefix="durable-jobs-ui-bench-"))
    (dags_dir / "ui_bench_dags.py").write_text(DAG_FILE.format(dags=args.dags, prefix=DAG_PREFIX, maps=MAPS))
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": "durable_jobs_harness.dag_auth.DagListAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{RESTRICTED}:viewer",
        "DURABLE_JOBS_HARNESS_DAG_ACCESS": json.dumps({RESTRICTED: sorted(restricted)}),
    }
    af = AirflowEnv(dags_dir, env=env, database="postgres")
    report: dict[str, Any] = {"label": args.label, "bar_ms": BAR_MS, "repeat": args.repeat}
    try:
        t = time.monotonic()
        af.start()
        af.wait_dags(dag_ids)
        report["airflow_start_seconds"] = round(time.monotonic() - t, 1)
        for name in ("scheduler", "triggerer", "dag-processor"):  # the api-server alone; nothing moves the rows
            af.kill(name, signal.SIGTERM)
            af.wait_exited(name)
        # this process reads the same metadata DB (the seeding, the query layer)
        os.environ.update({k: v for k, v in af.env.items() if k.startswith("AIRFLOW")})
        report["seed"] = seed(dag_ids, runs_per_dag, args.seed)
        print(f"seeded {report['seed']}", flush=True)
        passwords = json.loads(af.password_file.read_text())
        from durable_jobs.ui import query

        layers = {
            "query": query,
            **({f"query@{args.baseline}": baseline_query(args.baseline)} if args.baseline else {}),
        }
        rows = []
        for user, dags in (("admin", set(dag_ids)), (RESTRICTED, restricted)):
            rows += measure_http(af, user, lambda u=user: str(passwords[u]), dag_ids[1], args.repeat)
            rows += measure_query(user, dags, dag_ids[1], args.repeat, layers)
        report["rows"] = rows
        report["explain"] = explain(set(dag_ids), report["seed"]["records"] // 2, layers)
    finally:
        af.stop()
        shutil.rmtree(dags_dir, ignore_errors=True)
    report["slowest_ms"] = max(r["p95_ms"] for r in rows)
    report["under_bar"] = report["slowest_ms"] < BAR_MS
    print_table(rows)
    if args.compare is not None:
        before = json.loads(args.compare.read_text())
        report["compare"] = {
            "before": str(args.compare),
            "before_label": before.get("label"),
            "rows": compare(before, rows),
        }
    print(f"slowest p95: {report['slowest_ms']} ms (bar {BAR_MS:.0f} ms): {'OK' if report['under_bar'] else 'OVER'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    if not report["under_bar"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
