"""The crash matrix's Airflow DAGs for Kubernetes (``e2e_kubernetes_<scenario>``): batch/v1 Jobs on the fake apiserver.

Each task runs a Job whose container runs ``sh -c "sleep N; exit C"`` (the fake's kubelet runs it at real
speed). ``e2e_kubernetes_overload`` maps one task over 50 jobs, with a worker killed at ``after_submit`` in
five of them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from e2e_common import POLL_INTERVAL, Crashing, enabled, scenario_dag, scenarios

from durable_jobs.operators.kubernetes import KubernetesJobOperator

CONN_ID = "kubernetes_e2e"
OVERLOAD_TASKS = 50
OVERLOAD_CRASHED = [3, 14, 25, 36, 47]  # map indexes whose first try dies at after_submit
OVERLOAD_SECONDS = 75


class CrashingKubernetesJobOperator(Crashing, KubernetesJobOperator):
    """The Job operator with per-task fail-points; the container's exit code may differ on try 1."""

    def __init__(self, *, seconds: float, exit_code: int = 0, **kwargs: Any) -> None:
        self.seconds = seconds
        self.job_exit_code = exit_code
        super().__init__(image="busybox:1.36", cmds=["sh", "-c"], arguments=[self._script(exit_code)], **kwargs)

    def _script(self, exit_code: int) -> str:
        return f"sleep {self.seconds:g}; exit {exit_code}"

    def build_manifest(self, context: Any) -> Any:
        self.arguments = [self._script(self.exit_code(context, self.job_exit_code))]
        return super().build_manifest(context)


def make_task(
    task_id: str,
    *,
    seconds: float,
    exit_code: int,
    first_try_exit_code: int | None,
    failpoints: str,
    poll_interval: float,
    job_timeout: timedelta,
) -> CrashingKubernetesJobOperator:
    return CrashingKubernetesJobOperator(
        task_id=task_id,
        conn_id=CONN_ID,
        seconds=seconds,
        exit_code=exit_code,
        first_try_exit_code=first_try_exit_code,
        failpoints=failpoints,
        backoff_limit=0,
        poll_interval=poll_interval,
        job_timeout=job_timeout,
    )


scenarios("kubernetes", make_task)

if enabled("kubernetes"):
    # overload: 50 mapped tasks deferred at once; 5 workers die after submit; a triggerer is killed meanwhile
    with scenario_dag("kubernetes", "overload", retries=3, max_active_tasks=OVERLOAD_TASKS):
        CrashingKubernetesJobOperator.partial(
            task_id="job",
            conn_id=CONN_ID,
            seconds=OVERLOAD_SECONDS,
            failpoints="after_submit=exit",
            failpoint_map_indexes=OVERLOAD_CRASHED,
            backoff_limit=0,
            poll_interval=POLL_INTERVAL,
            job_timeout=timedelta(minutes=15),
        ).expand(name=[f"load-{i}" for i in range(OVERLOAD_TASKS)])
