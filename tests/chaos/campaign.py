"""One chaos campaign end to end: the endpoints, their fault proxies, a real Airflow on PostgreSQL with two
triggerers, waves of mapped tasks, the nemesis, the heal, the settle, the checker and the report.

Settings come from the environment (``make chaos`` sets 30 minutes; the test's default is the 5-minute CI smoke):

* ``DURABLE_JOBS_CHAOS_MINUTES``: how long the nemesis runs (default 5);
* ``DURABLE_JOBS_CHAOS_SEED``: the schedule's seed (default: a fresh random one, printed and reported);
* ``DURABLE_JOBS_CHAOS_DB``: ``postgres`` (default) or ``sqlite``;
* ``DURABLE_JOBS_CHAOS_REPORT``: the report's path (default ``build/chaos-report.json``).

A wave triggers one run of each DAG (``dags/chaos_dags.py``: 4 Spark and 8 Kubernetes map indexes): every minute
in a run of up to 10 minutes, every 2 minutes in a longer one, until 60% of the fault window, so that the last
jobs can end while the faults go on (the 5-minute smoke: 4 waves, 48 tasks; 30 minutes: 10 waves, 120 tasks).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from durable_jobs_harness.airflow_env import AirflowEnv
from durable_jobs_harness.fault_proxy import FaultProxy

from ..e2e.conftest import database_name
from ..e2e.systems import E2ESystem
from ..e2e.systems.kubernetes import KubernetesSystem
from ..e2e.systems.spark import SparkSystem
from . import report
from .checker import Run, check, wait_settled
from .nemesis import Deployment, Nemesis, env_seed, faketime_env, plan, set_clock

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
E2E_DAGS = REPO / "tests" / "e2e" / "dags"  # e2e_spark_ops (the test driver's Spark conf), on the components' path
DAG_IDS = {"spark": "chaos_spark", "kubernetes": "chaos_kubernetes"}
HEARTBEAT_TIMEOUT = 90  # [scheduler] task_instance_heartbeat_timeout: a SIGKILLed runner's try fails after this
JWT_LEEWAY = 90  # [api_auth] jwt_leeway: above the largest clock jump (nemesis.CLOCK_OFFSETS)
# [scheduler] orphaned_tasks_check_interval (default 300 s): how often a scheduler resets the queued and running task
# instances of a dead scheduler. Only the scheduler that queued a task instance fails it on a missing heartbeat, so
# after a scheduler SIGKILL its tasks wait for this reset (a CI smoke at the default, seed 2707125947, left 17 task
# instances queued or running past a 180 s settle). Airflow's recovery time, not what the campaign probes.
ORPHAN_CHECK_INTERVAL = 20
# [scheduler] task_queued_timeout (default 600 s) and its check interval (default 120 s): a live scheduler requeues
# a task instance whose workload its executor lost (a LocalExecutor worker SIGKILLed as it took the workload) only
# after this (a CI smoke, seed 1777251103, left one queued past a 6-minute settle). It also bounds the workload
# JWT's life, so it stays above the longest queue wait a smoke sees.
QUEUED_TIMEOUT = 150
QUEUED_CHECK_INTERVAL = 15


@dataclass(frozen=True)
class Settings:
    minutes: float
    seed: int
    database: str
    report: Path
    spark_tasks: int = 4
    kube_tasks: int = 8
    triggerers: int = 2

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    @property
    def wave_every(self) -> float:
        return 60.0 if self.minutes <= 10 else 120.0

    @property
    def wave_times(self) -> list[float]:
        last = 0.6 * self.seconds
        return [i * self.wave_every for i in range(int(last // self.wave_every) + 1)]

    @property
    def settle(self) -> float:
        """How long the checker waits for the runs to finish once every fault healed."""
        return 360.0 if self.minutes <= 10 else 900.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            minutes=float(environ.get("DURABLE_JOBS_CHAOS_MINUTES") or 5),
            seed=env_seed(environ.get("DURABLE_JOBS_CHAOS_SEED")),
            database=environ.get("DURABLE_JOBS_CHAOS_DB") or "postgres",
            report=Path(environ.get("DURABLE_JOBS_CHAOS_REPORT") or REPO / "build" / "chaos-report.json"),
        )


def _spark_env(system: SparkSystem, rest: FaultProxy, ui: FaultProxy) -> dict[str, str]:
    """The Spark connection through its proxies (the REST port and the master UI's)."""
    env = system.airflow_env()
    key = f"AIRFLOW_CONN_{system.conn_id.upper()}"
    conn = json.loads(env[key])
    conn["port"] = rest.port
    conn["extra"]["master_ui_urls"] = f"http://127.0.0.1:{ui.port}"
    return {**env, key: json.dumps(conn)}


def _kube_env(system: KubernetesSystem, proxy: FaultProxy, root: Path) -> dict[str, str]:
    """The Kubernetes connection through its proxy: a copy of the fake's kubeconfig naming the proxy's port."""
    config = yaml.safe_load(system.kubeconfig.read_text("utf-8"))
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = root / "kubeconfig-proxied.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    env = system.airflow_env()
    key = f"AIRFLOW_CONN_{system.conn_id.upper()}"
    conn = json.loads(env[key])
    conn["extra"]["kube_config_path"] = str(path)
    return {**env, key: json.dumps(conn)}


def say(line: str) -> None:
    print(line, flush=True)  # a campaign's log is followed live (tail -f), also when stdout is a file


def run(settings: Settings, root: Path | None = None, log: Callable[[str], None] = say) -> dict[str, Any]:
    """Run one campaign; return the report (also written to ``settings.report``)."""
    root = root or Path(tempfile.mkdtemp(prefix="durable-jobs-chaos-")).resolve()
    log(f"[chaos] seed {settings.seed}, {settings.minutes:g} minutes, {settings.database}; files in {root}")
    timings: dict[str, float] = {}
    started = time.monotonic()
    spark, kube = SparkSystem(), KubernetesSystem()
    systems: dict[str, E2ESystem] = {"spark": spark, "kubernetes": kube}
    proxies: dict[str, list[FaultProxy]] = {}
    af: AirflowEnv | None = None
    clock = root / "faketime"
    set_clock(clock, 0)
    try:
        for system in systems.values():
            system.start(root / "systems")
        assert spark.cluster is not None
        ui_port = int(urlparse(spark.cluster.master_ui_url).port or 0)
        proxies["spark"] = [
            FaultProxy(spark.cluster.ports.rest, http=True).start(),
            FaultProxy(ui_port, http=True).start(),
        ]
        proxies["kubernetes"] = [FaultProxy(int(urlparse(kube.url).port or 0), http=False).start()]
        env = {
            "AIRFLOW__CORE__PARALLELISM": "10",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": str(ORPHAN_CHECK_INTERVAL),
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": str(QUEUED_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": str(QUEUED_CHECK_INTERVAL),
            # the api-server accepts the workers' JWTs from a clock up to this far ahead (default 10 s): past it every
            # task start during a forward jump fails "Invalid auth token", Airflow's check, not what the campaign probes
            "AIRFLOW__API_AUTH__JWT_LEEWAY": str(JWT_LEEWAY),
            "DURABLE_JOBS_CHAOS_SPARK_TASKS": str(settings.spark_tasks),
            "DURABLE_JOBS_CHAOS_KUBE_TASKS": str(settings.kube_tasks),
            "PYTHONPATH": os.pathsep.join(p for p in (str(E2E_DAGS), os.environ.get("PYTHONPATH", "")) if p),
            **_spark_env(spark, *proxies["spark"]),
            **_kube_env(kube, proxies["kubernetes"][0], root),
        }
        af = AirflowEnv(
            DAGS,
            home=root / "airflow",
            env=env,
            database=settings.database,
            component_env={"scheduler": faketime_env(clock)},
        )
        af.start()
        while len(af.triggerers()) < settings.triggerers:
            af.start_triggerer()
        af.wait_dags(list(DAG_IDS.values()))
        timings["start"] = time.monotonic() - started
        faults = plan(settings.seed, settings.seconds)
        log(f"[chaos] Airflow ready in {timings['start']:.0f}s at {af.base_url}; {len(faults)} faults planned")
        deployment = Deployment(af, systems, proxies, clock, triggerers=settings.triggerers)
        nemesis = Nemesis(faults, deployment, log)
        runs: list[Run] = []
        waves = list(settings.wave_times)
        while nemesis.now() < settings.seconds:
            if waves and waves[0] <= nemesis.now():
                waves.pop(0)
                for name, dag_id in DAG_IDS.items():
                    run_id = af.api.trigger(dag_id)
                    runs.append(Run(name, dag_id, run_id))
                    deployment.runs.append((dag_id, run_id))
                log(f"[chaos] {nemesis.now():7.1f}s wave {len(runs) // len(DAG_IDS)} triggered")
            nemesis.step()
            due = min(nemesis.next_due(), waves[0] if waves else float("inf"), settings.seconds)
            time.sleep(min(1.0, max(0.05, due - nemesis.now())))
        nemesis.heal_all()
        timings["faults"] = nemesis.now()
        log(f"[chaos] {nemesis.now():7.1f}s every fault healed; settling")
        timings["settle"] = wait_settled(af, runs, settings.settle, log)
        check_started = time.monotonic()
        findings = check(af, systems, runs, log=log)
        timings["check"] = time.monotonic() - check_started
        timings["total"] = time.monotonic() - started
        return report.write(
            settings.report,
            seed=settings.seed,
            minutes=settings.minutes,
            database=database_name(af),
            waves=len(runs) // len(DAG_IDS),
            faults=nemesis.done,
            findings=findings,
            timings=timings,
            settings={k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
            | {"heartbeat_timeout": HEARTBEAT_TIMEOUT, "jwt_leeway": JWT_LEEWAY, "wave_every": settings.wave_every}
            | {"orphan_check_interval": ORPHAN_CHECK_INTERVAL, "queued_timeout": QUEUED_TIMEOUT}
            | {"root": str(root)},
        )
    finally:
        if af is not None:
            af.stop(keep_home=True)
        for group in proxies.values():
            for proxy in group:
                proxy.stop()
        for system in systems.values():
            system.stop()
