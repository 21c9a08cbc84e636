"""A real MIT Kerberos KDC in user space, for SPNEGO tests (no root, no system-wide krb5.conf).

Everything lives in one directory: ``krb5.conf`` and ``kdc.conf`` (selected through ``KRB5_CONFIG`` and
``KRB5_KDC_PROFILE``), the database made by ``kdb5_util create``, principals and keytabs made with
``kadmin.local``, and ``krb5kdc -n`` (foreground, so its PID is the KDC's) listening on a free
127.0.0.1 port for TCP and UDP. :meth:`MitKdc.stop` ends that PID and nothing else.

Only the MIT tools are needed (Debian: ``krb5-kdc``, ``krb5-admin-server``, ``krb5-user``); they are
looked up on ``PATH`` and in ``/usr/sbin``. A missing tool raises: tests that need a KDC fail, never skip.
No Airflow, aiohttp or gssapi needed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from durable_jobs_harness.ports import free_tcp_udp_port
from durable_jobs_harness.waiting import wait_until

__all__ = ["KdcError", "MitKdc", "find_tool"]

_SEARCH = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin")
_STOP_GRACE = 10.0


class KdcError(RuntimeError):
    """The KDC could not be set up or started."""


def find_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SEARCH))
    if not found:
        raise KdcError(
            f"`{name}` was not found on PATH or in {', '.join(_SEARCH)}: install MIT Kerberos "
            "(Debian: krb5-kdc krb5-admin-server krb5-user; see .ci/apt-packages.txt)"
        )
    return found


@dataclass
class MitKdc:
    """One realm, one KDC process. Use as a context manager, or :meth:`start` / :meth:`stop`.

    :param max_life: the realm's longest ticket (``kdc.conf`` ``max_life``), e.g. ``"1h"``.
    :param max_renewable_life: the realm's longest renewable life.
    """

    root: Path
    realm: str = "EXAMPLE.TEST"
    max_life: str = "1h"
    max_renewable_life: str = "7d"
    port: int = field(default_factory=free_tcp_udp_port)
    startup_timeout: float = 30.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    # --- files -----------------------------------------------------------------------------------------

    @property
    def krb5_conf(self) -> Path:
        return self.root / "krb5.conf"

    @property
    def kdc_conf(self) -> Path:
        return self.root / "kdc.conf"

    @property
    def log_file(self) -> Path:
        return self.root / "kdc.log"

    @property
    def env(self) -> dict[str, str]:
        """What every Kerberos client, acceptor and tool of this realm needs in its environment."""
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf)}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _write_conf(self) -> None:
        r, port = self.realm, self.port
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"    default_realm = {r}\n"
            "    dns_lookup_realm = false\n"
            "    dns_lookup_kdc = false\n"
            "    rdns = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    udp_preference_limit = 1\n"
            "    forwardable = false\n"
            "[realms]\n"
            # the braces must span lines: a one-line realm block does not parse
            f"    {r} = {{\n"
            f"        kdc = 127.0.0.1:{port}\n"
            "    }\n"
            "[domain_realm]\n"
            f"    localhost = {r}\n"
            f"    127.0.0.1 = {r}\n"
        )
        self.kdc_conf.write_text(
            "[kdcdefaults]\n"
            f"    kdc_listen = 127.0.0.1:{port}\n"
            f"    kdc_tcp_listen = 127.0.0.1:{port}\n"
            "[realms]\n"
            f"    {r} = {{\n"
            f"        database_name = {self.root / 'principal'}\n"
            f"        key_stash_file = {self.root / 'stash'}\n"
            f"        acl_file = {self.root / 'kadm5.acl'}\n"
            f"        max_life = {self.max_life}\n"
            f"        max_renewable_life = {self.max_renewable_life}\n"
            "        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n"
            "    }\n"
            "[logging]\n"
            f"    kdc = FILE:{self.log_file}\n"
        )
        (self.root / "kadm5.acl").write_text("")

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        proc = subprocess.run(
            argv,
            env={**os.environ, **self.env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise KdcError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> MitKdc:
        if self._proc is not None:
            raise KdcError("this KDC is already started")
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        self._run([find_tool("kdb5_util"), "create", "-s", "-r", self.realm, "-P", "durable-jobs-master-key"])
        with open(self.root / "krb5kdc.out", "wb") as out:
            self._proc = subprocess.Popen(
                [find_tool("krb5kdc"), "-n"],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        proc = self._proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise KdcError(f"krb5kdc exited with code {proc.returncode}: {self.logs_tail()}")
            return self._listening()

        try:
            wait_until(
                f"krb5kdc to listen on 127.0.0.1:{self.port}",
                listening,
                timeout=self.startup_timeout,
                interval=0.05,
                on_timeout=self.logs_tail,
                error=KdcError,
            )
        except KdcError:
            self.stop()
            raise
        return self

    def _listening(self) -> bool:
        if "commencing operation" not in self.log_text():
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(_STOP_GRACE)

    def __enter__(self) -> MitKdc:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- principals ------------------------------------------------------------------------------------

    def kadmin(self, query: str) -> str:
        return self._run([find_tool("kadmin.local"), "-r", self.realm, "-q", query])

    def principal(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.realm}"

    def add_principal(self, name: str, *, password: str | None = None, max_life: str | None = None) -> str:
        """Create a principal (random key unless ``password``); ``max_life`` caps its tickets (``"5 seconds"``)."""
        opts = f'-maxlife "{max_life}" ' if max_life else ""
        key = f"-pw {password}" if password else "-randkey"
        self.kadmin(f"addprinc {opts}{key} {self.principal(name)}")
        return self.principal(name)

    def keytab(self, name: str, path: Path, *, keep_key: bool = True) -> Path:
        """Export the principal's keys; ``keep_key`` (``-norandkey``) leaves its password and other keytabs valid."""
        flag = "-norandkey " if keep_key else ""
        self.kadmin(f"ktadd {flag}-k {path} {self.principal(name)}")
        return path

    def add_service(self, service: str = "HTTP", host: str = "localhost", keytab: Path | None = None) -> Path:
        """A service principal ``service/host`` and its keytab (what an acceptor needs)."""
        name = f"{service}/{host}"
        self.add_principal(name)
        return self.keytab(name, keytab or self.root / f"{service.lower()}-{host}.keytab")

    def kinit(
        self,
        name: str,
        ccache: Path,
        *,
        keytab: Path | None = None,
        password: str | None = None,
        lifetime: str | None = None,
        renewable: str | None = None,
    ) -> str:
        """Get a TGT into ``ccache`` with the real ``kinit``; returns the ccache name (``FILE:...``)."""
        argv = [find_tool("kinit"), "-c", f"FILE:{ccache}"]
        if lifetime:
            argv += ["-l", lifetime]
        if renewable:
            argv += ["-r", renewable]
        if keytab is not None:
            argv += ["-k", "-t", str(keytab)]
        argv.append(self.principal(name))
        self._run(argv, stdin=None if keytab is not None else f"{password}\n")
        return f"FILE:{ccache}"

    # --- observation -----------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def as_requests(self, name: str) -> int:
        """How many tickets were issued to ``name`` from its key or password (AS_REQ ... ISSUE)."""
        who = self.principal(name)
        return sum(
            1 for line in self.log_text().splitlines() if "AS_REQ" in line and "ISSUE" in line and f" {who} for" in line
        )

    def tgs_requests(self, name: str, service: str) -> int:
        """How many service tickets ``name`` obtained for ``service`` (TGS_REQ ... ISSUE)."""
        who, svc = self.principal(name), self.principal(service)
        return sum(
            1
            for line in self.log_text().splitlines()
            if "TGS_REQ" in line and "ISSUE" in line and f" {who} for {svc}" in line
        )
