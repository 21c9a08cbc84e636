"""Rotated credentials reach triggers that are already waiting (issue 11).

Triggers wait on a fake RM; the credentials change at the RM and in the Airflow connection; the RM refuses
the old ones. The shared poller gets an AuthError, fetches the connection once (not once per trigger),
builds a new client and polls again: every waiting trigger still gets its success event, and a trigger
created after the rotation succeeds too.

* Kerberos: the keytab at the same path gets a new key (``ktadd`` in the real MIT KDC bumps the kvno);
  the RM refuses tickets from logins made before the change (their ``authtime``, read from the accepted
  GSSAPI context) and the session cookies issued before it. The new client logs in again from the keytab.
* Simple auth: the connection's user changes; the RM refuses the old user.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from durable_jobs.clients.yarn import YarnApplication, YarnClient
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.polling import active_pollers
from durable_jobs.transport.http import close_sessions
from durable_jobs.transport.spnego import SpnegoAuth
from durable_jobs.triggers.yarn import YarnTrigger
from durable_jobs_harness.fake_yarn import FakeYarnRM
from durable_jobs_harness.yarn_fixtures import KdcSetup, kdc, krb_env, kvno, rotate_keytab

__all__ = ["kdc", "krb_env"]

pytestmark = pytest.mark.timeout(120)

CONN = "yarn_rotating"
APP = YarnApplication(name="rotating", command="sleep 30")


def set_connection(monkeypatch: pytest.MonkeyPatch, rm: FakeYarnRM, **conn: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN.upper()}",
        json.dumps({"conn_type": "yarn_rm", "host": "127.0.0.1", "port": rm.port, **conn}),
    )


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Every fetch of the connection by the hooks (the triggerer's round trip to its supervisor)."""
    seen: list[float] = []
    orig = YarnHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def counted(cls: type[YarnHook], conn_id: str) -> Any:
        seen.append(time.monotonic())
        return await orig(cls, conn_id)

    monkeypatch.setattr(YarnHook, "aget_connection", classmethod(counted))
    YarnHook.clear_cache()
    yield seen
    YarnHook.clear_cache()


async def until(condition: Callable[[], bool], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def submit(client: YarnClient, n: int, first: int = 0) -> list[tuple[str, dict[str, Any]]]:
    jobs = []
    for i in range(first, first + n):
        token = f"dj{i:020x}"
        jobs.append((token, await client.submit(APP, token, reserved=await client.reserve(APP, token))))
    return jobs


def trigger(token: str, job: dict[str, Any]) -> YarnTrigger:
    return YarnTrigger(job=job, conn_id=CONN, token=token, generation=0, poll_interval=0.1, unknown_budget=60)


async def rotate_while_waiting(
    rm: FakeYarnRM, fetches: list[float], rotate: Callable[[], None], n: int = 5
) -> tuple[YarnClient, YarnClient]:
    """n triggers wait; ``rotate`` changes the credentials; they all succeed; one more trigger succeeds."""
    old = await YarnHook.aget_client(CONN)
    jobs = await submit(old, n)
    runs = [asyncio.create_task(trigger(tok, job).run().__anext__()) for tok, job in jobs]
    await until(lambda: len(rm.requests("GET", "/ws/v1/cluster/apps")) >= 2)  # the triggers are polling
    (poller,) = active_pollers()
    assert poller.refreshes == 0
    before = len(fetches)
    rotate()
    polls = poller.polls
    await until(lambda: poller.polls >= polls + 3)  # well past the refusal and the refetch
    assert not any(r.done() for r in runs)  # nobody was failed by the refusal
    for _, job in jobs:
        rm.advance(job["application_id"], "FINISHED", "SUCCEEDED")
    events = await asyncio.wait_for(asyncio.gather(*runs), 30)
    assert [e.payload["status"] for e in events] == ["succeeded"] * n
    assert len(fetches) - before == 1 and poller.refreshes == 1  # one refetch for every waiting trigger
    new = await YarnHook.aget_client(CONN)
    assert new is not old and new.key == old.key  # a new client, the same poller identity (no secret in it)
    # a trigger created after the rotation is polled with the new credentials from the start
    ((token, job),) = await submit(new, 1, first=n)
    late = asyncio.create_task(trigger(token, job).run().__anext__())
    rm.advance(job["application_id"], "FINISHED", "SUCCEEDED")
    assert (await asyncio.wait_for(late, 30)).payload["status"] == "succeeded"
    assert len(fetches) - before == 1
    return old, new


async def test_a_new_simple_auth_user_reaches_waiting_triggers(monkeypatch, fetches):
    rm = await FakeYarnRM(auth="simple").start()
    set_connection(monkeypatch, rm, login="alice")
    try:

        def rotate() -> None:
            rm.refused_users = {"alice"}  # the RM stops accepting alice ...
            set_connection(monkeypatch, rm, login="bob")  # ... and the connection now says bob

        await rotate_while_waiting(rm, fetches, rotate)
        assert {s.user for s in rm.seen if s.via == "refused"} == {"alice"}
        late = [s for s in rm.seen[-5:] if s.via != "refused"]
        assert late and {s.user for s in late} == {"bob"}
    finally:
        await close_sessions()
        await rm.stop()


async def test_a_keytab_rotated_at_the_same_path_reaches_waiting_triggers(krb_env: KdcSetup, monkeypatch, fetches):
    rm = await FakeYarnRM(auth="kerberos").start()
    principal = "rotor@EXAMPLE.TEST"
    keytab = krb_env.rotor_keytab
    set_connection(
        monkeypatch,
        rm,
        extra={"principal": principal, "keytab": str(keytab), "kerberos_hostname": "localhost", "timeout": 5},
    )
    try:
        kvno_before = kvno(krb_env, "rotor")
        logins_before = krb_env.kdc.as_requests("rotor")
        rotated: list[int] = []

        def rotate() -> None:
            time.sleep(1.1)  # the old login's authtime (whole seconds) falls strictly before the change
            rotated.append(rotate_keytab(krb_env, "rotor", keytab))
            rm.revoke(principal)

        old, new = await rotate_while_waiting(rm, fetches, rotate)
        assert rotated == [kvno_before + 1]
        assert isinstance(old.auth, SpnegoAuth) and isinstance(new.auth, SpnegoAuth)
        assert old.auth.tickets.logins == 1 and new.auth.tickets.logins == 1  # the new client logged in afresh
        assert krb_env.kdc.as_requests("rotor") - logins_before == 2
        assert rm.rejected_tokens >= 1  # the old ticket was refused by the RM
        assert {s.user for s in rm.seen if s.via in ("negotiate", "cookie")} == {"rotor"}
    finally:
        await close_sessions()
        await rm.stop()
