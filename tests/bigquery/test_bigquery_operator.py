"""The BigQuery operator: the provider's arguments, the spec it builds, what it refuses when the DAG is parsed,
templating, and the protocol around a fake client (deferral, XCom, the result with the job's statistics)."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk import DAG

from durable_jobs.clients.bigquery import BigQueryJobSpec
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.bigquery import BigQueryHook
from durable_jobs.operators.bigquery import BigQueryJobOperator, airflow_labels
from durable_jobs.status import JobState
from durable_jobs.testing.state_store import InMemoryStateStore
from durable_jobs.triggers.bigquery import BigQueryTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context
from tests.bigquery.fake_client import PROJECT, STATISTICS, FakeJobsClient, console_url

QUERY = {
    "query": {"query": "SELECT day, COUNT(*) FROM `analytics-prod.raw.events` GROUP BY day", "useLegacySql": False}
}


def job(**kwargs: Any) -> BigQueryJobOperator:
    kwargs.setdefault("task_id", "report")
    kwargs.setdefault("configuration", QUERY)
    return BigQueryJobOperator(**kwargs)


@pytest.fixture
def gcp_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    """google_cloud_default: the project and a default location (no key: Application Default Credentials)."""
    value = {"conn_type": "bigquery_durable", "extra": {"project": PROJECT, "location": "EU"}}
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(value))


# --- the spec ---------------------------------------------------------------------------------------------------


def test_the_spec_carries_the_configuration_location_labels_and_prefix() -> None:
    with DAG("Nightly_Reports", schedule=None):
        op = job(location="europe-west1", labels={"team": "growth"}, job_id_prefix="nightly_")
    assert op.build_spec(None) == BigQueryJobSpec(
        configuration=QUERY,
        location="europe-west1",
        labels={"team": "growth", "airflow-dag": "nightly_reports", "airflow-task": "report"},
        job_id_prefix="nightly_",
    )


def test_the_airflow_labels_are_the_providers() -> None:
    assert airflow_labels("Etl", "group.load") == {"airflow-dag": "etl", "airflow-task": "group-load"}
    assert airflow_labels("etl.v2", "load") == {}  # "." is no label value: the provider adds none either
    assert airflow_labels("d" * 64, "load") == {}
    with DAG("etl", schedule=None):
        mine = job(labels={"airflow-task": "custom"})
    assert mine.build_spec(None).labels == {"airflow-task": "custom", "airflow-dag": "etl"}


def test_configuration_labels_move_to_the_spec_and_the_argument_wins() -> None:
    configuration = {**QUERY, "labels": {"team": "a", "cost-center": "42"}}
    spec = job(configuration=configuration, labels={"team": "b"}).build_spec(None)
    assert "labels" not in spec.configuration and configuration["labels"] == {"team": "a", "cost-center": "42"}
    assert spec.labels["team"] == "b" and spec.labels["cost-center"] == "42"
    assert spec.job_id_prefix == "airflow_durable_"


@pytest.mark.parametrize(
    "configuration",
    [
        {"load": {"sourceUris": ["gs://b/x.csv"], "destinationTable": {"tableId": "t"}}},
        {"extract": {"sourceTable": {"tableId": "t"}, "destinationUris": ["gs://b/out-*.csv"]}},
        {"copy": {"sourceTables": [{"tableId": "a"}], "destinationTable": {"tableId": "b"}}},
        {"query": {"query": "SELECT 1"}, "jobTimeoutMs": "600000"},
    ],
)
def test_every_job_type_is_taken(configuration: dict[str, Any]) -> None:
    assert job(configuration=configuration).build_spec(None).configuration == configuration


def test_a_json_string_is_parsed() -> None:
    assert job(configuration=json.dumps(QUERY)).build_spec(None).configuration == QUERY


# --- refused at parse time ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_id": "my_job"}, "job_id is not taken: durable_jobs names the job <job_id_prefix><token>"),
        ({"force_rerun": True}, "force_rerun is not taken: durable_jobs decides it per try"),
        ({"force_rerun": False}, "force_rerun is not taken"),
        ({"impersonation_chain": "sa@p.iam.gserviceaccount.com"}, "impersonation_chain is not supported"),
        ({"cancel_on_kill": False}, "cancel_on_kill=False is not supported"),
        ({"configuration": {}}, "configuration names no job: give one of query, load, extract, copy"),
        ({"configuration": {"query": {"query": "x"}, "load": {}}}, "configuration names query and load"),
        ({"configuration": {"query": "SELECT 1"}}, "configuration.query must be an object"),
        ({"configuration": {"query": {"query": " "}}}, "configuration.query.query must be the query's text"),
        ({"configuration": {"query": {"query": "x"}, "dryRun": True}}, "a dry run creates no job to wait for"),
        ({"configuration": ["query"]}, "configuration must be a dict"),
        ({"configuration": '{"query": '}, "configuration is a string that is not a JSON object"),
        ({"labels": {"Team": "x"}}, "label key 'Team' is not one BigQuery takes"),
        ({"labels": {"team": "Growth"}}, "label team's value 'Growth' is not one BigQuery takes"),
        ({"labels": {"durable_jobs_token": "x"}}, "is the library's own"),
        ({"configuration": {**QUERY, "labels": {"durable_jobs_token": "x"}}}, "is the library's own"),
        ({"labels": {f"k{i}": "v" for i in range(64)}}, "64 labels: a job takes 64"),
        ({"labels": ["team"]}, "labels must be a dict of strings"),
        ({"job_id_prefix": "my.prefix."}, "job_id_prefix 'my.prefix.' is not the start of a BigQuery job id"),
        ({"gcp_conn_id": "a", "conn_id": "b"}, "gcp_conn_id 'a' and conn_id 'b' differ"),
        ({"location": 3}, "location must be a string"),
    ],
)
def test_bad_input_is_refused_when_constructed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[").replace(".", r"\.")):
        job(**kwargs)


def test_a_failed_check_leaves_no_task_in_the_dag() -> None:
    with DAG("refused", schedule=None) as dag:
        with pytest.raises(ValueError):
            job(task_id="t", job_id="fixed")
        job(task_id="t")
    assert list(dag.task_dict) == ["t"]


def test_ignored_provider_arguments_warn() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job(reattach_states={"PENDING", "RUNNING"}, result_timeout=60.0, cancel_on_kill=True)
    (text,) = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert text.startswith("report: reattach_states, result_timeout ignored: a crashed try's job is always re-attached")


# --- templating -----------------------------------------------------------------------------------------------


def test_templated_fields_are_the_providers() -> None:
    assert tuple(BigQueryJobOperator.template_fields) == (
        "conn_id",
        "configuration",
        "project_id",
        "location",
        "labels",
    )
    assert tuple(BigQueryJobOperator.template_ext) == (".json", ".sql")


def test_jinja_defers_the_check_to_the_rendered_configuration() -> None:
    op = job(
        configuration={"query": {"query": "SELECT * FROM t WHERE day = '{{ ds }}'"}}, labels={"day": "{{ ds_nodash }}"}
    )
    op.render_template_fields({"ds": "2026-12-03", "ds_nodash": "20261203"})
    spec = op.build_spec(None)
    assert spec.configuration == {"query": {"query": "SELECT * FROM t WHERE day = '2026-12-03'"}}
    assert spec.labels["day"] == "20261203"
    bad = job(configuration="{{ params.conf }}")
    bad.render_template_fields({"params": {"conf": '{"query": {"query": ""}}'}})
    with pytest.raises(ValueError, match=r"configuration\.query\.query must be the query's text"):
        bad.build_spec(None)


def test_a_json_template_file_and_a_sql_file_are_rendered(tmp_path: Any) -> None:
    (tmp_path / "job.json").write_text(json.dumps({"query": {"query": "SELECT '{{ ds }}'"}}))
    (tmp_path / "report.sql").write_text("SELECT * FROM t WHERE day = '{{ ds }}'")
    with DAG("tpl", schedule=None, template_searchpath=[str(tmp_path)]):
        from_json = job(task_id="a", configuration="job.json")
        from_sql = job(task_id="b", configuration={"query": {"query": "report.sql", "useLegacySql": False}})
    for op in (from_json, from_sql):
        op.render_template_fields({"ds": "2026-12-03"})
    assert from_json.build_spec(None).configuration == {"query": {"query": "SELECT '2026-12-03'"}}
    assert from_sql.build_spec(None).configuration["query"]["query"] == "SELECT * FROM t WHERE day = '2026-12-03'"


# --- the provider's other arguments ------------------------------------------------------------------------------


def test_the_providers_connection_and_defaults() -> None:
    op = job(gcp_conn_id="gcp_prod", poll_interval=4.0)
    assert (op.conn_id, op.poll_interval, op.deferrable) == ("gcp_prod", 4.0, True)
    default = job()
    assert (default.conn_id, default.poll_interval) == ("google_cloud_default", 30.0)
    assert job(deferrable=False).deferrable is False


@pytest.mark.usefixtures("gcp_conn")
def test_when_the_task_runs_the_location_defaults_to_the_connections_and_the_project_must_be_its() -> None:
    context = {"ti": type("TI", (), {"dag_id": "d"})()}
    assert job().build_spec(context).location == "EU"
    assert job(location="US", project_id=PROJECT).build_spec(context).location == "US"
    with pytest.raises(ValueError, match="project_id 'other-project' is not the project of connection"):
        job(project_id="other-project").build_spec(context)
    assert job(project_id="other-project").build_spec(None).location is None  # not checked before the task runs


# --- the protocol, on a fake client ----------------------------------------------------------------------------

ROW = ("bq_dag", "run1", "report", -1)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, gcp_conn: None) -> Iterator[FakeJobsClient]:
    fake = FakeJobsClient(scripts=[[JobState.RUNNING, JobState.SUCCEEDED]])
    monkeypatch.setattr(BigQueryHook, "get_client", classmethod(lambda cls, conn_id: fake))
    yield fake
    DurableJobHook.clear_cache()


def test_deferred_with_the_job_recorded_and_its_link_pushed(client: FakeJobsClient, store: InMemoryStateStore) -> None:
    with DAG("bq_dag", schedule=None):
        op = job(poll_interval=0.05)
    context = task_context(store, ROW)
    trigger = run_until_deferred(op, context).trigger
    assert isinstance(trigger, BigQueryTrigger)
    locator = trigger.job
    assert locator["job_id"] == f"airflow_durable_{trigger.token}" and locator["location"] == "EU"
    classpath, kwargs = trigger.serialize()
    assert classpath == "durable_jobs.triggers.bigquery.BigQueryTrigger" and kwargs["job"] == locator
    (spec,) = client.specs()
    assert spec.configuration == QUERY and spec.location == "EU"
    assert spec.labels == {"airflow-dag": "bq_dag", "airflow-task": "report"}
    assert context["ti"].xcom == {**locator, "bigquery_job_url": console_url(locator)}

    result = op.execute_complete(context, event=asyncio.run(trigger.wait(client)))
    assert result["outcome"] == "succeeded" and result["system"] == "bigquery"
    assert result["job_id"] == locator["job_id"]
    assert {key: result[key] for key in STATISTICS} == STATISTICS
    assert client.results == [locator] and client.submissions() == 1


def test_not_deferrable_waits_on_the_worker_with_the_same_result(
    client: FakeJobsClient, store: InMemoryStateStore
) -> None:
    result = job(deferrable=False, poll_interval=0.05, location="US").execute(task_context(store, ROW))
    assert result["outcome"] == "succeeded" and result["total_slot_ms"] == STATISTICS["total_slot_ms"]
    assert client.specs()[0].location == "US"


def test_statistics_that_cannot_be_read_leave_the_result_without_them(
    client: FakeJobsClient, store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(locator: Any) -> dict[str, Any]:
        raise RuntimeError("bigquery down")

    monkeypatch.setattr(client, "result", broken)
    result = job(deferrable=False, poll_interval=0.05).execute(task_context(store, ROW))
    assert result["outcome"] == "succeeded" and result["job_id"] is not None
    assert (result["destination_table"], result["total_bytes_processed"], result["total_slot_ms"]) == (None, None, None)


def test_a_retry_after_a_failed_job_inserts_a_new_generation(client: FakeJobsClient, store: InMemoryStateStore) -> None:
    client.scripts = [[JobState.FAILED], [JobState.SUCCEEDED]]
    op = job(poll_interval=0.05, retries=1)
    first = run_until_deferred(op, task_context(store, ROW))
    with pytest.raises(Exception, match="ended FAILED"):
        op.execute_complete(task_context(store, ROW), event=asyncio.run(first.trigger.wait(client)))
    second = run_until_deferred(op, task_context(store, ROW, try_number=2))
    assert second.trigger.generation == 1 and second.trigger.job["job_id"] != first.trigger.job["job_id"]
    assert [j.token for j in client.jobs.values()] == [first.trigger.token, second.trigger.token]


def test_a_crashed_try_is_adopted_not_reinserted(client: FakeJobsClient, store: InMemoryStateStore) -> None:
    from durable_jobs import failpoints
    from durable_jobs.failpoints import SimulatedCrash

    failpoints.configure("after_submit=raise")
    with pytest.raises(SimulatedCrash):
        job().execute(task_context(store, ROW))
    failpoints.configure("")
    deferred = run_until_deferred(job(), task_context(store, ROW, try_number=2))
    assert deferred.trigger.job["job_id"] == f"airflow_durable_{deferred.trigger.token}"
    assert client.submissions() == 1


def test_a_result_given_without_awaiting_is_taken_and_only_its_keys(
    client: FakeJobsClient, store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "result", lambda locator: {**STATISTICS, "total_slot_ms": 7, "other": "x"})
    result = job(deferrable=False, poll_interval=0.05).execute(task_context(store, ROW))
    assert result["total_slot_ms"] == 7 and "other" not in result
