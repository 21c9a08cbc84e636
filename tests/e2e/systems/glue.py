"""AWS Glue: moto's Glue in its own process (its own instance of the EMR rows' server), with runs living by the clock.

The server (``python -m durable_jobs_harness.moto_glue_server serve``) has the Glue patches of
:mod:`durable_jobs_harness.moto_glue` and plays each run from its argument ``--durable_fake``
(``durable-fake:<seconds>s:<SUCCEEDED|FAILED>``): ``STARTING``, ``RUNNING`` for that long, then the result; a
``BatchStopJobRun`` takes it through ``STOPPING`` to ``STOPPED``. The DAGs run one job created at the start
(``DURABLE_JOBS_E2E_GLUE_JOB``, ``MaxConcurrentRuns`` 1000).

Glue has no idempotency token: our client passes the token as the run argument ``--durable_jobs_token``. Runs
are counted from the server's own API (boto3 ``GetJobRuns`` of the job, never through our client) and
attributed by that argument. Pausing SIGSTOPs the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from durable_jobs_harness.moto_emr_server import MotoEmrProcess
from durable_jobs_harness.moto_glue import create_glue_job
from durable_jobs_harness.moto_glue_server import FAILED_MESSAGE, MotoGlueProcess

from .emr import EmrSystem, after_crash

KIND = "Glue job run"  # the client's describe()
TOKEN_ARGUMENT = "--durable_jobs_token"
JOB_NAME = "durable-jobs-e2e"


class GlueSystem(EmrSystem):
    name = "glue"
    conn_id = "aws_e2e_glue"
    job_noun = KIND
    failure_detail = FAILED_MESSAGE  # the run's ErrorMessage
    service: ClassVar[str] = "glue"
    container_env: ClassVar[str] = "DURABLE_JOBS_E2E_GLUE_JOB"
    active_states: ClassVar[frozenset[str]] = frozenset({"STARTING", "WAITING", "RUNNING", "STOPPING"})
    cancelled_states: ClassVar[frozenset[str]] = frozenset({"STOPPING", "STOPPED"})
    after_crash: ClassVar[dict[str, str]] = after_crash(KIND)
    process: ClassVar[type[MotoEmrProcess]] = MotoGlueProcess

    def create_container(self, server: MotoEmrProcess) -> str:
        return create_glue_job(server, JOB_NAME)

    def token_in(self, name: str) -> str | None:
        return name or None

    def listed(self) -> Iterator[tuple[str, str, str]]:
        """(run id, its token argument, state) of every run of the job."""
        for page in self._boto.get_paginator("get_job_runs").paginate(JobName=self.container):
            for run in page.get("JobRuns") or ():
                token = str((run.get("Arguments") or {}).get(TOKEN_ARGUMENT) or "")
                yield str(run["Id"]), token, str(run["JobRunState"])


SYSTEM = GlueSystem
