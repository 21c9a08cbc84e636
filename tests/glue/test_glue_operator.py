"""The Glue operator: the provider's arguments, the spec it builds, what it refuses when the DAG is parsed (the
token argument, a job's definition, per-task AWS settings), templating, and the protocol around a fake client."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from durable_jobs.clients.glue import GlueJobRunSpec
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.glue import GlueHook
from durable_jobs.operators.glue import JOB_DEFINITION_ARGS, TOKEN_ARGUMENT, GlueJobRunOperator
from durable_jobs.status import JobState
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.triggers.glue import GlueTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from tests.glue.fake_client import FakeGlueClient, run_id, run_url


def glue(**kwargs: Any) -> GlueJobRunOperator:
    kwargs.setdefault("task_id", "glue")
    kwargs.setdefault("job_name", "nightly-etl")
    return GlueJobRunOperator(**kwargs)


# --- the spec ---------------------------------------------------------------------------------------------------


def test_the_job_and_its_arguments_make_the_spec() -> None:
    op = glue(script_args={"--day": "2026-12-03", "--limit": 10, "--dry": True, "--ratio": 0.5})
    assert op.build_spec(None) == GlueJobRunSpec(
        job_name="nightly-etl",
        arguments={"--day": "2026-12-03", "--limit": "10", "--dry": "true", "--ratio": "0.5"},
    )
    assert glue().build_spec(None) == GlueJobRunSpec(job_name="nightly-etl", arguments={})


def test_every_start_job_run_field_reaches_the_spec() -> None:
    run = {
        "WorkerType": "G.2X",
        "NumberOfWorkers": 5,
        "Timeout": 120,
        "SecurityConfiguration": "kms-at-rest",
        "JobRunQueuingEnabled": True,
        "NotificationProperty": {"NotifyDelayAfter": 15},
        "ExecutionClass": "FLEX",
    }
    assert glue(run_job_kwargs=run).build_spec(None) == GlueJobRunSpec(
        job_name="nightly-etl",
        worker_type="G.2X",
        number_of_workers=5,
        timeout=120,
        security_configuration="kms-at-rest",
        job_run_queuing_enabled=True,
        notification_property={"NotifyDelayAfter": 15},
        execution_class="FLEX",
    )
    assert glue(run_job_kwargs={"MaxCapacity": 2}).build_spec(None).max_capacity == 2.0
    assert glue(run_job_kwargs={"MaxCapacity": " 0.0625 "}).build_spec(None).max_capacity == 0.0625  # as rendered


def test_the_named_fields_are_the_same_fields() -> None:
    named = glue(
        worker_type="G.1X",
        number_of_workers=2,
        timeout=30,
        security_configuration="sc",
        job_run_queuing_enabled=False,
        notification_property={"NotifyDelayAfter": 5},
        execution_class="STANDARD",
    )
    by_kwargs = glue(
        run_job_kwargs={
            "WorkerType": "G.1X",
            "NumberOfWorkers": 2,
            "Timeout": 30,
            "SecurityConfiguration": "sc",
            "JobRunQueuingEnabled": False,
            "NotificationProperty": {"NotifyDelayAfter": 5},
            "ExecutionClass": "STANDARD",
        }
    )
    assert named.build_spec(None) == by_kwargs.build_spec(None)
    assert named.run_job_kwargs == by_kwargs.run_job_kwargs  # one templated field holds them
    assert glue(max_capacity=0.0625).build_spec(None).max_capacity == 0.0625
    both = glue(run_job_kwargs={"Timeout": 30, "WorkerType": "G.1X"}, timeout=30, number_of_workers=4)
    assert (both.build_spec(None).timeout, both.build_spec(None).number_of_workers) == (30, 4)


def test_the_callers_dicts_are_not_changed() -> None:
    run = {"Timeout": 30}
    args = {"--day": "d"}
    glue(run_job_kwargs=run, script_args=args, worker_type="G.1X")
    assert run == {"Timeout": 30} and args == {"--day": "d"}


# --- refused when constructed -------------------------------------------------------------------------------------


def test_the_token_argument_is_refused_and_the_reason_given() -> None:
    with pytest.raises(ValueError) as exc:
        glue(script_args={TOKEN_ARGUMENT: "mine", "--day": "d"})
    text = str(exc.value)
    assert text.startswith("script_args may not hold --durable_jobs_token")
    assert "takes no idempotency token" in text and "a retry after a failed run starts a new one" in text


@pytest.mark.parametrize("name", JOB_DEFINITION_ARGS)
def test_defining_a_job_is_refused_with_the_fix(name: str) -> None:
    value = {"create_job_kwargs": {"GlueVersion": "4.0"}, "update_config": True, "retry_limit": 2}.get(name, "x")
    with pytest.raises(ValueError) as exc:
        glue(**{name: value})
    text = str(exc.value)
    assert text.startswith(f"{name}: GlueJobRunOperator runs an existing Glue job and does not create or update one")
    assert "MaxConcurrentRuns=1" in text and "give its job_name" in text


def test_the_providers_defaults_for_job_definition_are_not_refused() -> None:
    op = glue(retry_limit=0, update_config=False, replace_script_file=False, script_location=None)
    assert op.build_spec(None).job_name == "nightly-etl"


@pytest.mark.parametrize(
    ("name", "extra"), [("region_name", "region_name"), ("verify", "verify"), ("botocore_config", "config_kwargs")]
)
def test_per_task_aws_settings_belong_to_the_connection(name: str, extra: str) -> None:
    with pytest.raises(ValueError, match=f"{name} is a setting of the aws connection here: set extra '{extra}'"):
        glue(**{name: "eu-west-1" if name == "region_name" else {}})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_name": ""}, "job_name is empty"),
        ({"job_name": "  "}, "job_name is empty"),
        ({"job_name": 12}, "job_name must be a string"),
        ({"job_name": "x" * 256}, "job_name has 256 characters; a Glue job name has at most 255"),
        ({"job_name": "two\nlines"}, "holds a control character"),
        ({"script_args": ["--day", "d"]}, "script_args must be a dict of strings"),
        ({"script_args": {"--when": object()}}, r"script_args\['--when'\] must be a string"),
        ({"run_job_kwargs": ["Timeout", 3]}, "run_job_kwargs must be a dict of StartJobRun fields"),
        ({"run_job_kwargs": {"Arguments": {"--a": "b"}}}, "may not hold Arguments: give the arguments as script_args"),
        ({"run_job_kwargs": {"JobName": "other"}}, "may not hold JobName: give job_name"),
        ({"run_job_kwargs": {"JobRunId": "jr_1"}}, "may not hold JobRunId: a run that retries a previous run"),
        ({"run_job_kwargs": {"AllocatedCapacity": 2}}, "AllocatedCapacity: it is deprecated: give MaxCapacity"),
        ({"run_job_kwargs": {"Workers": 2}}, "holds 'Workers', which is not a StartJobRun field"),
        ({"run_job_kwargs": {"Timeout": 0}}, "Timeout must be at least 1"),
        ({"timeout": "soon"}, "Timeout must be an integer"),
        ({"number_of_workers": 0}, "NumberOfWorkers must be at least 1"),
        ({"number_of_workers": True}, "NumberOfWorkers must be an integer"),
        ({"worker_type": 2}, "WorkerType must be a string"),
        ({"security_configuration": ["a"]}, "SecurityConfiguration must be a string"),
        ({"max_capacity": 0}, "MaxCapacity must be a positive number"),
        ({"max_capacity": "lots"}, "MaxCapacity must be a positive number"),
        ({"max_capacity": float("nan")}, "MaxCapacity must be a positive number"),
        ({"max_capacity": True}, "MaxCapacity must be a positive number"),
        ({"max_capacity": 2, "worker_type": "G.1X"}, "give MaxCapacity, or WorkerType and NumberOfWorkers, not both"),
        ({"job_run_queuing_enabled": "maybe"}, "JobRunQueuingEnabled must be a boolean"),
        ({"execution_class": "CHEAP"}, "ExecutionClass must be one of FLEX, STANDARD"),
        ({"notification_property": {"Delay": 5}}, "NotificationProperty must be {'NotifyDelayAfter': <minutes>}"),
        ({"notification_property": {"NotifyDelayAfter": 0}}, "NotifyDelayAfter must be at least 1"),
        (
            {"run_job_kwargs": {"Timeout": 30}, "timeout": 60},
            r"run_job_kwargs\['Timeout'\] and the argument timeout differ",
        ),
        ({"run_job_kwargs": "{{ params.run }}", "timeout": 60}, "cannot be merged into it before it is rendered"),
        ({"aws_conn_id": "a", "conn_id": "b"}, "aws_conn_id and conn_id differ: give one"),
        ({"job_poll_interval": 5, "waiter_delay": 6}, "waiter_delay and job_poll_interval differ"),
        ({"job_poll_interval": 5, "poll_interval": 6}, "job_poll_interval and poll_interval differ"),
    ],
)
def test_bad_input_is_refused_when_constructed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        glue(**kwargs)


def test_a_failed_check_leaves_no_task_in_the_dag() -> None:
    with DAG("refused", schedule=None) as dag:
        with pytest.raises(ValueError):
            glue(task_id="t", script_args={TOKEN_ARGUMENT: "x"})
        glue(task_id="t")  # the same task id, now valid
    assert list(dag.task_dict) == ["t"]


# --- templating -------------------------------------------------------------------------------------------------


def test_templated_fields_are_the_providers_that_run_a_job() -> None:
    assert tuple(GlueJobRunOperator.template_fields) == ("conn_id", "job_name", "script_args", "run_job_kwargs")


def test_jinja_defers_the_check_to_the_rendered_values() -> None:
    op = glue(
        job_name="{{ var.value.job }}",
        script_args={"--day": "{{ ds }}"},
        run_job_kwargs={"NumberOfWorkers": "{{ params.n }}", "JobRunQueuingEnabled": "{{ params.q }}"},
        worker_type="G.1X",
    )
    op.render_template_fields({"var": {"value": {"job": "etl"}}, "ds": "2026-12-03", "params": {"n": 4, "q": True}})
    assert op.build_spec(None) == GlueJobRunSpec(
        job_name="etl",
        arguments={"--day": "2026-12-03"},
        worker_type="G.1X",
        number_of_workers=4,
        job_run_queuing_enabled=True,
    )
    bad = glue(job_name="{{ var.value.job }}")
    bad.render_template_fields({"var": {"value": {"job": ""}}})
    with pytest.raises(ValueError, match="job_name is empty"):
        bad.build_spec(None)


def test_a_token_that_only_rendering_reveals_is_refused_before_submitting() -> None:
    op = glue(script_args="{{ params.args }}")
    op.script_args = {TOKEN_ARGUMENT: "t1"}  # as rendered
    with pytest.raises(ValueError, match="script_args may not hold --durable_jobs_token"):
        op.build_spec(None)


def test_an_upstream_tasks_output_is_checked_once_resolved() -> None:
    from airflow.sdk import task

    @task
    def pick_args() -> dict[str, str]:
        return {"--day": "d"}

    with DAG("xcom_args", schedule=None):
        op = glue(script_args=pick_args(), run_job_kwargs={"Timeout": 30})
    assert op.upstream_task_ids == {"pick_args"}
    op.script_args = {"--day": "2026-12-03"}  # as resolved
    assert op.build_spec(None).arguments == {"--day": "2026-12-03"}


# --- the provider's other arguments -------------------------------------------------------------------------------


def test_the_providers_connection_and_polling_arguments_are_ours() -> None:
    op = glue(aws_conn_id="aws_prod", job_poll_interval=10)
    assert (op.conn_id, op.poll_interval) == ("aws_prod", 10.0)
    assert glue(waiter_delay=20).poll_interval == 20.0
    default = glue()
    assert (default.conn_id, default.poll_interval) == ("aws_default", 30.0)
    assert glue(aws_conn_id=None).conn_id == "aws_default"


def test_what_the_provider_does_differently_is_accepted_with_a_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glue(verbose=True, waiter_max_attempts=75, sleep_before_return=10)
        glue(wait_for_completion=False, stop_job_run_on_kill=False)
        glue(stop_job_run_on_kill=True, verbose=False, wait_for_completion=True)  # what the task does anyway
    texts = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert texts[0].startswith("glue: verbose=True, waiter_max_attempts=75, sleep_before_return=10 ignored:")
    assert texts[1].startswith("glue: wait_for_completion=False, stop_job_run_on_kill=False ignored:")
    assert "CloudWatch log group and stream" in texts[0]
    assert len(texts) == 2


def test_deferrable_by_default() -> None:
    assert glue().deferrable is True
    assert glue(deferrable=False).deferrable is False


# --- the protocol, on a fake client -------------------------------------------------------------------------------

ROW = ("glue_dag", "run1", "glue", -1)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGlueClient]:
    fake = FakeGlueClient(scripts=[[JobState.RUNNING, JobState.SUCCEEDED]])
    monkeypatch.setattr(GlueHook, "get_client", classmethod(lambda cls, conn_id: fake))
    yield fake
    DurableJobHook.clear_cache()


def test_deferred_with_the_run_recorded_and_its_link_pushed(client: FakeGlueClient, store: InMemoryStateStore) -> None:
    with DAG("glue_dag", schedule=None):
        op = glue(script_args={"--day": "d"}, aws_conn_id="aws_glue", poll_interval=0.05)
    context = task_context(store, ROW)
    deferred = run_until_deferred(op, context)
    trigger = deferred.trigger
    job = {"job_name": "nightly-etl", "run_id": run_id(1)}
    assert isinstance(trigger, GlueTrigger) and trigger.job == job
    classpath, kwargs = trigger.serialize()
    assert classpath == "durable_jobs.triggers.glue.GlueTrigger"
    assert kwargs["conn_id"] == "aws_glue" and kwargs["job"] == job
    assert client.specs() == [GlueJobRunSpec(job_name="nightly-etl", arguments={"--day": "d"})]
    assert context["ti"].xcom == {**job, "glue_run_url": run_url("nightly-etl", run_id(1))}

    event = asyncio.run(trigger.wait(client))
    result = op.execute_complete(context, event=event)
    assert result["outcome"] == "succeeded" and result["system"] == "glue"
    assert (result["job_name"], result["run_id"]) == ("nightly-etl", run_id(1))
    assert client.submissions() == 1


def test_not_deferrable_waits_on_the_worker_with_the_same_result(
    client: FakeGlueClient, store: InMemoryStateStore
) -> None:
    result = glue(deferrable=False, poll_interval=0.05).execute(task_context(store, ROW))
    assert result["outcome"] == "succeeded" and result["run_id"] == run_id(1)


def test_a_crash_is_adopted_and_a_failed_run_is_not(client: FakeGlueClient, store: InMemoryStateStore) -> None:
    """Crash after StartJobRun: the next try adopts that run (same token); it fails: the try after starts a new
    run under a new token (what ``--durable_jobs_token`` carries), never the failed one again."""
    from durable_jobs import failpoints
    from durable_jobs.failpoints import SimulatedCrash

    client.scripts = [[JobState.RUNNING, JobState.FAILED], [JobState.SUCCEEDED]]
    failpoints.configure("after_submit=raise")
    try:
        with pytest.raises(SimulatedCrash):
            glue(retries=2).execute(task_context(store, ROW))
    finally:
        failpoints.configure("")
    op = glue(retries=2, poll_interval=0.05)
    adopted = run_until_deferred(op, task_context(store, ROW, try_number=2))
    assert isinstance(adopted, TaskDeferred) and client.submissions() == 1
    assert adopted.trigger.job == {"job_name": "nightly-etl", "run_id": run_id(1)}
    with pytest.raises(Exception, match="ended FAILED"):
        op.execute_complete(task_context(store, ROW, try_number=2), event=asyncio.run(adopted.trigger.wait(client)))
    fresh = run_until_deferred(op, task_context(store, ROW, try_number=3))
    assert fresh.trigger.job == {"job_name": "nightly-etl", "run_id": run_id(2)}
    assert (fresh.trigger.generation, adopted.trigger.generation) == (1, 0)
    assert [job.token for job in client.jobs.values()] == [adopted.trigger.token, fresh.trigger.token]
    assert fresh.trigger.token != adopted.trigger.token
