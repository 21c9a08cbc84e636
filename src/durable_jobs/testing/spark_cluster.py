"""A throwaway local Spark standalone cluster (one Master, one Worker) for tests and the demo.

``pip install pyspark`` ships a complete Spark distribution (``bin/spark-class`` and all jars) but no
``start-master.sh``/``start-worker.sh``.  :class:`SparkCluster` starts both daemons straight through
``spark-class``, bound to 127.0.0.1 on free ports, with the REST submission server enabled (and
optionally protected by Spark's ``JWSFilter``), waits until the worker has registered, and tears
everything down again, including orphaned PySpark python processes that a killed driver leaves behind.

:func:`build_test_apps` compiles a tiny "sleep, then exit with code C or throw" Java driver and writes
the equivalent Python script; :func:`make_jwt` signs HS256 tokens for the ``JWSFilter``.

Only the standard library is used, so this module can be imported without Airflow or aiohttp.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import hashlib
import hmac
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
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

__all__ = [
    "SparkCluster",
    "SparkClusterError",
    "SparkPorts",
    "TestApps",
    "build_test_apps",
    "free_port",
    "make_jwt",
    "new_jwt_secret",
    "spark_home",
]

_DAEMON_MARKER = "org.apache.spark.deploy."
_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
_JVM_FAST_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_POLL_INTERVAL = 0.2
_STOP_GRACE = 10.0
_HTTP_TIMEOUT = 2.0

_LOG4J2 = """\
# Written by durable_jobs.testing.spark_cluster
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


# ---------------------------------------------------------------------------------------------------
# JWT (HS256) for Spark's org.apache.spark.ui.JWSFilter


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_jwt_secret() -> str:
    """A fresh ``JWSFilter`` secret: 33 random bytes as base64url without padding."""
    return _b64url(secrets.token_bytes(33))


def make_jwt(secret_b64url: str, *, subject: str = "durable-jobs", ttl_seconds: int | None = 3600) -> str:
    """An HS256 JWT signed with the base64url-decoded ``secret_b64url``.

    ``ttl_seconds=None`` omits ``exp`` (the filter accepts that by default); a negative value gives an
    already expired token.
    """
    key = _b64url_decode(secret_b64url)
    if len(key) < 32:
        raise ValueError(f"HS256 needs a key of at least 32 bytes, got {len(key)}")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now}
    if ttl_seconds is not None:
        claims["exp"] = now + ttl_seconds
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


# ---------------------------------------------------------------------------------------------------
# /proc helpers (Linux); elsewhere they degrade to "unknown"


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def _pids_with_cwd_under(directory: Path) -> list[int]:
    root = str(directory.resolve())
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    me = os.getpid()
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue  # gone, zombie or not ours
        cwd = cwd.removesuffix(" (deleted)")
        if cwd == root or cwd.startswith(root + os.sep):
            found.append(int(entry))
    return found


def _tail(path: Path, lines: int = 40, max_bytes: int = 16384) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


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
    ) -> None:
        self._run_dir_arg = run_dir
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
        master, rest, master_ui, worker, worker_ui = _free_ports(5)
        self._run_dir = run_dir
        self._ports = SparkPorts(master, rest, master_ui, worker, worker_ui)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            self.start_master()
            self._worker = self._spawn(
                "worker",
                _WORKER_CLASS,
                [
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.ports.worker),
                    "--webui-port",
                    str(self.ports.worker_ui),
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
            self._wait_for("the worker to register", self._worker_registered)
        except BaseException:
            self.stop()
            raise
        return self

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
        parts = [f"--- {name} log ({path}) ---\n{_tail(path, lines)}" for name, path in self.log_files.items()]
        return "\n".join(parts)

    # -- internals ----------------------------------------------------------------------------------

    def _write_conf(self) -> None:
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
        conf_dir = self.conf_dir
        conf_dir.mkdir(parents=True, exist_ok=True)
        defaults = conf_dir / "spark-defaults.conf"
        defaults.write_text("".join(f"{key} {value}\n" for key, value in props.items()), "utf-8")
        defaults.chmod(0o600)  # may hold the JWT secret
        (conf_dir / "log4j2.properties").write_text(_LOG4J2, "utf-8")

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
        if proc.poll() is not None:
            return False
        cmdline = _cmdline(proc.pid)
        if cmdline is None and not Path("/proc/self").exists():
            return True  # no procfs: an unreaped child PID cannot have been reused
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
        # Orphaned PySpark python children (and dying driver JVMs) keep their cwd in work/<driverId>.
        work_dir = self.work_dir
        deadline = time.monotonic() + _STOP_GRACE
        while True:
            pids = _pids_with_cwd_under(work_dir)
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def _wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            for name, proc in (("master", self._master), ("worker", self._worker)):
                if proc is not None and proc.poll() is not None:
                    raise SparkClusterError(
                        f"the Spark {name} exited with code {proc.returncode} while waiting for {what}\n"
                        + self.logs_tail()
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise SparkClusterError(
                    f"timed out after {self.startup_timeout:.0f}s waiting for {what}\n" + self.logs_tail()
                )
            time.sleep(_POLL_INTERVAL)

    def _try_json_state(self) -> dict[str, Any] | None:
        try:
            return self.json_state()
        except (OSError, ValueError):
            return None

    def _master_ready(self) -> bool:
        state = self._try_json_state()
        if state is None or state.get("status") != "ALIVE":
            return False
        # Any HTTP status counts: with JWSFilter readyz answers 403 without a token.
        try:
            with urllib.request.urlopen(  # noqa: S310 - local http URL
                f"{self.rest_url}/v1/submissions/readyz", timeout=_HTTP_TIMEOUT
            ):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def _worker_registered(self) -> bool:
        state = self._try_json_state()
        return state is not None and int(state.get("aliveworkers", 0)) >= 1


# ---------------------------------------------------------------------------------------------------
# Test applications

_SLEEP_EXIT_JAVA = """\
package demo;

/** args: seconds to sleep (float), exit code, mode ("ok" exits with the code, "throw" throws). */
public final class SleepExit {
  public static void main(String[] args) throws Exception {
    double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 0.0;
    int code = args.length > 1 ? Integer.parseInt(args[1]) : 0;
    String mode = args.length > 2 ? args[2] : "ok";
    System.out.println("SleepExit: sleeping " + seconds + "s, then mode=" + mode + " code=" + code);
    System.out.flush();
    Thread.sleep((long) (seconds * 1000.0));
    if ("throw".equals(mode)) {
      throw new IllegalStateException("boom");
    }
    if (!"ok".equals(mode)) {
      throw new IllegalArgumentException("unknown mode: " + mode);
    }
    System.exit(code);
  }
}
"""

_SLEEP_EXIT_PY = '''\
"""args: seconds to sleep (float), exit code, mode ("ok" exits with the code, "throw" raises).

Deliberately does not import pyspark, so it starts fast.
"""

import sys
import time


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if len(argv) > 0 else 0.0
    code = int(argv[1]) if len(argv) > 1 else 0
    mode = argv[2] if len(argv) > 2 else "ok"
    print(f"sleep_exit: sleeping {seconds}s, then mode={mode} code={code}", flush=True)
    time.sleep(seconds)
    if mode == "throw":
        raise RuntimeError("boom")
    if mode != "ok":
        raise ValueError(f"unknown mode: {mode}")
    sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
'''


@dataclass(frozen=True)
class TestApps:
    """Driver programs for tests: ``jar`` with ``main_class``, and ``python_script``.

    Both take the arguments ``<sleep seconds> <exit code> <ok|throw>``.
    """

    __test__ = False  # not a pytest test class

    jar: Path
    main_class: str
    python_script: Path


def _write_if_changed(path: Path, text: str) -> None:
    # Keep the mtime (and so the jar cache) when nothing changed; replace atomically otherwise.
    if path.is_file() and path.read_text("utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


def _java_tool(name: str) -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SparkClusterError(f"`{name}` not found on PATH or in $JAVA_HOME/bin; install a JDK 17+")
    return found


def build_test_apps(dest: Path) -> TestApps:
    """Write and compile the test drivers into ``dest`` (cached: the jar is rebuilt only when stale)."""
    dest = dest.resolve()
    source = dest / "demo" / "SleepExit.java"
    jar = dest / "sleep-exit.jar"
    script = dest / "sleep_exit.py"
    _write_if_changed(source, _SLEEP_EXIT_JAVA)
    _write_if_changed(script, _SLEEP_EXIT_PY)
    if not (jar.is_file() and jar.stat().st_mtime >= source.stat().st_mtime):
        # Build in a private directory, then move the jar into place (parallel test workers).
        with tempfile.TemporaryDirectory(dir=dest, prefix=".build-") as tmp:
            classes = Path(tmp) / "classes"
            new_jar = Path(tmp) / "sleep-exit.jar"
            for cmd in (
                [_java_tool("javac"), "--release", "17", "-d", str(classes), str(source)],
                [_java_tool("jar"), "cf", str(new_jar), "-C", str(classes), "."],
            ):
                result = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if result.returncode != 0:
                    raise SparkClusterError(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
            os.replace(new_jar, jar)
    return TestApps(jar=jar, main_class="demo.SleepExit", python_script=script)


# ---------------------------------------------------------------------------------------------------
# CLI (manual checking only)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durable_jobs.testing.spark_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    smoke = sub.add_parser("smoke", help="start a cluster, build the test apps, print URLs, stop")
    smoke.add_argument("--run-dir", type=Path, default=None)
    smoke.add_argument("--jwt", action="store_true", help="protect REST with a JWSFilter")
    args = parser.parse_args(argv)

    secret = new_jwt_secret() if args.jwt else None
    started = time.monotonic()
    with SparkCluster(args.run_dir, jwt_secret=secret) as cluster:
        print(f"cluster ready in {time.monotonic() - started:.1f}s (spark home {spark_home()})")
        apps = build_test_apps(cluster.run_dir / "apps")
        for label, value in (
            ("master_url", cluster.master_url),
            ("rest_url", cluster.rest_url),
            ("master_ui_url", cluster.master_ui_url),
            ("worker_ui_url", cluster.worker_ui_url),
            ("run_dir", cluster.run_dir),
            ("work_dir", cluster.work_dir),
            ("jar", f"{apps.jar} ({apps.main_class})"),
            ("python_script", apps.python_script),
        ):
            print(f"{label:14} {value}")
        if secret is not None:
            print(f"{'jwt':14} {make_jwt(secret)}")
        state = cluster.json_state()
        print(f"{'status':14} {state.get('status')}, aliveworkers={state.get('aliveworkers')}")
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
