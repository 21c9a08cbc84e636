"""The YARN RM REST client against the contract fake RM (simple auth): states, errors, HA, kill, batching."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.yarn import (
    YarnApplication,
    YarnClient,
    YarnConfig,
    normalize,
    status_from_app,
    validate_app_id,
)
from durable_jobs.errors import AuthError, MalformedAnswer, PermanentError, RecordError, TransientError
from durable_jobs.protocol import Defer, JobProtocol
from durable_jobs.record import STATE_KEY, TaskIdentity
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_yarn import FakeYarnRM, YarnClusterState, free_port
from durable_jobs_harness.yarn_fixtures import MemoryStore, rm, simple_client, worker_protocol

__all__ = ["rm"]  # the fixture, imported explicitly (one conftest per directory)

TOKEN = "dj0123456789abcdef0123"
APP = YarnApplication(name="sleeper", command="sleep 30", tags=["Run-42", "Airflow"])


async def submitted(client: YarnClient, token: str = TOKEN, spec: YarnApplication = APP) -> dict[str, Any]:
    reserved = await client.reserve(spec, token)
    assert reserved is not None
    return await client.submit(spec, token, reserved=reserved)


# --- the status model --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "final", "expected"),
    [
        ("NEW", "UNDEFINED", JobState.PENDING),
        ("NEW_SAVING", "UNDEFINED", JobState.PENDING),
        ("SUBMITTED", "UNDEFINED", JobState.PENDING),
        ("ACCEPTED", "UNDEFINED", JobState.PENDING),
        ("RUNNING", "UNDEFINED", JobState.RUNNING),
        ("FINISHED", "SUCCEEDED", JobState.SUCCEEDED),
        ("FINISHED", "FAILED", JobState.FAILED),
        ("FINISHED", "KILLED", JobState.CANCELLED),
        ("FINISHED", "UNDEFINED", JobState.FAILED),  # only FINISHED + SUCCEEDED is success
        ("FAILED", "FAILED", JobState.FAILED),
        ("KILLED", "KILLED", JobState.CANCELLED),
        ("SOMETHING_NEW", "UNDEFINED", JobState.UNKNOWN),
    ],
)
def test_states_normalize_like_the_issue_says(state, final, expected):
    assert normalize(state, final) is expected


def test_status_carries_diagnostics_and_tracking_url():
    st = status_from_app(
        {
            "id": "application_1_2",
            "state": "FAILED",
            "finalStatus": "FAILED",
            "diagnostics": "Application application_1_2 failed 2 times due to AM Container exited with exitCode: 1",
            "trackingUrl": "http://rm:8088/cluster/app/application_1_2",
            "queue": "default",
        }
    )
    assert st.state is JobState.FAILED and st.raw_state == "FAILED/FAILED"
    assert "exitCode: 1" in st.message and st.tracking_url == "http://rm:8088/cluster/app/application_1_2"
    assert st.extra["queue"] == "default"


@pytest.mark.parametrize(
    "bad",
    ["application_1_2/../x", "application_1", "app_1_2", "application_1_2?user.name=x", "", None, 7, "application_a_1"],
)
def test_application_ids_are_validated_before_any_url(bad):
    with pytest.raises(RecordError):
        validate_app_id(bad)


async def test_a_bad_stored_id_makes_no_request(rm):
    client = simple_client(rm)
    with pytest.raises(RecordError):
        client.validate_locator({"application_id": "application_1_2/../../x"})
    with pytest.raises(RecordError):
        client.validate_locator({"application_id": "application_1_2", "tag": "DJ-not-ours"})
    with pytest.raises(RecordError):
        client.validate_locator({"application_id": "application_1_2", "evil": "x"})
    with pytest.raises(RecordError):
        await client.status({"application_id": "application_1_2/../x"})
    assert rm.seen == []
    assert client.validate_locator({"application_id": "application_1_2", "tag": TOKEN}) == {
        "application_id": "application_1_2",
        "tag": TOKEN,
    }


def test_request_body_carries_the_reserved_id_and_the_token_as_first_tag():
    body = APP.request_body("application_1_7", TOKEN)
    assert body["application-id"] == "application_1_7"
    assert body["application-tags"] == {"tag": [TOKEN, "run-42", "airflow"]}
    assert body["am-container-spec"]["commands"] == {"command": "sleep 30"}
    assert body["resource"] == {"memory": 1024, "vCores": 1}
    with pytest.raises(ValueError, match="application-id"):
        YarnApplication(name="x", command="true", extra={"application-id": "application_1_1"})
    with pytest.raises(ValueError, match="at most 10 tags"):
        YarnApplication(name="x", command="true", tags=[f"t{i}" for i in range(10)])
    with pytest.raises(ValueError, match="ASCII"):
        YarnApplication(name="x", command="true", tags=["étiquette"])


# --- the RM calls ------------------------------------------------------------------------------------------


async def test_reserve_then_submit_then_find_by_id(rm):
    client = simple_client(rm)
    reserved = await client.reserve(APP, TOKEN)
    assert reserved is not None and reserved["tag"] == TOKEN
    assert await client.find(TOKEN, since=0, spec=APP, reserved=reserved) is None  # 404: not submitted yet
    assert rm.apps == {}
    loc = await client.submit(APP, TOKEN, reserved=reserved)
    assert loc == reserved
    app = rm.apps[loc["application_id"]]
    assert app.tags == sorted([TOKEN, "run-42", "airflow"])  # lower-cased by the RM
    assert app.user == "alice"
    assert await client.find(TOKEN, since=0, spec=APP, reserved=reserved) == loc
    # the write carried user.name (simple auth); the RM answered 202 with a Location and no body
    post = rm.requests("POST", "/ws/v1/cluster/apps")[0]
    assert post.query.get("user.name") == "alice" or post.via == "cookie"


async def test_submitting_a_reserved_id_twice_is_one_application(rm):
    client = simple_client(rm)
    loc = await submitted(client)
    again = await client.submit(APP, TOKEN, reserved=loc)
    assert again == loc and len(rm.apps) == 1


async def test_find_by_tag_and_apps_null(rm):
    client = simple_client(rm)
    assert await client.find(TOKEN, since=0, spec=APP) is None  # {"apps": null}
    loc = await submitted(client)
    await submitted(client, token="dj" + "1" * 20)
    assert await client.find(TOKEN, since=0, spec=APP) == loc
    assert [a.id for a in await client.list_apps(tags=["RUN-42"])] == sorted(rm.apps)
    assert await client.list_apps(tags=["no-such-tag"]) == []


async def test_status_follows_the_script_and_reports_success(rm):
    client = simple_client(rm)
    rm.cluster.script_for_new = [("RUNNING", "UNDEFINED", ""), ("FINISHED", "SUCCEEDED", "")]
    loc = await submitted(client)
    states = [(await client.status(loc)).state for _ in range(3)]
    assert states == [JobState.RUNNING, JobState.SUCCEEDED, JobState.SUCCEEDED]


async def test_unknown_application_is_lost_not_failed(rm):
    st = await simple_client(rm).status({"application_id": "application_1_9999"})
    assert st.state is JobState.LOST and "does not know" in st.message


async def test_an_app_failed_by_the_rm_reports_its_diagnostics(rm):
    client = simple_client(rm)
    loc = await submitted(client, spec=YarnApplication(name="q", command="true", queue="nope"))
    st = await client.status(loc)
    assert st.state is JobState.FAILED and "unknown queue: nope" in st.message


async def test_error_json_maps_to_error_classes(rm):
    client = simple_client(rm)
    rm.fail_next(status=503, path="/ws/v1/cluster/apps/new-application")
    with pytest.raises(TransientError, match=r"YarnRuntimeException: java\.io\.IOException"):
        await client.new_application()
    huge = YarnApplication(name="big", command="true", memory_mb=100_000)
    with pytest.raises(PermanentError, match=r"BadRequestException: .*InvalidResourceRequestException") as bad:
        await submitted(client, spec=huge)
    assert bad.value.status == 400 and not isinstance(bad.value, AuthError)
    anonymous = YarnClient(YarnConfig(rm_urls=(rm.url,), auth="none", timeout=5))
    with pytest.raises(AuthError, match="Unable to obtain user name"):
        await anonymous.new_application()
    assert (await anonymous.list_apps()) == []  # anonymous reads are allowed


async def test_kill_of_a_running_app_is_202_until_200(rm):
    client = simple_client(rm)
    rm.cluster.kill_steps = 3
    loc = await submitted(client)
    rm.advance(loc["application_id"], "RUNNING")
    await client.cancel(loc)
    puts = rm.requests("PUT")
    assert len(puts) >= 2  # 202 (still RUNNING) first, then 200 KILLED
    assert rm.apps[loc["application_id"]].state == "KILLED"
    assert (await client.status(loc)).state is JobState.CANCELLED


async def test_kill_is_idempotent_for_finished_and_unknown_apps(rm):
    client = simple_client(rm)
    loc = await submitted(client)
    rm.advance(loc["application_id"], "FINISHED", "SUCCEEDED")
    await client.cancel(loc)
    assert rm.apps[loc["application_id"]].state == "FINISHED" and len(rm.requests("PUT")) == 1
    await client.cancel({"application_id": "application_1_4242"})  # 404: nothing to kill, no error


async def test_a_proxy_page_with_200_is_transient_not_a_result(rm):
    client = simple_client(rm)
    loc = await submitted(client)

    async def html(request: Any, handler: Any) -> Any:
        from aiohttp import web

        return web.Response(text="<html>please log in</html>", content_type="text/html")

    rm.failures.append((lambda req: req.method == "GET", html))
    rm.failures.append((lambda req: req.method == "GET", html))
    with pytest.raises(MalformedAnswer, match="not valid JSON"):
        await client.status(loc)


# --- batched polling ---------------------------------------------------------------------------------------


async def test_one_list_request_serves_every_watched_app(rm):
    client = simple_client(rm)
    locs = [await submitted(client, token=f"dj{i:020x}") for i in range(30)]
    rm.advance(locs[0]["application_id"], "FINISHED", "SUCCEEDED")
    rm.advance(locs[1]["application_id"], "FAILED", "FAILED", "AM crashed")
    del rm.apps[locs[2]["application_id"]]  # evicted by the RM
    before = len(rm.seen)
    out = await client.statuses(locs)
    made = rm.seen[before:]
    lists = [s for s in made if s.path == "/ws/v1/cluster/apps"]
    gets = [s for s in made if s.path.startswith("/ws/v1/cluster/apps/")]
    assert len(lists) == 1 and len(gets) == 1  # one list for 30 apps, one GET for the one not listed
    assert gets[0].path.endswith(locs[2]["application_id"])
    assert out[locator_key(locs[0])].state is JobState.SUCCEEDED
    assert out[locator_key(locs[1])].state is JobState.FAILED and out[locator_key(locs[1])].message == "AM crashed"
    assert out[locator_key(locs[2])].state is JobState.LOST
    assert {out[locator_key(loc)].state for loc in locs[3:]} == {JobState.PENDING}


async def test_batches_are_split_to_keep_urls_short(rm):
    client = simple_client(rm, list_batch=10)
    locs = [await submitted(client, token=f"dj{i:020x}") for i in range(25)]
    before = len(rm.seen)
    out = await client.statuses(locs)
    assert [s.path for s in rm.seen[before:]] == ["/ws/v1/cluster/apps"] * 3
    assert len(out) == 25


async def test_an_unreachable_rm_raises_transient_for_the_whole_batch():
    client = simple_client(f"http://127.0.0.1:{free_port()}")
    locs = [{"application_id": f"application_1_{i}", "tag": f"dj{i:020x}"} for i in range(3)]
    with pytest.raises(TransientError) as exc:
        await client.statuses(locs)
    assert exc.value.connect_failed
    await close_sessions()


# --- HA ----------------------------------------------------------------------------------------------------


@pytest.fixture
async def ha_pair():
    cluster = YarnClusterState()
    rm1 = await FakeYarnRM(cluster=cluster, ha_state="STANDBY").start()
    rm2 = await FakeYarnRM(cluster=cluster, ha_state="ACTIVE").start()
    rm1.active_url = rm2.url
    yield rm1, rm2
    await close_sessions()
    await rm1.stop()
    await rm2.stop()


async def test_ha_finds_the_active_rm_through_cluster_info(ha_pair):
    rm1, rm2 = ha_pair
    client = simple_client(rm1, rm2)
    loc = await submitted(client)
    assert client.active_rm == rm2.url
    assert [s.path for s in rm1.seen] == ["/ws/v1/cluster/info"]  # asked once, never used for work
    assert rm2.requests("POST", "/ws/v1/cluster/apps") and loc["application_id"] in rm2.apps


async def test_ha_follows_a_failover_by_redirect_and_by_refresh(ha_pair):
    rm1, rm2 = ha_pair
    client = simple_client(rm1, rm2)
    loc = await submitted(client)
    # failover: rm1 becomes active, rm2 redirects to it
    rm1.ha_state, rm2.ha_state, rm2.active_url = "ACTIVE", "STANDBY", rm1.url
    assert (await client.status(loc)).state is JobState.PENDING
    assert client.active_rm == rm1.url
    # a standby that knows no active RM answers 503 + Refresh: the client tries the other one
    rm1.ha_state, rm2.ha_state, rm1.active_url, rm2.active_url = "STANDBY", "ACTIVE", None, None
    assert (await client.status(loc)).state is JobState.PENDING
    assert client.active_rm == rm2.url
    # both standby: transient, never a failure
    rm2.ha_state = "STANDBY"
    with pytest.raises(TransientError, match="standby"):
        await client.status(loc)


async def test_ha_skips_an_rm_that_refuses_connections(rm):
    dead = f"http://127.0.0.1:{free_port()}"
    client = simple_client(dead, rm)
    loc = await submitted(client)
    assert client.active_rm == rm.url and loc["application_id"] in rm.apps


# --- sessions ----------------------------------------------------------------------------------------------


async def test_requests_reuse_one_pooled_session(rm):
    client = simple_client(rm)
    locs = [await submitted(client, token=f"dj{i:020x}") for i in range(3)]
    await asyncio.gather(*(client.status(loc) for loc in locs))
    from durable_jobs.transport.http import open_sessions

    assert open_sessions() == 1


# --- bad answers, lost, isolation (a mock transport: the exact bodies matter) ---------------------------------

A = {"application_id": "application_1_1", "tag": "dj" + "a" * 20}
B = {"application_id": "application_1_2", "tag": "dj" + "b" * 20}


def app_json(loc: dict[str, Any], state: str = "RUNNING", final: str = "UNDEFINED", **kw: Any) -> dict[str, Any]:
    return {"id": loc["application_id"], "state": state, "finalStatus": final, "applicationTags": loc["tag"], **kw}


def not_found_404(app_id: str) -> Any:
    from durable_jobs.testing.transport import json_response

    return json_response(
        {"RemoteException": {"exception": "NotFoundException", "message": f"app with id: {app_id} not found"}}, 404
    )


def mock_rm(get: Any, listing: Any) -> tuple[YarnClient, Any]:
    """A client whose RM answers GETs with ``get(app_id)`` and lists with ``listing(params)``."""
    from durable_jobs.testing.transport import MockTransport, json_response, response

    def handler(req: Any) -> Any:
        path = req.url.split("/ws/v1/cluster", 1)[1]
        out = listing(dict(req.params)) if path == "/apps" else get(path.rsplit("/", 1)[1])
        if isinstance(out, (dict, list)) or out is None:
            return json_response(out)
        return out if not isinstance(out, (str, bytes)) else response(200, out)

    return YarnClient(YarnConfig(rm_urls=("http://rm:8088",), user="alice")), MockTransport(handler)


async def test_lost_needs_the_get_404_and_the_tag_list_to_agree():
    from durable_jobs.testing.transport import response, use_transport

    listings: list[Any] = [{"apps": None}]
    client, transport = mock_rm(not_found_404, lambda params: listings[0])
    with use_transport(transport):
        st = await client.status(A)
        assert st.state is JobState.LOST and A["tag"] in st.message
        listings[0] = {"apps": {"app": [app_json(A, "FINISHED", "SUCCEEDED")]}}  # the list still has it
        assert (await client.status(A)).state is JobState.SUCCEEDED
        listings[0] = {"apps": {"app": app_json(A, "FINISHED", "FAILED")}}  # a single app as an object
        assert (await client.status(A)).state is JobState.FAILED
        listings[0] = response(503, "<html>down</html>")  # the second source cannot be read: unknown
        with pytest.raises(TransientError):
            await client.status(A)
        listings[0] = {"apps": {"app": [{"id": 5}]}}  # an entry nobody can read: maybe ours
        with pytest.raises(MalformedAnswer, match="could not be read"):
            await client.status(A)
        listings[0] = {"apps": {"app": [app_json(B)]}}
        assert (await client.status(A)).state is JobState.LOST
    # the GET's 404 must be the RM's own NotFoundException, not a proxy's page
    client, transport = mock_rm(lambda app_id: response(404, "<html>Not Found</html>"), lambda p: {"apps": None})
    with use_transport(transport), pytest.raises(TransientError):
        await client.status(A)


async def test_an_untagged_locator_is_looked_up_among_the_finished_apps():
    from durable_jobs.testing.transport import use_transport

    asked: list[dict[str, str]] = []
    apps: list[Any] = []

    def listing(params: dict[str, str]) -> Any:
        asked.append(params)
        return {"apps": {"app": apps}}

    client, transport = mock_rm(not_found_404, listing)
    untagged = {"application_id": A["application_id"]}
    with use_transport(transport):
        assert (await client.status(untagged)).state is JobState.LOST
        assert asked[-1]["states"] == "FINISHED,FAILED,KILLED" and "applicationTags" not in asked[-1]
        apps.append({"id": A["application_id"], "state": "FINISHED", "finalStatus": "SUCCEEDED"})
        assert (await client.status(untagged)).state is JobState.SUCCEEDED


async def test_one_unreadable_entry_of_a_list_touches_its_own_app_only():
    from durable_jobs.testing.transport import use_transport

    entries = [app_json(A, diagnostics=["not", "a", "string"]), app_json(B, "FINISHED", "SUCCEEDED")]
    client, transport = mock_rm(lambda app_id: None, lambda p: {"apps": {"app": entries}})
    with use_transport(transport):
        out = await client.statuses([A, B])
    assert out[locator_key(B)].state is JobState.SUCCEEDED
    assert out[locator_key(A)].state is JobState.UNKNOWN and "diagnostics" in out[locator_key(A)].message
    assert len(transport.requests) == 1  # no GET: the list said enough


async def test_apps_the_list_missed_get_a_bounded_number_of_gets():
    from durable_jobs.testing.transport import use_transport

    locs = [{"application_id": f"application_1_{i}", "tag": f"dj{i:020x}"} for i in range(1, 41)]
    client, transport = mock_rm(not_found_404, lambda p: {"apps": None})
    client.status_concurrency = 5  # type: ignore[misc]
    with use_transport(transport):
        first = await client.statuses(locs)
        second = await client.statuses(locs)
    assert len(transport.requests) == 2 + 10  # a list and 5 GETs per poll, not 40
    assert len(first) == len(second) == 5 and not set(first) & set(second)
    assert {st.state for st in first.values()} == {JobState.LOST}  # GET 404 and a complete list agree


async def test_a_403_on_one_app_is_unknown_when_the_rm_accepts_us_otherwise():
    from durable_jobs.testing.transport import response, use_transport

    refuse_list: list[bool] = [False]

    def listing(params: dict[str, str]) -> Any:
        return response(403, "<html>Forbidden</html>") if refuse_list[0] else {"apps": None}

    client, transport = mock_rm(lambda app_id: response(403, "<html>Forbidden</html>"), listing)
    with use_transport(transport):
        out = await client.statuses([A])
        assert out[locator_key(A)].state is JobState.UNKNOWN and "about application_1_1 only" in (
            out[locator_key(A)].message
        )
        refuse_list[0] = True  # refused for everything: the credentials (the poller refetches them)
        with pytest.raises(AuthError):
            await client.statuses([A])


def test_the_locator_tag_must_be_the_token():
    client = YarnClient(YarnConfig(rm_urls=("http://rm:8088",)))
    assert client.locator_matches_token(A, A["tag"])
    assert not client.locator_matches_token(A, B["tag"])
    assert client.locator_matches_token({"application_id": "application_1_1"}, B["tag"])  # nothing to check


def test_the_poller_key_holds_no_credential_and_survives_a_rotation():
    from durable_jobs.transport.kerberos import KerberosCredentials

    alice = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), user="alice"))
    bob = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), user="bob"))
    assert alice.key == bob.key and "alice" not in repr(alice.key)
    creds = KerberosCredentials(principal="etl@R", keytab="/k/etl.keytab")
    k1 = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), auth="kerberos", kerberos=creds))
    k2 = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), auth="kerberos", kerberos=creds))
    assert k1.key == k2.key and k1.key != alice.key
    assert k1._rms[0].max_body == 16 * 1024 * 1024
    ha = YarnClient(YarnConfig(rm_urls=("http://rm1:8088", "http://rm2:8088"), max_body=1000))
    assert ha._rms[0].redirect_hosts == ("http://rm2:8088",) and ha._rms[1].redirect_hosts == ("http://rm1:8088",)
    assert ha._rms[1].max_body == 1000


# --- a lost record ---------------------------------------------------------------------------------------------


async def test_a_lost_record_is_one_tag_query_per_generation_with_no_reservation(rm):
    store = MemoryStore()

    def protocol(try_number: int) -> JobProtocol:
        proto = worker_protocol(simple_client(rm), store)
        proto.identity = TaskIdentity("dag", "run1", "etl", try_number=try_number)
        return proto

    def tag_queries(token: str) -> list[Any]:
        return [s for s in rm.requests("GET", "/ws/v1/cluster/apps") if s.query.get("applicationTags") == token]

    tokens = [TaskIdentity("dag", "run1", "etl").token(g) for g in range(2)]
    # try 2 of a run whose record is gone and nothing was submitted: one tag query per generation, then the submit
    first = await asyncio.to_thread(protocol(2).start)
    assert isinstance(first, Defer) and first.record.generation == 0
    assert [len(tag_queries(t)) for t in tokens] == [1, 1]
    assert len(rm.requests("POST", "/ws/v1/cluster/apps/new-application")) == 1 and len(rm.apps) == 1
    # the record deleted: try 3 finds the application by its tag (no reservation is asked for) and adopts it
    store.data.clear()
    rm.seen.clear()
    again = await asyncio.to_thread(protocol(3).start)
    assert isinstance(again, Defer) and again.adopted and again.record.job == first.record.job
    assert [len(tag_queries(t)) for t in tokens] == [1, 0]  # nothing follows a running application
    assert rm.requests("POST") == [] and len(rm.apps) == 1
    assert store.data[STATE_KEY]["job"] == first.record.job
