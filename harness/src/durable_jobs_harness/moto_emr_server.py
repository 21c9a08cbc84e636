"""moto's EMR as its own process, whose Serverless job runs and steps live by the clock: the crash matrix's AWS.

``python -m durable_jobs_harness.moto_emr_server serve`` runs moto's server on 127.0.0.1 (a free port unless
``--port``), with the AWS-likeness patches of :mod:`durable_jobs_harness.moto_emr`, and prints one line,
``ready http://127.0.0.1:<port>``, on stdout. It stops when its stdin closes (its parent died or let go) or
on SIGTERM/SIGINT. The end-to-end tests start it with :class:`MotoEmrProcess` and pause it with SIGSTOP.

In moto a job run is ``SUCCESS`` the moment it starts and a step ``RUNNING`` forever. Here a thread plays EMR
(:class:`Lifecycle`), reading what the job was asked to do (:mod:`durable_jobs_harness.emr_sleep_exit`): a
Serverless run's ``sparkSubmit.entryPointArguments`` are ``<seconds> <exit code>``, a step's last argument is
``sleep N; exit C``. A run goes ``SUBMITTED`` -> ``SCHEDULED`` -> ``RUNNING``, and after ``seconds`` of running
``SUCCESS`` (exit code 0) or ``FAILED`` (with ``stateDetails`` naming the exit code); a step goes ``PENDING`` ->
``RUNNING`` -> ``COMPLETED`` or ``FAILED`` (``FailureDetails``). ``CancelJobRun`` on an active run makes it
``CANCELLING``, then ``CANCELLED``; on an ended one it is AWS's ``ValidationException`` (moto would cancel a
finished run). ``CancelSteps`` cancels a pending step at once and takes a running one through
``CANCEL_PENDING``.

Deliberately *not* like AWS: a repeated ``clientToken`` starts another run (AWS returns the first one for a
while; steps have no token on AWS either). The crash matrix counts jobs per token, so only the protocol keeps a
token from running twice. Times are this machine's clock (``createdAt``, and so a find's ``createdAtAfter``).

:func:`main` takes the lifecycle and the moto patches, so the Glue server
(:mod:`durable_jobs_harness.moto_glue_server`) is this server with its own.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from unittest import mock

from moto.core.utils import utcnow
from moto.emr import models as emr_models
from moto.emr.responses import ElasticMapReduceResponse
from moto.emrserverless import models as serverless_models
from moto.emrserverless.exceptions import ValidationException
from moto.server import ThreadedMotoServer

from durable_jobs_harness.emr_sleep_exit import sleep_exit_of, sleep_exit_of_args
from durable_jobs_harness.moto_emr import MotoClients, aws_like_patches

__all__ = ["JobKind", "Lifecycle", "MotoEmrProcess", "main", "serve"]

log = logging.getLogger("moto_emr_server")

READY = "ready "


@dataclass(frozen=True)
class JobKind:
    """The state words of one kind of job (an EMR Serverless run, an EMR step) and how moto's object shows them."""

    noun: str
    pending: tuple[str, ...]  # in order, each ``Lifecycle.pending`` seconds
    running: str
    succeeded: str
    failed: str
    cancelling: str
    cancelled: str

    @property
    def ended(self) -> tuple[str, ...]:
        return (self.succeeded, self.failed, self.cancelled)


RUN = JobKind("run", ("SUBMITTED", "SCHEDULED"), "RUNNING", "SUCCESS", "FAILED", "CANCELLING", "CANCELLED")
STEP = JobKind("step", ("PENDING",), "RUNNING", "COMPLETED", "FAILED", "CANCEL_PENDING", "CANCELLED")


@dataclass
class _Plan:
    kind: JobKind
    job: Any  # moto's JobRun or Step
    seconds: float
    exit_code: int
    started: float  # time.monotonic() at the start call
    cancelled: float | None = None  # time.monotonic() when the cancel was taken


class Lifecycle:
    """EMR Serverless job runs and EMR steps that move with time, driven by a thread inside the server process.

    A step's arguments end with ``sleep N; exit C`` (``bash -c``); steps of a cluster run side by side (as
    with a high ``StepConcurrencyLevel``). A cancelled step is moto's ``CancelSteps`` patch: ``PENDING`` ->
    ``CANCELLED`` at once, ``RUNNING`` -> ``CANCEL_PENDING``, which this lifecycle ends.

    :param pending: seconds in each pending state (a run's ``SUBMITTED`` and ``SCHEDULED``, a step's ``PENDING``).
    :param cancelling: seconds in ``CANCELLING``/``CANCEL_PENDING`` before ``CANCELLED``.
    """

    def __init__(self, *, pending: float = 0.5, cancelling: float = 1.0, tick: float = 0.1) -> None:
        self.pending = pending
        self.cancelling = cancelling
        self.tick_interval = tick
        self._plans: dict[str, _Plan] = {}  # active jobs by id
        self._lock = threading.Lock()  # held by the thread and by every handler that changes a job
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what the server's handlers call --------------------------------------------------------------

    def started(self, kind: JobKind, job: Any, seconds: float, exit_code: int) -> None:
        with self._lock:
            self._plans[job.id] = _Plan(kind, job, seconds, exit_code, time.monotonic())
            self._set(kind, job, kind.pending[0], None)
        log.info("%s %s (%s) %s: %.1fs, exit code %d", kind.noun, job.id, job.name, job.state, seconds, exit_code)

    def cancel_run(self, run: Any) -> None:
        with self._lock:
            plan = self._plans.get(run.id)
            if plan is None or run.state in RUN.ended:
                raise ValidationException(f"Job run {run.id} is not in a cancellable state: {run.state}")
            if plan.cancelled is None:
                plan.cancelled = time.monotonic()
                self._set(RUN, run, RUN.cancelling, None)
                log.info("run %s CANCELLING", run.id)

    # --- the clock ------------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move every active job to the state it has reached at ``now`` (``time.monotonic()``)."""
        with self._lock:
            for job_id, plan in list(self._plans.items()):
                kind, job = plan.kind, plan.job
                if job.state in kind.ended:  # ended by someone else (CancelSteps, a terminated cluster)
                    del self._plans[job_id]
                    continue
                if job.state == kind.cancelling and plan.cancelled is None:
                    plan.cancelled = now
                state, details = self._state_at(plan, now)
                if state != job.state:
                    self._set(kind, job, state, details)
                    log.info("%s %s %s", kind.noun, job_id, state)
                if state in kind.ended:
                    del self._plans[job_id]

    def _state_at(self, plan: _Plan, now: float) -> tuple[str, str | None]:
        kind = plan.kind
        if plan.cancelled is not None:
            if now - plan.cancelled >= self.cancelling:
                return kind.cancelled, f"The {kind.noun} was cancelled."
            return kind.cancelling, None
        phase = int((now - plan.started) // self.pending) if self.pending > 0 else len(kind.pending)
        if phase < len(kind.pending):
            return kind.pending[phase], None
        if now - plan.started < len(kind.pending) * self.pending + plan.seconds:
            return kind.running, None
        if plan.exit_code == 0:
            return kind.succeeded, None
        return kind.failed, f"ExitCode: {plan.exit_code}."

    @staticmethod
    def _set(kind: JobKind, job: Any, state: str, details: str | None) -> None:
        now = utcnow()
        job.state = state
        if kind is RUN:
            job.state_details = (
                f"Job failed, please check complete logs in configured logging destination. {details}"
                if state == kind.failed
                else details
            )
            job.updated_at = now
            return
        if state == kind.running and job.start_date_time is None:
            job.start_date_time = now
        if state in kind.ended:
            job.start_date_time = job.start_date_time or now
            job.end_date_time = now
        if state == kind.failed:
            job.failure_details = {"Reason": "Unknown Error.", "Message": f"Step failed. {details}"}
        if details:
            job.last_state_change_reason = details

    def start(self) -> None:
        def loop() -> None:
            while not self._stopped.wait(self.tick_interval):
                self.advance(time.monotonic())

        self._thread = threading.Thread(target=loop, name="emr-lifecycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5)

    # --- the patches that route moto's handlers here ----------------------------------------------------

    def patches(self) -> list[Any]:
        """Patches over moto's (and over :func:`aws_like_patches`, which must be started first)."""
        serverless = serverless_models.EMRServerlessBackend
        start_run = serverless.start_job_run
        add_steps = emr_models.ElasticMapReduceBackend.add_job_flow_steps
        cancel_steps = ElasticMapReduceResponse.cancel_steps
        lifecycle = self

        def start_job_run(self: Any, **kwargs: Any) -> Any:
            run = start_run(self, **kwargs)
            lifecycle.started(RUN, run, *sleep_exit_of(run.job_driver))
            return run

        def cancel_job_run(self: Any, application_id: str, job_run_id: str) -> tuple[str, str]:
            run = self.get_job_run(application_id=application_id, job_run_id=job_run_id)  # or ResourceNotFound
            lifecycle.cancel_run(run)
            return application_id, job_run_id

        def add_job_flow_steps(self: Any, job_flow_id: str, steps: list[dict[str, Any]]) -> Any:
            added = add_steps(self, job_flow_id, steps)
            for step in added:
                lifecycle.started(STEP, step, *sleep_exit_of_args(step.args))
            return added

        def locked_cancel_steps(response: Any) -> Any:
            with lifecycle._lock:
                return cancel_steps(response)

        return [
            mock.patch.object(serverless, "start_job_run", start_job_run),
            mock.patch.object(serverless, "cancel_job_run", cancel_job_run),
            mock.patch.object(emr_models.ElasticMapReduceBackend, "add_job_flow_steps", add_job_flow_steps),
            mock.patch.object(ElasticMapReduceResponse, "cancel_steps", locked_cancel_steps),
        ]


# --- the process --------------------------------------------------------------------------------------


def serve(
    port: int, lifecycle: Lifecycle, out: IO[str], base_patches: Callable[[], list[Any]] = aws_like_patches
) -> None:
    """Run until stdin closes or SIGTERM/SIGINT; print ``ready <endpoint>`` once listening.

    ``base_patches`` are moto's AWS-likeness patches, started before the lifecycle's own (which go over them).
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while os.read(sys.stdin.fileno(), 4096):
                pass
        stop.set()

    patches = base_patches()
    for p in patches:
        p.start()
    for p in lifecycle.patches():  # over the AWS-likeness patches
        p.start()
        patches.append(p)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
        lifecycle.start()
        host, bound = server.get_host_and_port()
        out.write(f"{READY}http://{host}:{bound}\n")
        out.flush()
        log.info("moto server on http://%s:%d (pid %d)", host, bound, os.getpid())
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
        while not stop.wait(1.0):
            pass
        log.info("stopping")
    finally:
        lifecycle.stop()
        server.stop()
        for p in reversed(patches):
            p.stop()


def main(
    argv: list[str] | None = None,
    *,
    module: str = "durable_jobs_harness.moto_emr_server",
    lifecycle: type[Lifecycle] = Lifecycle,
    base_patches: Callable[[], list[Any]] = aws_like_patches,
) -> int:
    """The server's command line (``module`` and what it serves: its lifecycle and moto patches)."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help="serve moto on 127.0.0.1 until stdin closes or SIGTERM")
    cmd.add_argument("--port", type=int, default=0, help="default: a free port")
    cmd.add_argument("--pending", type=float, default=0.5, help="seconds in each pending state")
    cmd.add_argument("--cancelling", type=float, default=1.0, help="seconds in the cancelling state")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    serve(args.port, lifecycle(pending=args.pending, cancelling=args.cancelling), sys.stdout, base_patches)
    return 0


# --- the parent's handle ----------------------------------------------------------------------------------


class MotoEmrProcess(MotoClients):
    """The server process, started by a test or the e2e session; stopped by its PID, also while paused."""

    module = "durable_jobs_harness.moto_emr_server"  # what ``python -m`` runs
    what = "moto EMR server"

    def __init__(self, log_file: Path, *, pending: float = 0.5, cancelling: float = 1.0) -> None:
        self.log_file = log_file
        self.argv = [
            sys.executable,
            "-m",
            self.module,
            "serve",
            "--pending",
            str(pending),
            "--cancelling",
            str(cancelling),
        ]
        self.endpoint = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> MotoEmrProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # safe from the terminal's signals; stopped by its PID
            )
        try:
            self.endpoint = self._ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} did not start (exit {self.proc.poll()}):\n{self.logs_tail()}")
            readable, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 0.5))
            if readable:
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    continue  # closed: the next round sees the exit
                line += chunk
        text = line.decode().strip()
        if not text.startswith(READY):
            raise RuntimeError(f"{self.what} said {text!r}:\n{self.logs_tail()}")
        return text[len(READY) :]

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, grace: float = 10.0) -> None:
        """Resume it if paused, close its stdin (it stops), then SIGTERM, then SIGKILL; by PID only."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        else:
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()

    def logs_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
