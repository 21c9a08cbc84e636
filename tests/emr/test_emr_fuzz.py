"""Property-based fuzzing of every EMR response decoder, through the real aiobotocore client.

No network: a ``before-send`` hook hands aiobotocore the fuzzed HTTP answer, so botocore's own parse (with
the library's guard around it), its error handling, the library's classification, the typed decoding and
the status mapping all run as in production. Properties:

* nothing escapes but the library's own error classes (:class:`DurableJobError` subclasses);
* a malformed answer never becomes LOST, FAILED or CANCELLED (nor SUCCEEDED): it is UNKNOWN, or the call
  raises a transient error; a submit with a malformed answer never yields a job id;
* a well-formed answer gives exactly the state its raw state maps to (unknown raw states are UNKNOWN).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiobotocore.awsrequest import AioAWSResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_jobs.clients.base import locator_key
from durable_jobs.clients.emr import (
    CLUSTER_STATES,
    STEP_STATES,
    EmrCluster,
    EmrClusterClient,
    EmrStep,
    EmrStepClient,
)
from durable_jobs.clients.emr.aws import AwsJobClient
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.eks import EmrEksClient, EmrEksJob
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob
from durable_jobs.errors import DurableJobError, TransientError
from durable_jobs.record import make_token
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.http import close_sessions

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
TOKEN = make_token("dag", "run", "task", -1, 0)
CLUSTER, STEP = "j-FUZZCLUSTER01", "s-FUZZSTEP00001"
APP, VC, RUN = "00fuzzapp", "fuzzvc", "00fuzzrun"
NOT_BAD = (JobState.UNKNOWN,)
ROLE = "arn:aws:iam::123456789012:role/fuzz"


# --- the harness: aiobotocore without a network ----------------------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self) -> bytes:
        return self.body


class Wire:
    """What the next requests are answered with (status, headers, body)."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.headers: dict[str, str] = {}
        self.sent = 0

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, dict(headers or {})

    def __call__(self, request: Any, **kwargs: Any) -> AioAWSResponse:
        self.sent += 1
        return AioAWSResponse(request.url, self.status, self.headers, _Raw(self.body))


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.run_until_complete(close_sessions())
    lp.close()


@pytest.fixture(scope="module")
def wire() -> Wire:
    return Wire()


CONFIG = AwsConfig(
    region_name="us-east-1",
    endpoint_url="http://127.0.0.1:9",
    aws_access_key_id="AKIAFUZZ000000000001",
    aws_secret_access_key="fuzz-secret",
    retry_budget=0.0,
    backoff_base=0.001,
    backoff_cap=0.002,
    label="aws_fuzz",
)


@pytest.fixture(scope="module")
def clients(loop: asyncio.AbstractEventLoop, wire: Wire) -> dict[str, AwsJobClient[Any]]:
    out: dict[str, AwsJobClient[Any]] = {
        "step": EmrStepClient(CONFIG),
        "cluster": EmrClusterClient(CONFIG),
        "serverless": EmrServerlessClient(CONFIG),
        "eks": EmrEksClient(CONFIG),
    }
    for client in out.values():
        boto = loop.run_until_complete(client.client())
        boto.meta.events.register_first("before-send", wire)
    return out


def run(loop: asyncio.AbstractEventLoop, aw: Any) -> Any:
    return loop.run_until_complete(asyncio.wait_for(aw, 10))


def outcome(loop: asyncio.AbstractEventLoop, call: Callable[[], Any]) -> Any:
    """The call's answer, or the library error it raised; anything else fails the test."""
    try:
        return run(loop, call())
    except DurableJobError as exc:
        return exc
    except Exception as exc:  # pragma: no cover - the property under test
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


# --- strategies ------------------------------------------------------------------------------------------

KEYS = [
    "Step", "Steps", "Id", "Name", "Status", "State", "StateChangeReason", "Message", "FailureDetails", "Reason",
    "LogFile", "Timeline", "CreationDateTime", "LogUri", "Marker", "Cluster", "Clusters", "Code", "ErrorDetails",
    "ErrorMessage", "MasterPublicDnsName", "StepIds", "JobFlowId", "CancelStepsInfoList", "StepId", "jobRun",
    "jobRuns", "id", "jobRunId", "applicationId", "virtualClusterId", "state", "stateDetails", "failureReason",
    "createdAt", "attempt", "name", "clientToken", "tags", "configurationOverrides", "nextToken", "__type",
    "message",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    # real ids and states (never a failing one: a random answer could then be well-formed and say "failed")
    st.sampled_from([STEP, CLUSTER, RUN, APP, VC, "RUNNING", "COMPLETED", "SUCCESS", "PENDING", "EXPLODED", TOKEN]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5)
    ),
    max_leaves=25,
)
WRONG_FOR_STR = st.sampled_from([5, True, 1.5, [], ["x"], {}, {"a": 1}])
WRONG_FOR_TIME = st.sampled_from([True, [], {}, {"a": 1}, "not a date", 1e300])
WRONG_FOR_INT = st.sampled_from(["2", True, 1.5, [], {}])
WRONG_FOR_OBJECT = st.sampled_from([5, True, "x", [], [1]])
# botocore reads any iterable where the model has a list: an empty object or string becomes an empty list
# (which is then what is read, and well-formed); anything else of the wrong type fails its parse
WRONG_FOR_LIST = st.sampled_from([5, True, 1.5, {"a": 1}, "ab"])


@st.composite
def field(draw: st.DrawFn, valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any], bad: list[bool]) -> Any:
    """A valid value, or (sometimes) a wrong-typed one; ``bad`` records that the answer became malformed."""
    if draw(st.integers(0, 5)) == 0:
        bad.append(True)
        return draw(wrong)
    return draw(valid)


def text(*extra: str) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=10), st.sampled_from(extra)) if extra else st.text(max_size=10)


NOW = time.time()
TIMES = st.one_of(st.floats(min_value=NOW - 86400, max_value=NOW + 86400), st.just(NOW))


@st.composite
def step_item(draw: st.DrawFn, bad: list[bool], step_id: str = STEP) -> tuple[dict[str, Any], str]:
    state = draw(st.sampled_from([*STEP_STATES, "EXPLODED", ""]))
    status = {
        "State": draw(field(st.just(state), WRONG_FOR_STR, bad)),
        "StateChangeReason": draw(field(st.just({"Message": draw(text())}), WRONG_FOR_OBJECT, bad)),
        "Timeline": {"CreationDateTime": draw(field(TIMES, WRONG_FOR_TIME, bad))},
    }
    if draw(st.booleans()):
        status["FailureDetails"] = draw(
            field(
                st.fixed_dictionaries({"Reason": text(), "Message": text(), "LogFile": text("s3://b/l")}),
                WRONG_FOR_OBJECT,
                bad,
            )
        )
    item = {
        "Id": draw(field(st.just(step_id), WRONG_FOR_STR, bad)),
        "Name": draw(field(text(f"etl [{TOKEN}]"), WRONG_FOR_STR, bad)),
        "Status": draw(field(st.just(status), WRONG_FOR_OBJECT, bad)),
    }
    return item, state


@st.composite
def cluster_item(draw: st.DrawFn, bad: list[bool]) -> tuple[dict[str, Any], str]:
    state = draw(st.sampled_from([*CLUSTER_STATES, "EXPLODED"]))
    status = {
        "State": draw(field(st.just(state), WRONG_FOR_STR, bad)),
        "StateChangeReason": {
            "Code": draw(field(text("BOOTSTRAP_FAILURE"), WRONG_FOR_STR, bad)),
            "Message": draw(field(text(), WRONG_FOR_STR, bad)),
        },
        "ErrorDetails": draw(field(st.just([{"ErrorMessage": draw(text())}]), WRONG_FOR_LIST, bad)),
        "Timeline": {"CreationDateTime": draw(field(TIMES, WRONG_FOR_TIME, bad))},
    }
    item = {
        "Id": draw(field(st.just(CLUSTER), WRONG_FOR_STR, bad)),
        "Name": draw(field(text(), WRONG_FOR_STR, bad)),
        "Status": draw(field(st.just(status), WRONG_FOR_OBJECT, bad)),
        "LogUri": draw(field(text("s3://b/logs/"), WRONG_FOR_STR, bad)),
        "MasterPublicDnsName": draw(field(text(), WRONG_FOR_STR, bad)),
    }
    return item, state


@st.composite
def run_item(draw: st.DrawFn, bad: list[bool], flavour: str, summary: bool) -> tuple[dict[str, Any], str]:
    client = SERVERLESS if flavour == "serverless" else EKS
    state = draw(st.sampled_from([*client.states, "EXPLODED"]))
    run: dict[str, Any] = {
        "state": draw(field(st.just(state), WRONG_FOR_STR, bad)),
        "stateDetails": draw(field(text(), WRONG_FOR_STR, bad)),
        "createdAt": draw(field(TIMES, WRONG_FOR_TIME, bad)),
        "name": draw(field(text(f"etl [{TOKEN}]", f"etl-{TOKEN}"), WRONG_FOR_STR, bad)),
    }
    if flavour == "serverless":  # EMR on EKS runs have no attempt in their model: botocore drops it
        run["attempt"] = draw(field(st.integers(1, 5), WRONG_FOR_INT, bad))
        run["jobRunId" if not summary else "id"] = draw(field(st.just(RUN), WRONG_FOR_STR, bad))
        run["applicationId"] = draw(field(st.just(APP), WRONG_FOR_STR, bad))
    else:
        run["id"] = draw(field(st.just(RUN), WRONG_FOR_STR, bad))
        run["virtualClusterId"] = draw(field(st.just(VC), WRONG_FOR_STR, bad))
        run["failureReason"] = draw(field(text("USER_ERROR"), WRONG_FOR_STR, bad))
        run["clientToken"] = draw(field(text(TOKEN), WRONG_FOR_STR, bad))
    if not summary or flavour == "eks":
        run["tags"] = draw(field(st.just({"k": "v"}), st.sampled_from([5, "x", [], {"k": 5}]), bad))
    return run, state


SERVERLESS = EmrServerlessClient(CONFIG)
EKS = EmrEksClient(CONFIG)


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def expect_unknown_or_transient(result: Any) -> None:
    if isinstance(result, JobStatus):
        assert result.state in NOT_BAD, result
    else:
        assert isinstance(result, TransientError), result


def expect_well_formed(result: Any, mapping: dict[str, JobState], raw: str) -> None:
    assert isinstance(result, JobStatus), result
    if raw == "TERMINATED":
        assert result.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    else:
        assert result.state is mapping.get(raw, JobState.UNKNOWN), (result, raw)


STEP_LOC = {"cluster_id": CLUSTER, "step_id": STEP}
STEP_LOC2 = {"cluster_id": CLUSTER, "step_id": "s-FUZZSTEP00002"}
CLUSTER_LOC = {"cluster_id": CLUSTER}
RUN_LOCS = {
    "serverless": [{"application_id": APP, "job_run_id": RUN}, {"application_id": APP, "job_run_id": "00fuzzrun2"}],
    "eks": [{"virtual_cluster_id": VC, "job_run_id": RUN}, {"virtual_cluster_id": VC, "job_run_id": "00fuzzrun2"}],
}


# --- random values in every field read --------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_describe_step_fields(loop: Any, wire: Wire, clients: Any, data: st.DataObject) -> None:
    bad: list[bool] = []
    item, raw = data.draw(step_item(bad))
    answer = {"Step": item}
    if data.draw(st.booleans()):
        answer["Step"]["LogUri"] = data.draw(field(text("s3://b/"), WRONG_FOR_STR, bad))
    wire.answer(200, body(answer))
    result = outcome(loop, lambda: clients["step"].status(STEP_LOC))
    if bad:
        expect_unknown_or_transient(result)
    else:
        expect_well_formed(result, STEP_STATES, raw)


@FUZZ
@given(data=st.data())
def test_list_steps_fields(loop: Any, wire: Wire, clients: Any, data: st.DataObject) -> None:
    bad: list[bool] = []
    item, raw = data.draw(step_item(bad))
    page: dict[str, Any] = {"Steps": data.draw(field(st.just([item]), WRONG_FOR_LIST, bad))}
    if data.draw(st.booleans()):
        page["Marker"] = data.draw(field(st.just(""), WRONG_FOR_STR, bad))
    wire.answer(200, body(page))
    result = outcome(loop, lambda: clients["step"].statuses([STEP_LOC, STEP_LOC2]))
    mine = result.get(locator_key(STEP_LOC)) if isinstance(result, dict) else result
    if bad:
        if mine is not None:
            expect_unknown_or_transient(mine)
    else:
        expect_well_formed(mine, STEP_STATES, raw)
    other = result.get(locator_key(STEP_LOC2)) if isinstance(result, dict) else None
    # the second step is never listed: lost only when DescribeStep denies it too, which this wire never says
    assert other is None or other.state is JobState.UNKNOWN, other


@FUZZ
@given(data=st.data())
def test_describe_cluster_fields(loop: Any, wire: Wire, clients: Any, data: st.DataObject) -> None:
    bad: list[bool] = []
    item, raw = data.draw(cluster_item(bad))
    wire.answer(200, body({"Cluster": item}))
    result = outcome(loop, lambda: clients["cluster"].status(CLUSTER_LOC))
    if bad:
        expect_unknown_or_transient(result)
    else:
        expect_well_formed(result, CLUSTER_STATES, raw)


@FUZZ
@given(data=st.data(), flavour=st.sampled_from(["serverless", "eks"]))
def test_get_job_run_fields(loop: Any, wire: Wire, clients: Any, data: st.DataObject, flavour: str) -> None:
    bad: list[bool] = []
    run_, raw = data.draw(run_item(bad, flavour, summary=False))
    wire.answer(200, body({"jobRun": run_}))
    client = clients[flavour]
    result = outcome(loop, lambda: client.status(RUN_LOCS[flavour][0]))
    if bad:
        expect_unknown_or_transient(result)
    else:
        expect_well_formed(result, dict(client.states), raw)


@FUZZ
@given(data=st.data(), flavour=st.sampled_from(["serverless", "eks"]))
def test_list_job_runs_fields(loop: Any, wire: Wire, clients: Any, data: st.DataObject, flavour: str) -> None:
    bad: list[bool] = []
    run_, raw = data.draw(run_item(bad, flavour, summary=True))
    page: dict[str, Any] = {"jobRuns": data.draw(field(st.just([run_]), WRONG_FOR_LIST, bad))}
    wire.answer(200, body(page))
    client = clients[flavour]
    result = outcome(loop, lambda: client.statuses(RUN_LOCS[flavour]))
    if not isinstance(result, dict):
        assert isinstance(result, TransientError), result
        return
    for loc in RUN_LOCS[flavour]:
        got = result.get(locator_key(loc))
        if got is None:
            continue
        if loc is RUN_LOCS[flavour][0] and not bad and got.state is not JobState.UNKNOWN:
            expect_well_formed(got, dict(client.states), raw)
        else:
            # a malformed listing, or a run the listing leaves out (then asked on its own: the wire answers a
            # page, not a run): unknown, never lost or failed
            assert got.state in (*NOT_BAD, *(() if bad else (client.states.get(raw, JobState.UNKNOWN),))), got


# --- random JSON for every answer -------------------------------------------------------------------------


def _calls(clients: dict[str, AwsJobClient[Any]]) -> dict[str, Callable[[], Any]]:
    step_spec = EmrStep(cluster_id=CLUSTER, name="etl")
    cluster_spec = EmrCluster(name="etl", job_flow={"Instances": {"InstanceCount": 1}})
    sl_spec = EmrServerlessJob(
        application_id=APP, execution_role_arn=ROLE, job_driver={"sparkSubmit": {"entryPoint": "s3://b/x"}}, name="e"
    )
    eks_spec = EmrEksJob(
        virtual_cluster_id=VC,
        name="e",
        execution_role_arn=ROLE,
        release_label="emr-7.1.0-latest",
        job_driver={"sparkSubmitJobDriver": {"entryPoint": "s3://b/x"}},
    )
    since = time.time()
    return {
        "DescribeStep": lambda: clients["step"].status(STEP_LOC),
        "ListSteps": lambda: clients["step"].statuses([STEP_LOC, STEP_LOC2]),
        "ListSteps-find": lambda: clients["step"].find(TOKEN, since=since, spec=step_spec),
        "AddJobFlowSteps": lambda: clients["step"].submit(step_spec, TOKEN),
        "CancelSteps": lambda: clients["step"].cancel(STEP_LOC),
        "DescribeCluster": lambda: clients["cluster"].status(CLUSTER_LOC),
        "ListClusters-find": lambda: clients["cluster"].find(TOKEN, since=since, spec=cluster_spec),
        "RunJobFlow": lambda: clients["cluster"].submit(cluster_spec, TOKEN),
        "GetJobRun": lambda: clients["serverless"].status(RUN_LOCS["serverless"][0]),
        "ListJobRuns-serverless": lambda: clients["serverless"].statuses(RUN_LOCS["serverless"]),
        "ListJobRuns-serverless-find": lambda: clients["serverless"].find(TOKEN, since=since, spec=sl_spec),
        "StartJobRun-serverless": lambda: clients["serverless"].submit(sl_spec, TOKEN),
        "DescribeJobRun": lambda: clients["eks"].status(RUN_LOCS["eks"][0]),
        "ListJobRuns-eks": lambda: clients["eks"].statuses(RUN_LOCS["eks"]),
        "ListJobRuns-eks-find": lambda: clients["eks"].find(TOKEN, since=since, spec=eks_spec),
        "StartJobRun-eks": lambda: clients["eks"].submit(eks_spec, TOKEN),
        "links-step": lambda: clients["step"].links(STEP_LOC),
        "links-run": lambda: clients["eks"].links(RUN_LOCS["eks"][0]),
    }


ANSWERS = sorted(_calls({k: EmrStepClient(CONFIG) for k in ("step", "cluster", "serverless", "eks")}))


def _check(name: str, result: Any, *, allow_lost: bool = False) -> None:
    """What no random answer may produce, whatever the call."""
    if isinstance(result, DurableJobError):
        return  # a library error: transient, or a refusal the answer claimed
    statuses = list(result.values()) if isinstance(result, dict) and name.startswith("List") else [result]
    forbidden = (
        (JobState.FAILED, JobState.CANCELLED) if allow_lost else (JobState.LOST, JobState.FAILED, JobState.CANCELLED)
    )
    for st_ in statuses:
        if isinstance(st_, JobStatus):
            assert st_.state not in forbidden, (name, st_)


@pytest.mark.parametrize("name", ANSWERS)
@FUZZ
@given(value=JSON)
def test_random_json_answers(loop: Any, wire: Wire, clients: Any, name: str, value: Any) -> None:
    wire.answer(200, body(value))
    call = _calls(clients)[name]
    result = outcome(loop, call)
    _check(name, result)
    if name.startswith(("AddJobFlowSteps", "RunJobFlow", "StartJobRun")) and isinstance(result, dict):
        # a job id is accepted only from a well-formed answer about the container we asked
        assert (
            result.get("cluster_id") == CLUSTER
            or result.get("application_id") == APP
            or result.get("virtual_cluster_id") == VC
        ), result


@pytest.mark.parametrize("name", ["DescribeStep", "ListSteps", "DescribeCluster", "GetJobRun", "DescribeJobRun"])
@FUZZ
@given(
    status=st.sampled_from([300, 301, 307, 400, 401, 403, 404, 409, 429, 500, 502, 503]),
    value=st.one_of(JSON, st.binary(max_size=64).map(lambda b: b.decode("latin-1"))),
    code=st.one_of(
        st.none(),
        st.sampled_from(["ThrottlingException", "InvalidRequestException", "ResourceNotFoundException", "Bogus#X:y"]),
        SCALARS,
    ),
    typed=st.booleans(),
)
def test_random_error_answers(
    loop: Any, wire: Wire, clients: Any, name: str, status: int, value: Any, code: Any, typed: bool
) -> None:
    if typed:
        payload: Any = {"__type": code, "message": value} if isinstance(value, str) else value
        raw_body = body(payload)
    else:
        raw_body = str(value).encode()
    headers = {"x-amzn-ErrorType": str(code)} if code is not None and not typed else {}
    wire.answer(status, raw_body, headers)
    result = outcome(loop, _calls(clients)[name])
    _check(name, result, allow_lost=True)
    if isinstance(result, JobStatus) and result.state is JobState.LOST:
        # lost needs AWS's not-found answer naming the job, from both sources (this wire answers both alike)
        assert (
            STEP in raw_body.decode("latin-1")
            or CLUSTER in raw_body.decode("latin-1")
            or RUN in raw_body.decode("latin-1")
        ), raw_body
