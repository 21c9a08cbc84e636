"""Spark standalone: a real master and worker from the pyspark package, and a small JVM test driver.

Submissions are counted on the master: every driver's launch command (in the worker's work dir) carries
``-Dspark.durable_jobs.submission_tag=<token>``. Pausing the endpoint SIGSTOPs the master JVM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from durable_jobs.clients.spark_standalone import TOKEN_PROPERTY
from durable_jobs_harness.spark_cluster import SparkCluster, build_test_apps

from . import E2ESystem, Job, tokens_of

TOKEN_RE = re.compile(rf"-D{re.escape(TOKEN_PROPERTY)}=(dj[0-9a-f]{{20}})")
ACTIVE = frozenset({"SUBMITTED", "RUNNING", "RELAUNCHING", "UNKNOWN"})


class SparkSystem(E2ESystem):
    name = "spark"
    conn_id = "spark_standalone_default"
    job_noun = "Spark driver"
    failure_detail = "Driver log: http"
    after_crash: ClassVar[dict[str, str]] = {
        "crash_before_intent": "No job recorded for",
        "crash_after_intent": "No job carries token",
        "crash_after_submit": "Adopted Spark driver driver-",
        "crash_after_persist": "Found Spark driver driver-",
        "crash_before_outcome": "Found Spark driver driver-",
    }

    def __init__(self) -> None:
        self.cluster: SparkCluster | None = None
        self.env: dict[str, str] = {}
        self._paused = False

    def start(self, root: Path) -> None:
        missing = [tool for tool in ("java", "javac", "jar") if shutil.which(tool) is None]
        if missing:
            raise RuntimeError(f"the Spark end-to-end tests need a JDK 17+: {', '.join(missing)} not on PATH")
        apps = build_test_apps(root / "apps")
        # worker cores are a scheduling number: enough that no driver waits for a slot while scenarios overlap
        self.cluster = SparkCluster(root / "spark", worker_cores=24, worker_memory="12g")
        self.cluster.start()
        conn = {
            "conn_type": "spark_standalone_rest",
            "host": "127.0.0.1",
            "port": self.cluster.ports.rest,
            # a short request timeout: a paused master shows up as failed polls within seconds
            "extra": {"master_ui_urls": self.cluster.master_ui_url, "timeout": 3},
        }
        self.env = {
            f"AIRFLOW_CONN_{self.conn_id.upper()}": json.dumps(conn),
            "DURABLE_JOBS_E2E_JAR": str(apps.jar),
            "DURABLE_JOBS_E2E_MAIN_CLASS": apps.main_class,
        }

    def stop(self) -> None:
        if self.cluster is None:
            return
        if self._paused:
            self.resume()
        self.cluster.stop()

    def airflow_env(self) -> dict[str, str]:
        return dict(self.env)

    def _cluster(self) -> SparkCluster:
        if self.cluster is None:
            raise RuntimeError("the Spark cluster is not started")
        return self.cluster

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        cluster = self._cluster()
        tokens = tokens_of(dag_id, run_id, task_keys)
        state = cluster.json_state()
        out: list[Job] = []
        for d in (*state.get("activedrivers", ()), *state.get("completeddrivers", ())):
            driver_id, driver_state = str(d.get("id")), str(d.get("state"))
            match = TOKEN_RE.search(cluster.driver_log(driver_id, "stderr"))
            if match and match[1] in tokens:
                task_id, map_index, gen = tokens[match[1]]
                active = driver_state in ACTIVE
                out.append(Job(driver_id, driver_state, task_id, map_index, gen, active, driver_state == "KILLED"))
        return sorted(out, key=lambda j: j.id)

    def unattributed(self) -> list[str]:
        """Drivers without a launch command yet (waiting for a worker): not attributable until placed."""
        cluster = self._cluster()
        active = cluster.json_state().get("activedrivers", ())
        return [str(d.get("id")) for d in active if not cluster.driver_log(str(d.get("id")))]

    def _signal_master(self, sig: signal.Signals) -> None:
        pid = self._cluster().master_pid
        if pid is None:
            raise RuntimeError("the Spark master is not running")
        os.kill(pid, sig)

    def pause(self) -> None:
        self._signal_master(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self._signal_master(signal.SIGCONT)
        self._paused = False

    def logs_tail(self, lines: int = 30) -> str:
        return self.cluster.logs_tail(lines) if self.cluster is not None else ""


SYSTEM = SparkSystem
