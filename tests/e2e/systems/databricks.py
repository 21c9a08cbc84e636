"""Databricks: the contract fake workspace (Jobs API 2.2) in its own process, with runs that live by the clock.

:class:`~durable_jobs_harness.databricks_process.DatabricksProcess` runs ``python -m
durable_jobs_harness.fake_databricks serve`` on 127.0.0.1 with a PAT. The DAGs' runs are one-time runs
(``runs/submit``) whose Python task carries the fake's script ``durable-fake:<seconds>s:<result>``: pending,
running for that long, then terminated with that result; a cancel ends it ``CANCELED``. Every Airflow
component gets the connection ``databricks_e2e`` (the PAT in its password; the trigger kwargs carry the
``conn_id`` only).

Runs are counted from the fake's unauthenticated admin listener (``GET /runs``: every run, deleted and
forgotten ones included, with the idempotency token it was created with), never through our client, and
attributed by that token. Pausing the endpoint SIGSTOPs the fake's process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from durable_jobs_harness.databricks_process import DatabricksProcess

from . import Job, tokens_of
from .served import ServedFakeSystem

# life cycle states after which a run changes no more (INTERNAL_ERROR and SKIPPED end a run without TERMINATED)
TERMINAL = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
KIND = "Databricks run"  # how our log lines name a run: the client's describe()


class DatabricksSystem(ServedFakeSystem[DatabricksProcess]):
    name = "databricks"
    conn_id = "databricks_e2e"
    job_noun = KIND
    after_crash: ClassVar[dict[str, str]] = {
        "crash_before_intent": "No job recorded for",
        # find re-sends the request with the intent's token: Databricks (the fake) starts the run then, or
        # answers the one it holds, so the run is adopted either way
        "crash_after_intent": f"Adopted {KIND} ",
        "crash_after_submit": f"Adopted {KIND} ",
        "crash_after_persist": f"Found {KIND} ",
        "crash_before_outcome": f"Found {KIND} ",
    }

    def launch(self, run_dir: Path) -> DatabricksProcess:
        return DatabricksProcess(run_dir).start()

    def connection(self) -> dict[str, Any]:
        endpoint = self._endpoint()
        # a short request timeout: a paused workspace shows up as failed polls within seconds
        return {
            "conn_type": "databricks_durable",
            "host": endpoint.url,
            "password": endpoint.pat,
            "extra": {"timeout": 3},
        }

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        tokens = tokens_of(dag_id, run_id, task_keys)
        out: list[Job] = []
        for run in self._endpoint().runs():
            token = run.get("token")
            if token not in tokens:
                continue
            task_id, map_index, gen = tokens[token]
            life_cycle, result = str(run.get("life_cycle_state")), str(run.get("result_state"))
            active = life_cycle not in TERMINAL and not run.get("deleted")
            state = f"{life_cycle}/{result}" if run.get("result_state") else life_cycle
            out.append(Job(str(run["run_id"]), state, task_id, map_index, gen, active, result == "CANCELED"))
        return sorted(out, key=lambda j: (j.task_id, j.map_index, j.generation, int(j.id)))

    def recorded_ids(self, record: Any) -> set[str]:
        """The run ids the record owns: a Databricks locator's ``run_id`` is an integer."""
        if not isinstance(record, dict):
            return set()
        entries = [record, *(record.get("history") or ())]
        return {
            str(job["run_id"])
            for entry in entries
            if isinstance(entry, dict) and isinstance(job := entry.get("job"), dict) and job.get("run_id") is not None
        }


SYSTEM = DatabricksSystem
