"""EMR Serverless: moto's server in its own process, with job runs that live by the clock.

The server (``python -m durable_jobs_harness.moto_emr_server serve``) has moto's AWS-likeness patches and a
lifecycle thread: a run sleeps the seconds its ``jobDriver`` names, then ends ``SUCCESS`` or ``FAILED`` by its
exit code; a cancel goes ``CANCELLING`` -> ``CANCELLED``. It does *not* dedupe ``clientToken`` (AWS does, for a
while): a second ``StartJobRun`` with the same token is a second run here, so a duplicate can only be prevented,
and is always counted, by the protocol.

Runs are counted from the server's own API (boto3 ``ListJobRuns`` of the one application), attributed by the
token at the end of the run's name (``"<name> [<token>]"``, as our client names it). Pausing SIGSTOPs the server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from botocore.config import Config

from durable_jobs_harness.moto_emr_server import MotoEmrProcess

from . import E2ESystem, Job, tokens_of

APPLICATION_ENV = "DURABLE_JOBS_E2E_EMR_APPLICATION"
NAME_TOKEN_RE = re.compile(r"\[(dj[0-9a-f]{20})\]$")
ACTIVE_STATES = frozenset({"SUBMITTED", "PENDING", "SCHEDULED", "QUEUED", "RUNNING", "CANCELLING"})
KIND = "EMR Serverless job run"


class EmrSystem(E2ESystem):
    name = "emr"
    conn_id = "aws_e2e"
    job_noun = KIND
    failure_detail = "ExitCode: 3."  # the run's stateDetails
    after_crash: ClassVar[dict[str, str]] = {
        "crash_before_intent": "No job recorded for",
        "crash_after_intent": "No job carries token",
        "crash_after_submit": f"Adopted {KIND} ",
        "crash_after_persist": f"Found {KIND} ",
        "crash_before_outcome": f"Found {KIND} ",
    }

    def __init__(self) -> None:
        self.server: MotoEmrProcess | None = None
        self.application = ""
        self._boto: Any = None

    def start(self, root: Path) -> None:
        self.server = MotoEmrProcess(root / "emr" / "moto.log").start()
        self.application = self.server.create_application("durable-jobs-e2e")
        self._boto = self.server.boto(
            "emr-serverless", config=Config(read_timeout=15, retries={"total_max_attempts": 3})
        )

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _server(self) -> MotoEmrProcess:
        if self.server is None:
            raise RuntimeError("the moto EMR server is not running")
        return self.server

    def airflow_env(self) -> dict[str, str]:
        conn = self._server().connection(
            # short timeouts: a paused server shows up as failed polls within seconds
            config_kwargs={"connect_timeout": 3, "read_timeout": 5},
            durable_jobs={"retry_budget": 60, "backoff_base": 0.5, "backoff_cap": 5},
        )
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": conn, APPLICATION_ENV: self.application}

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        tokens = tokens_of(dag_id, run_id, task_keys)
        out: list[Job] = []
        pages = self._boto.get_paginator("list_job_runs").paginate(applicationId=self.application)
        for page in pages:
            for run in page.get("jobRuns") or ():
                match = NAME_TOKEN_RE.search(str(run.get("name") or ""))
                if not match or match[1] not in tokens:
                    continue
                task_id, map_index, gen = tokens[match[1]]
                state = str(run["state"])
                cancelled = state in ("CANCELLING", "CANCELLED")
                out.append(Job(str(run["id"]), state, task_id, map_index, gen, state in ACTIVE_STATES, cancelled))
        return sorted(out, key=lambda j: (j.task_id, j.map_index, j.generation, j.id))

    def pause(self) -> None:
        self._server().pause()

    def resume(self) -> None:
        self._server().resume()

    def logs_tail(self, lines: int = 30) -> str:
        if self.server is None:
            return ""
        return f"--- moto EMR server ({self.server.log_file}) ---\n{self.server.logs_tail(lines)}"


SYSTEM = EmrSystem
