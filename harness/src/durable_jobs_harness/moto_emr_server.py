"""moto's EMR as its own process, whose EMR Serverless job runs live by the clock: the AWS of the crash matrix.

``python -m durable_jobs_harness.moto_emr_server serve`` runs moto's server on 127.0.0.1 (a free port unless
``--port``), with the AWS-likeness patches of :mod:`durable_jobs_harness.moto_emr`, and prints one line,
``ready http://127.0.0.1:<port>``, on stdout. It stops when its stdin closes (its parent died or let go) or
on SIGTERM/SIGINT. The end-to-end tests start it with :class:`MotoEmrProcess` and pause it with SIGSTOP.

In moto a job run is ``SUCCESS`` the moment it starts and never moves. Here a thread plays EMR Serverless
(:class:`Lifecycle`), reading what the run was asked to do from its ``jobDriver``: the arguments of
``sparkSubmit.entryPointArguments`` are ``<seconds> <exit code>`` (:mod:`durable_jobs_harness.emr_sleep_exit`).
A run goes ``SUBMITTED`` -> ``SCHEDULED`` -> ``RUNNING``, and after ``seconds`` of running ``SUCCESS`` (exit
code 0) or ``FAILED`` (with ``stateDetails`` naming the exit code). ``CancelJobRun`` on an active run makes it
``CANCELLING``, then ``CANCELLED``; on an ended one it is AWS's ``ValidationException`` (moto would cancel a
finished run).

Deliberately *not* like AWS: a repeated ``clientToken`` starts another run (AWS returns the first one for a
while). The crash matrix counts runs per token, so only the protocol keeps a token from running twice.
Times are this machine's clock (``createdAt``, and so the ``createdAtAfter`` of a find): no skew.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from moto.core.utils import utcnow
from moto.emrserverless import models as serverless_models
from moto.emrserverless.exceptions import ValidationException
from moto.server import ThreadedMotoServer

from durable_jobs_harness.emr_sleep_exit import sleep_exit_of
from durable_jobs_harness.moto_emr import MotoClients, aws_like_patches

__all__ = ["Lifecycle", "MotoEmrProcess"]

log = logging.getLogger("moto_emr_server")

READY = "ready "
_ENDED = ("SUCCESS", "FAILED", "CANCELLED")


@dataclass
class _Plan:
    run: Any  # moto's JobRun
    seconds: float
    exit_code: int
    started: float  # time.monotonic() at StartJobRun
    cancelled: float | None = None  # time.monotonic() at CancelJobRun


def _plan_of(run: Any, now: float) -> _Plan:
    seconds, exit_code = sleep_exit_of(run.job_driver)
    return _Plan(run, seconds, exit_code, now)


class Lifecycle:
    """EMR Serverless job runs that move with time, driven by a thread inside the server process.

    :param pending: seconds in ``SUBMITTED``, then again in ``SCHEDULED``, before ``RUNNING``.
    :param cancelling: seconds in ``CANCELLING`` before ``CANCELLED``.
    """

    def __init__(self, *, pending: float = 0.5, cancelling: float = 1.0, tick: float = 0.1) -> None:
        self.pending = pending
        self.cancelling = cancelling
        self.tick_interval = tick
        self._plans: dict[str, _Plan] = {}  # active runs by id
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what the server's handlers call --------------------------------------------------------------

    def started(self, run: Any) -> None:
        now = time.monotonic()
        plan = _plan_of(run, now)
        with self._lock:
            self._plans[run.id] = plan
            self._set(run, "SUBMITTED", None)
        log.info("run %s (%s) SUBMITTED: %.1fs, exit code %d", run.id, run.name, plan.seconds, plan.exit_code)

    def cancel(self, run: Any) -> None:
        with self._lock:
            plan = self._plans.get(run.id)
            if plan is None or run.state in _ENDED:
                raise ValidationException(f"Job run {run.id} is not in a cancellable state: {run.state}")
            if plan.cancelled is None:
                plan.cancelled = time.monotonic()
                self._set(run, "CANCELLING", None)
                log.info("run %s CANCELLING", run.id)

    # --- the clock ------------------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move every active run to the state it has reached at ``now`` (``time.monotonic()``)."""
        with self._lock:
            for run_id, plan in list(self._plans.items()):
                state, details = self._state_at(plan, now)
                if state != plan.run.state:
                    self._set(plan.run, state, details)
                    log.info("run %s %s", run_id, state)
                if state in _ENDED:
                    del self._plans[run_id]

    def _state_at(self, plan: _Plan, now: float) -> tuple[str, str | None]:
        if plan.cancelled is not None:
            if now - plan.cancelled >= self.cancelling:
                return "CANCELLED", "Job run was cancelled."
            return "CANCELLING", None
        age = now - plan.started
        if age < self.pending:
            return "SUBMITTED", None
        if age < 2 * self.pending:
            return "SCHEDULED", None
        if age < 2 * self.pending + plan.seconds:
            return "RUNNING", None
        if plan.exit_code == 0:
            return "SUCCESS", None
        return (
            "FAILED",
            f"Job failed, please check complete logs in configured logging destination. ExitCode: {plan.exit_code}.",
        )

    @staticmethod
    def _set(run: Any, state: str, details: str | None) -> None:
        run.state = state
        run.state_details = details
        run.updated_at = utcnow()

    def start(self) -> None:
        def loop() -> None:
            while not self._stopped.wait(self.tick_interval):
                self.advance(time.monotonic())

        self._thread = threading.Thread(target=loop, name="emr-serverless-lifecycle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5)

    # --- the patches that route moto's handlers here ----------------------------------------------------

    def patches(self) -> list[Any]:
        from unittest import mock

        backend = serverless_models.EMRServerlessBackend
        original_start = backend.start_job_run
        lifecycle = self

        def start_job_run(self: Any, **kwargs: Any) -> Any:
            run = original_start(self, **kwargs)
            lifecycle.started(run)
            return run

        def cancel_job_run(self: Any, application_id: str, job_run_id: str) -> tuple[str, str]:
            run = self.get_job_run(application_id=application_id, job_run_id=job_run_id)  # or ResourceNotFound
            lifecycle.cancel(run)
            return application_id, job_run_id

        return [
            mock.patch.object(backend, "start_job_run", start_job_run),
            mock.patch.object(backend, "cancel_job_run", cancel_job_run),
        ]


# --- the process --------------------------------------------------------------------------------------


def serve(port: int, lifecycle: Lifecycle, out: IO[str]) -> None:
    """Run until stdin closes or SIGTERM/SIGINT; print ``ready <endpoint>`` once listening."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while os.read(sys.stdin.fileno(), 4096):
                pass
        stop.set()

    patches = [*aws_like_patches(), *lifecycle.patches()]
    for p in patches:
        p.start()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
        lifecycle.start()
        host, bound = server.get_host_and_port()
        out.write(f"{READY}http://{host}:{bound}\n")
        out.flush()
        log.info("moto EMR server on http://%s:%d (pid %d)", host, bound, os.getpid())
        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
        while not stop.wait(1.0):
            pass
        log.info("stopping")
    finally:
        lifecycle.stop()
        server.stop()
        for p in reversed(patches):
            p.stop()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durable_jobs_harness.moto_emr_server")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help="serve moto's EMR on 127.0.0.1 until stdin closes or SIGTERM")
    cmd.add_argument("--port", type=int, default=0, help="default: a free port")
    cmd.add_argument("--pending", type=float, default=0.5, help="seconds in SUBMITTED, then in SCHEDULED")
    cmd.add_argument("--cancelling", type=float, default=1.0, help="seconds in CANCELLING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    serve(args.port, Lifecycle(pending=args.pending, cancelling=args.cancelling), sys.stdout)
    return 0


# --- the parent's handle ----------------------------------------------------------------------------------


class MotoEmrProcess(MotoClients):
    """The server process, started by a test or the e2e session; stopped by its PID, also while paused."""

    def __init__(self, log_file: Path, *, pending: float = 0.5, cancelling: float = 1.0) -> None:
        self.log_file = log_file
        self.argv = [
            sys.executable,
            "-m",
            "durable_jobs_harness.moto_emr_server",
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
                raise RuntimeError(f"moto EMR server did not start (exit {self.proc.poll()}):\n{self.logs_tail()}")
            readable, _, _ = select.select([self.proc.stdout], [], [], min(remaining, 0.5))
            if readable:
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    continue  # closed: the next round sees the exit
                line += chunk
        text = line.decode().strip()
        if not text.startswith(READY):
            raise RuntimeError(f"moto EMR server said {text!r}:\n{self.logs_tail()}")
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
    sys.exit(_main())
