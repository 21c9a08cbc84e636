"""Property-based fuzzing of every decoder of RM answers (issue 11).

Random JSON, random values in every field read, random bytes and cut bodies: nothing escapes but the
library's own errors (:class:`DurableJobError`), and nothing malformed ever becomes LOST or FAILED. A
status is FAILED only when a well-formed report says so; LOST only on a well-formed 404 NotFoundException
that a complete list by tag agrees with.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.yarn import (
    AppInfo,
    YarnApplication,
    YarnClient,
    YarnConfig,
    adecode_listing,
    decode_app,
    decode_app_state,
    decode_cluster_info,
    decode_listing,
    decode_new_application,
    is_not_found,
    remote_exception,
    status_from_app,
)
from durable_jobs.errors import DurableJobError, MalformedAnswer
from durable_jobs.status import JobState, JobStatus
from durable_jobs.testing.transport import MockTransport, response, use_transport

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
APP_ID = "application_1700000000000_0001"
TAG = "dj" + "0" * 20
STATES = ["NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING", "FINISHED", "FAILED", "KILLED", "EXPLODED", ""]
FINALS = ["UNDEFINED", "SUCCEEDED", "FAILED", "KILLED", "ENDED", "MAYBE", ""]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A well-formed object, and one time in three one of its fields replaced by any JSON value, or removed."""
    doc = dict(draw(base))
    if doc and draw(st.integers(0, 2)) == 0:
        key = draw(st.sampled_from(sorted(doc)))
        if draw(st.integers(0, 4)):
            doc[key] = draw(json_values)
        else:
            del doc[key]
    return doc


# an application whose every field read is plausible, then possibly one of them made wrong
good_apps = st.fixed_dictionaries(
    {
        "id": st.sampled_from([APP_ID, APP_ID, "application_1700000000000_0002"]),
        "state": st.sampled_from(STATES),
        "finalStatus": st.sampled_from(FINALS),
        "applicationTags": st.sampled_from([TAG, f"airflow,{TAG}", "other", [TAG], ""]),
    },
    optional={
        "diagnostics": st.text(max_size=30),
        "trackingUrl": st.sampled_from(["http://rm/x", "javascript:x", ""]),
        "user": st.text(max_size=5),
        "queue": st.text(max_size=5),
        "applicationType": st.just("SPARK"),
        "amContainerLogs": st.just("http://nm/logs"),
        "progress": st.floats(allow_nan=False),
        "finishedTime": st.integers(),
        "unread": json_values,
    },
)
app_objects = mutated(good_apps)
app_like = app_objects | app_objects | app_objects | json_values
app_answers = st.one_of(*[mutated(st.fixed_dictionaries({"app": app_like}))] * 3, json_values)
list_answers = (
    mutated(
        st.fixed_dictionaries(
            {"apps": st.none() | mutated(st.fixed_dictionaries({"app": st.lists(app_like, max_size=4) | app_like}))}
        )
    )
    | json_values
)
remote_errors = (
    mutated(
        st.fixed_dictionaries(
            {
                "RemoteException": mutated(
                    st.fixed_dictionaries(
                        {
                            "exception": st.sampled_from(["NotFoundException", "BadRequestException", "IOException"]),
                            "message": st.sampled_from(["app with id: x not found", "doesn't exist", "boom"]),
                            "javaClassName": st.sampled_from(
                                ["org.apache.hadoop.yarn.webapp.NotFoundException", "java.io.IOException"]
                            ),
                        }
                    )
                )
            }
        )
    )
    | json_values
)


def body_of(value: Any, cut: int | None = None) -> bytes:
    data = json.dumps(value).encode()
    return data if cut is None else data[:cut]


cuts = st.none() | st.none() | st.none() | st.integers(0, 200)  # a body cut short, one time in four
bodies = st.builds(body_of, app_answers, cuts) | st.binary(max_size=200)


def may_fail(app: Any) -> bool:
    """Whether a well-formed report of this application says it failed."""
    if not isinstance(app, dict):
        return False
    state, final = app.get("state"), app.get("finalStatus", "")
    return state == "FAILED" or (state == "FINISHED" and final in ("FAILED", "UNDEFINED", "ENDED"))


def check_status(status: JobStatus, sources: list[Any]) -> None:
    assert isinstance(status, JobStatus)
    assert status.state is not JobState.LOST
    if status.state is JobState.FAILED:
        assert any(may_fail(s) for s in sources), (status, sources)


@FUZZ
@given(bodies)
def test_decode_app_raises_only_our_errors_and_never_invents_a_failure(body: bytes) -> None:
    try:
        app = decode_app(body, APP_ID, what="fuzz")
    except DurableJobError as exc:
        assert isinstance(exc, MalformedAnswer)
        return
    assert isinstance(app, AppInfo) and app.id == APP_ID
    check_status(status_from_app(app), [json.loads(body)["app"]])


@FUZZ
@given(app_objects)
def test_status_from_a_mapping_checks_every_field(app: dict[str, Any]) -> None:
    try:
        status = status_from_app(app)
    except DurableJobError as exc:
        assert isinstance(exc, MalformedAnswer)
        return
    check_status(status, [app])
    assert len(status.message) <= 2000 and len(status.raw_state) <= 100
    assert status.tracking_url is None or status.tracking_url.startswith(("http://", "https://"))


@FUZZ
@given(st.builds(body_of, list_answers, cuts) | st.binary(max_size=300))
def test_decode_listing_reads_each_entry_on_its_own(body: bytes) -> None:
    try:
        listing = decode_listing(body, what="fuzz")
    except DurableJobError as exc:
        assert isinstance(exc, MalformedAnswer)
        return
    assert asyncio.run(adecode_listing(body, what="fuzz")) == listing
    for app_id, app in listing.apps.items():
        assert isinstance(app, AppInfo) and app.id == app_id
        assert app_id not in listing.malformed
        entries = json.loads(body)["apps"]["app"]
        check_status(status_from_app(app), entries if isinstance(entries, list) else [entries])


@FUZZ
@given(st.integers(100, 599), st.builds(body_of, remote_errors) | st.binary(max_size=100))
def test_not_found_is_only_a_404_remote_exception(status: int, body: bytes) -> None:
    found = is_not_found(status, body)
    if found:
        err = remote_exception(body)
        assert status == 404 and err is not None
    remote_exception(body)  # never raises


@FUZZ
@given(
    st.builds(body_of, json_values | st.fixed_dictionaries({"application-id": json_values})) | st.binary(max_size=60)
)
def test_small_answers_raise_only_our_errors(body: bytes) -> None:
    for decode in (decode_new_application, decode_cluster_info, decode_app_state):
        try:
            decode(body, what="fuzz")
        except DurableJobError as exc:
            assert isinstance(exc, MalformedAnswer)


def _listing_complete_without(body: bytes) -> bool:
    try:
        listing = decode_listing(body, what="oracle")
    except DurableJobError:
        return False
    return listing.complete and APP_ID not in listing.apps and APP_ID not in listing.malformed


# what the RM may answer about application A: its report, a not-found, anything (each possibly broken)
a_apps = mutated(
    st.fixed_dictionaries(
        {
            "id": st.just(APP_ID),
            "state": st.sampled_from(STATES),
            "finalStatus": st.sampled_from(FINALS),
            "applicationTags": st.sampled_from([TAG, f"airflow,{TAG}", [TAG]]),
        },
        optional={"diagnostics": st.text(max_size=30), "progress": st.floats(allow_nan=False)},
    )
)
get_answers = st.one_of(
    st.tuples(st.just(200), st.builds(body_of, st.fixed_dictionaries({"app": a_apps}), cuts)),
    st.tuples(st.just(404), st.builds(body_of, remote_errors, cuts)),
    st.tuples(st.sampled_from([200, 404, 403, 500, 302]), bodies),
)
list_bodies = st.one_of(
    st.builds(
        body_of,
        st.fixed_dictionaries({"apps": st.fixed_dictionaries({"app": st.lists(a_apps | app_objects, max_size=3)})}),
        cuts,
    ),
    st.just(b'{"apps": null}'),
    st.builds(body_of, list_answers, cuts),
    st.binary(max_size=80),
)


@settings(FUZZ, max_examples=500)
@given(get_answers, st.sampled_from([200, 200, 200, 404, 503]), list_bodies)
def test_the_client_never_loses_or_fails_a_job_on_a_malformed_answer(
    get: tuple[int, bytes], list_status: int, list_body: bytes
) -> None:
    get_status, get_body = get

    def handler(req: Any) -> Any:
        if req.url.endswith("/apps"):
            return response(list_status, list_body, content_type="application/json")
        headers = {"Location": "http://elsewhere/x"} if get_status == 302 else None
        return response(get_status, get_body, headers=headers, content_type="application/json")

    client = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), user="alice"))
    loc = {"application_id": APP_ID, "tag": TAG}
    other = {"application_id": "application_1700000000000_0002", "tag": "dj" + "1" * 20}

    async def run() -> list[JobStatus]:
        out: list[JobStatus] = []
        with use_transport(MockTransport(handler)):
            try:
                out.append(await client.status(loc))
            except DurableJobError as exc:
                event(f"status raised {type(exc).__name__}")
            try:
                batch = await client.statuses([loc, other])
            except DurableJobError as exc:
                event(f"statuses raised {type(exc).__name__}")
            else:
                if locator_key(loc) in batch:
                    out.append(batch[locator_key(loc)])
        return out

    sources: list[Any] = []
    for raw in (get_body, list_body):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        sources.append(data.get("app") if isinstance(data, dict) else None)
        apps = data.get("apps") if isinstance(data, dict) else None
        entries = apps.get("app") if isinstance(apps, dict) else None
        sources.extend(entries if isinstance(entries, list) else [entries])
    lost_allowed = (
        get_status == 404
        and is_not_found(404, get_body)
        and list_status == 200
        and _listing_complete_without(list_body)
    )
    for status in asyncio.run(run()):
        event(status.state.value)
        assert isinstance(status, JobStatus)
        if status.state is JobState.LOST:
            assert lost_allowed, (get_status, get_body, list_status, list_body)
        if status.state is JobState.FAILED:
            assert any(may_fail(s) for s in sources), (get_body, list_body)


@FUZZ
@given(st.builds(body_of, list_answers, cuts) | st.binary(max_size=80), st.sampled_from([200, 200, 404, 503]))
def test_find_never_says_nothing_was_submitted_on_a_bad_list(list_body: bytes, list_status: int) -> None:
    def handler(req: Any) -> Any:
        return response(list_status, list_body, content_type="application/json")

    client = YarnClient(YarnConfig(rm_urls=("http://rm:8088",), user="alice"))
    spec = YarnApplication(name="fuzz", command="true")

    async def run() -> Any:
        with use_transport(MockTransport(handler)):
            return await client.find(TAG, since=0, spec=spec)

    try:
        found = asyncio.run(run())
    except DurableJobError:
        return
    if found is None:  # "surely not submitted": only from a readable, complete list without our tag
        listing = decode_listing(list_body, what="oracle")
        assert list_status == 200 and listing.complete and not listing.malformed
        assert not any(TAG in app.tags for app in listing.apps.values())
    else:
        assert found["tag"] == TAG
