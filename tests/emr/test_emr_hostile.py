"""The EMR clients against hostile answers on real sockets: a fake EMR on 127.0.0.1 (``FakeEmr``).

The fake speaks EMR's awsJson1_1 (``ElasticMapReduce.*``) and the REST-JSON of EMR Serverless and EMR on
EKS, keeps real state, and answers what a test asks instead: wrong types, nested, truncated, empty and huge
bodies, HTML error pages, redirects to another host or path, 401 pages that echo our headers, hangs,
not-found for live jobs, unknown states. For each, on every flavour (steps, clusters, Serverless runs, EKS
runs): nothing crashes or hangs, the victim's deadline still fires, the bystander on the same endpoint is
not touched, nothing becomes lost or failed, and the submit-once protocol never submits twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from durable_jobs import failpoints
from durable_jobs.clients.emr import EmrCluster, EmrClusterClient, EmrStep, EmrStepClient
from durable_jobs.clients.emr.aws import AwsJobClient
from durable_jobs.clients.emr.eks import EmrEksClient, EmrEksJob
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob
from durable_jobs.errors import DurableJobError, TransientError
from durable_jobs.polling import PollSettings, poller_for, wait_for_outcome
from durable_jobs.protocol import Defer, JobLost, RetryLater
from durable_jobs.record import STATE_KEY
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.moto_emr import (
    EKS_RELEASE,
    ROLE_ARN,
    Call,
    DictStore,
    FakeEmr,
    answer_json,
    answer_never,
    answer_raw,
    answer_streamed,
    answer_truncated,
    deep_json,
    eventually,
    protocol,
)

SETTINGS = PollSettings(interval=0.05, lost_confirmations=2, unknown_budget=600)
BAD_STATES = (JobState.LOST, JobState.FAILED, JobState.CANCELLED)
SECRET = "fake-secret-old-0123456789abcdefghijklmn"
SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLESESSIONTOKEN-0123456789"
KEY_ID = "AKIAFAKEOLDKEY000001"


# --- the flavours ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flavour:
    name: str
    make_client: Callable[[FakeEmr], AwsJobClient[Any]]
    own_actions: tuple[str, ...]  # the job's own request(s)
    list_actions: tuple[str, ...]
    submit_action: str

    def client(self, fake: FakeEmr) -> AwsJobClient[Any]:
        return self.make_client(fake)

    def two_jobs(self, fake: FakeEmr) -> tuple[dict[str, str], dict[str, str], Callable[[Call], bool]]:
        """A victim and a bystander on the same endpoint (in two clusters or containers), and "about the victim"."""
        if self.name == "step":
            a, b = fake.add_cluster("victim"), fake.add_cluster("bystander")
            va, vb = {"cluster_id": a, "step_id": fake.add_step(a)}, {"cluster_id": b, "step_id": fake.add_step(b)}
            return va, vb, lambda call: call.params.get("ClusterId") == a
        if self.name == "cluster":
            a, b = fake.add_cluster("victim", state="STARTING"), fake.add_cluster("bystander", state="STARTING")
            return (
                {"cluster_id": a},
                {"cluster_id": b},
                lambda call: call.params.get("ClusterId") == a or call.action == "ListClusters",
            )
        add = fake.add_application if self.name == "serverless" else fake.add_virtual_cluster
        field = "application_id" if self.name == "serverless" else "virtual_cluster_id"
        a, b = add(), add()
        va, vb = {field: a, "job_run_id": fake.add_run(a)}, {field: b, "job_run_id": fake.add_run(b)}
        return va, vb, lambda call: call.params.get("container") == a

    def finish(self, fake: FakeEmr, loc: dict[str, str]) -> None:
        if self.name == "step":
            fake.set_step(loc["cluster_id"], loc["step_id"], "COMPLETED")
        elif self.name == "cluster":
            fake.clusters[loc["cluster_id"]]["Status"]["State"] = "WAITING"
        else:
            container = loc.get("application_id") or loc["virtual_cluster_id"]
            fake.run(container, loc["job_run_id"])["state"] = "SUCCESS" if self.name == "serverless" else "COMPLETED"

    def spec_and_count(self, fake: FakeEmr) -> tuple[Any, Callable[[], int]]:
        if self.name == "step":
            cid = fake.add_cluster()
            return EmrStep(cluster_id=cid, name="etl", args=["spark-submit", "s3://b/x.py"]), lambda: len(
                fake.steps[cid]
            )
        if self.name == "cluster":
            before = len(fake.clusters)
            job_flow = {"Instances": {"InstanceCount": 1}, "ReleaseLabel": "emr-7.1.0"}
            return EmrCluster(name="etl", job_flow=job_flow), lambda: len(fake.clusters) - before
        if self.name == "serverless":
            app = fake.add_application()
            spec = EmrServerlessJob(
                application_id=app,
                execution_role_arn=ROLE_ARN,
                job_driver={"sparkSubmit": {"entryPoint": "s3://b/x.py"}},
                name="etl",
            )
            return spec, lambda: len(fake.serverless[app])
        vc = fake.add_virtual_cluster()
        spec = EmrEksJob(
            virtual_cluster_id=vc,
            name="etl",
            execution_role_arn=ROLE_ARN,
            release_label=EKS_RELEASE,
            job_driver={"sparkSubmitJobDriver": {"entryPoint": "s3://b/x.py"}},
        )
        return spec, lambda: len(fake.eks[vc])


FLAVOURS = [
    Flavour("step", lambda f: EmrStepClient(f.config(max_body=256 * 1024, read_timeout=0.5)), ("DescribeStep",),
            ("ListSteps",), "AddJobFlowSteps"),
    Flavour("cluster", lambda f: EmrClusterClient(f.config(max_body=256 * 1024, read_timeout=0.5)),
            ("DescribeCluster",), ("ListClusters",), "RunJobFlow"),
    Flavour("serverless", lambda f: EmrServerlessClient(f.config(max_body=256 * 1024, read_timeout=0.5)),
            ("GetJobRun",), ("ListJobRuns",), "StartJobRun"),
    Flavour("eks", lambda f: EmrEksClient(f.config(max_body=256 * 1024, read_timeout=0.5)), ("DescribeJobRun",),
            ("ListJobRuns",), "StartJobRun"),
]  # fmt: skip


@pytest.fixture(params=FLAVOURS, ids=lambda f: f.name)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return request.param  # type: ignore[no-any-return]


# --- the hostile answers ---------------------------------------------------------------------------------


def _replace(value: Any, keys: tuple[str, ...], new: Any) -> Any:
    """``value`` with every field named one of ``keys`` (at any depth) replaced by ``new``."""
    if isinstance(value, dict):
        return {k: new if k in keys else _replace(v, keys, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, keys, new) for v in value]
    return value


def _normal(fake: FakeEmr, call: Call) -> dict[str, Any]:
    answer = fake.answer(call)
    assert answer is not None, call
    return answer


def _html(status: int) -> Any:
    page = f"<html><head><title>{status}</title></head><body><h1>proxy error {status}</h1></body></html>"
    return answer_raw(page.encode(), status=status, content_type="text/html")


Kind = Callable[[FakeEmr, FakeEmr, Call, Any], Any]

KINDS: dict[str, Kind] = {
    "wrong_types": lambda fake, other, call, request: answer_json(
        _replace(_normal(fake, call), ("State", "state"), {"not": "a string"}), service=call.service
    ),
    "status_as_string": lambda fake, other, call, request: answer_json(
        _replace(_normal(fake, call), ("Status", "jobRun", "jobRuns", "Steps", "Cluster"), "RUNNING"),
        service=call.service,
    ),
    "unknown_state": lambda fake, other, call, request: answer_json(
        _replace(_normal(fake, call), ("State", "state"), "EXPLODED"), service=call.service
    ),
    "nested": lambda fake, other, call, request: answer_raw(deep_json(100_000)),
    "nested_in_a_field": lambda fake, other, call, request: answer_raw(
        json.dumps(_replace(_normal(fake, call), ("State", "state"), "NESTED"))
        .replace('"NESTED"', "[" * 5000 + "]" * 5000)
        .encode()
    ),
    "truncated": lambda fake, other, call, request: answer_truncated(
        request, json.dumps(_normal(fake, call)).encode()[:20], 4000
    ),
    "truncated_json": lambda fake, other, call, request: answer_raw(json.dumps(_normal(fake, call)).encode()[:25]),
    "empty": lambda fake, other, call, request: answer_raw(b""),
    "huge": lambda fake, other, call, request: answer_raw(b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'),
    "huge_streamed": lambda fake, other, call, request: answer_streamed(request, b"a" * 65536, 64),
    "html_200": lambda fake, other, call, request: _html(200),
    "html_404": lambda fake, other, call, request: _html(404),
    "html_502": lambda fake, other, call, request: _html(502),
    "error_without_code": lambda fake, other, call, request: answer_json({"message": "nope"}, status=400),
    "redirect_other_host": lambda fake, other, call, request: answer_raw(
        b"", status=307, Location=f"{other.endpoint}{request.path_qs}"
    ),
    "redirect_other_path": lambda fake, other, call, request: answer_raw(
        b"", status=301, Location=f"{fake.endpoint}/elsewhere"
    ),
    "hang": lambda fake, other, call, request: answer_never(fake),
}
#: the documented not-found answer for a job that is alive (the other source shows it), and a listing that
#: leaves out a live job (its own request shows it): it goes on, and succeeds
LIVE_KINDS = ("not_found_but_alive", "unlisted_but_alive")


def _not_found(call: Call) -> Any:
    if call.service == "emr":
        what = (
            f"Step id '{call.params['StepId']}'"
            if "StepId" in call.params
            else f"Cluster id '{call.params['ClusterId']}'"
        )
        return answer_json({"__type": "InvalidRequestException", "Message": f"{what} is not valid."}, status=400)
    return answer_raw(
        json.dumps({"message": f"Job run {call.params.get('runId')} doesn't exist."}).encode(),
        status=404,
        content_type="application/json",
        **{"x-amzn-ErrorType": "ResourceNotFoundException"},
    )


def _empty_listing(call: Call) -> Any:
    key = {"ListSteps": "Steps", "ListClusters": "Clusters"}.get(call.action, "jobRuns")
    return answer_json({key: []}, service=call.service)


def hostile_hook(
    fake: FakeEmr, other: FakeEmr, flavour: Flavour, kind: str, about: Callable[[Call], bool]
) -> Callable[[Call, Any], Any]:
    async def hook(call: Call, request: Any) -> Any:
        if not about(call):
            return None
        if kind == "not_found_but_alive":
            return _not_found(call) if call.action in flavour.own_actions else None
        if kind == "unlisted_but_alive":
            return _empty_listing(call) if call.action in flavour.list_actions else None
        answer = KINDS[kind](fake, other, call, request)
        return await answer if asyncio.iscoroutine(answer) else answer

    return hook


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeEmr, FakeEmr]]:
    fake, other = await FakeEmr().start(), await FakeEmr().start()
    try:
        yield fake, other
    finally:
        await close_sessions()
        await fake.stop()
        await other.stop()


# --- the wait: only the victim is touched, its deadline fires --------------------------------------------


@pytest.mark.parametrize("kind", [*KINDS, *LIVE_KINDS])
async def test_a_hostile_answer_about_one_job_touches_that_job_only(
    fakes: tuple[FakeEmr, FakeEmr], flavour: Flavour, kind: str
):
    fake, other = fakes
    client = flavour.client(fake)
    victim, bystander, about_victim = flavour.two_jobs(fake)
    fake.hostile = hostile_hook(fake, other, flavour, kind, about_victim)
    poller = poller_for(client, SETTINGS.interval)
    deadline = time.time() + 1.0
    waits = [
        asyncio.create_task(wait_for_outcome(client, victim, SETTINGS, deadline=deadline)),
        asyncio.create_task(wait_for_outcome(client, bystander, SETTINGS)),
    ]
    await eventually(lambda: poller.polls >= 3, timeout=10, what="three polls")
    flavour.finish(fake, bystander)
    if kind in LIVE_KINDS:
        flavour.finish(fake, victim)
    victim_result, bystander_result = await asyncio.wait_for(asyncio.gather(*waits), 20)

    assert bystander_result.status == "succeeded", bystander_result
    expected = "succeeded" if kind in LIVE_KINDS else "timeout"
    assert victim_result.status == expected, victim_result  # the deadline fired; nothing lost or failed
    assert victim_result.last is None or victim_result.last.state not in BAD_STATES
    assert poller.restarts == 0  # the poller never died
    assert other.calls == []  # a redirect was never followed


@pytest.mark.parametrize("kind", ["status_as_string", "truncated", "html_502", "hang", "redirect_other_host"])
async def test_a_hostile_listing_makes_its_group_unknown_and_asks_one_by_one_within_bounds(
    fakes: tuple[FakeEmr, FakeEmr], kind: str
):
    """Steps: ListSteps of one cluster goes bad; its 30 steps are asked by DescribeStep, at most 16 per poll."""
    fake, other = fakes
    client = EmrStepClient(fake.config(read_timeout=0.5))
    sick, healthy = fake.add_cluster("sick"), fake.add_cluster("healthy")
    many = [{"cluster_id": sick, "step_id": fake.add_step(sick)} for _ in range(30)]
    fine = {"cluster_id": healthy, "step_id": fake.add_step(healthy)}
    fake.set_step(healthy, fine["step_id"], "COMPLETED")

    async def hook(call: Call, request: Any) -> Any:
        if call.action == "ListSteps" and call.params.get("ClusterId") == sick:
            answer = KINDS[kind](fake, other, call, request)
            return await answer if asyncio.iscoroutine(answer) else answer
        return None

    fake.hostile = hook
    result = await client.statuses([*many, fine])
    states = [result.get(json.dumps(loc, sort_keys=True, separators=(",", ":"))) for loc in many]
    assert result[json.dumps(fine, sort_keys=True, separators=(",", ":"))].state is JobState.SUCCEEDED
    known = [s for s in states if s is not None and s.state is JobState.RUNNING]
    assert len(known) == client.status_concurrency  # the bounded fallback, by DescribeStep
    assert all(s is None or s.state in (JobState.RUNNING, JobState.UNKNOWN) for s in states)
    assert fake.count("DescribeStep") == client.status_concurrency
    assert other.calls == []


# --- wrong types in every field that is read, per answer ---------------------------------------------------

WRONG = (5, True, 1.5, [], ["x"], {}, {"a": 1}, "x" * 3)

# (flavour, action, path): the fields each flavour reads from each answer ('*' = every item of a list)
READ_FIELDS: list[tuple[str, str, tuple[str, ...]]] = [
    *[("step", "DescribeStep", ("Step", *p)) for p in [(), ("Id",), ("Name",), ("LogUri",), ("Status",),
      ("Status", "State"), ("Status", "StateChangeReason"), ("Status", "StateChangeReason", "Message"),
      ("Status", "FailureDetails"), ("Status", "FailureDetails", "Reason"), ("Status", "FailureDetails", "Message"),
      ("Status", "FailureDetails", "LogFile"), ("Status", "Timeline"), ("Status", "Timeline", "CreationDateTime")]],
    *[("step", "ListSteps", ("Steps", *p)) for p in [(), ("*",), ("*", "Id"), ("*", "Name"), ("*", "Status"),
      ("*", "Status", "State"), ("*", "Status", "FailureDetails"), ("*", "Status", "Timeline", "CreationDateTime")]],
    ("step", "ListSteps", ("Marker",)),
    *[("cluster", "DescribeCluster", ("Cluster", *p)) for p in [(), ("Id",), ("Status",), ("Status", "State"),
      ("Status", "StateChangeReason"), ("Status", "StateChangeReason", "Code"),
      ("Status", "StateChangeReason", "Message"), ("Status", "ErrorDetails"), ("LogUri",),
      ("MasterPublicDnsName",), ("Status", "Timeline", "CreationDateTime")]],
    *[("serverless", "GetJobRun", ("jobRun", *p)) for p in [(), ("jobRunId",), ("applicationId",), ("state",),
      ("stateDetails",), ("createdAt",), ("attempt",), ("name",), ("tags",), ("configurationOverrides",)]],
    *[("eks", "DescribeJobRun", ("jobRun", *p)) for p in [(), ("id",), ("virtualClusterId",), ("state",),
      ("stateDetails",), ("failureReason",), ("createdAt",), ("clientToken",), ("tags",), ("name",)]],
    *[(f, "ListJobRuns", ("jobRuns", *p)) for f in ("serverless", "eks") for p in [(), ("*",), ("*", "id"),
      ("*", "state"), ("*", "name"), ("*", "createdAt"), ("*", "stateDetails")]],
    *[(f, "ListJobRuns", ("nextToken",)) for f in ("serverless", "eks")],
]  # fmt: skip


def _set_path(value: Any, path: tuple[str, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if head == "*":
        return [_set_path(v, rest, new) for v in value] if isinstance(value, list) else value
    if isinstance(value, dict):
        return {**value, head: _set_path(value.get(head, {}), rest, new)}
    return value


@pytest.mark.parametrize(
    ("name", "action", "path"), READ_FIELDS, ids=lambda v: ".".join(v) if isinstance(v, tuple) else v
)
async def test_wrong_types_in_every_field_read_make_that_job_unknown_never_lost_or_failed(
    fakes: tuple[FakeEmr, FakeEmr], name: str, action: str, path: tuple[str, ...]
):
    fake, _ = fakes
    flavour = next(f for f in FLAVOURS if f.name == name)
    client = flavour.client(fake)
    victim, bystander, about_victim = flavour.two_jobs(fake)
    if action.startswith("List") and name != "cluster":
        # a listing serves a poll when a group has several watched jobs: add a second job to the victim's group
        if name == "step":
            victim2 = {"cluster_id": victim["cluster_id"], "step_id": fake.add_step(victim["cluster_id"])}
        else:
            field = "application_id" if name == "serverless" else "virtual_cluster_id"
            victim2 = {field: victim[field], "job_run_id": fake.add_run(victim[field])}
    else:
        victim2 = None
    for wrong in WRONG:

        async def hook(call: Call, request: Any, wrong: Any = wrong) -> Any:
            if call.action != action or not about_victim(call):
                return None
            return answer_json(_set_path(_normal(fake, call), path, wrong), service=call.service)

        fake.hostile = hook
        jobs = [victim, bystander] if victim2 is None else [victim, victim2, bystander]
        try:
            result = await client.statuses(jobs)
        except TransientError:
            result = {}
        for loc in jobs:
            got = result.get(json.dumps(loc, sort_keys=True, separators=(",", ":")))
            assert got is None or got.state in (JobState.RUNNING, JobState.PENDING, JobState.UNKNOWN), (wrong, got)
        assert result.get(json.dumps(bystander, sort_keys=True, separators=(",", ":"))) is not None
        # the worker's single check too
        try:
            single = await client.status(victim)
        except TransientError:
            continue
        assert single.state in (JobState.RUNNING, JobState.PENDING, JobState.UNKNOWN), (wrong, single)


# --- the protocol: never a second submission ------------------------------------------------------------------


@contextlib.contextmanager
def fake_loop() -> Iterator[tuple[Callable[[Any], Any], FakeEmr, FakeEmr]]:
    """A worker's private loop with the fakes served from it (the protocol's ``run`` drives both)."""
    loop = asyncio.new_event_loop()
    fake, other = loop.run_until_complete(FakeEmr().start()), loop.run_until_complete(FakeEmr().start())
    try:
        yield loop.run_until_complete, fake, other
    finally:
        loop.run_until_complete(close_sessions())
        loop.run_until_complete(fake.stop())
        loop.run_until_complete(other.stop())
        loop.close()


SUBMIT_KINDS = [
    "redirect_other_host",
    "redirect_other_path",
    "truncated",
    "truncated_json",
    "empty",
    "html_200",
    "html_502",
    "html_404",
    "error_without_code",
    "huge",
    "nested",
    "hang",
    "wrong_ids",
]


def _submit_answer(kind: str, fake: FakeEmr, other: FakeEmr, call: Call, request: Any, answer: dict[str, Any]) -> Any:
    if kind == "wrong_ids":  # every field of the answer of the wrong type (e.g. "StepIds": 5)
        return answer_json({k: 5 for k in answer}, service=call.service)
    if kind in ("truncated", "truncated_json"):
        body = json.dumps(answer).encode()
        return answer_truncated(request, body[:10], 500) if kind == "truncated" else answer_raw(body[:10])
    return KINDS[kind](fake, other, call, request)


@pytest.mark.parametrize("applied", [False, True], ids=["not-applied", "applied"])
@pytest.mark.parametrize("kind", SUBMIT_KINDS)
def test_a_hostile_answer_to_the_submit_never_leads_to_a_second_job(flavour: Flavour, kind: str, applied: bool):
    store = DictStore()
    with fake_loop() as (run, fake, other):
        client = flavour.client(fake)
        spec, count = flavour.spec_and_count(fake)
        active = [True]

        async def hook(call: Call, request: Any) -> Any:
            if not active[0] or call.action != flavour.submit_action:
                return None
            active[0] = False
            answer = fake.answer(call) if applied else {"placeholder": "x"}  # applied: the job exists
            if not applied:
                answer = {"StepIds": ["s-NOTREAL00000"]} if call.service == "emr" else {"id": "x"}
            reply = _submit_answer(kind, fake, other, call, request, answer or {})
            return await reply if asyncio.iscoroutine(reply) else reply

        fake.hostile = hook
        if applied:  # the submit's answer proves nothing, but the job exists: the same try finds it by its token
            first = protocol(client, store, spec, run).start()
            assert isinstance(first, Defer) and store.data[STATE_KEY]["phase"] == "submitted"
            assert store.data[STATE_KEY]["job"] == first.record.job
        else:  # nothing to find: try again later
            with pytest.raises(RetryLater):
                protocol(client, store, spec, run).start()
            assert store.data[STATE_KEY]["phase"] == "submitting" and store.data[STATE_KEY]["job"] is None
        assert count() == (1 if applied else 0)
        decision = protocol(client, store, spec, run, try_number=2).start()
        assert isinstance(decision, Defer)
        assert count() == 1  # what the first try created is kept, not redone
        assert fake.count(flavour.submit_action) == (1 if applied else 2)
        assert other.calls == []  # never re-POSTed to the redirect's target


@pytest.mark.parametrize("kind", ["wrong_types", "truncated", "html_502", "empty", "redirect_other_host", "hang"])
def test_a_hostile_listing_on_find_never_submits_blindly(flavour: Flavour, kind: str):
    store = DictStore()
    with fake_loop() as (run, fake, other):
        client = flavour.client(fake)
        spec, count = flavour.spec_and_count(fake)
        failpoints.configure(f"{failpoints.AFTER_SUBMIT}=raise")  # the worker dies before it records the job
        with pytest.raises(failpoints.SimulatedCrash):
            protocol(client, store, spec, run).start()
        failpoints.configure("")
        assert count() == 1 and store.data[STATE_KEY]["job"] is None

        async def hostile_listing(call: Call, request: Any) -> Any:
            if call.action not in flavour.list_actions and call.action != "ListSteps":
                return None
            if kind == "wrong_types":  # every listed item unreadable: it could be ours
                return answer_json(_replace(_normal(fake, call), ("Name", "name", "Id", "id"), 7), service=call.service)
            reply = KINDS[kind](fake, other, call, request)
            return await reply if asyncio.iscoroutine(reply) else reply

        fake.hostile = hostile_listing
        with pytest.raises(RetryLater):
            protocol(client, store, spec, run, try_number=2).start()
        fake.hostile = None
        decision = protocol(client, store, spec, run, try_number=3).start()
        assert isinstance(decision, Defer) and decision.adopted
        assert count() == 1 and fake.count(flavour.submit_action) == 1


@pytest.mark.parametrize("kind", ["wrong_types", "unknown_state", "truncated", "html_502", "huge", "hang", "empty"])
def test_a_hostile_answer_on_the_check_defers_and_never_resubmits(flavour: Flavour, kind: str):
    store = DictStore()
    with fake_loop() as (run, fake, other):
        client = flavour.client(fake)
        spec, count = flavour.spec_and_count(fake)
        first = protocol(client, store, spec, run).start()
        assert isinstance(first, Defer)

        async def hook(call: Call, request: Any) -> Any:
            if call.action not in (*flavour.own_actions, *flavour.list_actions):
                return None
            reply = KINDS[kind](fake, other, call, request)
            return await reply if asyncio.iscoroutine(reply) else reply

        fake.hostile = hook
        again = protocol(client, store, spec, run, try_number=2).start()
        assert isinstance(again, Defer) and again.record.job == first.record.job  # unknown: wait, never resubmit
        assert again.status is not None and again.status.state is JobState.UNKNOWN
        assert count() == 1 and fake.count(flavour.submit_action) == 1


def test_not_found_for_a_live_job_on_the_check_reads_the_history_and_waits(flavour: Flavour):
    store = DictStore()
    with fake_loop() as (run, fake, _other):
        client = flavour.client(fake)
        spec, count = flavour.spec_and_count(fake)
        first = protocol(client, store, spec, run).start()
        assert isinstance(first, Defer)

        async def hook(call: Call, request: Any) -> Any:
            return _not_found(call) if call.action in flavour.own_actions else None

        fake.hostile = hook
        again = protocol(client, store, spec, run, try_number=2).start()
        assert isinstance(again, Defer) and again.status is not None and again.status.state.is_active
        flavour.finish(fake, first.record.job)
        done = protocol(client, store, spec, run, try_number=3).start()  # still denied; the history says it ended
        assert done.record.outcome is not None and done.record.outcome.value == "succeeded"
        assert count() == 1 and fake.count(flavour.submit_action) == 1


def test_both_sources_deny_a_live_job_then_it_is_lost_and_never_resubmitted(flavour: Flavour):
    """Not-found from the job's own request AND its absence from the history: lost. The default on_lost
    fails the task without submitting again (the job may well have succeeded)."""
    store = DictStore()
    with fake_loop() as (run, fake, _other):
        client = flavour.client(fake)
        spec, count = flavour.spec_and_count(fake)
        first = protocol(client, store, spec, run).start()
        assert isinstance(first, Defer)

        async def hook(call: Call, request: Any) -> Any:
            if call.action in flavour.own_actions:
                return _not_found(call)
            if call.action in flavour.list_actions:
                return _empty_listing(call)
            return None

        fake.hostile = hook
        with pytest.raises(JobLost, match="was not submitted again"):
            protocol(client, store, spec, run, try_number=2).start()
        with pytest.raises(JobLost):
            protocol(client, store, spec, run, try_number=3).start()  # a later try does not resubmit either
        assert count() == 1 and fake.count(flavour.submit_action) == 1


# --- 401 pages that echo our headers ----------------------------------------------------------------------


async def test_a_401_page_echoing_our_headers_leaks_no_credential(
    fakes: tuple[FakeEmr, FakeEmr], flavour: Flavour, caplog: pytest.LogCaptureFixture
):
    fake, _ = fakes
    client = flavour.make_client(fake).__class__(fake.config(aws_session_token=SESSION_TOKEN))
    victim, bystander, _about = flavour.two_jobs(fake)
    signatures: list[str] = []

    async def echo(call: Call, request: Any) -> Any:
        signatures.append(call.headers["Authorization"].split("Signature=")[1])
        echoed = "\n".join(f"{k}: {v}" for k, v in call.headers.items())
        if len(signatures) % 2:
            return answer_raw(f"<html><pre>401 Unauthorized\n{echoed}</pre></html>".encode(), status=401,
                              content_type="text/html")  # fmt: skip
        return answer_json({"__type": "UnrecognizedClientException", "message": json.dumps(call.headers)}, status=400)

    fake.hostile = echo
    refreshes: list[int] = []

    async def refresh() -> AwsJobClient[Any]:
        refreshes.append(1)
        return client

    caplog.set_level(logging.INFO)
    results = await asyncio.wait_for(
        asyncio.gather(
            wait_for_outcome(client, victim, SETTINGS, deadline=time.time() + 5, refresh=refresh),
            wait_for_outcome(client, bystander, SETTINGS, deadline=time.time() + 5, refresh=refresh),
        ),
        20,
    )
    assert [r.status for r in results] == ["error", "error"]  # credentials refused: about every job on it
    assert len(refreshes) == 1  # one refetch, for both waiters
    with pytest.raises(DurableJobError) as direct:
        await client.status(victim)
    texts = [json.dumps([r.message for r in results]), str(direct.value), caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    for text in texts:
        for secret in (SECRET, SESSION_TOKEN, KEY_ID, *signatures):
            assert secret not in text
    assert "refused" in results[0].message


# --- why the policy lives in our own HTTP session -----------------------------------------------------------


async def test_plain_aiobotocore_follows_a_307_to_another_host_and_ours_does_not(fakes: tuple[FakeEmr, FakeEmr]):
    """The reason for ``BoundedAIOHTTPSession``: aiobotocore sends through aiohttp with its default
    ``allow_redirects=True``, so a 307 re-POSTs the signed request (session token included) to another host
    and botocore believes that host's answer. Through the library's session nothing is followed."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession

    fake, other = fakes
    cluster = other.add_cluster("the other host's")
    step = other.add_step(cluster, state="COMPLETED")

    async def redirect(call: Call, request: Any) -> Any:
        return answer_raw(b"", status=307, Location=f"{other.endpoint}/")

    fake.hostile = redirect
    plain = AioSession().create_client(
        "emr",
        region_name="us-east-1",
        endpoint_url=fake.endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        aws_session_token=SESSION_TOKEN,
        config=AioConfig(retries={"total_max_attempts": 1}),
    )
    async with plain as boto:
        answer = await boto.describe_step(ClusterId=cluster, StepId=step)
    assert answer["Step"]["Status"]["State"] == "COMPLETED"  # the other host's word, taken as AWS's
    assert len(other.calls) == 1 and other.calls[0].headers.get("X-Amz-Security-Token") == SESSION_TOKEN

    ours = EmrStepClient(fake.config(aws_session_token=SESSION_TOKEN))
    with pytest.raises(TransientError, match="307") as refused:
        await ours.status({"cluster_id": cluster, "step_id": step})
    assert refused.value.connect_failed  # the server did not act; nothing it said is believed
    assert len(other.calls) == 1  # not re-sent
