"""The processes of :class:`~durable_jobs_harness.airflow_env.AirflowEnv`: one Airflow component (or PostgreSQL, or
Redis) each, started in its own session and stopped by its PID; the private PostgreSQL cluster and Redis broker; the
waiting loop.

Every process is stopped by its PID (SIGTERM, then SIGKILL to the process group it leads, which holds only its
own children).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import psutil

from durable_jobs_harness import waiting
from durable_jobs_harness.logs import tail
from durable_jobs_harness.ports import free_port

__all__ = ["AirflowEnvError", "Component", "PostgresServer", "RedisServer", "spawn", "wait_until"]

STOP_GRACE = 20.0

T = TypeVar("T")


class AirflowEnvError(RuntimeError):
    """The environment could not be started, or a request to it failed."""


def wait_until(
    what: str,
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy; raise :class:`AirflowEnvError` naming ``what`` when
    ``timeout`` passes. An :class:`AirflowEnvError` from ``check`` (e.g. the API restarting) means "not yet"."""
    return waiting.wait_until(
        what,
        check,
        timeout=timeout,
        interval=interval,
        on_timeout=on_timeout,
        retry_on=(AirflowEnvError,),
        error=AirflowEnvError,
    )


# ---------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Component:
    """One Airflow (or PostgreSQL, or Redis) process this harness started."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)
    expected_exit: bool = False  # stopped or killed on purpose
    job_id: int | None = None  # the Airflow Job row of a scheduler/triggerer, once known

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def descendants(self) -> list[psutil.Process]:
        """Every process below this one now, also those that lead a process group of their own (Airflow's task
        runners do: a Celery worker's tasks are not in the worker's group)."""
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def signal(self, sig: signal.Signals, *, group: bool = False) -> None:
        """Send ``sig`` to the process, or (``group``) to its whole tree: the process group it leads (itself and its
        children) and every descendant that left that group."""
        if not self.running:
            return
        tree = self.descendants() if group else []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.pid, sig)  # the group id is our child's PID (start_new_session)
            else:
                os.kill(self.pid, sig)
        _signal_all(tree, sig)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, wait, then SIGKILL the whole tree; also reap stragglers of a process that already exited."""
        tree = self.descendants()  # before they are re-parented, when this process exits
        if self.running:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        # children (task processes, the trigger runner, uvicorn workers) live in the same group, task runners in theirs
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        _signal_all(tree, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)


def _signal_all(processes: list[psutil.Process], sig: signal.Signals) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.Error):  # gone already; psutil refuses a PID that was reused
            proc.send_signal(sig)


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> Component:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh: IO[bytes]
    with log.open("ab") as fh:
        fh.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # its own process group: stopped as a unit, safe from terminal signals
        )
    return Component(name=name, proc=proc, log=log)


# ---------------------------------------------------------------------------------------------------
# PostgreSQL (optional metadata DB)


class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1 (Debian's ``postgresql`` binaries), never the system service.

    ``initdb`` + ``pg_ctl`` in a fresh directory, trust authentication for the ``airflow`` role on
    127.0.0.1 only, durability off (it is thrown away). PostgreSQL refuses to run as root: as root the
    binaries run as the ``postgres`` user (``runuser``). Airflow then needs ``psycopg2`` and ``asyncpg``
    (``pip install "apache-airflow[postgres]"``).
    """

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.run_dir = Path()
        self._as: list[str] = []
        self._started = False

    @staticmethod
    def binary(name: str) -> str:
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        found = shutil.which(name)
        if found:
            return found
        raise AirflowEnvError(f"`{name}` not found: install the Debian package postgresql")

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def log(self) -> Path:
        return self.run_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def start(self) -> PostgresServer:
        # its own directory (not under a 0700 home), owned by whoever runs the server
        self.run_dir = Path(tempfile.mkdtemp(prefix="durable-jobs-pg-")).resolve()
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise AirflowEnvError("PostgreSQL cannot run as root and there is no 'postgres' user") from exc
            os.chown(self.run_dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run([self.binary("initdb"), "-D", str(self.data_dir), "-U", "airflow", "-A", "trust", "-E", "UTF8"])
        options = f"-h 127.0.0.1 -p {self.port} -k {self.run_dir} -c fsync=off -c synchronous_commit=off"
        self._run(
            [
                self.binary("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )
        self._started = True
        self._run([self.binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow"])
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(AirflowEnvError):
                self._run([self.binary("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        if self.run_dir != Path():
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _run(self, argv: list[str]) -> None:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        result = subprocess.run(
            [*self._as, *argv], capture_output=True, text=True, env=env, cwd=self.run_dir, timeout=120, check=False
        )
        if result.returncode != 0:
            raise AirflowEnvError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}\n{tail(self.log, 60)}")


# ---------------------------------------------------------------------------------------------------
# Redis (the Celery broker of a CeleryExecutor environment)


class RedisServer:
    """A private Redis on 127.0.0.1 (Debian's ``redis-server``), our own process, never the system service.

    It runs in a fresh directory with persistence off (``--save ""``, no append-only file: the broker is thrown
    away with the environment) and is stopped by its PID. :meth:`command` talks RESP over a socket, for tests
    that read the broker's own state (e.g. the ``unacked`` hash of Celery's Redis transport).
    """

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.run_dir = Path()
        self.component: Component | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.run_dir / "redis.log"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise AirflowEnvError("`redis-server` not found: install the Debian package redis-server")
        self.run_dir = Path(tempfile.mkdtemp(prefix="durable-jobs-redis-")).resolve()
        argv = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.run_dir)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]
        self.component = spawn("redis", argv, {"PATH": os.environ.get("PATH", "")}, self.log, self.run_dir)

        def answers() -> bool:
            if self.component is not None and not self.component.running:
                raise AirflowEnvError(f"redis-server exited\n{tail(self.log, 30)}")
            try:
                return bool(self.command("PING") == "PONG")
            except OSError:
                return False

        try:
            wait_until("redis-server to answer PING", answers, timeout=30, interval=0.2)
        except BaseException:
            self.stop()
            raise
        return self

    def command(self, *args: str) -> Any:
        """One command; its reply (a string, an integer, None, or a list of these)."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(request.encode())
            return _reply(sock.makefile("rb"), args[0])

    def stop(self) -> None:
        if self.component is not None:
            self.component.stop(grace=10.0)
            self.component = None
        if self.run_dir != Path():
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _reply(reader: IO[bytes], command: str) -> Any:
    """One RESP reply read from ``reader``."""
    line = reader.readline().decode().rstrip("\r\n")
    kind, rest = line[:1], line[1:]
    if kind == "+":
        return rest
    if kind == ":":
        return int(rest)
    if kind == "$":
        return None if int(rest) < 0 else reader.read(int(rest) + 2)[:-2].decode()
    if kind == "*":
        return None if int(rest) < 0 else [_reply(reader, command) for _ in range(int(rest))]
    raise AirflowEnvError(f"redis answered {line!r} to {command}")
