"""A real ZooKeeper server as our own process, for Spark standalone HA (``spark.deploy.recoveryMode=ZOOKEEPER``).

Debian's ``zookeeper`` package (see .ci/apt-packages.txt) brings the jars, ``/usr/share/java/zookeeper.jar``
naming its dependencies in its manifest; the system service is never used. :class:`ZooKeeper` writes a
``zoo.cfg`` into its own directory, runs ``java ... ZooKeeperServerMain zoo.cfg`` in the foreground (so the
PID is the JVM's) on a free 127.0.0.1 port, waits for ``ruok`` to answer ``imok``, and stops that PID.

``max_session_ms`` caps every client's session timeout: Spark's masters ask for 60 s (hard-coded in Spark),
and a SIGKILLed leader keeps its ZooKeeper session, and so its leadership, until the session expires. The
cap is what makes a standby take over within seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from durable_jobs_harness.logs import tail
from durable_jobs_harness.ports import free_port
from durable_jobs_harness.waiting import wait_until

__all__ = ["ZooKeeper", "ZooKeeperError", "zookeeper_classpath"]

_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
_JAR_DIRS = (Path("/usr/share/java"), Path("/usr/share/zookeeper"), Path("/usr/share/zookeeper/lib"))
_STOP_GRACE = 10.0


class ZooKeeperError(RuntimeError):
    """ZooKeeper could not be found, started or asked."""


def _find_jar(name: str) -> Path | None:
    return next((d / name for d in _JAR_DIRS if (d / name).is_file()), None)


def zookeeper_classpath() -> str:
    """``zookeeper.jar`` (its manifest names its dependencies) and slf4j's simple logger (to stderr)."""
    server = _find_jar("zookeeper.jar")
    if server is None:
        raise ZooKeeperError(
            "zookeeper.jar was not found in " + ", ".join(map(str, _JAR_DIRS)) + ": install Debian's package "
            "(`apt-get install --no-install-recommends zookeeper`; see .ci/apt-packages.txt)"
        )
    logger = _find_jar("slf4j-simple.jar")  # without a binding, slf4j logs nothing
    return os.pathsep.join(str(p) for p in (server, logger) if p is not None)


def four_letter(port: int, word: str, timeout: float = 2.0) -> str:
    """A four-letter-word command (``ruok``, ``srvr``) and the server's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


@dataclass
class ZooKeeper:
    """One standalone ZooKeeper server. Use as a context manager, or :meth:`start` / :meth:`stop`.

    :param tick_ms: ZooKeeper's time unit; sessions are negotiated within [2, 20] ticks unless capped.
    :param max_session_ms: the longest session timeout a client gets (Spark asks for 60 s).
    """

    root: Path
    tick_ms: int = 500
    max_session_ms: int = 4000
    startup_timeout: float = 60.0
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.root / "zookeeper.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _write_conf(self) -> Path:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.root / "zoo.cfg"
        lines = {
            "tickTime": self.tick_ms,
            "dataDir": data,
            "clientPort": self.port,
            "clientPortAddress": "127.0.0.1",
            "minSessionTimeout": min(2 * self.tick_ms, self.max_session_ms),
            "maxSessionTimeout": self.max_session_ms,
            "admin.enableServer": "false",  # its Jetty would take port 8080
            "4lw.commands.whitelist": "ruok,srvr",
        }
        conf.write_text("".join(f"{k}={v}\n" for k, v in lines.items()), "utf-8")
        return conf

    def start(self) -> ZooKeeper:
        if self.pid is not None:
            raise ZooKeeperError("ZooKeeper is already running")
        java = shutil.which("java")
        if java is None:
            raise ZooKeeperError("`java` is not on PATH (ZooKeeper needs a JRE)")
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self._write_conf()
        with self.log_file.open("ab") as log:
            log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting zookeeper\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [java, "-Xmx96m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Dzookeeper.jmx.log4j.disable=true",
                 "-cp", zookeeper_classpath(), _MAIN, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )  # fmt: skip
        (self.root / "zookeeper.pid").write_text(f"{self._proc.pid}\n", "ascii")
        try:
            wait_until(
                "ZooKeeper to answer ruok",
                self._ready,
                timeout=self.startup_timeout,
                interval=0.2,
                on_timeout=self.logs_tail,
                error=ZooKeeperError,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise ZooKeeperError(f"ZooKeeper exited with code {self._proc.returncode}\n{self.logs_tail()}")
        try:
            return four_letter(self.port, "ruok") == "imok"
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM our JVM (SIGKILL after a grace period). Safe to call repeatedly."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)  # an unreaped child: its PID cannot have been reused
            try:
                proc.wait(_STOP_GRACE)
                return
            except subprocess.TimeoutExpired:
                continue

    def logs_tail(self, lines: int = 30) -> str:
        return f"--- zookeeper log ({self.log_file}) ---\n{tail(self.log_file, lines, 16384)}"

    def __enter__(self) -> ZooKeeper:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
