"""The Databricks endpoint of the end-to-end tests: the Jobs API contract fake as its own process.

:class:`DatabricksProcess` runs ``python -m durable_jobs_harness.fake_databricks serve`` (a
:class:`~durable_jobs_harness.served_process.ServedProcess`: its own session, its port file, stopped by PID).
:meth:`DatabricksProcess.runs` reads every run (deleted and forgotten ones too, with their idempotency tokens)
from the fake's unauthenticated admin listener: a view of the workspace that does not go through the client
under test. :meth:`DatabricksProcess.create_job` creates a job for run-now there, and
:meth:`~DatabricksProcess.delete_run`, :meth:`~DatabricksProcess.forget_run`, :meth:`~DatabricksProcess.finish`
change a run behind the API (a run the workspace lost, a run that ends now).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from durable_jobs_harness.served_process import ServedFake

__all__ = ["DatabricksProcess"]


class DatabricksProcess(ServedFake):
    """One fake workspace process (see :func:`durable_jobs_harness.fake_databricks.serve`)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        pat: str = "dapi-fake-token",
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",  # noqa: S107 - the fake's own test credential
        time_scale: float = 1.0,
        startup_timeout: float = 30.0,
    ) -> None:
        self.pat, self.client_id, self.client_secret = pat, client_id, client_secret
        self.time_scale = time_scale
        args = ["--pat", pat, "--client-id", client_id, "--client-secret", client_secret]
        args += ["--time-scale", str(time_scale)]
        super().__init__("databricks", "durable_jobs_harness.fake_databricks", run_dir, args, startup_timeout)

    def start(self) -> DatabricksProcess:
        self._start()
        return self

    def runs(self) -> list[dict[str, Any]]:
        """Every run the fake holds (deleted and forgotten included), from the admin listener: ``run_id``,
        ``token``, ``run_type``, ``job_id``, ``run_name``, ``deleted``, ``forgotten``, ``created``,
        ``life_cycle_state``, ``result_state``, and ``run`` (the runs/get answer)."""
        return list(self._admin_get("/runs")["runs"])

    def create_job(self, name: str, tasks: list[dict[str, Any]] | None = None) -> int:
        """A job for run-now, created through the admin listener; its id."""
        return int(self._admin_post("/jobs", {"name": name, "tasks": tasks})["job_id"])

    def delete_run(self, run_id: int) -> dict[str, Any]:
        """As ``runs/delete`` (its token now answers an error); the run as :meth:`runs` shows it."""
        return self._admin_post(f"/runs/{run_id}/delete", {})

    def forget_run(self, run_id: int) -> dict[str, Any]:
        """The workspace aged the run out (404 on get, absent from lists)."""
        return self._admin_post(f"/runs/{run_id}/forget", {})

    def finish(self, run_id: int, result: str = "SUCCESS") -> dict[str, Any]:
        """End the run now with ``result``."""
        return self._admin_post(f"/runs/{run_id}/finish", {"result": result})
