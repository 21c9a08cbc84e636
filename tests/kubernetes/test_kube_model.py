"""Kubernetes names, labels, manifests, locators, status normalization and Status errors (no server).

The status shapes are what a real apiserver (1.31+) and spark-operator (v1beta2) return: Job conditions with
their reasons, pod phases with container states, SparkApplication ``applicationState``.
"""

from __future__ import annotations

import datetime
import json
import re
from types import MappingProxyType

import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    V1Container,
    V1EnvVar,
    V1Job,
    V1JobSpec,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
    V1ResourceRequirements,
)

from durable_jobs.clients.kubernetes import (
    MANAGED_LABEL,
    TOKEN_LABEL,
    KubeApiError,
    KubeObject,
    KubernetesClient,
    KubernetesConfig,
    api_error,
    identity_metadata,
    job_status,
    label_value,
    object_name,
    pod_status,
    spark_application_status,
    to_wire,
)
from durable_jobs.clients.kubernetes.errors import ResourceExpired
from durable_jobs.errors import AuthError, MalformedAnswer, RecordError, TransientError
from durable_jobs.status import JobState

TOKEN = "dj0123456789abcdef0123"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # DNS-1035: what Services need, stricter than DNS-1123
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
JOB_SPEC = {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}}


# --- names and labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    ["my_task", "Task.With.Dots", "9starts-with-a-digit", "ünïcödé tâsk", "a" * 100, "", "---", "UPPER__case--x"],
)
@pytest.mark.parametrize("limit", [63, 52])
def test_names_are_deterministic_valid_and_bounded(prefix: str, limit: int) -> None:
    name = object_name(prefix, TOKEN, limit)
    assert name == object_name(prefix, TOKEN, limit)
    assert len(name) <= limit and DNS_LABEL.match(name), name
    assert name.endswith(TOKEN)
    assert object_name(prefix, "dj0123456789abcdef0124", limit) != name


def test_name_keeps_a_readable_prefix() -> None:
    assert object_name("my_task.step", TOKEN) == f"my-task-step-{TOKEN}"
    assert object_name("", TOKEN) == TOKEN
    with pytest.raises(RecordError):
        object_name("x", "not-a-token")


def test_label_values_are_valid_and_stay_distinct() -> None:
    assert label_value("etl_daily") == "etl_daily"
    run_a = "scheduled__2026-01-01T00:00:00+00:00"
    run_b = "scheduled__2026-01-02T00:00:00+00:00"
    for value in (run_a, "x" * 64, "ünï", "-leading", "a:b", ""):
        out = label_value(value)
        assert len(out) <= 63 and LABEL_VALUE.match(out), (value, out)
    assert label_value(run_a) != label_value(run_b)
    assert label_value("y" * 80) != label_value("y" * 81)


def test_identity_metadata_labels_and_exact_annotations() -> None:
    labels, annotations = identity_metadata(
        dag_id="etl", task_id="load.step", run_id="manual__2026-01-01T00:00:00+00:00", map_index=-1, generation=2
    )
    assert MANAGED_LABEL not in labels  # the client adds it, with the token
    assert "durable-jobs.io/map-index" not in labels
    assert labels["durable-jobs.io/generation"] == "2"
    assert annotations["durable-jobs.io/run-id"] == "manual__2026-01-01T00:00:00+00:00"
    assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in labels.values())
    mapped, _ = identity_metadata(dag_id="etl", task_id="t", run_id="r", map_index=3)
    assert mapped["durable-jobs.io/map-index"] == "3"


# --- manifests ------------------------------------------------------------------------------------------------


def test_job_render_names_labels_and_defaults_without_touching_the_input() -> None:
    manifest = {"metadata": {"labels": {"team": "data"}}, "spec": json.loads(json.dumps(JOB_SPEC))}
    spec = KubeObject("Job", manifest, namespace="batch", name="load", labels={"x": "1"}, annotations={"a": "b"})
    body = spec.render(TOKEN, "batch")
    assert body["apiVersion"] == "batch/v1" and body["kind"] == "Job"
    assert body["metadata"]["name"] == f"load-{TOKEN}" and body["metadata"]["namespace"] == "batch"
    assert body["metadata"]["labels"] == {"team": "data", "x": "1", MANAGED_LABEL: "true", TOKEN_LABEL: TOKEN}
    assert body["metadata"]["annotations"] == {"a": "b"}
    template = body["spec"]["template"]
    assert template["spec"]["restartPolicy"] == "Never"
    # the pods carry the token (to be found), not the "managed" label (they are not watched)
    assert template["metadata"]["labels"] == {"x": "1", TOKEN_LABEL: TOKEN}
    assert "restartPolicy" not in manifest["spec"]["template"]["spec"] and "name" not in manifest["metadata"]


def test_pod_and_spark_application_render() -> None:
    pod = KubeObject("Pod", {"spec": {"containers": [{"name": "c", "image": "i"}]}}, name="p").render(TOKEN, "ns")
    assert pod["spec"]["restartPolicy"] == "Never" and pod["apiVersion"] == "v1"
    app = KubeObject("SparkApplication", {"spec": {"type": "Scala", "driver": {"cores": 1}}}, name="a" * 60).render(
        TOKEN, "ns"
    )
    assert len(app["metadata"]["name"]) <= 52
    assert app["spec"]["driver"]["labels"] == {TOKEN_LABEL: TOKEN}
    assert app["spec"]["executor"]["labels"] == {TOKEN_LABEL: TOKEN}
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"


def test_kubernetes_models_are_sent_as_the_wire_json() -> None:
    job = V1Job(
        metadata=V1ObjectMeta(labels={"team": "data"}),
        spec=V1JobSpec(
            backoff_limit=2,
            active_deadline_seconds=60,
            template=V1PodTemplateSpec(
                spec=V1PodSpec(
                    restart_policy="Never", containers=[V1Container(name="main", image="busybox", command=["true"])]
                )
            ),
        ),
    )
    wire = to_wire(job)
    assert wire["spec"]["backoffLimit"] == 2 and wire["spec"]["activeDeadlineSeconds"] == 60
    assert wire["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "backoff_limit" not in json.dumps(wire)
    body = KubeObject("Job", job, name="m").render(TOKEN, "ns")
    assert body["metadata"]["labels"]["team"] == "data"
    with pytest.raises(TypeError):
        to_wire(object())


def test_to_wire_sends_models_as_kubernetes_asyncio_does_and_normalizes_the_rest() -> None:
    """Equal to ApiClient.sanitize_for_serialization for models; kept for what it does beyond (see to_wire)."""
    created = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    job = V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=V1ObjectMeta(labels={"team": "data"}, annotations={"a/b": "c"}, creation_timestamp=created),
        spec=V1JobSpec(
            backoff_limit=0,
            completions=3,
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels={"x": "y"}),
                spec=V1PodSpec(
                    restart_policy="Never",
                    containers=[
                        V1Container(
                            name="main",
                            image="busybox",
                            command=["sh", "-c"],
                            args=["echo 1.5 true"],
                            env=[V1EnvVar(name="A", value="1"), V1EnvVar(name="B", value="")],
                            resources=V1ResourceRequirements(limits={"cpu": "1", "memory": "1Gi"}),
                        )
                    ],
                ),
            ),
        ),
    )
    sanitize = ApiClient.sanitize_for_serialization  # an unbound call: no ApiClient (no aiohttp session) is built
    api = ApiClient.__new__(ApiClient)
    for value in (job, {"spec": job.spec, "n": 1.5, "flag": False, "none": None}, [job.metadata, "s", 3]):
        assert to_wire(value) == sanitize(api, value)
        assert json.dumps(to_wire(value), sort_keys=True) == json.dumps(sanitize(api, value), sort_keys=True)
    # where they differ, to_wire is what the manifest checks rely on
    containers = ({"name": "main", "image": "busybox"},)
    assert to_wire({"containers": containers}) == {"containers": [{"name": "main", "image": "busybox"}]}
    assert isinstance(sanitize(api, {"containers": containers})["containers"], tuple)
    assert to_wire(MappingProxyType({"a": 1})) == {"a": 1}
    with pytest.raises(AttributeError):
        sanitize(api, MappingProxyType({"a": 1}))
    with pytest.raises(TypeError):
        to_wire(b"bytes")
    assert sanitize(api, b"bytes") == b"bytes"


@pytest.mark.parametrize(
    ("kind", "manifest", "kwargs", "match"),
    [
        ("Job", {"metadata": {"name": "fixed"}, "spec": JOB_SPEC}, {}, "derived from the durable_jobs token"),
        ("Job", {"metadata": {"generateName": "x-"}, "spec": JOB_SPEC}, {}, "derived from the durable_jobs token"),
        ("Job", {"kind": "Pod", "spec": JOB_SPEC}, {}, "not a batch/v1/Job"),
        ("Job", {"spec": {"template": {"spec": {"containers": []}}}}, {}, "at least one container"),
        (
            "Job",
            {"spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}},
            {},
            "Never or OnFailure",
        ),
        ("Job", {"spec": {**JOB_SPEC, "manualSelector": True}}, {}, "manualSelector"),
        ("Job", {"metadata": {"namespace": "a"}, "spec": JOB_SPEC}, {"namespace": "b"}, "contradicts"),
        ("Job", {"spec": JOB_SPEC}, {"namespace": "Bad_NS"}, "invalid namespace"),
        ("Job", {"spec": JOB_SPEC}, {"labels": {"k": "x" * 64}}, "invalid label value"),
        ("Job", {"spec": JOB_SPEC}, {"labels": {"bad key!": "v"}}, "invalid label key"),
        (
            "Pod",
            {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}},
            {},
            "restartPolicy Never",
        ),
        ("Pod", {"spec": {"containers": [{"name": "c"}]}}, {}, "a name and an image"),
        ("CronJob", {"spec": {}}, {}, "unknown kind"),
        ("SparkApplication", {"metadata": {}}, {}, "needs a spec"),
    ],
)
def test_bad_manifests_are_refused_before_any_request(kind, manifest, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        KubeObject(kind, manifest, **kwargs)


# --- locators -------------------------------------------------------------------------------------------------

GOOD = {"kind": "Job", "namespace": "batch", "name": f"load-{TOKEN}", "uid": "0b7c3f6e-5a43-4d5e-9a57-0c9d9a3b1d2e"}


def test_locator_validation() -> None:
    client = KubernetesClient(KubernetesConfig(host="https://127.0.0.1:6443"))
    assert client.validate_locator(GOOD) == GOOD
    assert client.describe(GOOD) == f"Job batch/load-{TOKEN}"
    bad = [
        {**GOOD, "extra": 1},
        {k: v for k, v in GOOD.items() if k != "uid"},
        {**GOOD, "kind": "CronJob"},
        {**GOOD, "name": "../../secrets/x"},
        {**GOOD, "name": "a/b"},
        {**GOOD, "name": "Upper"},
        {**GOOD, "namespace": "kube_system"},
        {**GOOD, "uid": "not-a-uid"},
        {**GOOD, "uid": 7},
        "Job/batch/x",
    ]
    for locator in bad:
        with pytest.raises(RecordError):
            client.validate_locator(locator)  # type: ignore[arg-type]


# --- status normalization ---------------------------------------------------------------------------------------


def _cond(type_: str, reason: str = "", message: str = "", status: str = "True") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("status", "state", "raw", "text"),
    [
        ({}, JobState.PENDING, "Pending", ""),
        ({"active": 1, "ready": 1}, JobState.RUNNING, "Running", "active 1"),
        (
            {"succeeded": 1, "conditions": [_cond("SuccessCriteriaMet"), _cond("Complete")]},
            JobState.SUCCEEDED,
            "Complete",
            "succeeded 1",
        ),
        (
            {"conditions": [_cond("SuccessCriteriaMet", "CompletionsReached")]},
            JobState.RUNNING,
            "SuccessCriteriaMet",
            "",
        ),
        (
            {
                "failed": 7,
                "conditions": [
                    _cond("FailureTarget", "BackoffLimitExceeded"),
                    _cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                ],
            },
            JobState.FAILED,
            "Failed",
            "BackoffLimitExceeded: Job has reached the specified backoff limit",
        ),
        (
            {"conditions": [_cond("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")]},
            JobState.FAILED,
            "Failed",
            "DeadlineExceeded",
        ),
        (
            {"conditions": [_cond("FailureTarget", "PodFailurePolicy")]},
            JobState.RUNNING,
            "FailureTarget",
            "terminating",
        ),
        ({"conditions": [_cond("Suspended", "JobSuspended")]}, JobState.PENDING, "Suspended", "suspended"),
        ({"conditions": [_cond("Complete", status="False")], "active": 1}, JobState.RUNNING, "Running", ""),
    ],
)
def test_job_status(status, state, raw, text) -> None:
    st = job_status({"status": status})
    assert (st.state, st.raw_state) == (state, raw) and text in st.message


def _container(name: str, **state) -> dict:
    return {"name": name, "ready": False, "restartCount": 0, "state": state}


@pytest.mark.parametrize(
    ("pod", "state", "raw", "text"),
    [
        ({"status": {"phase": "Pending"}}, JobState.PENDING, "Pending", ""),
        (
            {
                "status": {
                    "phase": "Pending",
                    "containerStatuses": [_container("main", waiting={"reason": "ContainerCreating"})],
                }
            },
            JobState.PENDING,
            "Pending",
            "ContainerCreating",
        ),
        (
            {
                "status": {
                    "phase": "Pending",
                    "containerStatuses": [
                        _container(
                            "main", waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}
                        )
                    ],
                }
            },
            JobState.PENDING,
            "ImagePullBackOff",
            'Back-off pulling image "x"',
        ),
        (
            {
                "status": {
                    "phase": "Pending",
                    "containerStatuses": [_container("main", waiting={"reason": "ErrImagePull"})],
                }
            },
            JobState.PENDING,
            "ErrImagePull",
            "",
        ),
        (
            {
                "status": {
                    "phase": "Pending",
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
                    ],
                }
            },
            JobState.PENDING,
            "Unschedulable",
            "0/3 nodes",
        ),
        ({"status": {"phase": "Running"}}, JobState.RUNNING, "Running", ""),
        ({"status": {"phase": "Succeeded"}}, JobState.SUCCEEDED, "Succeeded", ""),
        (
            {
                "status": {
                    "phase": "Failed",
                    "containerStatuses": [_container("main", terminated={"exitCode": 137, "reason": "OOMKilled"})],
                }
            },
            JobState.FAILED,
            "Failed",
            "container main: OOMKilled (exit code 137)",
        ),
        (
            {
                "status": {
                    "phase": "Failed",
                    "reason": "Evicted",
                    "message": "The node was low on resource: memory.",
                    "containerStatuses": [
                        _container("main", terminated={"exitCode": 137, "reason": "ContainerStatusUnknown"})
                    ],
                }
            },
            JobState.FAILED,
            "Evicted",
            "Evicted: The node was low on resource: memory.",
        ),
        (
            {
                "status": {
                    "phase": "Failed",
                    "initContainerStatuses": [_container("init", terminated={"exitCode": 1, "reason": "Error"})],
                    "containerStatuses": [_container("main", waiting={"reason": "PodInitializing"})],
                }
            },
            JobState.FAILED,
            "Failed",
            "container init: Error (exit code 1)",
        ),
        ({"status": {"phase": "Unknown"}}, JobState.UNKNOWN, "Unknown", "stopped reporting"),
        ({"status": {"phase": "Hibernating"}}, JobState.UNKNOWN, "Hibernating", "unknown pod phase"),
        (
            {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}},
            JobState.RUNNING,
            "Running",
            "being deleted",
        ),
    ],
)
def test_pod_status(pod, state, raw, text) -> None:
    st = pod_status(pod)
    assert (st.state, st.raw_state) == (state, raw) and text in st.message, st


def _app(state: str | None, restart: str | None = None, **status) -> dict:
    obj: dict = {"spec": {"type": "Scala"}, "status": dict(status)}
    if state is not None:
        obj["status"]["applicationState"] = {"state": state, "errorMessage": "driver container failed with ExitCode: 1"}
    if restart:
        obj["spec"]["restartPolicy"] = {"type": restart, "onSubmissionFailureRetries": 3}
    return obj


@pytest.mark.parametrize(
    ("app", "state"),
    [
        ({"spec": {}}, JobState.PENDING),  # no status yet: the operator has not seen it
        (_app("SUBMITTED"), JobState.PENDING),
        (_app("RUNNING"), JobState.RUNNING),
        (_app("PENDING_RERUN"), JobState.PENDING),
        (_app("SUCCEEDING"), JobState.RUNNING),
        (_app("FAILING"), JobState.RUNNING),
        (_app("COMPLETED"), JobState.SUCCEEDED),
        (_app("FAILED"), JobState.FAILED),
        (_app("SUBMISSION_FAILED"), JobState.FAILED),
        (_app("SUBMISSION_FAILED", "OnFailure"), JobState.PENDING),  # the operator submits again
        (_app("UNKNOWN"), JobState.UNKNOWN),
        (_app("SOMETHING_NEW"), JobState.UNKNOWN),
    ],
)
def test_spark_application_status(app, state) -> None:
    assert spark_application_status(app).state is state


def test_spark_application_status_details() -> None:
    st = spark_application_status(
        _app(
            "FAILED",
            sparkApplicationId="spark-123",
            driverInfo={"podName": "pi-driver", "webUIIngressAddress": "spark.example.com/pi"},
        )
    )
    assert st.message == "driver container failed with ExitCode: 1"
    assert st.extra == {"spark_application_id": "spark-123", "driver_pod": "pi-driver"}
    assert st.tracking_url == "http://spark.example.com/pi"


# --- Status errors ------------------------------------------------------------------------------------------------


def _status(code: int, reason: str, message: str, details: dict | None = None) -> bytes:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    body.update(reason=reason, code=code, details=details if details is not None else {})
    return json.dumps(body).encode()


def test_status_errors_map_to_error_classes() -> None:
    nf = api_error(404, _status(404, "NotFound", 'jobs.batch "x" not found', {"name": "x", "kind": "jobs"}), {}, "read")
    assert isinstance(nf, KubeApiError) and nf.reason == "NotFound" and nf.details.name == "x"
    assert 'jobs.batch "x" not found' in str(nf)
    exists = api_error(409, _status(409, "AlreadyExists", "exists"), {}, "create")
    assert isinstance(exists, KubeApiError) and exists.reason == "AlreadyExists" and exists.status == 409
    invalid = api_error(422, _status(422, "Invalid", 'Job "x" is invalid: spec.template: Required value'), {}, "create")
    assert isinstance(invalid, KubeApiError) and "Required value" in str(invalid)
    for code in (401, 403):
        assert isinstance(api_error(code, _status(code, "Forbidden", "no"), {}, "get"), AuthError)
    gone = api_error(410, _status(410, "Expired", "too old resource version: 1 (5)"), {}, "watch")
    assert isinstance(gone, ResourceExpired)
    throttled = api_error(429, _status(429, "TooManyRequests", "slow down"), {"Retry-After": "3"}, "list")
    assert isinstance(throttled, TransientError) and throttled.retry_after == 3.0
    for code in (500, 502, 503, 504):
        assert type(api_error(code, b"<html>bad gateway</html>", {}, "get")) is TransientError
    # not a Status: not the apiserver speaking, so not a refusal of the request: unknown (transient)
    proxy = api_error(400, b"<html><body>Bad Request from proxy</body></html>", {}, "get")
    assert isinstance(proxy, MalformedAnswer) and "Bad Request from proxy" in str(proxy)
    wrong_types = api_error(404, b'{"kind": "Status", "code": "404", "reason": ["NotFound"]}', {}, "get")
    assert isinstance(wrong_types, MalformedAnswer)
    # a Status quoting our credentials: redacted
    echo = api_error(
        400, _status(400, "BadRequest", "bad header: Bearer sekrit-token-123"), {}, "get", ("sekrit-token-123",)
    )
    assert "sekrit" not in str(echo)


# --- configuration ------------------------------------------------------------------------------------------------


def test_config_hides_credentials_and_keys_by_digest() -> None:
    secret = "eyJhbGciOiJSUzI1NiJ9.very-secret"
    config = KubernetesConfig(host="https://10.0.0.1:6443", token=secret, ca_data="-----BEGIN CERTIFICATE-----x")
    assert secret not in repr(config) and "BEGIN" not in repr(config)
    assert secret not in repr(config.key)
    assert (
        config.key
        == KubernetesConfig(host="https://10.0.0.1:6443", token=secret, ca_data="-----BEGIN CERTIFICATE-----x").key
    )
    # the key is the endpoint: a rotated token keeps the poller (and its waiters); the connection is new
    rotated = KubernetesConfig(host="https://10.0.0.1:6443", token="other", ca_data="-----BEGIN CERTIFICATE-----x")
    assert config.key == rotated.key and config.connection_key != rotated.connection_key
    assert config.key != KubernetesConfig(host="https://10.0.0.2:6443", token=secret).key
    assert config.key != KubernetesConfig(host="https://10.0.0.1:6443", token=secret, namespace="other").key
    kube = KubernetesConfig(kubeconfig={"users": [{"user": {"token": secret}}]})
    assert secret not in repr(kube)
    direct = config.direct_kubeconfig()
    assert direct["users"][0]["user"]["token"] == secret
    assert direct["clusters"][0]["cluster"]["certificate-authority-data"] != "-----BEGIN CERTIFICATE-----x"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_cluster": True, "kubeconfig_path": "/k"}, "one of"),
        ({"host": "10.0.0.1:6443"}, "apiserver URL"),
        ({"delete_propagation_policy": "Cascade"}, "Background"),
        ({"timeout": 0}, "positive"),
        ({"namespace": "Not_Valid"}, "namespace"),
        ({"log_tail_lines": -1}, "log_tail_lines"),
    ],
)
def test_config_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        KubernetesConfig(**kwargs)


def _kubeconfig(token: str, server: str = "https://10.0.0.1:6443", namespace: str = "team") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": "Q0EK"}}],
        "users": [{"name": "u", "user": {"token": token}}, {"name": "other", "user": {"token": "x" + token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
        "current-context": "ctx",
    }


def test_a_kubeconfig_key_names_its_cluster_and_context_never_its_users() -> None:
    before = KubernetesConfig(kubeconfig=_kubeconfig("token-one-123456"))
    after = KubernetesConfig(kubeconfig=_kubeconfig("token-two-654321"))
    assert before.key == after.key and before.connection_key != after.connection_key
    assert "token-one" not in repr(before.key)
    assert before.key != KubernetesConfig(kubeconfig=_kubeconfig("token-one-123456", server="https://10.9.9.9")).key
    assert before.key != KubernetesConfig(kubeconfig=_kubeconfig("token-one-123456", namespace="x")).key
    assert "server https://10.0.0.1:6443" in before.describe_source()
    # garbage where a kubeconfig was expected still has a key (its loading fails later, with a message)
    assert KubernetesConfig(kubeconfig={"contexts": "nope", "clusters": [1, 2]}).key


def test_the_locator_must_show_the_token() -> None:
    client = KubernetesClient(KubernetesConfig(host="https://127.0.0.1:6443"))
    assert client.locator_matches_token(GOOD, TOKEN)
    assert not client.locator_matches_token(GOOD, "dj0123456789abcdef0124")
    assert client.locator_matches_token({**GOOD, "name": TOKEN}, TOKEN)
    for name in (f"x{TOKEN}", f"-{TOKEN}", f"Load-{TOKEN}", f"a--b-{TOKEN}", f"load-{TOKEN}-x", "load"):
        assert not client.locator_matches_token({**GOOD, "name": name}, TOKEN), name
    long_app = object_name("a" * 60, TOKEN, 52)
    assert client.locator_matches_token({**GOOD, "kind": "SparkApplication", "name": long_app}, TOKEN)
    assert not client.locator_matches_token({**GOOD, "kind": "CronJob"}, TOKEN)
    assert not client.locator_matches_token(GOOD, "not-a-token")
