"""Deferred task instances for benchmarks/real_triggerer.py, written straight into a real Airflow 3.3 metadata DB.

Two steps, each its own process, because the providers' triggers only import in ``build/bench-venv``:

    python benchmarks/real_triggerer_seed.py kwargs SPEC.json OUT.jsonl   # in the system's venv
    python benchmarks/real_triggerer_seed.py seed SPEC.json IN.jsonl      # in the project's venv

``kwargs`` builds every trigger as its operator's ``execute()`` does before ``defer()`` (the same class and
arguments), and stores what the task runner's ``_defer_task`` sends: ``trigger.serialize()``, its kwargs and
the ``defer(kwargs=...)`` passed through ``airflow.sdk.serde.serialize``, the method name and the timeout.
``seed`` then does what the Execution API's defer route does with that message, for N mapped task instances of
one task of the benchmark DAG (already serialized by ``airflow dags reserialize``): one ``Trigger`` row each
with ``encrypted_kwargs = json.dumps(kwargs)`` (plaintext, as the route stores a worker's deferral), and the
task instance in state ``deferred`` with ``trigger_id``, ``next_method``, ``next_kwargs`` and
``trigger_timeout = now + timeout``. It also writes the connection the kwargs name into the ``connection``
table, so that the triggerer fetches it through its supervisor as it would in production.

Standard library and Airflow only; the library under test is imported only to build its own triggers.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

DAG_ID = "dj_bench_real_triggerer"
DAY = 86400.0

# --- what each operator defers with ---------------------------------------------------------------------------


def _durable_spark(spec: dict[str, Any], i: int) -> tuple[Any, dict[str, Any], float | None]:
    from durable_jobs.record import make_token
    from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger

    interval = float(spec["interval"])
    # DurableJobOperator._trigger / _defer_timeout: the record's absolute deadline (1 day, the default
    # job_timeout, anchored at submission), padded by max(60 s, 2 intervals) for Airflow's own timeout
    deadline = spec["now"] + DAY
    token = make_token(DAG_ID, spec["run_id"], spec["task_id"], i, 0)
    trigger = SparkStandaloneTrigger(
        job={"driver_id": spec["ids"][i]},
        conn_id=spec["conn_id"],
        token=token,
        generation=0,
        poll_interval=interval,
        deadline=deadline,
        unknown_budget=1800.0,
        lost_confirmations=3,
    )
    return trigger, {"generation": 0, "token": token}, deadline - spec["now"] + max(60.0, 2 * interval)


def _floor(spec: dict[str, Any], i: int) -> tuple[Any, dict[str, Any], float | None]:
    """DateTimeSensorAsync.execute(): ``DateTimeTrigger(moment=..., end_from_trigger=False)``, no timeout."""
    import datetime

    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    when = spec["now"] + (spec["ends"][i] if spec.get("ends") and spec["ends"][i] is not None else 365 * DAY)
    moment = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
    return DateTimeTrigger(moment=moment, end_from_trigger=False), {}, None


def _livy(spec: dict[str, Any], i: int) -> tuple[Any, dict[str, Any], float | None]:
    """LivyOperator.execute() (apache-livy 4.6.4), deferrable, no execution_timeout."""
    from airflow.providers.apache.livy.triggers.livy import LivyTrigger

    trigger = LivyTrigger(
        batch_id=spec["ids"][i],
        spark_params={"file": "file:/opt/spark-apps/sleep-exit.jar", "class_name": "demo.SleepExit"},
        livy_conn_id=spec["conn_id"],
        polling_interval=int(spec["interval"]),
        extra_options={},
        extra_headers={},
        execution_timeout=None,
    )
    return trigger, {}, None


def _kube_pod(spec: dict[str, Any], i: int) -> tuple[Any, dict[str, Any], float | None]:
    """KubernetesPodOperator.invoke_defer_method() (cncf-kubernetes 10.25.0): the connection's extras are copied
    into the kwargs; ``on_finish_action="keep_pod"`` and ``log_events_on_startup=False`` as in make bench (the
    fake serves no events API; the operator deletes the pod after the event)."""
    import datetime

    from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

    trigger = KubernetesPodTrigger(
        pod_name=spec["ids"][i],
        pod_namespace=spec["namespace"],
        trigger_start_time=datetime.datetime.now(tz=datetime.timezone.utc),
        kubernetes_conn_id=spec["conn_id"],
        connection_extras=spec["conn"]["extra"],
        cluster_context=None,
        config_dict=None,
        in_cluster=None,
        poll_interval=float(spec["interval"]),
        get_logs=True,
        startup_timeout=120,
        startup_check_interval=5,
        log_events_on_startup=False,
        schedule_timeout=120,
        base_container_name="base",
        on_finish_action="keep_pod",
        on_kill_action="delete_pod",
        termination_grace_period=None,
        last_log_time=None,
        logging_interval=None,
        trigger_kwargs={},
    )
    return trigger, {}, None


def _emr_step(spec: dict[str, Any], i: int) -> tuple[Any, dict[str, Any], float | None]:
    """EmrStepSensor(deferrable=True).execute() (amazon 9.39.0)."""
    from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger

    attempts = 100_000
    trigger = EmrStepSensorTrigger(
        job_flow_id=spec["cluster_ids"][i],
        step_id=spec["ids"][i],
        waiter_delay=int(spec["interval"]),
        waiter_max_attempts=attempts,
        aws_conn_id=spec["conn_id"],
        region_name=None,
        verify=None,
        botocore_config=None,
    )
    return trigger, {}, attempts * float(spec["interval"])


BUILDERS: dict[str, Callable[[dict[str, Any], int], tuple[Any, dict[str, Any], float | None]]] = {
    "durable-spark": _durable_spark,
    "durable-spark-envconn": _durable_spark,
    "floor": _floor,
    "floor-near": _floor,
    "livy": _livy,
    "kube-pod": _kube_pod,
    "emr-step": _emr_step,
}


def build_kwargs(spec: dict[str, Any], out: Path) -> None:
    from airflow.sdk.serde import serialize

    build = BUILDERS[spec["system"]]
    with out.open("w") as fh:
        for i in range(int(spec["n"])):
            trigger, next_kwargs, timeout = build(spec, i)
            classpath, kwargs = trigger.serialize()
            row = [classpath, serialize(kwargs), "execute_complete", serialize(next_kwargs), timeout]
            fh.write(json.dumps(row) + "\n")


# --- the rows -------------------------------------------------------------------------------------------------


def _rows(path: Path) -> Iterator[list[Any]]:
    with path.open() as fh:
        for line in fh:
            yield json.loads(line)


def reset(session: Any) -> None:
    """Remove what an earlier run of the benchmark left: its dag runs (task instances cascade) and triggers."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from sqlalchemy import delete

    session.execute(delete(TaskInstance).where(TaskInstance.dag_id == DAG_ID))
    session.execute(delete(DagRun).where(DagRun.dag_id == DAG_ID))
    session.execute(delete(Trigger))
    session.commit()


def put_connection(session: Any, conn_id: str, conn: dict[str, Any]) -> None:
    from airflow.models.connection import Connection
    from sqlalchemy import delete

    session.execute(delete(Connection).where(Connection.conn_id == conn_id))
    session.add(
        Connection(
            conn_id=conn_id,
            conn_type=conn["conn_type"],
            host=conn.get("host"),
            port=conn.get("port"),
            schema=conn.get("schema"),
            login=conn.get("login"),
            password=conn.get("password"),
            extra=json.dumps(conn.get("extra") or {}),
        )
    )
    session.commit()


def seed(spec: dict[str, Any], rows_path: Path) -> dict[str, Any]:
    """One dag run, N deferred mapped task instances of ``spec['task_id']``, N trigger rows; returns timings."""
    import uuid6
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import func, insert, select

    started = time.monotonic()
    n, task_id, run_id = int(spec["n"]), spec["task_id"], spec["run_id"]
    with create_session() as session:
        if spec.get("reset", True):
            reset(session)
        if spec.get("conn"):
            put_connection(session, spec["conn_id"], spec["conn"])
        dag = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
        if dag is None:
            raise SystemExit(f"{DAG_ID} is not serialized: run `airflow dags reserialize` first")
        now = timezone.utcnow()
        dag.create_dagrun(
            run_id=run_id,
            logical_date=None,
            run_after=now,
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST,
            state=DagRunState.RUNNING,
            start_date=now,
            session=session,
        )
        session.flush()
        # the run's task instances as create_dagrun made them: the mapped task has one row (map_index -1)
        template = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        ).one()
        base = {
            c.key: getattr(template, c.key)
            for c in TaskInstance.__mapper__.column_attrs
            if c.key not in ("id", "map_index", "state", "trigger_id", "next_method", "next_kwargs", "trigger_timeout")
        }
        # the other tasks of the benchmark DAG stay out of the way (nothing schedules them: no scheduler runs)
        session.delete(template)
        session.flush()
        rows = list(_rows(rows_path))
        if len(rows) != n:
            raise SystemExit(f"{rows_path} has {len(rows)} triggers, expected {n}")
        created = timezone.utcnow()
        trigger_ids = session.scalars(
            insert(Trigger).returning(Trigger.id),
            [
                {
                    "classpath": r[0],
                    "encrypted_kwargs": json.dumps(r[1]),
                    "created_date": created,
                    "queue": spec.get("queue"),
                }
                for r in rows
            ],
        ).all()
        tis = []
        for i, (r, trigger_id) in enumerate(zip(rows, trigger_ids, strict=True)):
            timeout = None if r[4] is None else now + timedelta(seconds=float(r[4]))
            tis.append(
                {
                    **base,
                    "id": uuid6.uuid7(),
                    "map_index": i,
                    "try_number": 1,
                    "state": TaskInstanceState.DEFERRED,
                    "start_date": now,
                    "trigger_id": trigger_id,
                    "next_method": r[2],
                    "next_kwargs": r[3],
                    "trigger_timeout": timeout,
                    "queue": spec.get("queue") or base.get("queue"),
                }
            )
        session.execute(insert(TaskInstance), tis)
        session.commit()
        deferred = session.scalar(
            select(func.count())
            .select_from(TaskInstance)
            .where(TaskInstance.run_id == run_id, TaskInstance.state == TaskInstanceState.DEFERRED)
        )
    return {
        "seed_seconds": round(time.monotonic() - started, 2),
        "deferred": deferred,
        "trigger_ids": [min(trigger_ids), max(trigger_ids)],
    }


def main() -> None:
    mode, spec_path, data = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spec = json.loads(spec_path.read_text())
    if mode == "kwargs":
        build_kwargs(spec, data)
        print(json.dumps({"kwargs": str(data)}))
    elif mode == "seed":
        print(json.dumps(seed(spec, data)))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
