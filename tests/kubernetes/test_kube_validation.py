"""Kubernetes connections set up wrong: a kubeconfig that is not there, not readable, or names no cluster.

Before, a missing ``kube_config_path`` surfaced as the loader's "Expected key current-context" at the first
request, and the task retried. Now the hook names the connection, the field, the file, this host, and the fix.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from durable_jobs.clients.kubernetes import KubernetesClient
from durable_jobs.errors import ConnectionConfigError
from durable_jobs.hooks import kubernetes as kube_hook
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs_harness.connections import connection, refusal

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.never-in-a-message"
KUBECONFIG: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": TOKEN}}],
    "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "ctx",
}


def conn(extra: dict[str, Any] | None = None, **fields: Any) -> SimpleNamespace:
    return connection({"conn_id": "k", "conn_type": "kubernetes_durable", "extra_dejson": extra or {}}, **fields)


def refused(c: SimpleNamespace) -> str:
    return refusal(KubernetesHook, c, secrets=(TOKEN,))


def write(tmp_path: Path, data: Any) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_a_kubeconfig_path_that_does_not_exist_names_this_host(tmp_path):
    missing = str(tmp_path / "nope")
    assert refused(conn({"kube_config_path": missing})) == (
        f"connection 'k' extra kube_config_path {missing!r} does not exist on this host ({socket.gethostname()}): "
        "the file must be on every worker and triggerer, or put its content in extra kube_config"
    )


def test_no_source_and_no_default_kubeconfig(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    text = refused(conn())
    assert text.startswith("connection 'k' names no cluster (kube_config_path, kube_config, in_cluster or host), and ")
    assert f"the default kubeconfig {str(tmp_path / 'absent')!r} does not exist on this host" in text


def test_in_cluster_outside_a_pod(monkeypatch, tmp_path):
    monkeypatch.setattr(kube_hook, "SERVICE_ACCOUNT_TOKEN", str(tmp_path / "token"))
    text = refused(conn({"in_cluster": True}))
    token = tmp_path / "token"
    assert text.startswith(f"connection 'k' sets extra in_cluster, but {token} does not exist on this host")


@pytest.mark.parametrize(
    ("data", "context", "problem"),
    [
        ({**KUBECONFIG, "current-context": None}, None, "has no current-context: set one (kubectl config use-context"),
        (KUBECONFIG, "prod", "has no context 'prod' (its contexts: ctx)"),
        (
            {**KUBECONFIG, "contexts": [{"name": "ctx", "context": {"cluster": "gone", "user": "u"}}]},
            None,
            "has no cluster 'gone', which context 'ctx' names",
        ),
        ({**KUBECONFIG, "clusters": [{"name": "c", "cluster": {}}]}, None, "names no server for cluster 'c'"),
        ("clusters: [\n  - name: c\n  token: " + TOKEN + "\n  bad: [", None, "is not valid YAML at line"),
        ("- just\n- a list\n", None, "is not a kubeconfig mapping"),
    ],
)
def test_a_kubeconfig_file_that_names_no_cluster(tmp_path, data, context, problem):
    path = write(tmp_path, data)
    text = refused(conn({"kube_config_path": path, "cluster_context": context}))
    assert text.startswith(f"connection 'k' extra kube_config_path {path!r} {problem}")


def test_the_same_checks_for_a_kubeconfig_kept_in_the_connection():
    text = refused(conn({"kube_config": {**KUBECONFIG, "current-context": ""}}))
    assert text.startswith("connection 'k' extra kube_config has no current-context")


def test_a_kubeconfig_path_that_cannot_be_read(tmp_path):
    path = tmp_path / "kube"
    path.mkdir()  # a directory: unreadable as a file for any user, root too
    assert refused(conn({"kube_config_path": str(path)})) == (
        f"connection 'k' extra kube_config_path {str(path)!r} cannot be read on this host ({socket.gethostname()}): "
        "Is a directory"
    )


def test_a_spark_k8s_master_url_as_host():
    text = refused(conn(host="k8s://https://10.0.0.1:6443"))
    assert "names k8s://https://10.0.0.1:6443, Spark's k8s:// master URL" in text
    assert "give the apiserver's URL as host (e.g. https://10.0.0.1:6443)" in text


def test_right_connections_pass(tmp_path, monkeypatch):
    path = write(tmp_path, KUBECONFIG)
    for c in (
        conn({"kube_config_path": path}),
        conn({"kube_config_path": path, "cluster_context": "ctx"}, conn_type="kubernetes"),
        conn({"kube_config": KUBECONFIG}),
        conn(host="https://10.0.0.1:6443", password=TOKEN),
    ):
        assert isinstance(KubernetesHook.build_client(c), KubernetesClient)
    monkeypatch.setenv("KUBECONFIG", path)
    assert isinstance(KubernetesHook.build_client(conn()), KubernetesClient)


async def test_the_triggerer_reads_the_file_in_a_thread_and_names_the_problem(monkeypatch, tmp_path):
    missing = str(tmp_path / "nope")
    monkeypatch.setenv(
        "AIRFLOW_CONN_K_MISSING", json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": missing}})
    )
    DurableJobHook.clear_cache()
    try:
        with pytest.raises(ConnectionConfigError, match=f"extra kube_config_path '{missing}' does not exist"):
            await KubernetesHook.aget_client("k_missing")
    finally:
        DurableJobHook.clear_cache()
