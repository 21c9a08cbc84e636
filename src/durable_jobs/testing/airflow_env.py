"""A throwaway real Airflow 3.3 (api-server, scheduler, dag-processor, triggerer) for end-to-end tests and the demo.

``dag.test()`` runs a task in-process: it drops the defer kwargs, runs no trigger ``cleanup()`` nor
``on_kill()``, and cannot lose a triggerer. Crash-safety is about processes dying, so the end-to-end
tests need the real thing. :class:`AirflowEnv` starts each component as its **own** process (so a test
can SIGKILL the triggerer, or start a second one) in a temporary ``AIRFLOW_HOME`` with LocalExecutor,
SQLite by default (or a private PostgreSQL cluster started with ``initdb``/``pg_ctl``), on free ports
bound to 127.0.0.1, with Airflow's health-check thresholds lowered so that takeovers happen in seconds.

:class:`AirflowApi` talks to the api-server's public REST API (``/api/v2``) with a JWT from
``/auth/token`` (simple auth manager, generated admin password): trigger runs, read task instances,
clear, mark failed, read the task state store.

Every process is started in its own session and stopped by its PID (SIGTERM, then SIGKILL to the process
group it leads, which holds only its own children). Standard library only, no pytest.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

from durable_jobs.testing.spark_cluster import free_port

__all__ = [
    "FINISHED_RUN_STATES",
    "FINISHED_TI_STATES",
    "AirflowApi",
    "AirflowEnv",
    "AirflowEnvError",
    "PostgresServer",
    "wait_until",
]

FINISHED_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
FINISHED_RUN_STATES = frozenset({"success", "failed"})
ADMIN = "admin"
_HTTP_TIMEOUT = 30.0
_STOP_GRACE = 20.0

# Lowered thresholds: a crashed triggerer's triggers move within seconds, trigger timeouts are checked
# every few seconds, new DAG files are seen quickly. Values are strings, as in the environment.
FAST_SETTINGS: dict[str, str] = {
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "6",
    "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "3",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "30",
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "3",
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
}


# ``[database] sql_alchemy_connect_args`` for SQLite: wait up to 30 s for a lock instead of 5 s. With four
# components and the workers writing at once, the default busy timeout gives "database is locked" errors.
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 30}


class AirflowEnvError(RuntimeError):
    """The environment could not be started, or a request to it failed."""


def wait_until(
    what: str,
    check: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Call ``check`` until it returns something truthy; raise with ``what`` when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
        except AirflowEnvError as exc:  # e.g. the API restarting: keep waiting, report it on timeout
            last_error = exc
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            detail = f"\n{on_timeout()}" if on_timeout else ""
            raise AirflowEnvError(f"timed out after {timeout:.0f}s waiting for {what}{extra}{detail}")
        time.sleep(interval)


def _tail(path: Path, lines: int = 60, max_bytes: int = 65536) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _new_fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


# ---------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Component:
    """One Airflow (or PostgreSQL) process this harness started."""

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

    def signal(self, sig: signal.Signals, *, group: bool = False) -> None:
        """Send ``sig`` to the process (or to the process group it leads: itself and its children)."""
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.pid, sig)  # the group id is our child's PID (start_new_session)
            else:
                os.kill(self.pid, sig)

    def stop(self, grace: float = _STOP_GRACE) -> None:
        """SIGTERM, wait, then SIGKILL the whole group; also reap stragglers of a process that already exited."""
        if self.running:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        # children (task processes, the trigger runner, uvicorn workers) live in the same group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)


def _spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> Component:
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
            raise AirflowEnvError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}\n{_tail(self.log)}")


# ---------------------------------------------------------------------------------------------------
# The public REST API


class AirflowApi:
    """A small client of the api-server's public REST API (``/api/v2``), JWT from ``/auth/token``."""

    def __init__(self, base_url: str, username: str, password: Callable[[], str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._token: str | None = None

    # --- plumbing --------------------------------------------------------------------------------------

    def _raw(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - local URL
        try:
            with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT) as resp:  # noqa: S310 - local URL
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:
            raise AirflowEnvError(f"{method} {path}: {exc}") from exc
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return status, payload

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send a request; 5xx answers (e.g. SQLite busy) are retried for idempotent requests."""
        retry = method == "GET" if idempotent is None else idempotent
        for attempt in range(4 if retry else 1):
            status, payload = self._raw(method, path, body=body, params=params)
            if status == 401:  # token expired or the api-server restarted with another secret
                self._token = None
                status, payload = self._raw(method, path, body=body, params=params)
            if status < 500 or not retry:
                break
            time.sleep(1.0 + attempt)
        if status >= 300:
            raise AirflowEnvError(f"{method} {path} answered {status}: {payload}")
        return payload

    def token(self) -> str:
        if self._token is None:
            status, payload = self._raw(
                "POST",
                "/auth/token",
                body={"username": self.username, "password": self._password()},
                auth=False,
            )
            if status != 201 or not isinstance(payload, dict) or "access_token" not in payload:
                raise AirflowEnvError(f"POST /auth/token answered {status}")  # never echo the body: no secrets
            self._token = str(payload["access_token"])
        return self._token

    # --- health and DAGs -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        status, payload = self._raw("GET", "/api/v2/monitor/health", auth=False)
        if status != 200 or not isinstance(payload, dict):
            raise AirflowEnvError(f"health answered {status}")
        return payload

    def healthy(self, components: Sequence[str] = ("metadatabase", "scheduler", "triggerer", "dag_processor")) -> bool:
        health = self.health()
        return all((health.get(c) or {}).get("status") == "healthy" for c in components)

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        status, payload = self._raw("GET", f"/api/v2/dags/{_q(dag_id)}")
        if status == 404:
            return None
        if status != 200:
            raise AirflowEnvError(f"GET dag {dag_id} answered {status}: {payload}")
        return cast(dict[str, Any], payload)

    def import_errors(self) -> list[dict[str, Any]]:
        payload = self.call("GET", "/api/v2/importErrors")
        return list(payload.get("import_errors", ()))

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{_q(dag_id)}", body={"is_paused": False})

    def jobs(self, job_type: str, *, state: str | None = "running") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"job_type": job_type, "limit": 100}
        if state:
            params["job_state"] = state
        return list(self.call("GET", "/api/v2/jobs", params=params).get("jobs", ()))

    # --- runs and task instances -----------------------------------------------------------------------

    def trigger(self, dag_id: str, *, run_id: str | None = None, conf: Mapping[str, Any] | None = None) -> str:
        """Start a DAG run; return its run id. Retried safely: the run id is chosen here, a repeat answers 409."""
        run_id = run_id or f"manual__{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}_{secrets.token_hex(3)}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns"
        try:
            self.call("POST", path, body=body, idempotent=True)
        except AirflowEnvError:
            if self.dag_run(dag_id, run_id).get("dag_run_id") != run_id:  # a retry after a lost answer: 409
                raise
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.call("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))

    def dag_runs(self, *, states: Sequence[str] = ()) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100}
        if states:
            params["state"] = list(states)
        payload = self.call("GET", "/api/v2/dags/~/dagRuns", params=params)
        return list(payload.get("dag_runs", ()))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        payload = self.call("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances")
        return list(payload.get("task_instances", ()))

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return cast(dict[str, Any], self.call("GET", path))

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        return list(self.call("GET", path).get("task_instances", ()))

    def set_state(self, dag_id: str, run_id: str, task_id: str, state: str, map_index: int = -1) -> Any:
        """Mark a task instance ``failed``/``success``/... (what the UI's "Mark as" does)."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return self.call("PATCH", path, body={"new_state": state}, idempotent=True)

    def clear(self, dag_id: str, run_id: str, task_ids: Sequence[str]) -> Any:
        """Clear task instances (the UI's "Clear"); their running tries are interrupted."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": list(task_ids),
            "only_failed": False,
            "reset_dag_runs": True,
        }
        return self.call("POST", f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances", body=body)

    def state_store(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """The task state store of one task instance (every key), through the public API."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/state-store"
        payload = self.call("GET", path, params={"map_index": map_index})
        return {str(e["key"]): e.get("value") for e in payload.get("task_state_store", ())}

    def wait_run_finished(self, dag_id: str, run_id: str, *, timeout: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.dag_run(dag_id, run_id)
            return run if run.get("state") in FINISHED_RUN_STATES else None

        return cast(dict[str, Any], wait_until(f"dag run {dag_id}/{run_id} to finish", finished, timeout=timeout))

    def wait_ti_state(
        self, dag_id: str, run_id: str, task_id: str, states: Sequence[str], *, timeout: float, map_index: int = -1
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            ti = self.task_instance(dag_id, run_id, task_id, map_index)
            return ti if ti.get("state") in states else None

        return cast(
            dict[str, Any],
            wait_until(f"{dag_id}/{run_id}/{task_id} to be {'/'.join(states)}", reached, timeout=timeout),
        )


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# ---------------------------------------------------------------------------------------------------
# The environment


class AirflowEnv:
    """A real Airflow 3.3 in a temporary ``AIRFLOW_HOME``; each component its own process.

    ::

        with AirflowEnv(dags_folder, env={"AIRFLOW_CONN_X": ...}) as af:
            run_id = af.api.trigger("my_dag")
            af.api.wait_run_finished("my_dag", run_id, timeout=300)

    :param dags_folder: the DAG files to serve.
    :param home: the ``AIRFLOW_HOME`` (default: a new temporary directory, removed by :meth:`stop`
        unless ``keep`` is set or :meth:`stop` is told to keep it).
    :param env: extra environment for every component (connections as ``AIRFLOW_CONN_*``, settings as
        ``AIRFLOW__SECTION__KEY``, variables the DAG files read).
    :param database: ``sqlite`` (default) or ``postgres`` (a private cluster, see :class:`PostgresServer`).
    """

    def __init__(
        self,
        dags_folder: Path,
        *,
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
        database: str = "sqlite",
        keep: bool = False,
        startup_timeout: float = 300.0,
        log_level: str = "INFO",
    ) -> None:
        if database not in ("sqlite", "postgres"):
            raise ValueError("database must be 'sqlite' or 'postgres'")
        self.dags_folder = dags_folder.resolve()
        self._home_arg = home
        self.extra_env = dict(env or {})
        self.database = database
        self.keep = keep
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.home = Path()
        self.port = 0
        self.components: dict[str, Component] = {}
        self.postgres: PostgresServer | None = None
        self._env: dict[str, str] = {}
        self._triggerers = 0
        self._atexit = False
        self.api = AirflowApi("http://127.0.0.1:0", ADMIN, self.admin_password)

    # --- properties ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment every component runs with (copy)."""
        return dict(self._env)

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def admin_password(self) -> str:
        """The admin password the api-server generated (read from its file; never logged)."""
        try:
            passwords = json.loads(self.password_file.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise AirflowEnvError(f"no generated password file yet at {self.password_file}: {exc}") from exc
        return str(passwords[ADMIN])

    def pid(self, name: str) -> int:
        return self.components[name].pid

    def triggerers(self) -> list[str]:
        """Names of the triggerer processes still running."""
        return [n for n, c in self.components.items() if n.startswith("triggerer") and c.running]

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> AirflowEnv:
        if self.components:
            raise AirflowEnvError("already started")
        if self.database == "postgres":
            self._check_postgres_drivers()
        if self._home_arg is not None:
            self.home = self._home_arg.resolve()
            self.home.mkdir(parents=True, exist_ok=True)
        else:
            self.home = Path(tempfile.mkdtemp(prefix="durable-jobs-airflow-")).resolve()
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            if self.database == "postgres":
                self.postgres = PostgresServer().start()
            self.port = free_port()
            self.api = AirflowApi(self.base_url, ADMIN, self.admin_password)
            self._env = self._build_env()
            self._migrate()
            self.components["api-server"] = self._start("api-server", ["api-server", "--port", str(self.port)])
            # no log servers: they bind every interface; the api-server reads the log files directly
            self.components["scheduler"] = self._start("scheduler", ["scheduler", "--skip-serve-logs"])
            self.components["dag-processor"] = self._start("dag-processor", ["dag-processor"])
            self.start_triggerer()
            wait_until(
                "Airflow to become healthy (api-server, scheduler, triggerer, dag-processor)",
                self._healthy,
                timeout=self.startup_timeout,
                interval=1.0,
                on_timeout=self.logs_tail,
            )
            wait_until("the admin token", self.api.token, timeout=60, on_timeout=self.logs_tail)
            (job,) = self.api.jobs("TriggererJob")
            self.components["triggerer"].job_id = int(job["id"])
        except BaseException:
            self.stop(keep_home=True)
            raise
        return self

    def _healthy(self) -> bool:
        self._check_alive()
        return self.api.healthy()

    def _check_alive(self) -> None:
        for name, comp in self.components.items():
            if not comp.running and not comp.expected_exit:
                raise AirflowEnvError(f"{name} exited with code {comp.proc.returncode}\n{self.logs_tail()}")

    def start_triggerer(self, *, timeout: float = 120.0) -> str:
        """Start one more triggerer; return its name.

        Once the environment is up, this waits until the new triggerer's Job row exists and records its
        id (:meth:`triggerer_for_job` maps trigger log files ``*.trigger.<job id>.log`` back to it).
        """
        known = {int(j["id"]) for j in self.api.jobs("TriggererJob", state=None)} if self._triggerers else set()
        self._triggerers += 1
        name = "triggerer" if self._triggerers == 1 else f"triggerer-{self._triggerers}"
        comp = self.components[name] = self._start(name, ["triggerer", "--skip-serve-logs"])
        if self._triggerers > 1:

            def new_job() -> int | None:
                self._check_alive()
                fresh = [int(j["id"]) for j in self.api.jobs("TriggererJob") if int(j["id"]) not in known]
                return fresh[0] if len(fresh) == 1 else None

            comp.job_id = wait_until(f"{name} to register its job", new_job, timeout=timeout, on_timeout=self.logs_tail)
        return name

    def triggerer_for_job(self, job_id: int) -> str:
        """The name of the triggerer process that runs (or ran) as Airflow Job ``job_id``."""
        for name, comp in self.components.items():
            if comp.job_id == job_id and name.startswith("triggerer"):
                return name
        raise AirflowEnvError(f"no triggerer started here has job id {job_id}")

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal one component. SIGKILL goes to its whole process group (a crash leaves no child behind);
        other signals go to the process itself, as a service manager would send them."""
        comp = self.components[name]
        comp.expected_exit = True
        comp.signal(sig, group=sig == signal.SIGKILL)

    def wait_exited(self, name: str, timeout: float = 60.0) -> int:
        comp = self.components[name]
        try:
            return comp.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AirflowEnvError(f"{name} (pid {comp.pid}) did not exit within {timeout:.0f}s") from exc

    def wait_dags(self, dag_ids: Sequence[str], *, timeout: float = 180.0) -> None:
        """Wait until the dag-processor has serialized these DAGs; unpause them."""

        def parsed() -> bool:
            return all(self.api.dag(d) is not None for d in dag_ids)

        def explain() -> str:
            try:
                errors = self.api.import_errors()
            except AirflowEnvError as exc:
                errors = [{"error": str(exc)}]
            return f"import errors: {errors}\n{self.logs_tail()}"

        wait_until(f"DAGs {', '.join(dag_ids)} to be parsed", parsed, timeout=timeout, on_timeout=explain)
        for dag_id in dag_ids:
            self.api.unpause(dag_id)

    def stop(self, *, keep_home: bool | None = None) -> None:
        """Stop every component by PID, all at once, then the database; remove a temporary home."""
        # all at once: SIGTERM everyone, one shared grace period, then SIGKILL each group
        comps = list(self.components.values())
        for comp in comps:
            comp.expected_exit = True
            comp.signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE
        for comp in comps:
            with contextlib.suppress(subprocess.TimeoutExpired):
                comp.proc.wait(max(0.1, deadline - time.monotonic()))
        for comp in comps:
            comp.stop(grace=5.0)
        if self.postgres is not None:
            self.postgres.stop()
        keep = self.keep if keep_home is None else keep_home
        if not keep and self._home_arg is None and self.home != Path() and self.home.exists():
            shutil.rmtree(self.home, ignore_errors=True)
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False

    def __enter__(self) -> AirflowEnv:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_home=True if exc_type is not None else None)

    # --- logs ------------------------------------------------------------------------------------------

    def logs_tail(self, lines: int = 40) -> str:
        parts = [f"--- {name} (pid {c.pid}) {c.log} ---\n{_tail(c.log, lines)}" for name, c in self.components.items()]
        return "\n".join(parts)

    def task_logs(self, dag_id: str, run_id: str, task_id: str | None = None) -> dict[Path, str]:
        """Task and trigger log files of a run (worker tries and ``*.trigger.*`` files), path -> text."""
        root = self.logs_dir / f"dag_id={dag_id}" / f"run_id={run_id}"
        pattern = f"task_id={task_id}/**/*" if task_id else "**/*"
        out: dict[Path, str] = {}
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                out[path] = path.read_text("utf-8", "replace")
        return out

    # --- internals -------------------------------------------------------------------------------------

    def _build_env(self) -> dict[str, str]:
        # nothing of the caller's Airflow (or its fail-points) leaks in: only what this environment sets
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DURABLE_JOBS_FAILPOINTS"))}
        bin_dir = str(Path(sys.executable).parent)
        db_url = self.postgres.url if self.postgres else f"sqlite:///{self.home / 'airflow.db'}"
        env.update(
            {
                "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": _new_fernet_key(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
                **(
                    {}
                    if self.postgres
                    else {
                        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": f"{__name__}.SQLITE_CONNECT_ARGS",
                        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": f"{__name__}.SQLITE_CONNECT_ARGS",
                    }
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": self.log_level,
                "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
                **FAST_SETTINGS,
            }
        )
        env.update(self.extra_env)
        return env

    def _check_postgres_drivers(self) -> None:
        env = {**os.environ, **self.extra_env}
        probe = subprocess.run(
            [sys.executable, "-c", "import psycopg2, asyncpg"], env=env, capture_output=True, text=True, check=False
        )
        if probe.returncode != 0:
            raise AirflowEnvError(
                "Airflow on PostgreSQL needs psycopg2 and asyncpg in its environment "
                f'(pip install "apache-airflow[postgres]"): {probe.stderr.strip().splitlines()[-1:]}'
            )

    def _start(self, name: str, args: Sequence[str]) -> Component:
        return _spawn(
            name, [sys.executable, "-m", "airflow", *args], self._env, self.logs_dir / f"{name}.log", self.home
        )

    def _migrate(self) -> None:
        log = self.logs_dir / "db-migrate.log"
        comp = _spawn("db-migrate", [sys.executable, "-m", "airflow", "db", "migrate"], self._env, log, self.home)
        try:
            code = comp.proc.wait(self.startup_timeout)
        except subprocess.TimeoutExpired as exc:
            comp.stop()
            raise AirflowEnvError(f"airflow db migrate timed out\n{_tail(log)}") from exc
        if code != 0:
            raise AirflowEnvError(f"airflow db migrate failed with exit code {code}\n{_tail(log)}")
        if self.postgres is None:
            # WAL is a property of the database file: readers stop blocking the writer, for every component
            with contextlib.closing(sqlite3.connect(self.home / "airflow.db")) as db:
                db.execute("PRAGMA journal_mode=WAL")
