"""The YARN endpoint of the end-to-end tests: a real MIT KDC and the contract fake RM behind SPNEGO, each its own
process, and what an Airflow component needs to reach them.

:class:`YarnRmProcess` runs ``python -m durable_jobs_harness.fake_yarn serve`` (timed lifecycle, Kerberos auth)
in its own session, waits for its port file, and stops it by PID (SIGCONT first: a paused RM must be able to
take its SIGTERM). :meth:`YarnRmProcess.apps` reads every application from the RM's unauthenticated admin
listener, which answers the RM's own ``/ws/v1/cluster/apps`` JSON: a view of the endpoint that does not go
through the client under test.

:class:`KerberizedYarn` adds the KDC (``krb5kdc``, its own process, see :mod:`durable_jobs_harness.kdc`), the
RM's ``HTTP/localhost`` keytab, and a client principal with its keytab; :meth:`KerberizedYarn.connection` is the
``yarn_rm`` connection that names that keytab (a path; no secret leaves the files) and
:meth:`KerberizedYarn.client_env` the Kerberos environment of every process that uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from durable_jobs_harness.airflow_env.processes import Component
from durable_jobs_harness.kdc import MitKdc
from durable_jobs_harness.logs import tail
from durable_jobs_harness.waiting import wait_until

__all__ = ["KerberizedYarn", "YarnRmProcess", "wait_app_state"]

STOP_GRACE = 10.0


class YarnRmProcess:
    """One fake RM process (see :func:`durable_jobs_harness.fake_yarn.serve`)."""

    def __init__(
        self,
        run_dir: Path,
        env: Mapping[str, str],
        *,
        auth: str = "kerberos",
        accept_seconds: float = 0.5,
        startup_timeout: float = 30.0,
    ) -> None:
        self.run_dir = run_dir
        self.env = dict(env)
        self.auth = auth
        self.accept_seconds = accept_seconds
        self.startup_timeout = startup_timeout
        self.url = ""
        self.admin_url = ""
        self.paused = False
        self._comp: Component | None = None

    @property
    def log(self) -> Path:
        return self.run_dir / "rm.log"

    @property
    def port(self) -> int:
        return int(urllib.parse.urlsplit(self.url).port or 0)

    @property
    def pid(self) -> int | None:
        return self._comp.pid if self._comp is not None and self._comp.running else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._comp.proc if self._comp is not None else None

    def start(self) -> YarnRmProcess:
        if self._comp is not None:
            raise RuntimeError("this RM is already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.run_dir / "rm.json"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "durable_jobs_harness.fake_yarn", "serve", "--port-file", str(port_file)]
        argv += ["--auth", self.auth, "--accept-seconds", str(self.accept_seconds)]
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,  # the RM stops when this closes: it cannot outlive its launcher
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.run_dir,
                start_new_session=True,
            )
        comp = self._comp = Component(name="fake-yarn-rm", proc=proc, log=self.log)

        def listening() -> dict[str, Any] | None:
            if not comp.running:
                raise RuntimeError(f"the fake RM exited with code {proc.returncode}:\n{self.logs_tail()}")
            return json.loads(port_file.read_text()) if port_file.exists() else None

        try:
            info = wait_until(
                "the fake RM to listen",
                listening,
                timeout=self.startup_timeout,
                interval=0.1,
                on_timeout=self.logs_tail,
                error=RuntimeError,
            )
        except BaseException:
            self.stop()
            raise
        assert info is not None
        self.url, self.admin_url = str(info["url"]), str(info["admin_url"])
        return self

    def pause(self) -> None:
        """SIGSTOP: the RM's sockets accept connections (the kernel does) but nothing answers."""
        if self._comp is not None:
            self._comp.signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self._comp is not None:
            self._comp.signal(signal.SIGCONT)
            self.paused = False

    def stop(self) -> None:
        """Stop it by its PID, in any state: resumed, stdin closed (it stops by itself), then SIGTERM/SIGKILL."""
        comp, self._comp = self._comp, None
        if comp is None:
            return
        comp.signal(signal.SIGCONT)
        self.paused = False
        if comp.proc.stdin is not None:
            comp.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            comp.proc.wait(STOP_GRACE)
        comp.stop(STOP_GRACE)

    def apps(self, tags: list[str] | None = None) -> list[dict[str, Any]]:
        """Every application the RM holds (of any of ``tags``), as the RM's JSON, from the admin listener."""
        query = f"?applicationTags={','.join(tags)}" if tags else ""
        with urllib.request.urlopen(f"{self.admin_url}/ws/v1/cluster/apps{query}", timeout=10) as resp:  # noqa: S310
            doc = json.load(resp)
        return list((doc.get("apps") or {}).get("app") or [])

    def logs_tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)


class KerberizedYarn:
    """A realm (its KDC process), the fake RM behind SPNEGO (its own process), and a client principal's keytab.

    :param client: the principal the Airflow components log in as (from :attr:`client_keytab`).
    """

    def __init__(self, root: Path, *, client: str = "airflow", accept_seconds: float = 0.5) -> None:
        self.root = root
        self.kdc = MitKdc(root / "kdc")
        self.client = client
        self.client_keytab = root / f"{client}.keytab"
        self.rm = YarnRmProcess(root / "rm", {}, accept_seconds=accept_seconds)

    @property
    def principal(self) -> str:
        return self.kdc.principal(self.client)

    def start(self) -> KerberizedYarn:
        self.root.mkdir(parents=True, exist_ok=True)
        self.kdc.start()
        try:
            http_keytab = self.kdc.add_service("HTTP", "localhost", keytab=self.root / "http-localhost.keytab")
            self.kdc.add_principal(self.client)
            self.kdc.keytab(self.client, self.client_keytab)
            rcache = self.root / "rm-rcache"
            rcache.mkdir(exist_ok=True)
            self.rm.env = {
                **self.client_env(),
                "KRB5_KTNAME": f"FILE:{http_keytab}",  # the acceptor's key: the RM's process only
                "KRB5RCACHEDIR": str(rcache),
            }
            self.rm.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            self.rm.stop()
        finally:
            self.kdc.stop()

    def client_env(self) -> dict[str, str]:
        """The realm's configuration, and a ccache that does not exist: no ambient ticket is ever used."""
        return {**self.kdc.env, "KRB5CCNAME": f"FILE:{self.root / 'no-ambient-ticket.ccache'}"}

    def connection(self, *, timeout: float = 3.0, **extra: Any) -> dict[str, Any]:
        """The ``yarn_rm`` connection (as ``AIRFLOW_CONN_<ID>`` JSON) that logs in from the client keytab.

        The URL says 127.0.0.1 and the SPN ``HTTP/localhost`` (``kerberos_hostname``); ``timeout`` is per request,
        short so that a paused RM shows up as failed polls within seconds."""
        return {
            "conn_type": "yarn_rm",
            "host": "127.0.0.1",
            "port": self.rm.port,
            "extra": {
                "principal": self.principal,
                "keytab": str(self.client_keytab),
                "kerberos_hostname": "localhost",
                "timeout": timeout,
                **extra,
            },
        }

    def logs_tail(self, lines: int = 30) -> str:
        return f"--- fake RM ---\n{self.rm.logs_tail(lines)}\n--- KDC ---\n{self.kdc.logs_tail(lines // 2)}"


def wait_app_state(rm: YarnRmProcess, app_id: str, states: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:
    """The application's JSON once its state is one of ``states`` (read from the admin listener)."""

    def reached() -> dict[str, Any] | None:
        for app in rm.apps():
            if app["id"] == app_id and app["state"] in states:
                return app
        return None

    app = wait_until(
        f"{app_id} to reach {'/'.join(states)}", reached, timeout=timeout, interval=0.2, on_timeout=rm.logs_tail
    )
    assert app is not None
    return app
