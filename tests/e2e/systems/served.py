"""The systems whose endpoint is one of the harness's fakes in its own process (a :class:`ServedFake`).

Databricks and BigQuery share this: the fake started under the session's root, its connection given to every
Airflow component, stopped by its PID (resumed first when paused), paused and resumed with SIGSTOP/SIGCONT, its
log's tail shown when a test fails.
"""

from __future__ import annotations

import abc
import json
import os
import signal
from pathlib import Path
from typing import Any, Generic, TypeVar

from durable_jobs_harness.served_process import ServedFake

from . import E2ESystem

F = TypeVar("F", bound=ServedFake)


class ServedFakeSystem(E2ESystem, Generic[F]):
    """An :class:`E2ESystem` whose endpoint is one fake process (:meth:`launch` starts it)."""

    def __init__(self) -> None:
        self.endpoint: F | None = None
        self._paused = False

    @abc.abstractmethod
    def launch(self, run_dir: Path) -> F:
        """Start the fake with its files in ``run_dir``."""

    @abc.abstractmethod
    def connection(self) -> dict[str, Any]:
        """The Airflow connection (``conn_id``) to the running fake, as ``AIRFLOW_CONN_*`` JSON holds it."""

    def airflow_env(self) -> dict[str, str]:
        return {f"AIRFLOW_CONN_{self.conn_id.upper()}": json.dumps(self.connection())}

    def start(self, root: Path) -> None:
        run_dir = root / self.name
        run_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint = self.launch(run_dir)

    def stop(self) -> None:
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is None:
            return
        if self._paused and endpoint.pid is not None:
            os.kill(endpoint.pid, signal.SIGCONT)
            self._paused = False
        endpoint.stop()

    def _endpoint(self) -> F:
        if self.endpoint is None:
            raise RuntimeError(f"the {self.name} endpoint is not running")
        return self.endpoint

    def _pid(self) -> int:
        pid = self._endpoint().pid
        if pid is None:
            raise RuntimeError(f"the {self.name} endpoint has no process")
        return pid

    def pause(self) -> None:
        os.kill(self._pid(), signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        os.kill(self._pid(), signal.SIGCONT)
        self._paused = False

    def logs_tail(self, lines: int = 30) -> str:
        if self.endpoint is None:
            return ""
        return f"--- {self.name} endpoint ({self.endpoint.log}) ---\n{self.endpoint.logs_tail(lines)}"
