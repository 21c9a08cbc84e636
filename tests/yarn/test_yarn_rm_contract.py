"""The RM REST contract the client relies on, run against the fake RM, and against a real RM when one is given.

``DURABLE_JOBS_YARN_RM=http://rm1:8088[,http://rm2:8088]`` adds a ``real-rm`` target (marker
``yarn_rm``) to every test; unset, the same tests run against the fake only (nothing skips). For a real RM:
``DURABLE_JOBS_YARN_RM_AUTH`` (``simple`` default, or ``kerberos``), ``DURABLE_JOBS_YARN_RM_USER``,
``DURABLE_JOBS_YARN_RM_PRINCIPAL``/``_KEYTAB``, ``DURABLE_JOBS_YARN_RM_QUEUE`` (default ``default``). The
applications submitted there are ``sleep`` AMs that are killed at the end of each test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from durable_jobs.clients.yarn import YarnApplication, YarnClient, YarnConfig, validate_app_id
from durable_jobs.errors import PermanentError
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs.transport.kerberos import KerberosCredentials
from durable_jobs_harness.fake_yarn import FakeYarnRM
from durable_jobs_harness.yarn_fixtures import real_rm_url

pytestmark = pytest.mark.timeout(180)

TARGETS = [pytest.param("fake", id="fake-rm")]
if real_rm_url():
    TARGETS.append(pytest.param("real", id="real-rm", marks=pytest.mark.yarn_rm))


@dataclass
class Target:
    client: YarnClient
    queue: str
    fake: FakeYarnRM | None
    submitted: list[dict[str, str]]


def real_client() -> YarnClient:
    env = os.environ
    auth = env.get("DURABLE_JOBS_YARN_RM_AUTH", "simple")
    kerberos = None
    if auth == "kerberos":
        kerberos = KerberosCredentials(
            principal=env.get("DURABLE_JOBS_YARN_RM_PRINCIPAL") or None,
            keytab=env.get("DURABLE_JOBS_YARN_RM_KEYTAB") or None,
        )
    urls = tuple(u.strip() for u in (real_rm_url() or "").split(",") if u.strip())
    return YarnClient(
        YarnConfig(
            rm_urls=urls, auth=auth, user=env.get("DURABLE_JOBS_YARN_RM_USER", "durable-jobs"), kerberos=kerberos
        )
    )


@pytest.fixture(params=TARGETS)
async def target(request) -> AsyncIterator[Target]:
    fake = None
    if request.param == "fake":
        fake = await FakeYarnRM(auth="simple").start()
        client = YarnClient(YarnConfig(rm_urls=(fake.url,), user="durable-jobs", timeout=10))
    else:
        client = real_client()
    t = Target(client, os.environ.get("DURABLE_JOBS_YARN_RM_QUEUE", "default"), fake, [])
    try:
        yield t
    finally:
        for loc in t.submitted:  # leave nothing running on a real cluster
            try:
                await client.cancel(loc)
            except Exception as exc:
                print(f"cleanup: could not kill {loc}: {exc}")
        await close_sessions()
        if fake is not None:
            await fake.stop()


def token() -> str:
    return "dj" + secrets.token_hex(10)


async def submit(t: Target, tok: str, *, tags: tuple[str, ...] = (), memory_mb: int = 256) -> dict[str, str]:
    spec = YarnApplication(
        name=f"durable-jobs-contract-{tok}", command="sleep 300", queue=t.queue, tags=tags, memory_mb=memory_mb
    )
    reserved = await t.client.reserve(spec, tok)
    assert reserved is not None
    t.submitted.append(reserved)
    return await t.client.submit(spec, tok, reserved=reserved)


async def eventually_state(t: Target, loc: dict[str, str], wanted: set[JobState], limit: float = 120) -> JobState:
    deadline = time.monotonic() + limit
    while True:
        st = (await t.client.status(loc)).state
        if st in wanted or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.2 if t.fake else 2)


async def test_cluster_info_and_new_application(target):
    info = await target.client.cluster_info()
    assert info["state"] == "STARTED" and info.get("haState", "ACTIVE") == "ACTIVE"
    first, second = await target.client.new_application(), await target.client.new_application()
    validate_app_id(first)
    assert int(second.rsplit("_", 1)[1]) > int(first.rsplit("_", 1)[1])
    assert first.split("_")[1] == second.split("_")[1]  # the same cluster timestamp


async def test_submit_get_list_by_tag_and_apps_null(target):
    tok = token()
    loc = await submit(target, tok, tags=("Contract-Tag",))
    app = await target.client.get_app(loc["application_id"])
    assert app is not None and app.id == loc["application_id"]
    tags = set(str(app.applicationTags).split(","))
    assert {tok, "contract-tag"} <= tags  # lower-cased, comma-joined
    assert app.state in ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")
    assert app.finalStatus == "UNDEFINED"
    spec = YarnApplication(name="x", command="true")
    assert await target.client.find(tok, since=0, spec=spec, reserved=loc) == loc
    assert await target.client.find(tok, since=0, spec=spec) == loc
    assert [a.id for a in await target.client.list_apps(tags=[tok.upper()])] == [loc["application_id"]]
    assert await target.client.list_apps(tags=[token()]) == []  # {"apps": null}
    assert (await target.client.status(loc)).state in (JobState.PENDING, JobState.RUNNING)


async def test_a_reserved_id_is_unknown_until_submitted(target):
    tok = token()
    spec = YarnApplication(name="x", command="true")
    reserved = await target.client.reserve(spec, tok)
    assert reserved is not None
    assert await target.client.get_app(reserved["application_id"]) is None  # 404 NotFoundException
    assert await target.client.find(tok, since=0, spec=spec, reserved=reserved) is None
    st = await target.client.status(reserved)
    assert st.state is JobState.LOST


async def test_kill_is_202_then_200_and_idempotent(target):
    loc = await submit(target, token())
    await target.client.cancel(loc)
    assert await eventually_state(target, loc, {JobState.CANCELLED}) is JobState.CANCELLED
    app = await target.client.get_app(loc["application_id"])
    assert app is not None and (app.state, app.finalStatus) == ("KILLED", "KILLED") and (app.finishedTime or 0) > 0
    status, state = await target.client.kill_app(loc["application_id"])
    assert (status, state) == (200, "KILLED")


async def test_batched_statuses_of_several_apps(target):
    locs = [await submit(target, token()) for _ in range(3)]
    out = await target.client.statuses(locs)
    assert len(out) == 3 and {s.state for s in out.values()} <= {JobState.PENDING, JobState.RUNNING}


async def test_rm_errors_have_the_remote_exception_shape(target):
    with pytest.raises(PermanentError, match="BadRequestException") as too_big:
        await submit(target, token(), memory_mb=10_000_000)
    assert too_big.value.status == 400
    target.submitted.clear()  # it was refused: nothing to kill
    resp = await target.client._call(
        "PUT", "/ws/v1/cluster/apps/application_1_1/state", what="bad target", body={"state": "RUNNING"}
    )
    assert resp.status in (400, 404)
    data = resp.json()
    assert set(data["RemoteException"]) >= {"exception", "message", "javaClassName"}
    with pytest.raises(PermanentError, match="Invalid application-state"):
        await target.client.list_apps(states=["BOGUS"])
