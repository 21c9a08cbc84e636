"""The Kubernetes connection, trigger and operators without a cluster: config, kwargs, manifests, labels."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from airflow.sdk.module_loading import import_string
from kubernetes_asyncio.client import V1Container, V1Pod, V1PodSpec

from durable_jobs.clients.kubernetes import MANAGED_LABEL, TOKEN_LABEL, KubernetesClient
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs.operators.kubernetes import KubernetesJobOperator, KubernetesPodOperator, SparkApplicationOperator
from durable_jobs.record import JobRecord, TaskIdentity, make_token
from durable_jobs.triggers.kubernetes import KubernetesTrigger

SECRET = "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.c2VjcmV0.signature-very-secret"
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": SECRET}}],
    "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
    "current-context": "ctx",
}


def conn(extra: dict[str, Any] | None = None, **fields: Any) -> SimpleNamespace:
    return SimpleNamespace(
        conn_id="k8s",
        host=fields.get("host"),
        port=fields.get("port"),
        password=fields.get("password"),
        extra_dejson=extra or {},
    )


def test_kubeconfig_path_and_context() -> None:
    cfg = KubernetesHook.config_from_connection(
        conn({"kube_config_path": "/etc/kube/config", "cluster_context": "prod", "namespace": "batch", "timeout": "12"})
    )
    assert (cfg.kubeconfig_path, cfg.context, cfg.namespace, cfg.timeout) == ("/etc/kube/config", "prod", "batch", 12.0)
    assert cfg.verify_ssl and cfg.watch and cfg.delete_propagation_policy == "Background"


@pytest.mark.parametrize("form", ["dict", "json", "yaml"])
def test_kubeconfig_content_in_the_connection(form: str) -> None:
    value: Any = {"dict": KUBECONFIG, "json": json.dumps(KUBECONFIG), "yaml": yaml.safe_dump(KUBECONFIG)}[form]
    cfg = KubernetesHook.config_from_connection(conn({"kube_config": value}))
    assert cfg.kubeconfig == KUBECONFIG
    assert SECRET not in repr(cfg)


def test_cncf_provider_connection_extras_work_as_they_are() -> None:
    cfg = KubernetesHook.config_from_connection(
        conn(
            {
                "extra__kubernetes__in_cluster": True,
                "extra__kubernetes__namespace": "airflow",
                "extra__kubernetes__disable_verify_ssl": "true",
                "extra__kubernetes__kube_config_path": "",  # the UI stores empty fields
                "xcom_sidecar_container_image": "alpine",  # cncf-only settings are ignored
            }
        )
    )
    assert cfg.in_cluster and cfg.namespace == "airflow" and not cfg.verify_ssl and cfg.kubeconfig_path is None


def test_host_and_token_fields() -> None:
    cfg = KubernetesHook.config_from_connection(
        conn(
            {"ca_data": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
            host="api.k8s",
            port=6443,
            password=SECRET,
        )
    )
    assert cfg.host == "https://api.k8s:6443" and cfg.token == SECRET and SECRET not in repr(cfg)
    assert KubernetesHook.config_from_connection(conn(host="https://api.k8s:443")).host == "https://api.k8s:443"


@pytest.mark.parametrize(
    ("extra", "fields", "match"),
    [
        ({"delete_propagation_policy": "Cascade"}, {}, "k8s.*Background"),
        ({"in_cluster": True}, {"host": "https://x"}, "k8s.*one of"),
        ({"kube_config": "[1, 2"}, {}, "neither JSON nor YAML"),
        ({"kube_config": "- a list"}, {}, "kubeconfig mapping"),
        ({"in_cluster": "maybe"}, {}, "boolean"),
    ],
)
def test_bad_connections_name_the_connection(extra, fields, match) -> None:
    with pytest.raises(ValueError, match=match):
        KubernetesHook.config_from_connection(conn(extra, **fields))


def test_the_client_is_shared_and_built_from_the_connection(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_K8S_UNIT",
        json.dumps({"conn_type": "kubernetes_durable", "extra": {"kube_config": KUBECONFIG, "namespace": "x"}}),
    )
    KubernetesHook.clear_cache()
    try:
        first, second = KubernetesHook.get_client("k8s_unit"), KubernetesHook.get_client("k8s_unit")
        assert first is second and isinstance(first, KubernetesClient)
        assert first.config.namespace == "x"
    finally:
        KubernetesHook.clear_cache()


# --- trigger -------------------------------------------------------------------------------------------------

LOCATOR = {
    "kind": "Job",
    "namespace": "batch",
    "name": "load-dj0123456789abcdef0123",
    "uid": "0b7c3f6e-5a43-4d5e-9a57-0c9d9a3b1d2e",
}


def test_trigger_round_trips_with_only_the_conn_id() -> None:
    trig = KubernetesTrigger(job=LOCATOR, conn_id="k8s", token="dj0123456789abcdef0123", generation=1, deadline=1e10)
    classpath, kwargs = trig.serialize()
    assert classpath == "durable_jobs.triggers.kubernetes.KubernetesTrigger"
    assert import_string(classpath)(**kwargs).serialize() == (classpath, kwargs)
    text = json.dumps(kwargs)
    assert SECRET not in text and "kube_config" not in text and 'token": "ey' not in text
    assert kwargs["job"] == LOCATOR and kwargs["conn_id"] == "k8s"


# --- operators ----------------------------------------------------------------------------------------------


def context(map_index: int = -1) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="etl", run_id="manual__2026-01-01T00:00:00+00:00", task_id="load.part", map_index=map_index
    )
    return {"ti": ti}


def record(generation: int, map_index: int = -1) -> JobRecord:
    """The intent the protocol hands build_spec for the generation it is about to submit."""
    who = TaskIdentity("etl", "manual__2026-01-01T00:00:00+00:00", "load.part", map_index)
    return JobRecord.intent(system="kubernetes", identity=who, generation=generation, timeout=None)


def test_job_operator_from_an_image_with_identity_labels_and_generation(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    monkeypatch.delenv("AIRFLOW__DURABLE_JOBS__DEFAULT_DEFERRABLE", raising=False)
    op = KubernetesJobOperator(
        task_id="load.part",
        image="busybox:1.36",
        cmds=["sh", "-c"],
        arguments=["echo hi"],
        env_vars={"N": 3},
        backoff_limit=0,
        active_deadline_seconds=600,
        labels={"team": "data"},
    )
    assert op.deferrable is True  # deferrable by default
    spec = op.build_spec(context(map_index=4), record(2, map_index=4))
    assert spec.kind == "Job" and spec.namespace is None and spec.name == "load.part"
    token = make_token("etl", "manual__2026-01-01T00:00:00+00:00", "load.part", 4, 2)
    body = spec.render(token, "batch")
    assert body["metadata"]["name"] == f"load-part-{token}"
    labels = body["metadata"]["labels"]
    assert labels[MANAGED_LABEL] == "true" and labels[TOKEN_LABEL] == token and labels["team"] == "data"
    assert labels["durable-jobs.io/dag-id"] == "etl" and labels["durable-jobs.io/task-id"] == "load.part"
    assert labels["durable-jobs.io/map-index"] == "4" and labels["durable-jobs.io/generation"] == "2"
    assert body["metadata"]["annotations"]["durable-jobs.io/run-id"] == "manual__2026-01-01T00:00:00+00:00"
    job_spec = body["spec"]
    assert job_spec["backoffLimit"] == 0 and job_spec["activeDeadlineSeconds"] == 600
    container = job_spec["template"]["spec"]["containers"][0]
    assert container == {
        "name": "main",
        "image": "busybox:1.36",
        "command": ["sh", "-c"],
        "args": ["echo hi"],
        "env": [{"name": "N", "value": "3"}],
    }
    assert job_spec["template"]["metadata"]["labels"][TOKEN_LABEL] == token


def test_job_operator_takes_a_full_manifest_or_only_its_spec() -> None:
    spec_only = {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}, "backoffLimit": 1}
    full = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": {"a": "b"}}, "spec": spec_only}
    for job in (spec_only, full):
        body = KubernetesJobOperator(task_id="t", job=job).build_spec(context()).render("dj" + "0" * 20, "ns")
        assert body["spec"]["backoffLimit"] == 1 and body["kind"] == "Job"
    with pytest.raises(ValueError, match="either job="):
        KubernetesJobOperator(task_id="t", job=spec_only, image="i")
    with pytest.raises(ValueError, match="derived from the durable_jobs token"):
        KubernetesJobOperator(task_id="t", job={**full, "metadata": {"name": "fixed"}})


def test_templated_fields_are_validated_when_rendered_not_at_parse_time() -> None:
    op = KubernetesJobOperator(task_id="t", image="busybox", namespace="{{ var.value.batch_namespace }}")
    assert op.namespace == "{{ var.value.batch_namespace }}"
    with pytest.raises(ValueError, match="invalid namespace"):
        op.build_spec(context())  # still unrendered: refused before any request


def test_pod_operator_with_a_model_and_restart_policy_rules() -> None:
    pod = V1Pod(spec=V1PodSpec(containers=[V1Container(name="main", image="busybox", args=["true"])]))
    body = KubernetesPodOperator(task_id="p", pod=pod).build_spec(context()).render("dj" + "1" * 20, "ns")
    assert body["kind"] == "Pod" and body["spec"]["restartPolicy"] == "Never"
    with pytest.raises(ValueError, match="restartPolicy Never"):
        KubernetesPodOperator(
            task_id="p", pod={"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}
        )
    simple = KubernetesPodOperator(task_id="p", image="busybox", cmds=["true"]).build_spec(None)
    assert simple.manifest["spec"]["containers"][0]["command"] == ["true"]


def test_spark_application_operator() -> None:
    app = {"type": "Scala", "mode": "cluster", "image": "spark:4.0.0", "mainClass": "org.apache.spark.examples.SparkPi"}
    op = SparkApplicationOperator(task_id="pi", application=app, namespace="spark")
    spec = op.build_spec(context(), record(0))
    assert spec.kind == "SparkApplication" and spec.namespace == "spark"
    body = spec.render("dj" + "2" * 20, "spark")
    assert body["apiVersion"] == "sparkoperator.k8s.io/v1beta2" and body["spec"]["mainClass"].endswith("SparkPi")
    assert body["spec"]["driver"]["labels"][TOKEN_LABEL] == "dj" + "2" * 20


def test_max_response_bytes_and_a_rotated_password_keep_the_key() -> None:
    fields = {"host": "https://api.k8s:6443", "password": SECRET}
    cfg = KubernetesHook.config_from_connection(conn({"max_response_bytes": "4MiB"}, **fields))
    assert cfg.max_response_bytes == 4 * 1024 * 1024
    assert KubernetesHook.config_from_connection(conn(**fields)).max_response_bytes == 16 * 1024 * 1024
    with pytest.raises(ValueError, match="max_response_bytes"):
        KubernetesHook.config_from_connection(conn({"max_response_bytes": "lots"}, **fields))
    rotated = KubernetesHook.client_from_connection(
        conn({"max_response_bytes": "4MiB"}, host=fields["host"], password="new")
    )
    assert rotated.key == KubernetesHook.client_from_connection(conn({"max_response_bytes": "4MiB"}, **fields)).key
    assert SECRET not in repr(rotated.key) and "new" not in str(rotated.key[1])
