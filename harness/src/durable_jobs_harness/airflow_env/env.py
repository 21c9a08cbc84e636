"""A throwaway real Airflow 3.3 (api-server, scheduler, dag-processor, triggerer) for end-to-end tests and the demo.

:class:`AirflowEnv` starts each component as its **own** process (so a test can SIGKILL the triggerer, or start a
second one) in a temporary ``AIRFLOW_HOME`` with LocalExecutor, SQLite by default (or a private PostgreSQL
cluster), on free ports bound to 127.0.0.1, with Airflow's health-check thresholds lowered so that takeovers
happen in seconds. With ``executor="CeleryExecutor"`` it also runs a private Redis broker and Celery workers,
each its own process, so that a test can SIGKILL a whole worker (and start it again) by name.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.fernet import Fernet

from durable_jobs_harness.airflow_env.api import AirflowApi
from durable_jobs_harness.airflow_env.processes import (
    STOP_GRACE,
    AirflowEnvError,
    Component,
    PostgresServer,
    RedisServer,
    spawn,
    wait_until,
)
from durable_jobs_harness.logs import tail
from durable_jobs_harness.ports import free_port

__all__ = ["ADMIN", "CELERY_WORKER", "EXECUTORS", "FAST_SETTINGS", "SQLITE_CONNECT_ARGS", "AirflowEnv"]

ADMIN = "admin"
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
CELERY_WORKER = "celery-worker"  # the components' name prefix: celery-worker-1, celery-worker-2...
RESTARTABLE = ("api-server", "scheduler", "dag-processor")  # started in this order; :meth:`AirflowEnv.restart`

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
    # raised (default 30 s): a triggerer's first on_kill waits for its supervisor to build the in-process execution
    # API (its first API call); on a loaded 2-core machine that took 34-48 s and the on_kill was cancelled
    "AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT": "120",
}


# ``[database] sql_alchemy_connect_args`` for SQLite: wait up to 30 s for a lock instead of 5 s. With four
# components and the workers writing at once, the default busy timeout gives "database is locked" errors.
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 30}


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
    :param executor: ``LocalExecutor`` (default) or ``CeleryExecutor``: a private Redis broker
        (:class:`RedisServer`), the result backend on the metadata database (PostgreSQL only: Airflow refuses
        SQLite with Celery), and ``celery_workers`` workers of ``celery_concurrency`` slots each, named
        ``celery-worker-1``... (:meth:`kill` and :meth:`start_celery_worker` take these names).
    :param component_env: extra environment of one kind of component only, by name (``scheduler``, ``triggerer``
        for every triggerer...), over ``env``: e.g. libfaketime preloaded into the scheduler and its
        LocalExecutor workers alone (the chaos campaign).
    :param url_path: serve the api-server under this path (``[api] base_url`` ``http://127.0.0.1:PORT/<path>``),
        e.g. ``"/airflow"``; :attr:`base_url` (the REST client's, the workers' execution API) includes it.
    """

    def __init__(
        self,
        dags_folder: Path,
        *,
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
        database: str = "sqlite",
        executor: str = "LocalExecutor",
        celery_workers: int = 2,
        celery_concurrency: int = 4,
        keep: bool = False,
        startup_timeout: float = 300.0,
        log_level: str = "INFO",
        component_env: Mapping[str, Mapping[str, str]] | None = None,
        url_path: str = "",
    ) -> None:
        if url_path and (not url_path.startswith("/") or url_path.endswith("/")):
            raise ValueError("url_path must start with '/' and not end with one, e.g. '/airflow'")
        if database not in ("sqlite", "postgres"):
            raise ValueError("database must be 'sqlite' or 'postgres'")
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}")
        if executor == "CeleryExecutor" and database != "postgres":
            raise ValueError("CeleryExecutor needs database='postgres' (Airflow refuses SQLite with Celery)")
        self.dags_folder = dags_folder.resolve()
        self._home_arg = home
        self.extra_env = dict(env or {})
        self.database = database
        self.executor = executor
        self.celery_workers = celery_workers
        self.celery_concurrency = celery_concurrency
        self.keep = keep
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.component_env = {name: dict(extra) for name, extra in (component_env or {}).items()}
        self.url_path = url_path
        self.home = Path()
        self.port = 0
        self.components: dict[str, Component] = {}
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self._env: dict[str, str] = {}
        self._triggerers = 0
        self._atexit = False
        self.api = AirflowApi("http://127.0.0.1:0", ADMIN, self.admin_password)

    # --- properties ------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The api-server's ``[api] base_url``: its origin, then :attr:`url_path` (empty by default)."""
        return f"http://127.0.0.1:{self.port}{self.url_path}"

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

    def workers(self) -> list[str]:
        """Names of the Celery worker processes still running."""
        return [n for n, c in self.components.items() if n.startswith(CELERY_WORKER) and c.running]

    def component_of_pid(self, pid: int) -> str:
        """The running component that ``pid`` descends from (e.g. the Celery worker running a task process)."""
        for name, comp in self.components.items():
            if comp.running and any(p.pid == pid for p in comp.descendants()):
                return name
        raise AirflowEnvError(f"process {pid} descends from no running component")

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
            if self.executor == "CeleryExecutor":
                self.redis = RedisServer().start()
            self.port = free_port()
            self.api = AirflowApi(self.base_url, ADMIN, self.admin_password)
            self._env = self._build_env()
            self._migrate()
            for name in RESTARTABLE:
                self.components[name] = self._start(name, self._args(name))
            self.start_triggerer()
            workers = [self._spawn_celery_worker(None) for _ in range(self.celery_workers if self.redis else 0)]
            wait_until(
                "Airflow to become healthy (api-server, scheduler, triggerer, dag-processor)",
                self._healthy,
                timeout=self.startup_timeout,
                interval=1.0,
                on_timeout=self.logs_tail,
            )
            wait_until("the admin token", self.api.token, timeout=60, on_timeout=self.logs_tail)
            for name, ready in workers:
                wait_until(f"{name} to be ready", ready, timeout=self.startup_timeout, on_timeout=self.logs_tail)
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

    def restart(self, name: str) -> None:
        """Start a stopped (killed) api-server, scheduler or dag-processor again, with the same arguments."""
        if name not in RESTARTABLE:
            raise AirflowEnvError(f"{name} cannot be restarted: one of {', '.join(RESTARTABLE)}")
        if self.components[name].running:
            raise AirflowEnvError(f"{name} is running")
        self.components[name] = self._start(name, self._args(name))

    def _args(self, name: str) -> list[str]:
        # no log servers: they bind every interface; the api-server reads the log files directly
        return {
            "api-server": ["api-server", "--port", str(self.port)],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
        }[name]

    def start_celery_worker(self, name: str | None = None, *, timeout: float = 120.0) -> str:
        """Start a Celery worker (``name``: a new ``celery-worker-<n>``, or a stopped one again); return its name
        once it consumes from the broker."""
        name, ready = self._spawn_celery_worker(name)
        wait_until(f"{name} to be ready", ready, timeout=timeout, on_timeout=self.logs_tail)
        return name

    def _spawn_celery_worker(self, name: str | None) -> tuple[str, Callable[[], bool]]:
        if self.redis is None:
            raise AirflowEnvError("this environment runs no Celery (executor='CeleryExecutor')")
        if name is None:
            name = f"{CELERY_WORKER}-{sum(n.startswith(CELERY_WORKER) for n in self.components) + 1}"
        elif name in self.workers():
            raise AirflowEnvError(f"{name} is running")
        log = self.logs_dir / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(self.celery_concurrency)]
        args += ["--pid", str(self.home / f"{name}.pid"), "--skip-serve-logs"]  # its own pid file: two workers
        self.components[name] = self._start(name, args)

        def ready() -> bool:  # Celery logs "<name>@<host> ready." once it consumes
            self._check_alive()
            return b" ready." in log.read_bytes()[offset:]

        return name, ready

    def triggerer_for_job(self, job_id: int) -> str:
        """The name of the triggerer process that runs (or ran) as Airflow Job ``job_id``."""
        for name, comp in self.components.items():
            if comp.job_id == job_id and name.startswith("triggerer"):
                return name
        raise AirflowEnvError(f"no triggerer started here has job id {job_id}")

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal one component. SIGKILL goes to its whole process tree (a crash leaves no child behind: also a
        Celery worker's task runners, in groups of their own); other signals go to the process itself, as a
        service manager would send them."""
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
        deadline = time.monotonic() + STOP_GRACE
        for comp in comps:
            with contextlib.suppress(subprocess.TimeoutExpired):
                comp.proc.wait(max(0.1, deadline - time.monotonic()))
        for comp in comps:
            comp.stop(grace=5.0)
        if self.redis is not None:
            self.redis.stop()
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
        parts = [f"--- {name} (pid {c.pid}) {c.log} ---\n{tail(c.log, lines)}" for name, c in self.components.items()]
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
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
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
        if self.redis is not None:
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.redis.url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db_url}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.celery_concurrency),
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
        # a component's own variables (``component_env``, by name without a ``-<n>`` suffix) go over the shared ones
        env = {**self._env, **self.component_env.get(re.sub(r"-\d+$", "", name), {})}
        return spawn(name, [sys.executable, "-m", "airflow", *args], env, self.logs_dir / f"{name}.log", self.home)

    def _migrate(self) -> None:
        log = self.logs_dir / "db-migrate.log"
        comp = spawn("db-migrate", [sys.executable, "-m", "airflow", "db", "migrate"], self._env, log, self.home)
        try:
            code = comp.proc.wait(self.startup_timeout)
        except subprocess.TimeoutExpired as exc:
            comp.stop()
            raise AirflowEnvError(f"airflow db migrate timed out\n{tail(log, 60)}") from exc
        if code != 0:
            raise AirflowEnvError(f"airflow db migrate failed with exit code {code}\n{tail(log, 60)}")
        if self.postgres is None:
            # WAL is a property of the database file: readers stop blocking the writer, for every component
            with contextlib.closing(sqlite3.connect(self.home / "airflow.db")) as db:
                db.execute("PRAGMA journal_mode=WAL")
