"""The submit-once protocol and the operators over every EMR flavour, against moto.

A crash at each protocol point (a raised fail-point), then a retry: exactly one step, cluster or run
exists, and the retry ends with it. The operators run on a simulated worker with Airflow's real task
state store accessor; their triggers run until their event.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from durable_jobs import failpoints
from durable_jobs.clients.base import JobClient
from durable_jobs.clients.emr import EmrCluster, EmrClusterClient, EmrStep, EmrStepClient
from durable_jobs.clients.emr.eks import EmrEksClient, EmrEksJob
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.protocol import Defer, Finished
from durable_jobs.record import STATE_KEY, Outcome, TaskIdentity
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs_harness.moto_emr import EKS_RELEASE, ROLE_ARN, DictStore, MotoEmr, protocol, worker_loop

JOB_FLOW = {
    "ReleaseLabel": "emr-7.1.0",
    "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge"},
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
    "LogUri": "s3://logs/emr/",
}
SERVERLESS_DRIVER = {"sparkSubmit": {"entryPoint": "s3://b/etl.py"}}
EKS_DRIVER = {"sparkSubmitJobDriver": {"entryPoint": "s3://b/etl.py"}}


@dataclass
class Setup:
    """One flavour, ready in moto: its client, a spec, and how to count and finish its jobs."""

    client: JobClient[Any]
    spec: Any
    count: Callable[[], int]
    finish: Callable[[dict[str, str]], None]
    service: str
    submit_action: str
    operator: Callable[..., Any]


def step_setup(moto: MotoEmr) -> Setup:
    from durable_jobs.operators.emr import EmrStepOperator

    cid = moto.create_cluster()
    moto.cluster(cid).add_steps([{"name": "earlier", "hadoop_jar_step": {"Jar": "x.jar"}}])  # ours stays PENDING
    return Setup(
        client=EmrStepClient(moto.config()),
        spec=EmrStep(cluster_id=cid, name="spark-pi", args=["spark-submit", "s3://b/pi.py"]),
        count=lambda: sum(1 for s in moto.steps(cid) if s.name != "earlier"),
        finish=lambda loc: moto.set_step(cid, loc["step_id"], "COMPLETED"),
        service="emr",
        submit_action="AddJobFlowSteps",
        operator=lambda **kw: EmrStepOperator(cluster_id=cid, args=["spark-submit", "s3://b/pi.py"], **kw),
    )


def cluster_setup(moto: MotoEmr) -> Setup:
    from durable_jobs.operators.emr import EmrCreateClusterOperator

    def finish(loc: dict[str, str]) -> None:
        moto.set_cluster(loc["cluster_id"], "WAITING")

    def count() -> int:
        return sum(1 for c in moto.emr.clusters.values() if "[dj" in c.name)

    return Setup(
        client=EmrClusterClient(moto.config()),
        spec=EmrCluster(name="etl-cluster", job_flow=JOB_FLOW),
        count=count,
        finish=finish,
        service="emr",
        submit_action="RunJobFlow",
        operator=lambda **kw: EmrCreateClusterOperator(job_flow_overrides=JOB_FLOW, **kw),
    )


def serverless_setup(moto: MotoEmr) -> Setup:
    from durable_jobs.operators.emr import EmrServerlessJobOperator

    app = moto.create_application()
    return Setup(
        client=EmrServerlessClient(moto.config()),
        spec=EmrServerlessJob(application_id=app, execution_role_arn=ROLE_ARN, job_driver=SERVERLESS_DRIVER, name="e"),
        count=lambda: len(moto.serverless_runs(app)),
        finish=lambda loc: moto.set_serverless_run(app, loc["job_run_id"], "SUCCESS"),
        service="emr-serverless",
        submit_action="StartJobRun",
        operator=lambda **kw: EmrServerlessJobOperator(
            application_id=app, execution_role_arn=ROLE_ARN, job_driver=SERVERLESS_DRIVER, **kw
        ),
    )


def eks_setup(moto: MotoEmr) -> Setup:
    from durable_jobs.operators.emr import EmrEksJobOperator

    vc = moto.create_virtual_cluster()
    spec = EmrEksJob(
        virtual_cluster_id=vc, name="etl", execution_role_arn=ROLE_ARN, release_label=EKS_RELEASE, job_driver=EKS_DRIVER
    )
    return Setup(
        client=EmrEksClient(moto.config()),
        spec=spec,
        count=lambda: len(moto.eks_runs(vc)),
        finish=lambda loc: moto.set_eks_run(loc["job_run_id"], "COMPLETED"),
        service="emr-containers",
        submit_action="StartJobRun",
        operator=lambda **kw: EmrEksJobOperator(
            virtual_cluster_id=vc,
            execution_role_arn=ROLE_ARN,
            release_label=EKS_RELEASE,
            job_driver=EKS_DRIVER,
            **kw,
        ),
    )


SETUPS = {"step": step_setup, "cluster": cluster_setup, "serverless": serverless_setup, "eks": eks_setup}


@pytest.fixture(params=list(SETUPS))
def setup(request: pytest.FixtureRequest, moto: MotoEmr) -> Setup:
    return SETUPS[request.param](moto)


@pytest.fixture(autouse=True)
def _no_failpoints() -> Iterator[None]:
    failpoints.configure("")
    yield
    failpoints.configure("")


# --- the protocol: a crash at each point gives exactly one job -------------------------------------------


@pytest.mark.parametrize(
    "point",
    [failpoints.AFTER_INTENT, failpoints.AFTER_SUBMIT, failpoints.AFTER_PERSIST, failpoints.BEFORE_OUTCOME],
)
def test_crash_at_each_point_then_retry_gives_exactly_one_job(moto: MotoEmr, setup: Setup, point: str):
    store = DictStore()
    with worker_loop() as run:
        failpoints.configure(f"{point}=raise")
        with pytest.raises(failpoints.SimulatedCrash):
            first = protocol(setup.client, store, setup.spec, run).start()
            assert isinstance(first, Defer) and point == failpoints.BEFORE_OUTCOME
            setup.finish(first.record.job)  # the job succeeds; recording the outcome crashes
            protocol(setup.client, store, setup.spec, run).complete({"status": "succeeded", "job": first.record.job})
        failpoints.configure("")
        assert setup.count() == (0 if point == failpoints.AFTER_INTENT else 1)

        retry = protocol(setup.client, store, setup.spec, run, try_number=2)
        decision = retry.start()
        if point == failpoints.AFTER_SUBMIT:
            assert isinstance(decision, (Defer, Finished)) and store.data[STATE_KEY]["job"] is not None
        if isinstance(decision, Defer):
            assert decision.adopted is (point == failpoints.AFTER_SUBMIT)
            setup.finish(decision.record.job)
            decision = retry.complete({"status": "succeeded", "job": decision.record.job})
        assert isinstance(decision, Finished) and decision.record.outcome is Outcome.SUCCEEDED
        assert decision.record.generation == 0
    assert setup.count() == 1


def test_confirmed_failure_starts_the_next_generation_with_a_new_token(moto: MotoEmr, setup: Setup):
    store = DictStore()
    with worker_loop() as run:
        first = protocol(setup.client, store, setup.spec, run).start()
        assert isinstance(first, Defer)
        with pytest.raises(Exception, match="ended FAILED"):
            protocol(setup.client, store, setup.spec, run).complete(
                {"status": "failed", "job": first.record.job, "message": "boom"}
            )
        second = protocol(setup.client, store, setup.spec, run, try_number=2).start()
    assert isinstance(second, (Defer, Finished)) and second.record.generation == 1
    assert second.record.token != first.record.token and second.record.job != first.record.job
    assert setup.count() == 2
    assert TaskIdentity("emr_dag", "run1", "task").token(1) == second.record.token


# --- the operators on a simulated worker ----------------------------------------------------------------


class FakeTI:
    def __init__(self, try_number: int = 1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "dag", "run1", "emr", -1
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture
def store() -> Iterator[InMemoryStateStore]:
    s = InMemoryStateStore()
    with s.installed():
        yield s


@pytest.fixture
def aws_conn(moto: MotoEmr, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", moto.connection())
    DurableJobHook.clear_cache()
    yield "aws_moto"
    DurableJobHook.clear_cache()


def ctx(store: InMemoryStateStore, try_number: int = 1) -> dict[str, Any]:
    return {
        "task_state_store": store.accessor("dag", "run1", "emr"),
        "ti": FakeTI(try_number),
        "dag_run": SimpleNamespace(clear_number=0),
    }


def record(store: InMemoryStateStore) -> dict[str, Any]:
    return store.rows[("dag", "run1", "emr", -1)][STATE_KEY]  # type: ignore[no-any-return]


def run_trigger(trigger: DurableJobTrigger) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        try:
            return (await asyncio.wait_for(trigger.run().__anext__(), 60)).payload  # type: ignore[no-any-return]
        finally:
            await close_sessions()

    return asyncio.run(first_event())


def test_operator_defers_with_no_secret_then_completes_and_a_retry_returns_it(
    moto: MotoEmr, setup: Setup, store: InMemoryStateStore, aws_conn: str
):
    c = ctx(store)
    with pytest.raises(TaskDeferred) as deferred:
        setup.operator(task_id="emr", conn_id=aws_conn, poll_interval=0.02).execute(c)
    trigger = deferred.value.trigger
    rec = record(store)
    assert rec["phase"] == "submitted" and rec["job"] == trigger.job and setup.count() == 1
    kwargs = json.dumps(trigger.serialize()[1])
    assert "testing" not in kwargs and moto.endpoint not in kwargs and trigger.conn_id == aws_conn
    assert all(c["ti"].xcom[k] == v for k, v in rec["job"].items())  # the locator is on XCom before deferring
    setup.finish(trigger.job)
    event = run_trigger(trigger)
    assert event["status"] == "succeeded"
    result = setup.operator(task_id="emr", conn_id=aws_conn).execute_complete(ctx(store), event=event)
    assert result["outcome"] == "succeeded" and result["job"] == rec["job"]
    again = setup.operator(task_id="emr", conn_id=aws_conn).execute(ctx(store, try_number=2))
    assert again == result and setup.count() == 1
    assert moto.count(setup.service, setup.submit_action) == 1


def test_throttled_submit_backs_off_and_does_not_fail_the_task(
    moto: MotoEmr, setup: Setup, store: InMemoryStateStore, aws_conn: str
):
    moto.fail(setup.service, setup.submit_action, code="ThrottlingException", times=3)
    with pytest.raises(TaskDeferred):
        setup.operator(task_id="emr", conn_id=aws_conn).execute(ctx(store))
    assert setup.count() == 1 and moto.count(setup.service, setup.submit_action) == 4


def test_access_denied_fails_the_try_fast_and_a_later_try_submits_once(
    moto: MotoEmr, setup: Setup, store: InMemoryStateStore, aws_conn: str
):
    moto.fail(setup.service, setup.submit_action, code="AccessDeniedException", message="explicit deny in SCP")
    started = time.monotonic()
    with pytest.raises(AirflowException, match="explicit deny in SCP") as failed:
        setup.operator(task_id="emr", conn_id=aws_conn).execute(ctx(store))
    assert time.monotonic() - started < 5 and "aws_moto" in str(failed.value)
    assert record(store)["phase"] == "submitting" and setup.count() == 0
    with pytest.raises(TaskDeferred):
        setup.operator(task_id="emr", conn_id=aws_conn).execute(ctx(store, try_number=2))
    assert setup.count() == 1


def test_step_operator_timeout_cancels_the_step(moto: MotoEmr, store: InMemoryStateStore, aws_conn: str):
    setup = step_setup(moto)
    with pytest.raises(TaskDeferred) as deferred:
        setup.operator(task_id="emr", conn_id=aws_conn).execute(ctx(store))
    job = deferred.value.trigger.job
    with pytest.raises(AirflowException, match="deadline passed; job cancelled"):
        setup.operator(task_id="emr", conn_id=aws_conn).execute_complete(
            ctx(store), event={"status": "timeout", "job": job, "message": "deadline passed"}
        )
    assert moto.step(job["cluster_id"], job["step_id"]).state == "CANCELLED"
    assert record(store)["outcome"] == "cancelled"


def test_step_operator_waits_on_the_worker_when_not_deferrable(moto: MotoEmr, store: InMemoryStateStore, aws_conn: str):
    setup = step_setup(moto)
    stop = threading.Event()

    def play_the_cluster() -> None:  # completes our step once it exists
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            ours = [s for s in moto.emr.clusters.values() for s in s.steps if "[dj" in s.name]
            if ours:
                moto.set_step(setup.spec.cluster_id, ours[0].id, "COMPLETED")
                return
            stop.wait(0.01)

    player = threading.Thread(target=play_the_cluster, daemon=True)
    player.start()
    try:
        result = setup.operator(task_id="emr", conn_id=aws_conn, deferrable=False, poll_interval=0.02).execute(
            ctx(store)
        )
    finally:
        stop.set()
        player.join(10)
    assert result["outcome"] == "succeeded" and setup.count() == 1


def test_create_cluster_result_carries_the_cluster_id(moto: MotoEmr, store: InMemoryStateStore, aws_conn: str):
    setup = cluster_setup(moto)
    c = ctx(store)
    with pytest.raises(TaskDeferred) as deferred:
        setup.operator(task_id="emr", conn_id=aws_conn, poll_interval=0.02).execute(c)
    cluster_id = deferred.value.trigger.job["cluster_id"]
    assert c["ti"].xcom["cluster_id"] == cluster_id
    assert c["ti"].xcom["emr_cluster_url"].endswith(f"#/clusterDetails/{cluster_id}")
    assert c["ti"].xcom["emr_logs_uri"] == f"s3://logs/emr/{cluster_id}/"
    event = run_trigger(deferred.value.trigger)
    resumed = ctx(store)
    result = setup.operator(task_id="emr", conn_id=aws_conn).execute_complete(resumed, event=event)
    assert result["cluster_id"] == cluster_id and result["outcome"] == "succeeded"
    assert resumed["ti"].xcom["cluster_id"] == cluster_id  # for create.output["cluster_id"]
    again = ctx(store, try_number=2)  # e.g. a clear: the recorded result, the key and the links again
    assert setup.operator(task_id="emr", conn_id=aws_conn).execute(again) == result
    assert again["ti"].xcom == c["ti"].xcom  # the same as before the deferral


# --- eviction: a finished job forgotten while no trigger watched it ------------------------------------------

OWN_REQUEST = {"AddJobFlowSteps": "DescribeStep", "RunJobFlow": "DescribeCluster"}


def own_request(setup: Setup) -> str:
    if setup.service == "emr-serverless":
        return "GetJobRun"
    if setup.service == "emr-containers":
        return "DescribeJobRun"
    return OWN_REQUEST[setup.submit_action]


def evict(moto: MotoEmr, setup: Setup, loc: dict[str, str]) -> None:
    """What AWS does to old jobs: the step, cluster or run is gone from every answer."""
    if "step_id" in loc:
        cluster = moto.cluster(loc["cluster_id"])
        cluster.steps = [s for s in cluster.steps if s.id != loc["step_id"]]
    elif setup.submit_action == "RunJobFlow":
        del moto.emr.clusters[loc["cluster_id"]]
    elif setup.service == "emr-serverless":
        runs = moto.serverless.job_runs[loc["application_id"]]
        runs[:] = [r for r in runs if r.id != loc["job_run_id"]]
    else:
        del moto.containers.job_runs[loc["job_run_id"]]


def not_found_message(setup: Setup, loc: dict[str, str]) -> tuple[str, int, str]:
    if "step_id" in loc:
        return "InvalidRequestException", 400, f"Step id '{loc['step_id']}' is not valid."
    if setup.submit_action == "RunJobFlow":
        return "InvalidRequestException", 400, f"Cluster id '{loc['cluster_id']}' is not valid."
    return "ResourceNotFoundException", 404, f"Job run {loc['job_run_id']} does not exist"


def test_a_finished_job_evicted_while_no_trigger_watched_it_is_never_resubmitted(moto: MotoEmr, setup: Setup):
    """The job ended, the triggerer was down, and AWS forgot the job: lost (both sources agree), and the
    default on_lost fails the task without a second job, in this try and in any later one."""
    from durable_jobs.protocol import JobLost

    store = DictStore()
    with worker_loop() as run:
        first = protocol(setup.client, store, setup.spec, run).start()
        assert isinstance(first, Defer)
        setup.finish(first.record.job)
        evict(moto, setup, first.record.job)
        with pytest.raises(JobLost, match="was not submitted again"):
            protocol(setup.client, store, setup.spec, run, try_number=2).start()
        assert store.data[STATE_KEY]["outcome"] == "lost"
        with pytest.raises(JobLost):
            protocol(setup.client, store, setup.spec, run, try_number=3).start()
    assert setup.count() == 0 and moto.count(setup.service, setup.submit_action) == 1


def test_a_finished_job_its_own_request_denies_but_the_history_lists_returns_success(moto: MotoEmr, setup: Setup):
    """The job's own request says not found, but the list of the cluster's steps (or the container's runs,
    or the account's clusters) still shows it ended well: that is its outcome, and nothing runs again."""
    store = DictStore()
    with worker_loop() as run:
        first = protocol(setup.client, store, setup.spec, run).start()
        assert isinstance(first, Defer)
        setup.finish(first.record.job)
        code, status, message = not_found_message(setup, first.record.job)
        moto.fail(setup.service, own_request(setup), code=code, status=status, message=message, times=100)
        decision = protocol(setup.client, store, setup.spec, run, try_number=2).start()
    assert isinstance(decision, Finished) and decision.record.outcome is Outcome.SUCCEEDED
    assert setup.count() == 1 and moto.count(setup.service, setup.submit_action) == 1
