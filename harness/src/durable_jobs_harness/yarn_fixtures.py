"""Fixtures of the YARN suite: a real MIT KDC, fake RMs (simple or SPNEGO), clients for them.

Import the fixtures you use into the test module explicitly (``from durable_jobs_harness.yarn_fixtures import
kdc, krb_env``): each directory has one conftest.py, owned by the Spark suite.

Kerberos state is per test: ``krb_env`` points ``KRB5_CONFIG``/``KRB5_KDC_PROFILE`` at the module's KDC,
``KRB5_KTNAME`` at the ``HTTP/localhost`` keytab (the fake RM's acceptor), ``KRB5RCACHEDIR`` at a fresh
directory (the acceptor's replay cache) and ``KRB5CCNAME`` at a cache that does not exist, so that no
ambient ticket can make a test pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durable_jobs.clients.yarn import YarnApplication, YarnClient, YarnConfig
from durable_jobs.failpoints import SimulatedCrash
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.protocol import JobProtocol, ProtocolSettings
from durable_jobs.record import TaskIdentity
from durable_jobs.transport.http import close_sessions
from durable_jobs.transport.kerberos import KerberosCredentials
from durable_jobs.transport.spnego import SpnegoAuth
from durable_jobs_harness.fake_yarn import FakeYarnRM, ThreadedFakeYarnRM
from durable_jobs_harness.kdc import MitKdc

REALM = "EXAMPLE.TEST"
ALICE_PW = "alice-pw"
SHORT_LIFE = 4  # seconds: the KDC caps every ticket of "shorty" at this


@dataclass
class KdcSetup:
    kdc: MitKdc
    http_keytab: Path
    alice_keytab: Path
    bob_keytab: Path
    shorty_keytab: Path
    rotor_keytab: Path  # "rotor": a principal whose key the rotation tests change


@pytest.fixture(scope="module")
def kdc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdcSetup]:
    """A real MIT KDC for the module: ``HTTP/localhost`` (the RM), alice (password + keytab), bob (keytab),
    shorty (keytab, tickets of at most 4 s), rotor (keytab, rotated by tests), ``HTTP/otherhost`` (a service the
    fake RM has no key for)."""
    root = tmp_path_factory.mktemp("kdc")
    with MitKdc(root) as k:
        http = k.add_service("HTTP", "localhost")
        k.add_service("HTTP", "otherhost", keytab=root / "other.keytab")
        k.add_principal("alice", password=ALICE_PW)
        k.add_principal("bob")
        k.add_principal("shorty", max_life=f"{SHORT_LIFE} seconds")
        k.add_principal("rotor")
        yield KdcSetup(
            kdc=k,
            http_keytab=http,
            alice_keytab=k.keytab("alice", root / "alice.keytab"),
            bob_keytab=k.keytab("bob", root / "bob.keytab"),
            shorty_keytab=k.keytab("shorty", root / "shorty.keytab"),
            rotor_keytab=k.keytab("rotor", root / "rotor.keytab"),
        )


def kvno(setup: KdcSetup, name: str) -> int:
    """The principal's current key version in the KDC's database."""
    out = setup.kdc.kadmin(f"getprinc {setup.kdc.principal(name)}")
    return max(int(line.split("vno", 1)[1].split(",", 1)[0]) for line in out.splitlines() if "Key: vno" in line)


def rotate_keytab(setup: KdcSetup, name: str, keytab: Path) -> int:
    """Give the principal a new random key (``ktadd`` bumps the kvno) and put it, alone, in the keytab at the
    same path: what a keytab rotation does. Returns the new kvno."""
    keytab.unlink()
    setup.kdc.keytab(name, keytab, keep_key=False)
    return kvno(setup, name)


@pytest.fixture
def krb_env(kdc: KdcSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KdcSetup:
    rcache = tmp_path / "rcache"
    rcache.mkdir()
    for key, value in kdc.kdc.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KRB5_KTNAME", f"FILE:{kdc.http_keytab}")
    monkeypatch.setenv("KRB5RCACHEDIR", str(rcache))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'no-ambient-ticket.ccache'}")
    return kdc


@pytest.fixture
async def rm() -> AsyncIterator[FakeYarnRM]:
    """A fake RM with Hadoop simple auth, on this test's loop."""
    fake = await FakeYarnRM(auth="simple").start()
    yield fake
    await close_sessions()
    await fake.stop()


@pytest.fixture
async def krb_rm(krb_env: KdcSetup) -> AsyncIterator[FakeYarnRM]:
    """A fake RM behind SPNEGO (``HTTP/localhost``), on this test's loop."""
    fake = await FakeYarnRM(auth="kerberos").start()
    yield fake
    await close_sessions()
    await fake.stop()


def simple_client(*rms: FakeYarnRM | str, user: str = "alice", **kw: Any) -> YarnClient:
    urls = tuple(r if isinstance(r, str) else r.url for r in rms)
    kw.setdefault("timeout", 5.0)
    return YarnClient(YarnConfig(rm_urls=urls, auth="simple", user=user, **kw))


def kerberos_client(
    *rms: FakeYarnRM | str,
    credentials: KerberosCredentials,
    hostname: str = "localhost",
    clock: Callable[[], float] | None = None,
    **kw: Any,
) -> YarnClient:
    """A SPNEGO client; the URLs say 127.0.0.1, the SPN says ``HTTP/<hostname>``. ``clock`` drives renewal."""
    urls = tuple(r if isinstance(r, str) else r.url for r in rms)
    kw.setdefault("timeout", 5.0)
    config = YarnConfig(rm_urls=urls, auth="kerberos", kerberos=credentials, kerberos_hostname=hostname, **kw)
    auth = SpnegoAuth(credentials, hostname=hostname, clock=clock) if clock is not None else None
    return YarnClient(config, auth=auth)


def kinit_alice(setup: KdcSetup, tmp_path: Path, **kw: Any) -> str:
    """A real ``kinit`` of alice (with her password) into a FILE ccache; returns its name."""
    return setup.kdc.kinit("alice", tmp_path / "alice.ccache", password=ALICE_PW, **kw)


def real_rm_url() -> str | None:
    """``DURABLE_JOBS_YARN_RM``: comma-separated URLs of a real RM cluster for the contract tests."""
    return os.environ.get("DURABLE_JOBS_YARN_RM") or None


@contextlib.contextmanager
def threaded_rm(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, auth: str, conn: dict[str, Any]
) -> Iterator[ThreadedFakeYarnRM]:
    """A fake RM on its own loop in a thread (for operators run synchronously), as Airflow connection ``conn_id``."""
    threaded = ThreadedFakeYarnRM(FakeYarnRM(auth=auth))
    with threaded as rm:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps({"conn_type": "yarn_rm", "host": "127.0.0.1", "port": rm.port, **conn}),
        )
        YarnHook.clear_cache()
        try:
            yield threaded
        finally:
            YarnHook.clear_cache()


def crash_after_new_application(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``reserve`` gets its id from the RM and then the worker dies: an id nobody recorded."""
    orig = YarnClient.reserve

    async def reserve(self: YarnClient, spec: Any, token: str) -> Any:
        await orig(self, spec, token)
        monkeypatch.setattr(YarnClient, "reserve", orig)
        raise SimulatedCrash("after new-application")

    monkeypatch.setattr(YarnClient, "reserve", reserve)


def crash_after_id_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next ``submit`` dies before it sends: the reserved id is recorded, nothing was submitted."""
    orig = YarnClient.submit

    async def submit(self: YarnClient, spec: Any, token: str, *, reserved: Any = None) -> Any:
        monkeypatch.setattr(YarnClient, "submit", orig)
        raise SimulatedCrash("after the reserved id was recorded")

    monkeypatch.setattr(YarnClient, "submit", submit)


class MemoryStore:
    """The protocol's task state store, in memory (the protocol only needs ``get`` and ``set``)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))  # a JSON round trip, like the real store


REST_APP = YarnApplication(name="durable", command="sleep 30")


def run_fresh(coro: Any) -> Any:
    """Run one client call on a fresh event loop, closing its sessions: how a sync worker calls the client."""

    async def go() -> Any:
        try:
            return await coro
        finally:
            await close_sessions()

    return asyncio.run(go())


def worker_protocol(
    client: YarnClient, store: MemoryStore, task_id: str = "etl", *, spec: Any = REST_APP, **settings: Any
) -> JobProtocol:
    """The protocol as a worker runs it: sync, each client call on a fresh event loop (call it in a thread
    when the RM is served by the test's own loop)."""
    settings.setdefault("confirm_delay", 0.01)
    settings.setdefault("lost_confirmations", 2)
    return JobProtocol(
        client=client,
        store=store,
        identity=TaskIdentity("dag", "run1", task_id),
        spec=lambda _record: spec,
        run=run_fresh,
        settings=ProtocolSettings(**settings),
        sleep=lambda s: None,
    )
