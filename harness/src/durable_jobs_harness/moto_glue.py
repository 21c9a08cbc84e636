"""moto's Glue, made to answer like AWS where our Glue client sees the difference: for the tests and the e2e server.

moto 5.2 serves ``CreateJob``, ``StartJobRun`` (with ``Arguments`` kept and returned, and
``ConcurrentRunsExceededException`` at the job's ``MaxConcurrentRuns``), ``GetJobRun`` (unknown run:
``EntityNotFoundException``) and ``GetJobRuns`` (paginated by ``NextToken``). Its gaps, closed here while
:func:`like_aws` is entered:

* a run's state moves by moto's state manager (``SUCCEEDED`` at once by default): here it stays where a test
  puts it (``STARTING`` when started), as a real run waits for its script;
* ``GetJobRuns`` lists the oldest run first: AWS lists the newest first;
* ``BatchStopJobRun`` is not implemented (HTTP 500): here an active run becomes ``STOPPING`` (and
  :meth:`GlueMoto.glue_stops` makes it ``STOPPED``, as Glue does), an ended run is an ``Errors`` entry
  (``InvalidInputException``), an unknown one an ``EntityNotFoundException`` entry;
* a run never has an ``ErrorMessage``: here a test sets ``run.error_message`` and it is answered.

The Glue tests enter :func:`like_aws` around the shared in-process moto server (:class:`GlueMoto` is their hand
on it); the crash matrix's moto server process (:mod:`durable_jobs_harness.moto_glue_server`) starts the same
patches (:func:`aws_like_patches`) and plays the runs' lives there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest import mock

from moto.core.responses import ActionResult
from moto.glue import models as glue_models
from moto.glue.responses import GlueResponse

from durable_jobs_harness.moto_emr import ACCOUNT, REGION, MotoClients, MotoEmr

ROLE = f"arn:aws:iam::{ACCOUNT}:role/glue-job-role"
ACTIVE = ("STARTING", "WAITING", "RUNNING", "STOPPING")
ENDED_STATES = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED"}


def _batch_stop_job_run(self: GlueResponse) -> ActionResult:
    name = self._get_param("JobName")
    job = self.glue_backend.get_job(name)  # an unknown job: EntityNotFoundException, as AWS
    runs = {r.job_run_id: r for r in job.job_runs}
    done: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for rid in self._get_param("JobRunIds", []):
        run = runs.get(rid)
        if run is None:
            detail = {"ErrorCode": "EntityNotFoundException", "ErrorMessage": f"Job Run {rid} not found"}
            errors.append({"JobName": name, "JobRunId": rid, "ErrorDetail": detail})
        elif run.status in ("STARTING", "WAITING", "RUNNING"):
            run.status = "STOPPING"
            done.append({"JobName": name, "JobRunId": rid})
        else:
            detail = {"ErrorCode": "InvalidInputException", "ErrorMessage": f"Job Run is in {run.status} state"}
            errors.append({"JobName": name, "JobRunId": rid, "ErrorDetail": detail})
    return ActionResult({"SuccessfulSubmissions": done, "Errors": errors})


def _newest_first(self: Any) -> list[Any]:
    return sorted(self.job_runs, key=lambda r: r.started_on, reverse=True)


def _with_error_message(original: Any) -> Any:
    def as_dict(self: Any) -> dict[str, Any]:
        out = dict(original(self))
        if getattr(self, "error_message", None):
            out["ErrorMessage"] = self.error_message
        return out

    return as_dict


def _kept_status(self: Any) -> Any:
    return self._status


def _set_status(self: Any, value: str) -> None:
    self._status = value


def aws_like_patches() -> list[Any]:
    """The patches above, not started."""
    run = glue_models.FakeJobRun
    return [
        mock.patch.object(GlueResponse, "batch_stop_job_run", _batch_stop_job_run, create=True),
        mock.patch.object(glue_models.FakeJob, "get_job_runs", _newest_first),
        mock.patch.object(run, "as_dict", _with_error_message(run.as_dict)),
        mock.patch.object(run, "status", property(_kept_status, _set_status)),
    ]


@contextlib.contextmanager
def like_aws() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for patch in aws_like_patches():
            stack.enter_context(patch)
        yield


def create_glue_job(clients: MotoClients, name: str, *, max_concurrent_runs: int = 1000) -> str:
    """A Glue job on the moto server at ``clients.endpoint`` (runs of a job never overlap past the limit)."""
    clients.boto("glue").create_job(
        Name=name,
        Role=ROLE,
        Command={"Name": "glueetl", "ScriptLocation": "s3://scripts/etl.py"},
        ExecutionProperty={"MaxConcurrentRuns": max_concurrent_runs},
        DefaultArguments={"--job-language": "python"},
    )
    return name


class GlueMoto:
    """The shared moto server's Glue: jobs, runs, and a test's hand on their states."""

    def __init__(self, moto: MotoEmr) -> None:
        self.moto = moto

    @property
    def backend(self) -> Any:
        return glue_models.glue_backends[ACCOUNT][REGION]

    def create_job(self, name: str, *, max_concurrent_runs: int = 1000) -> str:
        return create_glue_job(self.moto, name, max_concurrent_runs=max_concurrent_runs)

    def runs(self, job_name: str) -> list[Any]:
        return list(self.backend.jobs[job_name].job_runs)

    def run(self, job_name: str, run_id: str) -> Any:
        for r in self.backend.jobs[job_name].job_runs:
            if r.job_run_id == run_id:
                return r
        raise KeyError(run_id)

    def set_run(self, job_name: str, run_id: str, state: str, *, error: str | None = None) -> None:
        r = self.run(job_name, run_id)
        r.status = state
        if error is not None:
            r.error_message = error

    def forget(self, job_name: str, run_id: str) -> None:
        runs = self.backend.jobs[job_name].job_runs
        runs[:] = [r for r in runs if r.job_run_id != run_id]

    def with_token(self, job_name: str, token: str) -> list[Any]:
        return [r for r in self.runs(job_name) if (r.arguments or {}).get("--durable_jobs_token") == token]

    @contextlib.asynccontextmanager
    async def glue_stops(self) -> AsyncIterator[None]:
        """A task playing Glue: a STOPPING run becomes STOPPED a moment later."""

        async def stops() -> None:
            while True:
                for job in list(self.backend.jobs.values()):
                    for r in list(job.job_runs):
                        if r.status == "STOPPING":
                            r.status = "STOPPED"
                await asyncio.sleep(0.05)

        task = asyncio.get_running_loop().create_task(stops())
        try:
            yield
        finally:
            task.cancel()


__all__ = ["ACTIVE", "ROLE", "GlueMoto", "aws_like_patches", "create_glue_job", "like_aws"]
