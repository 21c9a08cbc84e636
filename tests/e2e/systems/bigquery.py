"""BigQuery: the contract fake (REST v2 ``jobs`` and Google's OAuth token endpoint) in its own process.

:class:`~durable_jobs_harness.bigquery_process.BigQueryProcess` runs ``python -m durable_jobs_harness.fake_bigquery
serve`` on 127.0.0.1 and writes the service-account key it accepts to a file. The DAGs' jobs are queries whose
configuration carries the fake's script ``durable-fake:<seconds>s:<DONE|FAILED>``: pending, running for that
long, then done (with an ``errorResult`` for ``FAILED``); a cancel ends it with the reason ``stopped``. Every
Airflow component gets the connection ``bigquery_e2e`` (type ``bigquery_durable``: ``key_path``, ``project``,
``base_url``; the trigger kwargs carry the ``conn_id`` only).

Jobs are counted from the fake's unauthenticated admin listener (``GET /jobs``: every job, forgotten ones
included, with its labels), never through our client, and attributed by the label ``durable_jobs_token``.
Pausing the endpoint SIGSTOPs the fake's process (its token endpoint too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from durable_jobs_harness.bigquery_process import BigQueryProcess

from . import Job, tokens_of
from .emr import after_crash
from .served import ServedFakeSystem

KIND = "BigQuery job"  # how our log lines name a job: the client's describe()
TOKEN_LABEL = "durable_jobs_token"


class BigQuerySystem(ServedFakeSystem[BigQueryProcess]):
    name = "bigquery"
    conn_id = "bigquery_e2e"
    job_noun = KIND
    failure_detail = "Syntax error: scripted failure"  # the fake's errorResult message
    # find is a jobs.get of the id the token gives: after a crash before the insert, nothing is there
    after_crash: ClassVar[dict[str, str]] = after_crash(KIND)

    def launch(self, run_dir: Path) -> BigQueryProcess:
        return BigQueryProcess(run_dir).start()

    def connection(self) -> dict[str, Any]:
        endpoint = self._endpoint()
        # a short request timeout: a paused endpoint shows up as failed polls within seconds
        extra = {"key_path": str(endpoint.key_file), "project": endpoint.project, "base_url": endpoint.url}
        return {"conn_type": "bigquery_durable", "extra": {**extra, "timeout": 3}}

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        tokens = tokens_of(dag_id, run_id, task_keys)
        out: list[Job] = []
        for job in self._endpoint().jobs():
            token = (job.get("labels") or {}).get(TOKEN_LABEL)
            if token not in tokens:
                continue
            task_id, map_index, gen = tokens[token]
            state, error = str(job.get("state")), job.get("error") or {}
            word = f"{state}/{error.get('reason')}" if error else state
            active = state != "DONE" and not job.get("forgotten")
            out.append(Job(str(job["job_id"]), word, task_id, map_index, gen, active, bool(job.get("cancelled"))))
        return sorted(out, key=lambda j: (j.task_id, j.map_index, j.generation, j.id))


SYSTEM = BigQuerySystem
