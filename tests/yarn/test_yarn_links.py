"""The YARN links on the task page: what the client pushes under the keys the system declares."""

from __future__ import annotations

from durable_jobs.clients.yarn import YarnApplication
from durable_jobs.systems.yarn import SYSTEM
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_yarn import FakeYarnRM
from durable_jobs_harness.yarn_fixtures import rm, simple_client

__all__ = ["rm"]  # the fixture, imported explicitly (one conftest per directory)

TOKEN = "dj0123456789abcdef0123"
APP = YarnApplication(name="sleeper", command="sleep 30")


async def test_the_application_page_at_once_and_the_tracking_url_once_the_rm_has_one(rm: FakeYarnRM) -> None:
    assert [link.xcom_key for link in SYSTEM.links] == ["rm_app_url", "tracking_url"]
    client = simple_client(rm)
    try:
        reserved = await client.reserve(APP, TOKEN)
        assert reserved is not None
        loc = await client.submit(APP, TOKEN, reserved=reserved)
        app_id = loc["application_id"]
        page = f"{rm.url}/cluster/app/{app_id}"
        assert await client.links(loc) == {"rm_app_url": page}  # ACCEPTED: no tracking URL yet
        rm.advance(app_id, "RUNNING")
        assert await client.links(loc) == {"rm_app_url": page, "tracking_url": f"{rm.url}/proxy/{app_id}/"}
        rm.fail_next(status=403, method="GET")  # the RM refuses: the page the id gives is still shown
        assert await client.links(loc) == {"rm_app_url": page}
    finally:
        await close_sessions()
