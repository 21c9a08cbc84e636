"""The EMR hooks, triggers and operators without a server: connection fields, kwargs, parse-time checks."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
from airflow.sdk import Connection
from airflow.sdk.module_loading import import_string

from durable_jobs.clients.emr import EmrStepClient
from durable_jobs.clients.emr.serverless import EmrServerlessClient
from durable_jobs.hooks.emr import EmrClusterHook, EmrEksHook, EmrServerlessHook, EmrStepHook
from durable_jobs.operators.emr import (
    EmrCreateClusterOperator,
    EmrEksJobOperator,
    EmrServerlessJobOperator,
    EmrStepOperator,
    EmrTerminateClusterOperator,
)
from durable_jobs.triggers.emr import EmrClusterTrigger, EmrEksTrigger, EmrServerlessTrigger, EmrStepTrigger

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKENvery-long"


def conn(**extra: Any) -> Connection:
    return Connection(
        conn_id="aws_test",
        conn_type="aws",
        login="AKIAEXAMPLE",
        password=SECRET,
        extra=json.dumps(extra),
    )


def test_aws_connection_fields_follow_the_amazon_provider():
    cfg = EmrStepHook.config_from_connection(
        conn(
            region_name="eu-west-1",
            aws_session_token=SESSION_TOKEN,
            endpoint_url="https://vpce.example",
            service_config={"sts": {"endpoint_url": "https://sts.example"}},
            role_arn="arn:aws:iam::123456789012:role/airflow",
            assume_role_kwargs={"ExternalId": "ext"},
            verify="/etc/ssl/ca.pem",
            config_kwargs={"connect_timeout": 3, "retries": {"max_attempts": 10}},
            durable_jobs={"retry_budget": 60, "backoff_base": 0.5},
        )
    )
    assert (cfg.aws_access_key_id, cfg.aws_secret_access_key, cfg.aws_session_token) == (
        "AKIAEXAMPLE",
        SECRET,
        SESSION_TOKEN,
    )
    assert cfg.region_name == "eu-west-1" and cfg.endpoint_for("emr") == "https://vpce.example"
    assert cfg.endpoint_for("sts") == "https://sts.example"
    assert cfg.role_arn.endswith(":role/airflow") and dict(cfg.assume_role_kwargs) == {"ExternalId": "ext"}
    assert cfg.verify == "/etc/ssl/ca.pem"
    assert dict(cfg.botocore_config) == {"connect_timeout": 3}  # botocore's retries stay off
    assert (cfg.retry_budget, cfg.backoff_base, cfg.label) == (60.0, 0.5, "aws_test")
    assert SECRET not in repr(cfg) and SESSION_TOKEN not in repr(cfg)


def test_defaults_verify_tls_and_use_the_default_chain_without_keys():
    cfg = EmrServerlessHook.config_from_connection(Connection(conn_id="aws_default", conn_type="aws"))
    assert cfg.verify is True and cfg.aws_access_key_id is None and cfg.role_arn is None
    assert EmrStepHook.config_from_connection(conn(verify="false")).verify is False
    assert EmrStepHook.config_from_connection(conn(aws_access_key_id="AKIA2", aws_secret_access_key="s")).verify is True
    with pytest.raises(ValueError, match="assume_role_method"):
        EmrStepHook.config_from_connection(conn(role_arn="arn:x", assume_role_method="assume_role_with_saml"))
    with pytest.raises(ValueError, match="service_config"):
        EmrStepHook.config_from_connection(conn(service_config="nope"))


def test_each_hook_builds_its_flavour_and_the_step_cancellation_option():
    step = EmrStepHook.client_from_connection(conn(durable_jobs={"step_cancellation_option": "TERMINATE_PROCESS"}))
    assert isinstance(step, EmrStepClient) and step.cancellation_option == "TERMINATE_PROCESS"
    assert isinstance(EmrServerlessHook.client_from_connection(conn()), EmrServerlessClient)
    assert EmrClusterHook.client_from_connection(conn()).system == "emr-cluster"
    assert EmrEksHook.client_from_connection(conn()).system == "emr-eks"
    with pytest.raises(ValueError, match="cancellation option"):
        EmrStepHook.client_from_connection(conn(durable_jobs={"step_cancellation_option": "KILL"}))


@pytest.mark.parametrize(
    ("trigger_class", "job"),
    [
        (EmrStepTrigger, {"cluster_id": "j-1ABC", "step_id": "s-2DEF"}),
        (EmrClusterTrigger, {"cluster_id": "j-1ABC"}),
        (EmrServerlessTrigger, {"application_id": "app1", "job_run_id": "run1"}),
        (EmrEksTrigger, {"virtual_cluster_id": "vc1", "job_run_id": "run1"}),
    ],
)
def test_triggers_round_trip_with_a_conn_id_and_no_secret(trigger_class, job):
    trig = trigger_class(
        job=job, conn_id="aws_test", token="dj0123456789abcdef0123", generation=0, deadline=time.time() + 60
    )
    classpath, kwargs = trig.serialize()
    assert classpath == f"durable_jobs.triggers.emr.{trigger_class.__name__}"
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    text = json.dumps(kwargs)
    assert SECRET not in text and "AKIA" not in text and kwargs["conn_id"] == "aws_test"


def test_operators_validate_at_parse_time_unless_templated(monkeypatch):
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    with pytest.raises(ValueError, match="cluster id"):
        EmrStepOperator(task_id="s", cluster_id="cluster-1", args=["x"])
    with pytest.raises(ValueError, match="action_on_failure"):
        EmrStepOperator(task_id="s", cluster_id="j-ABC", action_on_failure="BOOM")
    with pytest.raises(ValueError, match="list of arguments"):
        EmrStepOperator(task_id="s", cluster_id="j-ABC", args="spark-submit app.py")
    op = EmrStepOperator(task_id="s", cluster_id="{{ ti.xcom_pull('c')['cluster_id'] }}", args=["spark-submit"])
    assert "cluster_id" in op.template_fields and op.deferrable is True
    with pytest.raises(ValueError, match="job_driver"):
        EmrServerlessJobOperator(task_id="s", application_id="app1", execution_role_arn="arn:r", job_driver={})
    with pytest.raises(ValueError, match="job template"):
        EmrEksJobOperator(task_id="e", virtual_cluster_id="vc1")
    with pytest.raises(ValueError, match="Instances"):
        EmrCreateClusterOperator(task_id="c", job_flow_overrides={"ReleaseLabel": "emr-7.1.0"})
    assert EmrCreateClusterOperator(task_id="c", job_flow_overrides={"Instances": {}}).poll_interval == 60.0
    assert (
        EmrTerminateClusterOperator(task_id="t", cluster_id="j-1", trigger_rule="all_done").trigger_rule == "all_done"
    )


@pytest.mark.parametrize(
    ("returned", "pushed", "expected"),
    [
        ({"cluster_id": "j-RET"}, "j-PUSH", "j-RET"),  # the create task succeeded
        (None, "j-PUSH", "j-PUSH"),  # it failed after deferring: the id pushed before deferring
        (None, None, ""),  # it never got a cluster: nothing to terminate
    ],
)
def test_cluster_id_template_finds_the_cluster_also_after_a_failed_create(returned, pushed, expected):
    def xcom_pull(task_ids: str, key: str = "return_value") -> Any:
        assert task_ids == "create_cluster"
        return returned if key == "return_value" else pushed

    template = EmrCreateClusterOperator.cluster_id_template("create_cluster")
    rendered = jinja2.Environment().from_string(template).render(ti=SimpleNamespace(xcom_pull=xcom_pull))
    assert rendered == expected


def test_terminate_without_a_cluster_id_does_nothing():
    for empty in ("", "None", None):
        assert EmrTerminateClusterOperator(task_id="t", cluster_id=empty).execute({}) is None
