"""Spark standalone HA: two masters recovering through a real ZooKeeper, one worker on both (issue 15, item 6).

Not in the standard matrix (``matrix = False``): the session starts it and gives every Airflow component its
connection (both masters' REST servers and UIs), and ``tests/e2e/test_spark_ha.py`` runs its own scenarios,
which SIGKILL the active master. Jobs are read like :class:`~.spark.SparkSystem`'s, from the active master,
plus the drivers of the worker's work dir that no master lists any more (a master that took over does not know
the drivers that ended before it did): those count as active only while a process still runs in their dir.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from durable_jobs_harness.spark_cluster import SparkHACluster, build_test_apps
from durable_jobs_harness.spark_cluster.cluster import processes_with_cwd_under

from ..dags.e2e_spark_ha_plan import CONN_ID, SCENARIOS, SYSTEM
from . import Job, tokens_of
from .spark import TOKEN_RE, SparkSystem

#: what a driver that no master lists is called in the report
FORGOTTEN = "FORGOTTEN"


class SparkHASystem(SparkSystem):
    name = SYSTEM
    conn_id = CONN_ID
    matrix = False
    extra_scenarios = SCENARIOS

    cluster: SparkHACluster | None  # type: ignore[assignment]

    def start(self, root: Path) -> None:
        apps = build_test_apps(root / "spark_ha_apps")
        self.cluster = SparkHACluster(root / "spark_ha", worker_cores=12, worker_memory="6g")
        self.cluster.start()
        conn = {
            "conn_type": "spark_standalone_rest",
            "host": ",".join(self.cluster.rest_urls),
            # a dead master refuses at once; a master just restarted as the standby (a cold JVM on a busy host)
            # may take seconds to say "not alive", and a create that times out after sending costs the try
            "extra": {"master_ui_urls": ",".join(self.cluster.ui_urls), "timeout": 10},
        }
        self.env = {
            f"AIRFLOW_CONN_{self.conn_id.upper()}": json.dumps(conn),
            "DURABLE_JOBS_E2E_SPARK_HA_JAR": str(apps.jar),
            "DURABLE_JOBS_E2E_SPARK_HA_MAIN_CLASS": apps.main_class,
        }

    def ha(self) -> SparkHACluster:
        if self.cluster is None:
            raise RuntimeError("the Spark HA cluster is not started")
        return self.cluster

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        out = {j.id: j for j in super().jobs(dag_id, run_id, task_keys)}
        cluster = self.ha()
        tokens = tokens_of(dag_id, run_id, task_keys)
        for driver_dir in sorted(cluster.work_dir.glob("driver-*")):
            match = TOKEN_RE.search(cluster.driver_log(driver_dir.name, "stderr"))
            if driver_dir.name in out or not match or match[1] not in tokens:
                continue
            task_id, map_index, gen = tokens[match[1]]
            running = bool(processes_with_cwd_under(driver_dir))
            out[driver_dir.name] = Job(driver_dir.name, "RUNNING" if running else FORGOTTEN, task_id, map_index, gen,
                                       running, False)  # fmt: skip
        return sorted(out.values(), key=lambda j: j.id)

    def pause(self) -> None:
        """SIGSTOP the active master (the standby stays up: ZooKeeper then hands it the leadership)."""
        cluster = self.ha()
        name = cluster.active_master()
        pid = cluster.pid_of(name) if name else None
        if pid is None:
            raise RuntimeError("no Spark master is ALIVE")
        os.kill(pid, signal.SIGSTOP)
        self._paused_pid: int | None = pid
        self._paused = True

    def resume(self) -> None:
        pid, self._paused_pid = getattr(self, "_paused_pid", None), None
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self._paused = False


SYSTEM = SparkHASystem
