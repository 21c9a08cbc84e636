"""Spark standalone HA for real: two Masters recovering through a real ZooKeeper, and one Worker registered with both.

Spark's documented HA (``spark.deploy.recoveryMode=ZOOKEEPER``): the Masters elect a leader in ZooKeeper and
persist every worker, application and driver there. The leader is ``ALIVE``; the other is ``STANDBY`` (its
REST server answers ``success:false``, "Current state is not alive"). When the leader dies, the standby wins
the election once the dead leader's ZooKeeper session expires, reads the persisted state (``RECOVERING``),
tells the workers (``MasterChanged``), and is ``ALIVE`` once every worker has answered with the drivers it
runs (or ``spark.deploy.recoveryTimeout`` has passed; a driver no worker claims then ends ``ERROR``).

:class:`SparkHACluster` is :class:`~durable_jobs_harness.spark_cluster.cluster.SparkCluster` with a
:class:`~durable_jobs_harness.zookeeper.ZooKeeper` of its own and masters ``a`` and ``b``; :meth:`kill_master`
SIGKILLs one by PID and :meth:`wait_for_takeover` measures how long the other takes to become ``ALIVE``. The
settings that make a takeover take seconds instead of a minute: ZooKeeper caps the session timeout (Spark's
masters ask for 60 s), ``spark.worker.timeout`` and ``spark.deploy.recoveryTimeout``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from durable_jobs_harness.ports import free_ports
from durable_jobs_harness.spark_cluster.cluster import (
    _HTTP_TIMEOUT,
    _MASTER_CLASS,
    _STOP_GRACE,
    SparkCluster,
    SparkClusterError,
    rest_answers,
)
from durable_jobs_harness.waiting import wait_until
from durable_jobs_harness.zookeeper import ZooKeeper

__all__ = ["MASTERS", "MasterPorts", "SparkHACluster"]

MASTERS = ("a", "b")


@dataclass(frozen=True)
class MasterPorts:
    """One master's ports, all on 127.0.0.1."""

    master: int
    rest: int
    ui: int


class SparkHACluster(SparkCluster):
    """Masters ``a`` (the first leader) and ``b`` (standby), ZooKeeper, one Worker on ``spark://a,b``.

    :param zk_max_session_ms: the dead leader's session, and so its leadership, lasts this long.
    :param worker_timeout: ``spark.worker.timeout`` (s): a silent worker is dead after it, and a recovering
        master waits at most ``recovery_timeout`` (s) for the workers to answer.
    """

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        zk_tick_ms: int = 500,
        zk_max_session_ms: int = 4000,
        worker_timeout: int = 15,
        recovery_timeout: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(run_dir, **kwargs)
        self.zk_tick_ms = zk_tick_ms
        self.zk_max_session_ms = zk_max_session_ms
        self.worker_timeout = worker_timeout
        self.recovery_timeout = recovery_timeout
        self.zookeeper: ZooKeeper | None = None
        self._masters: dict[str, subprocess.Popen[bytes]] = {}
        self._master_ports: dict[str, MasterPorts] = {}
        #: seconds from each :meth:`kill_master` to the other master being ALIVE with the worker back
        self.takeovers: list[float] = []
        self._killed_at: float | None = None

    # -- addresses ----------------------------------------------------------------------------------

    def master_ports(self, name: str) -> MasterPorts:
        if name not in self._master_ports:
            raise SparkClusterError(f"no master {name!r} (the cluster has not been started, or names are a, b)")
        return self._master_ports[name]

    @property
    def master_url(self) -> str:
        """``spark://127.0.0.1:<a>,127.0.0.1:<b>``: what the worker registers with."""
        return "spark://" + ",".join(f"127.0.0.1:{self.master_ports(n).master}" for n in MASTERS)

    @property
    def rest_urls(self) -> tuple[str, ...]:
        return tuple(f"http://127.0.0.1:{self.master_ports(n).rest}" for n in MASTERS)

    @property
    def ui_urls(self) -> tuple[str, ...]:
        return tuple(self.ui_url(n) for n in MASTERS)

    def ui_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.master_ports(name).ui}"

    @property
    def log_files(self) -> dict[str, Path]:
        run_dir = self.run_dir
        return {**{f"master-{n}": run_dir / f"master-{n}.log" for n in MASTERS}, "worker": run_dir / "worker.log"}

    def pid_of(self, name: str) -> int | None:
        proc = self._masters.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    # -- lifecycle ----------------------------------------------------------------------------------

    def _start_daemons(self) -> None:
        run_dir = self.run_dir
        a = self.ports  # master a and the worker take the five ports of a plain cluster
        taken = {a.master, a.rest, a.master_ui, a.worker, a.worker_ui}
        b = [p for p in free_ports(8) if p not in taken][:3]
        self._master_ports = {"a": MasterPorts(a.master, a.rest, a.master_ui), "b": MasterPorts(*b)}
        self.zookeeper = ZooKeeper(
            run_dir / "zookeeper", tick_ms=self.zk_tick_ms, max_session_ms=self.zk_max_session_ms
        ).start()
        self._write_master_conf()
        self.start_master("a")
        self.start_master("b")
        self._start_worker()
        self._wait_for("the worker to register", self._worker_registered)

    def _write_master_conf(self) -> None:
        assert self.zookeeper is not None
        for name in MASTERS:
            ports = self.master_ports(name)
            props = self._properties()
            props.update(
                {
                    "spark.master.rest.port": str(ports.rest),
                    "spark.master.ui.port": str(ports.ui),
                    "spark.deploy.recoveryMode": "ZOOKEEPER",
                    "spark.deploy.zookeeper.url": self.zookeeper.connect_string,
                    "spark.deploy.zookeeper.dir": "/spark",
                    "spark.worker.timeout": str(self.worker_timeout),
                    "spark.deploy.recoveryTimeout": f"{self.recovery_timeout}s",
                }
            )
            self._write_properties(f"master-{name}.conf", props)

    def start_master(self, name: str | None = None) -> None:
        """Start master ``name`` (default ``a``); return once it is ALIVE (the first) or STANDBY."""
        name = name or "a"
        if self.pid_of(name) is not None:
            raise SparkClusterError(f"master {name} is already running")
        ports = self.master_ports(name)
        self._masters[name] = self._spawn(
            f"master-{name}",
            _MASTER_CLASS,
            ["--host", "127.0.0.1", "--port", str(ports.master), "--webui-port", str(ports.ui),
             "--properties-file", str(self.conf_dir / f"master-{name}.conf")],
        )  # fmt: skip
        wanted = ("ALIVE", "STANDBY") if self.active_master() else ("ALIVE",)

        def up() -> bool:
            self._check_alive(name)
            return self.master_status(name) in wanted and (self.master_status(name) != "ALIVE" or self._rest_up(name))

        self._wait_for(f"master {name} to be {' or '.join(wanted)}", up)

    def kill_master(self, name: str | None = None) -> None:
        """SIGKILL master ``name`` (default: the active one) by PID: a crash, its ZooKeeper session left behind."""
        name = name or self.active_master()
        if name is None:
            raise SparkClusterError("no master is ALIVE to kill")
        proc = self._masters.get(name)
        if proc is None or not self._is_our_daemon(proc):
            raise SparkClusterError(f"master {name} is not running")
        self._signal_daemon(proc, signal.SIGKILL)
        self._killed_at = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(_STOP_GRACE)

    def restart_master(self) -> None:
        raise SparkClusterError("an HA cluster has no single master to restart: kill_master(name), start_master(name)")

    def wait_for_takeover(self, timeout: float = 120.0) -> tuple[str, float]:
        """After :meth:`kill_master`: the master that took over, and seconds from the kill to it being ALIVE
        with the worker registered again (its drivers recovered)."""
        if self._killed_at is None:
            raise SparkClusterError("wait_for_takeover() follows kill_master()")

        def taken_over() -> str | None:
            name = self.active_master()
            return name if name is not None and self._rest_up(name) and self._worker_registered() else None

        name = wait_until(
            "a standby master to take over",
            taken_over,
            timeout=timeout,
            interval=0.1,
            on_timeout=self.logs_tail,
            error=SparkClusterError,
        )
        assert name is not None
        seconds = time.monotonic() - self._killed_at
        self.takeovers.append(seconds)
        self._killed_at = None
        return name, seconds

    def stop(self) -> None:
        """The worker, orphans in the work dir, both masters, then ZooKeeper. Safe to call repeatedly."""
        try:
            super().stop()  # the worker, orphans (and no single master)
            for name in MASTERS:
                self._terminate(self._masters.pop(name, None))
        finally:
            if self.zookeeper is not None:
                self.zookeeper.stop()

    # -- queries ------------------------------------------------------------------------------------

    def master_state(self, name: str) -> dict[str, Any]:
        """``GET /json/`` of master ``name``."""
        with urllib.request.urlopen(f"{self.ui_url(name)}/json/", timeout=_HTTP_TIMEOUT) as resp:  # noqa: S310
            return cast(dict[str, Any], json.loads(resp.read()))

    def master_status(self, name: str) -> str | None:
        """ALIVE, STANDBY, RECOVERING, COMPLETING_RECOVERY; None when it does not answer."""
        try:
            return str(self.master_state(name).get("status"))
        except (OSError, ValueError):
            return None

    def active_master(self) -> str | None:
        """The name of the ALIVE master, or None (during a takeover)."""
        return next((n for n in self._master_ports if self.pid_of(n) and self.master_status(n) == "ALIVE"), None)

    def json_state(self) -> dict[str, Any]:
        """The active master's ``/json/`` (OSError when no master is ALIVE)."""
        name = self.active_master()
        if name is None:
            raise ConnectionError("no Spark master is ALIVE")
        return self.master_state(name)

    def logs_tail(self, lines: int = 40) -> str:
        zk = self.zookeeper.logs_tail(lines // 2) if self.zookeeper is not None else ""
        return f"{super().logs_tail(lines)}\n{zk}"

    # -- internals ----------------------------------------------------------------------------------

    def _check_alive(self, name: str) -> None:
        proc = self._masters.get(name)
        if proc is not None and proc.poll() is not None:
            raise SparkClusterError(f"master {name} exited with code {proc.returncode}\n{self.logs_tail()}")

    def _rest_up(self, name: str) -> bool:
        return rest_answers(f"http://127.0.0.1:{self.master_ports(name).rest}")
