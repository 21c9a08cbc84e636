"""The BigQuery endpoint of the end-to-end tests: the contract fake as its own process.

:class:`BigQueryProcess` runs ``python -m durable_jobs_harness.fake_bigquery serve`` (a
:class:`~durable_jobs_harness.served_process.ServedProcess`: its own session, its port file, stopped by PID). The
service-account key the fake generated is written to :attr:`BigQueryProcess.key_file` (its ``token_uri`` is the
fake's), for a connection's ``key_path``. :meth:`BigQueryProcess.jobs` reads every job (forgotten ones too, with
their labels) from the fake's unauthenticated admin listener: a view that does not go through the client under
test; :meth:`~BigQueryProcess.finish` and :meth:`~BigQueryProcess.forget` change a job behind the API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from durable_jobs_harness.served_process import ServedFake

__all__ = ["BigQueryProcess"]


class BigQueryProcess(ServedFake):
    """One fake BigQuery process (see :func:`durable_jobs_harness.fake_bigquery.serve`)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        project: str = "fake-project",
        time_scale: float = 1.0,
        startup_timeout: float = 30.0,
    ) -> None:
        self.project = project
        self.time_scale = time_scale
        self.key_file = run_dir / "bigquery-key.json"
        args = ["--project", project, "--time-scale", str(time_scale), "--key-file", str(self.key_file)]
        args += ["--admin-port-file", str(run_dir / "bigquery-admin.json")]
        super().__init__("bigquery", "durable_jobs_harness.fake_bigquery", run_dir, args, startup_timeout)

    def start(self) -> BigQueryProcess:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.key_file.unlink(missing_ok=True)
        self._start()
        return self

    def key_info(self) -> dict[str, Any]:
        """The service-account key JSON the fake accepts."""
        return dict(json.loads(self.key_file.read_text()))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the fake holds (forgotten ones included), from the admin listener: ``project``, ``job_id``,
        ``location``, ``labels``, ``state``, ``error`` (the errorResult of an ended job), ``cancelled``,
        ``forgotten``."""
        return list(self._admin_get("/jobs")["jobs"])

    def finish(self, job_id: str, result: str = "DONE") -> dict[str, Any]:
        """End the job now: ``DONE`` or ``FAILED``."""
        return self._admin_post(f"/jobs/{job_id}/finish", {"result": result})

    def forget(self, job_id: str) -> dict[str, Any]:
        """BigQuery no longer knows the job (404 on get, absent from lists)."""
        return self._admin_post(f"/jobs/{job_id}/forget", {})
