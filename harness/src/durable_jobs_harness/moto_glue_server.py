"""moto's Glue as its own process, whose job runs live by the clock: the crash matrix's Glue.

``python -m durable_jobs_harness.moto_glue_server serve`` is :mod:`durable_jobs_harness.moto_emr_server`'s server
(the same ``ready <endpoint>`` line, stdin and signal handling, SIGSTOP to pause) with the Glue patches of
:mod:`durable_jobs_harness.moto_glue` and a lifecycle thread playing Glue.

A run's life is scripted by its arguments: ``--durable_fake`` is ``durable-fake:<seconds>s:<SUCCEEDED|FAILED>``
(absent or unreadable: 3 s, ``SUCCEEDED``). It goes ``STARTING`` -> ``RUNNING``, and after ``seconds`` of running
``SUCCEEDED`` or ``FAILED`` (``ErrorMessage`` :data:`FAILED_MESSAGE`). ``BatchStopJobRun`` makes an active run
``STOPPING`` (moto_glue's patch), which this lifecycle ends ``STOPPED``. In moto alone a run is ``SUCCEEDED``
the moment it is read.

Like AWS, Glue has no idempotency token: every ``StartJobRun`` is a run. The crash matrix counts runs by the
token argument our client adds, so only the protocol keeps a token from running twice.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any
from unittest import mock

from moto.core.utils import utcnow
from moto.glue import models as glue_models
from moto.glue.responses import GlueResponse

from durable_jobs_harness.moto_emr_server import JobKind, Lifecycle, MotoEmrProcess, main
from durable_jobs_harness.moto_glue import aws_like_patches

__all__ = ["FAILED_MESSAGE", "SCRIPT_ARGUMENT", "GlueLifecycle", "MotoGlueProcess", "script_of"]

#: the run argument that scripts its life
SCRIPT_ARGUMENT = "--durable_fake"
SCRIPT_RE = re.compile(r"^durable-fake:(\d+(?:\.\d+)?)s:(SUCCEEDED|FAILED)$")
DEFAULT_SCRIPT = (3.0, 0)
#: a failed run's ``ErrorMessage`` (a Python shell job's words)
FAILED_MESSAGE = "Command failed with exit code 1"

RUN = JobKind("Glue run", ("STARTING",), "RUNNING", "SUCCEEDED", "FAILED", "STOPPING", "STOPPED")


def script_of(arguments: Mapping[str, Any] | None) -> tuple[float, int]:
    """``(seconds, exit code)`` of a run's arguments: 0 for ``SUCCEEDED``, 1 for ``FAILED``."""
    match = SCRIPT_RE.match(str((arguments or {}).get(SCRIPT_ARGUMENT) or ""))
    if match is None:
        return DEFAULT_SCRIPT
    return float(match[1]), 0 if match[2] == "SUCCEEDED" else 1


class _Run:
    """moto's run as the lifecycle sees a job: ``id``, ``name``, ``state``."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.id = str(run.job_run_id)
        self.name = str(run.job_name)

    @property
    def state(self) -> str:
        return str(self.run.status)

    @state.setter
    def state(self, value: str) -> None:
        self.run.status = value


class GlueLifecycle(Lifecycle):
    """Glue job runs that move with time (see the module's docstring); ``pending`` is the seconds in STARTING."""

    @staticmethod
    def _set(kind: JobKind, job: Any, state: str, details: str | None) -> None:
        now = utcnow()
        job.state = state
        job.run.modified_on = now
        if state in kind.ended:
            job.run.completed_on = now
        if state == kind.failed:
            job.run.error_message = FAILED_MESSAGE

    def patches(self) -> list[Any]:
        """Over moto_glue's patches: a started run is played, a stop is taken under the lifecycle's lock."""
        backend = glue_models.GlueBackend
        start_run = backend.start_job_run
        batch_stop = GlueResponse.batch_stop_job_run
        lifecycle = self

        def start_job_run(self: Any, name: str, arguments: dict[str, str] | None, *args: Any) -> str:
            run_id = start_run(self, name, arguments, *args)
            run = next(r for r in self.jobs[name].job_runs if r.job_run_id == run_id)
            lifecycle.started(RUN, _Run(run), *script_of(arguments))
            return str(run_id)

        def locked_batch_stop(response: Any) -> Any:
            with lifecycle._lock:
                return batch_stop(response)

        return [
            mock.patch.object(backend, "start_job_run", start_job_run),
            mock.patch.object(GlueResponse, "batch_stop_job_run", locked_batch_stop),
        ]


class MotoGlueProcess(MotoEmrProcess):
    """The Glue server process (``--pending``: seconds in STARTING; ``--cancelling``: in STOPPING)."""

    module = "durable_jobs_harness.moto_glue_server"
    what = "moto Glue server"


if __name__ == "__main__":
    sys.exit(main(module=MotoGlueProcess.module, lifecycle=GlueLifecycle, base_patches=aws_like_patches))
