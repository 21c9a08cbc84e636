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
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from durable_jobs_harness.served_process import ServedProcess

__all__ = ["BigQueryProcess"]


class BigQueryProcess:
    """One fake BigQuery process (see :func:`durable_jobs_harness.fake_bigquery.serve`)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        project: str = "fake-project",
        time_scale: float = 1.0,
        startup_timeout: float = 30.0,
    ) -> None:
        self.run_dir = run_dir
        self.project = project
        self.time_scale = time_scale
        self.key_file = run_dir / "bigquery-key.json"
        args = ["--project", project, "--time-scale", str(time_scale), "--key-file", str(self.key_file)]
        args += ["--admin-port-file", str(run_dir / "bigquery-admin.json")]
        self._proc = ServedProcess(
            "bigquery", "durable_jobs_harness.fake_bigquery", run_dir, args, startup_timeout=startup_timeout
        )
        self.url = ""
        self.admin_url = ""

    @property
    def log(self) -> Path:
        return self._proc.log

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._proc.process

    def start(self) -> BigQueryProcess:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.key_file.unlink(missing_ok=True)
        info = self._proc.start()
        self.url, self.admin_url = str(info["url"]), str(info["admin_url"])
        return self

    def stop(self) -> None:
        """Stop it by its PID (see :meth:`ServedProcess.stop`)."""
        self._proc.stop()

    def key_info(self) -> dict[str, Any]:
        """The service-account key JSON the fake accepts."""
        return dict(json.loads(self.key_file.read_text()))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the fake holds (forgotten ones included), from the admin listener: ``project``, ``job_id``,
        ``location``, ``labels``, ``state``, ``error`` (the errorResult of an ended job), ``cancelled``,
        ``forgotten``."""
        with urllib.request.urlopen(f"{self.admin_url}/jobs", timeout=10) as resp:  # noqa: S310 - our 127.0.0.1
            return list(json.load(resp)["jobs"])

    def finish(self, job_id: str, result: str = "DONE") -> dict[str, Any]:
        """End the job now: ``DONE`` or ``FAILED``."""
        return self._admin_post(f"/jobs/{job_id}/finish", {"result": result})

    def forget(self, job_id: str) -> dict[str, Any]:
        """BigQuery no longer knows the job (404 on get, absent from lists)."""
        return self._admin_post(f"/jobs/{job_id}/forget", {})

    def _admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(  # noqa: S310 - our 127.0.0.1
            self.admin_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return dict(json.load(resp))

    def logs_tail(self, lines: int = 30) -> str:
        return self._proc.logs_tail(lines)
