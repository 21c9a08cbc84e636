"""EMR Serverless: moto's server in its own process, with job runs that live by the clock (steps: ``emr_steps``).

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from botocore.config import Config

from durable_jobs_harness.moto_emr_server import MotoEmrProcess

from . import E2ESystem, Job, tokens_of

NAME_TOKEN_RE = re.compile(r"\[(dj[0-9a-f]{20})\]$")  # "<name> [<token>]", as our clients name runs and steps
KIND = "EMR Serverless job run"


def after_crash(noun: str) -> dict[str, str]:
    """What the try after each crash logs, for jobs our log lines call ``noun``."""
    return {
        "crash_before_intent": "No job recorded for",
        "crash_after_intent": "No job carries token",
        "crash_after_submit": f"Adopted {noun} ",
        "crash_after_persist": f"Found {noun} ",
        "crash_before_outcome": f"Found {noun} ",
    }


class EmrSystem(E2ESystem):
    name = "emr"
    conn_id = "aws_e2e"
    job_noun = KIND
    failure_detail = "ExitCode: 3."  # the run's stateDetails
    service: ClassVar[str] = "emr-serverless"
    container_env: ClassVar[str] = "DURABLE_JOBS_E2E_EMR_APPLICATION"
    active_states: ClassVar[frozenset[str]] = frozenset(
        {"SUBMITTED", "PENDING", "SCHEDULED", "QUEUED", "RUNNING", "CANCELLING"}
    )
    cancelled_states: ClassVar[frozenset[str]] = frozenset({"CANCELLING", "CANCELLED"})
    after_crash: ClassVar[dict[str, str]] = after_crash(KIND)
    process: ClassVar[type[MotoEmrProcess]] = MotoEmrProcess  # the moto server process

    def __init__(self) -> None:
        self.server: MotoEmrProcess | None = None
        self.container = ""
        self._boto: Any = None

    def start(self, root: Path) -> None:
        self.server = self.process(root / self.name / "moto.log").start()
        self.container = self.create_container(self.server)
        self._boto = self.server.boto(self.service, config=Config(read_timeout=15, retries={"total_max_attempts": 3}))

    def create_container(self, server: MotoEmrProcess) -> str:
        """Where the DAGs start their jobs (named to them by :attr:`container_env`)."""
        return server.create_application("durable-jobs-e2e")

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()

    def _server(self) -> MotoEmrProcess:
        if self.server is None:
            raise RuntimeError(f"the {self.process.what} is not running")
        return self.server

    def airflow_env(self) -> dict[str, str]:
        conn = self._server().connection(
            # short timeouts: a paused server shows up as failed polls within seconds
            config_kwargs={"connect_timeout": 3, "read_timeout": 5},
            durable_jobs={"retry_budget": 60, "backoff_base": 0.5, "backoff_cap": 5},
        )
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": conn, self.container_env: self.container}

    def jobs(self, dag_id: str, run_id: str, task_keys: Sequence[tuple[str, int]]) -> list[Job]:
        tokens = tokens_of(dag_id, run_id, task_keys)
        out: list[Job] = []
        for job_id, name, state in self.listed():
            token = self.token_in(name)
            if token not in tokens:
                continue
            task_id, map_index, gen = tokens[token]
            active, cancelled = state in self.active_states, state in self.cancelled_states
            out.append(Job(job_id, state, task_id, map_index, gen, active, cancelled))
        return sorted(out, key=lambda j: (j.task_id, j.map_index, j.generation, j.id))

    def token_in(self, name: str) -> str | None:
        """The token a listed job carries (at the end of its name)."""
        match = NAME_TOKEN_RE.search(name)
        return match[1] if match else None

    def listed(self) -> Iterator[tuple[str, str, str]]:
        """(id, name, state) of every job in the container, from the server's own API."""
        for page in self._boto.get_paginator("list_job_runs").paginate(applicationId=self.container):
            for run in page.get("jobRuns") or ():
                yield str(run["id"]), str(run.get("name") or ""), str(run["state"])

    def pause(self) -> None:
        self._server().pause()

    def resume(self) -> None:
        self._server().resume()

    def logs_tail(self, lines: int = 30) -> str:
        if self.server is None:
            return ""
        return f"--- {self.process.what} ({self.server.log_file}) ---\n{self.server.logs_tail(lines)}"


SYSTEM = EmrSystem
