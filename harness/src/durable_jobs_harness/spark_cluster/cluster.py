"""A throwaway local Spark standalone cluster (one Master, one Worker) for tests and the demo.

``pip install pyspark`` ships a complete Spark distribution (``bin/spark-class`` and all jars) but no
``start-master.sh``/``start-worker.sh``.  :class:`SparkCluster` starts both daemons straight through
``spark-class``, bound to 127.0.0.1 on free ports (or the fixed :data:`LOCAL_PORTS`), with the REST
submission server enabled (and optionally protected by Spark's ``JWSFilter``), waits until the worker has
registered, and tears everything down again, including orphaned PySpark python processes that a killed
driver leaves behind. Only processes it started are signalled, by PID (found with psutil: its own daemons,
and processes whose working directory lies in its worker's work dir).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

import psutil
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from durable_jobs_harness.logs import tail
from durable_jobs_harness.ports import free_ports
from durable_jobs_harness.waiting import wait_until

__all__ = ["SparkCluster", "SparkClusterError", "SparkPorts", "spark_home"]

_DAEMON_MARKER = "org.apache.spark.deploy."
_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
_JVM_FAST_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_POLL_INTERVAL = 0.2
_STOP_GRACE = 10.0
_HTTP_TIMEOUT = 2.0

_LOG4J2 = """\
# Written by durable_jobs_harness.spark_cluster
rootLogger.level = info
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss.SSS} %p %c{1}: %m%n%ex
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
logger.jetty2.name = org.sparkproject.jetty.util.component.AbstractLifeCycle
logger.jetty2.level = error
"""


class SparkClusterError(RuntimeError):
    """The local cluster could not be started, restarted or queried."""


def spark_home() -> Path:
    """The ``pyspark`` package directory, which is a complete ``SPARK_HOME``."""
    spec = importlib.util.find_spec("pyspark")  # locate without importing pyspark/py4j
    if spec is None or not spec.submodule_search_locations:
        raise SparkClusterError("pyspark is not installed; `pip install pyspark` (it bundles Spark, needs Java 17+)")
    home = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (home / "bin" / "spark-class").is_file():
        raise SparkClusterError(f"{home} has no bin/spark-class; is this a pip-installed pyspark?")
    return home


# ---------------------------------------------------------------------------------------------------
# Processes (psutil)


def _cmdline(pid: int) -> str | None:
    """The command line of ``pid``, or None when it is gone or unreadable."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return None


def processes_with_cwd_under(directory: Path) -> list[psutil.Process]:
    """Processes (other than this one) whose working directory is ``directory`` or lies inside it."""
    root = str(directory.resolve())
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd")  # None: gone, a zombie or not ours to read
        if proc.pid != me and cwd and (cwd == root or cwd.startswith(root + os.sep)):
            found.append(proc)
    return found


def rest_answers(rest_url: str) -> bool:
    """Does the REST server at ``rest_url`` answer? Any HTTP status counts: with JWSFilter readyz answers 403
    without a token."""
    try:
        with urllib.request.urlopen(f"{rest_url}/v1/submissions/readyz", timeout=_HTTP_TIMEOUT):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------
# The cluster


@dataclass(frozen=True)
class SparkPorts:
    """The five ports of one cluster, all on 127.0.0.1."""

    master: int
    rest: int
    master_ui: int
    worker: int
    worker_ui: int


#: Fixed ports for a cluster a user talks to by hand (``python -m durable_jobs_harness.spark_cluster serve``):
#: Spark's defaults, except the web UIs. Spark's master UI defaults to 8080, which is Airflow's api-server's
#: default too (and the worker UI to 8081, its fallback); 18080 is Spark's history server. Free ports, which
#: tests and the demo use, come from the kernel's ephemeral range and never hit these.
LOCAL_PORTS = SparkPorts(master=7077, rest=6066, master_ui=8090, worker=7078, worker_ui=8091)

#: where ``serve`` builds the test apps: the README's quickstart DAG names the jar there
LOCAL_APPS_DIR = Path("/tmp/spark-apps")  # noqa: S108 - a fixed path a user can type
CONN_ID = "spark_standalone_default"


def connection_command(ports: SparkPorts, jwt: str | None = None) -> str:
    """The ``airflow connections add`` command of a ``spark_standalone_rest`` connection to a local cluster."""
    args = [
        "airflow", "connections", "add", CONN_ID, "--conn-type", "spark_standalone_rest",
        "--conn-host", "127.0.0.1", "--conn-port", str(ports.rest),
        "--conn-extra", json.dumps({"master_ui_urls": f"http://127.0.0.1:{ports.master_ui}"}),
    ]  # fmt: skip
    if jwt is not None:
        args += ["--conn-password", jwt]
    return shlex.join(args)


class SparkCluster:
    """A local Spark standalone Master + Worker started from the pyspark package.

    Use as a context manager::

        with SparkCluster() as cluster:
            submit_to(cluster.rest_url)

    Only processes this object started (and orphans whose working directory lies inside its own
    worker work dir) are ever signalled.
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        jwt_secret: str | None = None,
        worker_cores: int = 4,
        worker_memory: str = "4g",
        retained_drivers: int | None = None,
        pyspark_python: str | None = None,
        startup_timeout: float = 90.0,
        ports: SparkPorts | None = None,
    ) -> None:
        self._run_dir_arg = run_dir
        self._ports_arg = ports  # None: free ports, picked at each start
        self.jwt_secret = jwt_secret
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.retained_drivers = retained_drivers
        # Interpreter for PySpark drivers (PYSPARK_PYTHON of the worker); default: this interpreter.
        self.pyspark_python = pyspark_python or sys.executable
        self.startup_timeout = startup_timeout
        self._run_dir: Path | None = None
        self._ports: SparkPorts | None = None
        self._master: subprocess.Popen[bytes] | None = None
        self._worker: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    # -- paths and URLs -----------------------------------------------------------------------------

    def _need_started(self) -> tuple[Path, SparkPorts]:
        if self._run_dir is None or self._ports is None:
            raise SparkClusterError("the cluster has not been started")
        return self._run_dir, self._ports

    @property
    def run_dir(self) -> Path:
        return self._need_started()[0]

    @property
    def conf_dir(self) -> Path:
        return self.run_dir / "conf"

    @property
    def work_dir(self) -> Path:
        """The worker's ``--work-dir``; drivers run in ``work_dir/<driverId>/``."""
        return self.run_dir / "work"

    @property
    def ports(self) -> SparkPorts:
        return self._need_started()[1]

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.ports.master}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.rest}"

    @property
    def master_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.master_ui}"

    @property
    def worker_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.worker_ui}"

    @property
    def log_files(self) -> dict[str, Path]:
        """Daemon stdout+stderr logs, by daemon name (``master``, ``worker``)."""
        run_dir = self.run_dir
        return {"master": run_dir / "master.log", "worker": run_dir / "worker.log"}

    @property
    def master_pid(self) -> int | None:
        return self._master.pid if self._master is not None and self._master.poll() is None else None

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker is not None and self._worker.poll() is None else None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> SparkCluster:
        """Start the Master, then the Worker; return once the worker has registered."""
        if self._master is not None or self._worker is not None:
            raise SparkClusterError("the cluster is already running")
        if self._run_dir_arg is not None:
            run_dir = self._run_dir_arg.resolve()
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            run_dir = Path(tempfile.mkdtemp(prefix="durable-jobs-spark-")).resolve()
        self._run_dir = run_dir
        self._ports = self._ports_arg or SparkPorts(*free_ports(5))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self._start_daemons()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_daemons(self) -> None:
        self.start_master()
        self._start_worker()
        self._wait_for("the worker to register", self._worker_registered)

    def _start_worker(self) -> None:
        """Start the Worker, registering with :attr:`master_url` (every master, for HA)."""
        ports = self.ports
        self._worker = self._spawn(
            "worker",
            _WORKER_CLASS,
            [
                "--host",
                "127.0.0.1",
                "--port",
                str(ports.worker),
                "--webui-port",
                str(ports.worker_ui),
                "--cores",
                str(self.worker_cores),
                "--memory",
                self.worker_memory,
                "--work-dir",
                str(self.work_dir),
                "--properties-file",
                str(self.conf_dir / "spark-defaults.conf"),
                self.master_url,
            ],
        )

    def start_master(self) -> None:
        """Start the Master on this cluster's ports; return once it is ALIVE and REST answers."""
        if self._master is not None and self._master.poll() is None:
            raise SparkClusterError("the master is already running")
        ports = self.ports
        self._master = self._spawn(
            "master",
            _MASTER_CLASS,
            [
                "--host",
                "127.0.0.1",
                "--port",
                str(ports.master),
                "--webui-port",
                str(ports.master_ui),
                "--properties-file",
                str(self.conf_dir / "spark-defaults.conf"),
            ],
        )
        self._wait_for("the master to become ALIVE with REST up", self._master_ready)

    def kill_master(self) -> None:
        """SIGKILL the Master (simulates a crash; recovery mode NONE forgets every driver)."""
        self._signal_daemon(self._master, signal.SIGKILL)
        if self._master is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._master.wait(_STOP_GRACE)

    def restart_master(self) -> None:
        """Kill and restart the Master; return once the worker has re-registered with it."""
        self.kill_master()
        self.start_master()
        self._wait_for("the worker to re-register", self._worker_registered)

    def stop(self) -> None:
        """Stop the worker, orphans under the work dir, then the master. Safe to call repeatedly."""
        try:
            self._terminate(self._worker)
            self._worker = None
            if self._run_dir is not None:
                self._kill_orphans()
            self._terminate(self._master)
            self._master = None
        finally:
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def __enter__(self) -> SparkCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- queries ------------------------------------------------------------------------------------

    def json_state(self) -> dict[str, Any]:
        """``GET <master ui>/json/``: workers, active/completed drivers and apps, status."""
        url = f"{self.master_ui_url}/json/"
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT) as resp:  # noqa: S310 - local http URL
            return cast(dict[str, Any], json.loads(resp.read()))

    def driver_log(self, driver_id: str, log_type: str = "stderr") -> str:
        """The driver's ``stdout``/``stderr`` file from the worker work dir, or "" if absent."""
        path = self.work_dir / driver_id / log_type
        try:
            return path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def logs_tail(self, lines: int = 40) -> str:
        """The last lines of every daemon log, for error messages."""
        parts = [f"--- {name} log ({path}) ---\n{tail(path, lines, 16384)}" for name, path in self.log_files.items()]
        return "\n".join(parts)

    # -- internals ----------------------------------------------------------------------------------

    def _properties(self) -> dict[str, str]:
        """``spark-defaults.conf`` of every daemon."""
        ports = self.ports
        props = {
            "spark.master.rest.enabled": "true",
            "spark.master.rest.host": "127.0.0.1",
            "spark.master.rest.port": str(ports.rest),
            "spark.master.ui.port": str(ports.master_ui),
            "spark.worker.ui.port": str(ports.worker_ui),
            "spark.ui.showConsoleProgress": "false",
            # Fail loudly instead of silently moving to port+1 when a port is taken.
            "spark.port.maxRetries": "0",
        }
        if self.retained_drivers is not None:
            props["spark.deploy.retainedDrivers"] = str(self.retained_drivers)
        if self.jwt_secret is not None:
            props["spark.master.rest.filters"] = "org.apache.spark.ui.JWSFilter"
            props["spark.org.apache.spark.ui.JWSFilter.param.secretKey"] = self.jwt_secret
        return props

    def _write_properties(self, name: str, props: dict[str, str]) -> Path:
        """A properties file in the conf dir (readable by us only: it may hold the JWT secret)."""
        path = self.conf_dir / name
        path.write_text("".join(f"{key} {value}\n" for key, value in props.items()), "utf-8")
        path.chmod(0o600)
        return path

    def _write_conf(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self._write_properties("spark-defaults.conf", self._properties())
        (self.conf_dir / "log4j2.properties").write_text(_LOG4J2, "utf-8")

    def _env(self) -> dict[str, str]:
        run_dir = self.run_dir
        env = dict(os.environ)
        env.update(
            {
                "SPARK_HOME": str(spark_home()),
                "SPARK_CONF_DIR": str(self.conf_dir),
                "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_LOCAL_HOSTNAME": "localhost",
                "SPARK_DAEMON_MEMORY": "256m",
                "SPARK_DAEMON_JAVA_OPTS": _JVM_FAST_OPTS,
                "SPARK_LAUNCHER_OPTS": _JVM_FAST_OPTS,
                "SPARK_NO_DAEMONIZE": "1",
                "SPARK_LOG_DIR": str(run_dir),
                "SPARK_PID_DIR": str(run_dir),
                "PYSPARK_PYTHON": self.pyspark_python,
            }
        )
        return env

    def _spawn(self, name: str, main_class: str, args: list[str]) -> subprocess.Popen[bytes]:
        run_dir = self.run_dir
        log: IO[bytes]
        with (run_dir / f"{name}.log").open("ab") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), main_class, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=run_dir,
                env=self._env(),
                start_new_session=True,  # keep terminal signals (Ctrl-C) away from the daemons
            )
        # spark-class ends in `exec java`, so this is the JVM's PID.
        (run_dir / f"{name}.pid").write_text(f"{proc.pid}\n", "ascii")
        return proc

    def _is_our_daemon(self, proc: subprocess.Popen[bytes]) -> bool:
        # an unreaped child's PID cannot have been reused; the marker rules out a spark-class that never exec'd
        if proc.poll() is not None:
            return False
        cmdline = _cmdline(proc.pid)
        return cmdline is not None and _DAEMON_MARKER in cmdline

    def _signal_daemon(self, proc: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
        if proc is not None and self._is_our_daemon(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)

    def _terminate(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        self._signal_daemon(proc, signal.SIGTERM)
        try:
            proc.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            self._signal_daemon(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_STOP_GRACE)

    def _kill_orphans(self) -> None:
        """SIGKILL what still runs in the work dir (orphaned PySpark children, dying driver JVMs), until nothing
        does or the grace period is over."""
        work_dir = self.work_dir

        def kill_round() -> list[psutil.Process]:
            orphans = processes_with_cwd_under(work_dir)
            for orphan in orphans:
                with contextlib.suppress(psutil.Error):
                    orphan.kill()  # psutil refuses a PID that was reused since it was listed
            return orphans

        Retrying(
            stop=stop_after_delay(_STOP_GRACE),
            wait=wait_fixed(0.1),
            retry=retry_if_result(bool),
            retry_error_callback=lambda _: None,
        )(kill_round)

    def _wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        def check() -> bool:
            for name, proc in (("master", self._master), ("worker", self._worker)):
                if proc is not None and proc.poll() is not None:
                    raise SparkClusterError(
                        f"the Spark {name} exited with code {proc.returncode} while waiting for {what}\n"
                        + self.logs_tail()
                    )
            return ready()

        wait_until(
            what,
            check,
            timeout=self.startup_timeout,
            interval=_POLL_INTERVAL,
            on_timeout=self.logs_tail,
            error=SparkClusterError,
        )

    def _try_json_state(self) -> dict[str, Any] | None:
        try:
            return self.json_state()
        except (OSError, ValueError):
            return None

    def _master_ready(self) -> bool:
        state = self._try_json_state()
        if state is None or state.get("status") != "ALIVE":
            return False
        return rest_answers(self.rest_url)

    def _worker_registered(self) -> bool:
        state = self._try_json_state()
        return state is not None and int(state.get("aliveworkers", 0)) >= 1
