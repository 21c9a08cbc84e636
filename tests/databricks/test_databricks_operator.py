"""The Databricks operators: the provider's arguments merged as the provider merges them, the specs they build,
what they refuse when the DAG is parsed, templating, and the protocol around a fake client (deferral, result)."""

from __future__ import annotations

import asyncio
import datetime
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from durable_jobs.clients.databricks import RunNowSpec, SubmitRunSpec
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.databricks import DatabricksHook
from durable_jobs.operators.databricks import DatabricksRunNowOperator, DatabricksSubmitRunOperator
from durable_jobs.status import JobState
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.triggers.databricks import DatabricksTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from tests.databricks.fake_client import WORKSPACE, FakeRunsClient

NOTEBOOK = {"notebook_path": "/Repos/etl/daily", "base_parameters": {"day": "2026-12-03"}}
CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2}


def submit(**kwargs: Any) -> DatabricksSubmitRunOperator:
    kwargs.setdefault("task_id", "submit")
    return DatabricksSubmitRunOperator(**kwargs)


def run_now(**kwargs: Any) -> DatabricksRunNowOperator:
    kwargs.setdefault("task_id", "run_now")
    return DatabricksRunNowOperator(**kwargs)


# --- the body: merged as the provider merges it -------------------------------------------------------------


def test_named_arguments_are_merged_over_json_and_win() -> None:
    body = {"run_name": "from-json", "new_cluster": {"num_workers": 1}, "libraries": [{"jar": "dbfs:/a.jar"}]}
    op = submit(json=body, notebook_task=NOTEBOOK, new_cluster=CLUSTER, timeout_seconds=3600)
    assert op.json == {
        "run_name": "from-json",
        "new_cluster": CLUSTER,  # the named argument wins, whole (a top-level merge, as the provider's)
        "libraries": [{"jar": "dbfs:/a.jar"}],
        "notebook_task": NOTEBOOK,
        "timeout_seconds": 3600,
    }
    assert body == {"run_name": "from-json", "new_cluster": {"num_workers": 1}, "libraries": [{"jar": "dbfs:/a.jar"}]}
    assert op.build_spec(None) == SubmitRunSpec(op.json)


def test_every_submit_argument_reaches_the_body() -> None:
    args: dict[str, Any] = {
        "spark_python_task": {"python_file": "dbfs:/etl.py", "parameters": ["--day", "2026-12-03"]},
        "existing_cluster_id": "1203-101010-abcd1234",
        "libraries": [{"pypi": {"package": "requests"}}],
        "run_name": "nightly",
        "timeout_seconds": 600,
        "access_control_list": [{"group_name": "etl", "permission_level": "CAN_VIEW"}],
        "git_source": {"git_url": "https://github.com/org/repo", "git_provider": "gitHub", "git_branch": "main"},
    }
    assert submit(**args).build_spec(None).payload == args


def test_tasks_are_submitted_as_given() -> None:
    tasks = [
        {"task_key": "ingest", "notebook_task": NOTEBOOK, "new_cluster": CLUSTER},
        {"task_key": "report", "depends_on": [{"task_key": "ingest"}], "spark_python_task": {"python_file": "r.py"}},
    ]
    spec = submit(tasks=tasks, run_name="two").build_spec(None)
    assert spec == SubmitRunSpec({"tasks": tasks, "run_name": "two"})


def test_run_name_defaults_to_the_dag_and_task() -> None:
    with DAG("nightly_etl", schedule=None):
        op = submit(task_id="load", notebook_task=NOTEBOOK, existing_cluster_id="c1")
    assert op.build_spec(None).payload["run_name"] == "airflow-durable-nightly_etl.load"
    assert "run_name" not in op.json  # the default is not the user's: a rendered json keeps it absent
    context = {"ti": type("TI", (), {"dag_id": "nightly_etl"})()}
    assert op.build_spec(context).payload["run_name"] == "airflow-durable-nightly_etl.load"
    assert submit(json={"run_name": "mine", "notebook_task": NOTEBOOK}).build_spec(None).payload["run_name"] == "mine"


def test_run_now_builds_its_spec_with_parameters_as_strings() -> None:
    op = run_now(job_id="42", notebook_params={"day": "2026-12-03", "limit": 10, "dry": True}, python_params=[1, "x"])
    assert op.build_spec(None) == RunNowSpec(
        {
            "job_id": 42,
            "notebook_params": {"day": "2026-12-03", "limit": "10", "dry": "true"},
            "python_params": ["1", "x"],
        }
    )
    by_name = run_now(job_name="nightly etl", job_parameters={"day": "2026-12-03"})
    assert by_name.build_spec(None) == RunNowSpec({"job_parameters": {"day": "2026-12-03"}}, job_name="nightly etl")


def test_every_run_now_parameter_reaches_the_body() -> None:
    params: dict[str, Any] = {
        "notebook_params": {"a": "1"},
        "python_params": ["p"],
        "jar_params": ["j"],
        "spark_submit_params": ["--class", "Main"],
        "python_named_params": {"name": "n"},
        "sql_params": {"day": "d"},
        "dbt_commands": ["dbt run"],
    }
    assert run_now(job_id=7, json={"queue": {"enabled": True}}, **params).build_spec(None).payload == {
        "queue": {"enabled": True},
        "job_id": 7,
        **params,
    }


# --- refused at parse time -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"idempotency_token": "my-token", "notebook_task": NOTEBOOK},
        {"json": {"idempotency_token": "my-token", "notebook_task": NOTEBOOK}},
    ],
)
def test_submit_refuses_an_idempotency_token(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="idempotency_token is not taken: durable_jobs derives one per generation"):
        submit(**kwargs)


def test_run_now_refuses_an_idempotency_token_and_says_why() -> None:
    with pytest.raises(ValueError) as exc:
        run_now(job_id=1, idempotency_token="fixed")
    assert "a retry after a failed run starts a new one" in str(exc.value) and "apache/airflow#64828" in str(exc.value)


def test_a_token_that_only_rendering_reveals_is_refused_before_submitting() -> None:
    op = submit(json='{"notebook_task": {"notebook_path": "/x"}, "idempotency_token": "{{ params.t }}"}')
    op.json = '{"notebook_task": {"notebook_path": "/x"}, "idempotency_token": "t1"}'  # as rendered
    with pytest.raises(ValueError, match="idempotency_token is not taken"):
        op.build_spec(None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_id": 1, "job_name": "x"}, "job_id and job_name exclude each other"),
        ({"json": {"job_id": 1}, "job_name": "x"}, "job_id and job_name exclude each other"),
        ({}, r"give job_id \(the job's id\) or job_name \(its exact name\)"),
        ({"job_parameters": {"a": "b"}}, "give job_id"),
        ({"job_id": True}, "job_id must be an integer"),
        ({"job_id": 1.5}, "job_id must be an integer"),
        ({"job_id": "abc"}, "job_id must be an integer"),
        ({"job_id": 0}, "job_id must be between 1 and"),
        ({"job_id": 2**63}, "job_id must be between 1 and"),
        ({"job_name": ""}, "job_name is empty"),
        ({"job_name": "  "}, "job_name is empty"),
        ({"job_name": 12}, "job_name must be a string"),
        ({"job_id": 1, "notebook_params": ["a"]}, "notebook_params must be a dict of strings"),
        ({"job_id": 1, "python_params": "a b"}, "python_params must be a list of strings"),
        ({"job_id": 1, "jar_params": [{"a": 1}]}, r"jar_params\[0\] must be a string"),
        ({"job_id": 1, "job_parameters": {"a": "1"}, "notebook_params": {"b": "2"}}, "cannot be combined"),
        ({"job_id": 1, "json": ["job_id", 1]}, "json must be a dict"),
        ({"job_id": 1, "repair_run": True}, "repair_run is not supported"),
        ({"job_id": 1, "cancel_previous_runs": True}, "cancel_previous_runs is not supported"),
        ({"job_id": 1, "databricks_conn_id": "a", "conn_id": "b"}, "databricks_conn_id 'a' and conn_id 'b' differ"),
        ({"job_id": 1, "polling_period_seconds": 5, "poll_interval": 6}, "polling_period_seconds and poll_interval"),
        ({"job_id": 1, "json": '{"job_id": 2}', "notebook_params": {"a": "b"}}, "cannot be merged into it"),
    ],
)
def test_run_now_refuses_bad_input_when_constructed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_now(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "nothing to run: give tasks, or one of notebook_task"),
        ({"new_cluster": CLUSTER}, "nothing to run"),
        ({"tasks": [{"task_key": "a"}], "notebook_task": NOTEBOOK}, "give tasks, or one single-task field, not both"),
        ({"notebook_task": NOTEBOOK, "spark_jar_task": {"main_class_name": "M"}}, "notebook_task and spark_jar_task"),
        ({"tasks": []}, "tasks must be a non-empty list"),
        ({"tasks": "ingest"}, "tasks must be a non-empty list"),
        ({"tasks": [{"notebook_task": NOTEBOOK}]}, r"tasks\[0\] needs a task_key"),
        ({"tasks": [{"task_key": "a"}, {"task_key": "a"}]}, "repeat the task_key 'a'"),
        ({"tasks": ["a"]}, r"tasks\[0\] must be a task object"),
        ({"notebook_task": "/Repos/etl/daily"}, "notebook_task must be a dict"),
        ({"notebook_task": NOTEBOOK, "new_cluster": "big"}, "new_cluster must be a dict"),
        ({"notebook_task": NOTEBOOK, "existing_cluster_id": 12}, "existing_cluster_id must be a string"),
        ({"notebook_task": NOTEBOOK, "libraries": {"jar": "x"}}, "libraries must be a list"),
        ({"notebook_task": NOTEBOOK, "timeout_seconds": -1}, "timeout_seconds must be at least 0"),
        ({"notebook_task": NOTEBOOK, "timeout_seconds": "soon"}, "timeout_seconds must be an integer"),
        ({"notebook_task": NOTEBOOK, "run_name": 3}, "run_name must be a string"),
        ({"dbt_task": {"commands": ["dbt run"]}}, "dbt_task needs git_source"),
        ({"pipeline_task": {"pipeline_name": "p"}}, "pipeline_name is not supported"),
        (
            {"notebook_task": {"notebook_path": "/x", "base_parameters": {"when": datetime.date(2026, 12, 3)}}},
            "a request body cannot carry",
        ),
        ({"notebook_task": {"notebook_path": "/x", "base_parameters": {"n": float("nan")}}}, "no NaN"),
        ({"json": 42}, "json must be a dict"),
    ],
)
def test_submit_refuses_bad_input_when_constructed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        submit(**kwargs)


def test_a_failed_check_leaves_no_task_in_the_dag() -> None:
    with DAG("refused", schedule=None) as dag:
        with pytest.raises(ValueError):
            run_now(task_id="t", job_id=1, job_name="x")
        run_now(task_id="t", job_id=1)  # the same task id, now valid
    assert list(dag.task_dict) == ["t"]


def test_numbers_rendered_as_strings_are_taken() -> None:
    op = run_now(job_id="{{ params.job }}")
    op.json = {"job_id": " 1234 "}  # as rendered
    assert op.build_spec(None).payload == {"job_id": 1234}
    sub = submit(notebook_task=NOTEBOOK, timeout_seconds="{{ params.t }}")
    sub.json = {**sub.json, "timeout_seconds": "600"}
    assert sub.build_spec(None).payload["timeout_seconds"] == 600


# --- templating ---------------------------------------------------------------------------------------------


def test_templated_fields_are_the_providers() -> None:
    for cls in (DatabricksSubmitRunOperator, DatabricksRunNowOperator):
        assert tuple(cls.template_fields) == ("conn_id", "json")  # the provider's json and databricks_conn_id
        assert tuple(cls.template_ext) == (".json-tpl",)


def test_jinja_defers_the_check_to_the_rendered_body() -> None:
    # a job id from a template: nothing to check at parse time but the shape
    op = run_now(job_id="{{ var.value.etl_job }}", notebook_params={"day": "{{ ds }}"})
    op.render_template_fields({"var": {"value": {"etl_job": "77"}}, "ds": "2026-12-03"})
    assert op.build_spec(None) == RunNowSpec({"job_id": 77, "notebook_params": {"day": "2026-12-03"}})
    bad = run_now(job_id="{{ var.value.etl_job }}")
    bad.render_template_fields({"var": {"value": {"etl_job": "not-a-number"}}})
    with pytest.raises(ValueError, match="job_id must be an integer"):
        bad.build_spec(None)


def test_an_upstream_tasks_output_is_checked_once_resolved() -> None:
    from airflow.sdk import task

    @task
    def pick_job() -> int:
        return 7

    with DAG("xcom_args", schedule=None):
        op = run_now(job_id=pick_job(), notebook_params={"day": "{{ ds }}"})
    assert op.upstream_task_ids == {"pick_job"}  # Airflow resolves it when the task runs
    op.json = {**op.json, "job_id": 7, "notebook_params": {"day": "2026-12-03"}}  # as resolved and rendered
    assert op.build_spec(None) == RunNowSpec({"job_id": 7, "notebook_params": {"day": "2026-12-03"}})


def test_a_json_string_is_rendered_then_parsed() -> None:
    op = submit(json='{"notebook_task": {"notebook_path": "/x", "base_parameters": {"day": "{{ ds }}"}}}')
    op.render_template_fields({"ds": "2026-12-03"})
    assert op.build_spec(None).payload["notebook_task"] == {
        "notebook_path": "/x",
        "base_parameters": {"day": "2026-12-03"},
    }
    broken = submit(json="{{ params.body }}")
    broken.render_template_fields({"params": {"body": "not json"}})
    with pytest.raises(ValueError, match="json is a string that is not a JSON object"):
        broken.build_spec(None)


def test_a_json_tpl_file_is_a_template_of_the_body(tmp_path: Any) -> None:
    (tmp_path / "body.json-tpl").write_text(json.dumps({"job_id": 5, "job_parameters": {"day": "{{ ds }}"}}))
    with DAG("tpl", schedule=None, template_searchpath=[str(tmp_path)]):
        op = run_now(json="body.json-tpl")
    op.render_template_fields({"ds": "2026-12-03"})
    assert op.build_spec(None) == RunNowSpec({"job_id": 5, "job_parameters": {"day": "2026-12-03"}})


# --- the provider's other arguments ----------------------------------------------------------------------------


def test_the_providers_connection_and_polling_arguments_are_ours() -> None:
    op = run_now(job_id=1, databricks_conn_id="dbx_prod", polling_period_seconds=10)
    assert (op.conn_id, op.poll_interval) == ("dbx_prod", 10.0)
    default = run_now(job_id=1)
    assert (default.conn_id, default.poll_interval) == ("databricks_default", 30.0)


def test_retry_arguments_and_not_waiting_are_accepted_with_a_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        submit(notebook_task=NOTEBOOK, databricks_retry_limit=5, databricks_retry_delay=2, wait_for_termination=True)
        run_now(job_id=1, databricks_retry_args={"stop": 3}, wait_for_termination=False)
    texts = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert texts[0].startswith("submit: databricks_retry_limit, databricks_retry_delay ignored: durable_jobs retries")
    assert texts[1].startswith("run_now: databricks_retry_args ignored")
    assert texts[2].startswith("run_now: wait_for_termination=False ignored: a durable task waits for its run")
    assert len(texts) == 3


def test_deferrable_by_default() -> None:
    assert submit(notebook_task=NOTEBOOK).deferrable is True
    assert run_now(job_id=1).deferrable is True
    assert run_now(job_id=1, deferrable=False).deferrable is False


# --- the protocol, on a fake client ---------------------------------------------------------------------------

ROW = ("dbx_dag", "run1", "submit", -1)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunsClient]:
    fake = FakeRunsClient(scripts=[[JobState.RUNNING, JobState.SUCCEEDED]])
    monkeypatch.setattr(DatabricksHook, "get_client", classmethod(lambda cls, conn_id: fake))
    yield fake
    DurableJobHook.clear_cache()


def test_deferred_with_the_run_recorded_and_its_links_pushed(client: FakeRunsClient, store: InMemoryStateStore) -> None:
    with DAG("dbx_dag", schedule=None):
        op = submit(notebook_task=NOTEBOOK, existing_cluster_id="c1", databricks_conn_id="dbx", poll_interval=0.05)
    context = task_context(store, ROW)
    deferred = run_until_deferred(op, context)
    trigger = deferred.trigger
    assert isinstance(trigger, DatabricksTrigger) and trigger.job == {"run_id": 1}
    classpath, kwargs = trigger.serialize()
    assert classpath == "durable_jobs.triggers.databricks.DatabricksTrigger"
    assert kwargs["conn_id"] == "dbx" and kwargs["job"] == {"run_id": 1}
    (spec,) = client.specs()
    assert spec == SubmitRunSpec(
        {"notebook_task": NOTEBOOK, "existing_cluster_id": "c1", "run_name": "airflow-durable-dbx_dag.submit"}
    )
    assert context["ti"].xcom == {"run_id": 1, "run_page_url": f"{WORKSPACE}/#job/runs/1"}  # the provider's keys

    event = asyncio.run(trigger.wait(client))
    result = op.execute_complete(context, event=event)
    assert result["outcome"] == "succeeded" and result["system"] == "databricks"
    assert (result["run_id"], result["run_page_url"]) == (1, f"{WORKSPACE}/#job/runs/1")
    assert client.submissions() == 1


def test_not_deferrable_waits_on_the_worker_with_the_same_result(
    client: FakeRunsClient, store: InMemoryStateStore
) -> None:
    op = run_now(task_id="submit", job_name="nightly", deferrable=False, poll_interval=0.05)
    result = op.execute(task_context(store, ROW))
    assert result["outcome"] == "succeeded" and result["run_id"] == 1
    assert client.specs() == [RunNowSpec({}, job_name="nightly")]


def test_a_run_page_that_cannot_be_read_leaves_the_result_without_it(
    client: FakeRunsClient, store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(locator: Any) -> dict[str, str]:
        raise RuntimeError("workspace down")

    monkeypatch.setattr(client, "links", broken)
    result = run_now(task_id="submit", job_id=3, deferrable=False, poll_interval=0.05).execute(task_context(store, ROW))
    assert result["outcome"] == "succeeded" and result["run_id"] == 1 and result["run_page_url"] is None


def test_a_retry_after_a_failed_run_submits_a_new_generation(client: FakeRunsClient, store: InMemoryStateStore) -> None:
    client.scripts = [[JobState.FAILED], [JobState.SUCCEEDED]]
    op = run_now(task_id="submit", job_id=3, poll_interval=0.05, retries=1)
    first = run_until_deferred(op, task_context(store, ROW))
    with pytest.raises(Exception, match="ended FAILED"):
        op.execute_complete(task_context(store, ROW), event=asyncio.run(first.trigger.wait(client)))
    second = run_until_deferred(op, task_context(store, ROW, try_number=2))
    assert second.trigger.generation == 1 and second.trigger.token != first.trigger.token
    assert [job.token for job in client.jobs.values()] == [first.trigger.token, second.trigger.token]


def test_a_crashed_try_is_adopted_not_resubmitted(client: FakeRunsClient, store: InMemoryStateStore) -> None:
    from durable_jobs import failpoints
    from durable_jobs.failpoints import SimulatedCrash

    failpoints.configure("after_submit=raise")
    with pytest.raises(SimulatedCrash):
        run_now(task_id="submit", job_id=3).execute(task_context(store, ROW))
    failpoints.configure("")
    deferred = run_until_deferred(run_now(task_id="submit", job_id=3), task_context(store, ROW, try_number=2))
    assert deferred.trigger.job == {"run_id": 1} and client.submissions() == 1
    assert isinstance(deferred, TaskDeferred)
