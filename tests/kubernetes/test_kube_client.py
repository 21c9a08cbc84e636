"""The Kubernetes client over TLS against the contract fake apiserver (and a real cluster when configured).

Every test goes through the real kubeconfig loader, TLS verification and bearer tokens. Tests taking ``kube``
also run against a real cluster with DURABLE_JOBS_KUBE_REAL=1 (see durable_jobs_harness.kube_fixtures); tests
taking ``kube_fake`` use the fake's hooks (evictions, injected errors, token rotation).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from durable_jobs.clients.base import Locator
from durable_jobs.clients.kubernetes import (
    KINDS,
    TOKEN_LABEL,
    KubeApiError,
    KubeObject,
    KubernetesClient,
    KubernetesConfig,
)
from durable_jobs.errors import AuthError, TransientError
from durable_jobs.polling import PollSettings, WaitResult, wait_for_outcome
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.http import open_sessions
from durable_jobs_harness.fake_kube import TlsMaterial, kubeconfig_dict, write_kubeconfig
from durable_jobs_harness.kube_fixtures import KubeTarget, eventually, fake_target

pytestmark = pytest.mark.usefixtures("kube_loop_cleanup")


def new_token() -> str:
    return "dj" + secrets.token_hex(10)


def job(kube: KubeTarget, script: str, *, name: str = "job", backoff: int = 0, **spec: Any) -> KubeObject:
    container = {"name": "main", "image": kube.image, "command": ["sh", "-c", script]}
    return KubeObject(
        "Job",
        {"spec": {"backoffLimit": backoff, "template": {"spec": {"containers": [container]}}, **spec}},
        name=name,
        labels=kube.labels,
    )


def pod(kube: KubeTarget, script: str, *, name: str = "pod", image: str | None = None, **container: Any) -> KubeObject:
    c = {"name": "main", "image": image or kube.image, "command": ["sh", "-c", script], **container}
    return KubeObject("Pod", {"spec": {"containers": [c]}}, name=name, labels=kube.labels)


async def outcome(client: KubernetesClient, loc: Locator, kube: KubeTarget) -> WaitResult:
    settings = PollSettings(interval=0.1 if kube.fake else 1.0)
    return await wait_for_outcome(client, loc, settings, deadline=time.time() + kube.wait_limit)


async def with_token(client: KubernetesClient, kind: str, namespace: str, token: str) -> list[dict[str, Any]]:
    """Objects of ``kind`` carrying ``token``, straight from the apiserver."""
    conn = await client.connection()
    reply = await conn.call(
        "GET", KINDS[kind].collection(namespace), query=[("labelSelector", f"{TOKEN_LABEL}={token}")], what="list"
    )
    return list(reply.json().get("items") or ())


async def status_until(client: KubernetesClient, loc: Locator, accept: Any, *, timeout: float) -> JobStatus:
    found: list[JobStatus] = []

    async def check() -> bool:
        found[:] = [await client.status(loc)]
        return bool(accept(found[0]))

    await eventually(check, timeout=timeout, what=f"status of {loc['name']}")
    return found[0]


# --- create, adopt, find, succeed, fail ---------------------------------------------------------------------------


async def test_job_succeeds_and_create_is_idempotent_by_name(kube: KubeTarget) -> None:
    client, token = kube.client(), new_token()
    spec = job(kube, "echo start; sleep 1; echo done")
    loc = await client.submit(spec, token)
    assert loc["kind"] == "Job" and loc["namespace"] == kube.namespace and loc["name"] == f"job-{token}"
    assert await client.submit(spec, token) == loc  # answered 409 AlreadyExists: adopted, same uid
    assert await client.find(token, since=0, spec=spec) == loc
    assert await client.find(new_token(), since=0, spec=spec) is None
    result = await outcome(client, loc, kube)
    assert result.status == "succeeded", result
    assert result.last is not None and result.last.raw_state == "Complete"
    assert len(await with_token(client, "Job", kube.namespace, token)) == 1
    assert (await client.connection()).requests["POST jobs"] == 2


async def test_job_failure_carries_the_reason_and_a_bounded_log_tail(kube: KubeTarget) -> None:
    client = kube.client()
    script = "; ".join(f"echo line {i}" for i in range(1, 61)) + "; exit 3"
    loc = await client.submit(job(kube, script, name="fails"), new_token())
    result = await outcome(client, loc, kube)
    assert result.status == "failed", result
    message = result.message
    assert "BackoffLimitExceeded" in message and "container main: Error (exit code 3)" in message, message
    assert "--- last 50 log lines of" in message
    assert "\nline 11\n" in message and message.rstrip().endswith("line 60")
    assert "line 10\n" not in message  # tailLines=50: lines 11-60 only
    # the diagnosis is read once, not on every poll
    again = await client.statuses([loc, loc])
    assert next(iter(again.values())).message == message
    assert (await client.connection()).requests["GET pods/log"] == 1


async def test_job_deadline_exceeded(kube: KubeTarget) -> None:
    client = kube.client()
    loc = await client.submit(job(kube, "sleep 100", name="slow", activeDeadlineSeconds=2), new_token())
    result = await outcome(client, loc, kube)
    assert result.status == "failed" and "DeadlineExceeded" in result.message, result


async def test_pods_succeed_or_fail_with_the_container_reason(kube: KubeTarget) -> None:
    client = kube.client()
    ok = await client.submit(pod(kube, "echo hello", name="ok"), new_token())
    limits = {"resources": {"limits": {"memory": "16Mi"}, "requests": {"memory": "16Mi"}}}
    oom = await client.submit(pod(kube, "tail /dev/zero", name="oom", **limits), new_token())
    exit2 = await client.submit(pod(kube, "echo bad input; exit 2", name="exit2"), new_token())
    results = await asyncio.gather(outcome(client, ok, kube), outcome(client, oom, kube), outcome(client, exit2, kube))
    assert results[0].status == "succeeded" and results[0].last and results[0].last.raw_state == "Succeeded"
    assert results[1].status == "failed" and "OOMKilled (exit code 137)" in results[1].message, results[1]
    assert results[2].status == "failed" and "Error (exit code 2)" in results[2].message
    assert "bad input" in results[2].message  # the pod's own log tail


async def test_an_image_that_cannot_be_pulled_stays_pending_until_cancelled(kube: KubeTarget) -> None:
    client = kube.client()
    loc = await client.submit(pod(kube, "true", name="nopull", image="registry.invalid/does-not-exist:1"), new_token())
    st = await status_until(
        client, loc, lambda s: s.raw_state in ("ErrImagePull", "ImagePullBackOff"), timeout=kube.wait_limit
    )
    assert st.state is JobState.PENDING and "container main" in st.message
    statuses = await client.statuses([loc])
    assert next(iter(statuses.values())).state is JobState.PENDING  # never failed: the pull may still work
    await client.cancel(loc)
    gone = await status_until(client, loc, lambda s: s.state is JobState.LOST, timeout=kube.wait_limit)
    assert gone.raw_state == "NotFound"


async def test_cancel_deletes_the_recorded_object_and_its_pods_only(kube: KubeTarget) -> None:
    client, token = kube.client(), new_token()
    spec = job(kube, "sleep 300", name="cancel")
    loc = await client.submit(spec, token)
    await status_until(client, loc, lambda s: s.state is JobState.RUNNING, timeout=kube.wait_limit)
    assert await with_token(client, "Pod", kube.namespace, token)
    await client.cancel(loc)
    await client.cancel(loc)  # already gone: not an error
    assert await client.find(token, since=0, spec=spec) is None

    async def no_pods() -> bool:
        return not await with_token(client, "Pod", kube.namespace, token)

    await eventually(no_pods, timeout=kube.wait_limit, what="pods deleted in the background")
    # the same name again (the same token): a different object, which the old locator must not delete
    again = await client.submit(spec, token)
    assert again["uid"] != loc["uid"]
    await client.cancel(loc)
    assert await client.find(token, since=0, spec=spec) == again
    assert (await client.status(loc)).raw_state == "Replaced"
    await client.cancel(again)


async def test_a_foreign_object_with_our_name_is_a_collision_not_an_adoption(kube: KubeTarget) -> None:
    client, token = kube.client(), new_token()
    spec = job(kube, "true", name="collide")
    body = spec.render(new_token(), kube.namespace)
    body["metadata"]["name"] = spec.object_name(token)  # someone else's object under our name
    conn = await client.connection()
    await conn.call("POST", KINDS["Job"].collection(kube.namespace), body=body, what="create a foreign job")
    with pytest.raises(KubeApiError, match="name collision") as exc:
        await client.submit(spec, token)
    assert exc.value.reason == "NameCollision"
    with pytest.raises(KubeApiError, match="name collision"):
        await client.find(token, since=0, spec=spec)


async def test_a_body_over_3_mib_is_refused(kube: KubeTarget) -> None:
    client, token = kube.client(), new_token()
    big = pod(kube, "true", name="big", env=[{"name": "BLOB", "value": "x" * (3 * 1024 * 1024 + 512 * 1024)}])
    with pytest.raises(KubeApiError) as exc:
        await client.submit(big, token)
    assert exc.value.status == 413, exc.value
    assert await client.find(token, since=0, spec=big) is None


# --- SparkApplications, evictions (the fake's spark-operator and kubelet) --------------------------------------


def spark_app(
    kube: KubeTarget, name: str, *, driver: str | None = None, manual: bool = False, **spec: Any
) -> KubeObject:
    annotations = {}
    if driver:
        annotations["fake.durable-jobs.io/driver-script"] = driver
    if manual:
        annotations["fake.durable-jobs.io/controller"] = "manual"
    body = {
        "metadata": {"annotations": annotations},
        "spec": {"type": "Scala", "mode": "cluster", "image": "spark:4.0.0", "mainClass": "Pi", **spec},
    }
    return KubeObject("SparkApplication", body, name=name, labels=kube.labels)


async def test_spark_application_completes_or_fails_with_driver_logs(kube_fake: KubeTarget) -> None:
    client = kube_fake.client()
    ok = await client.submit(spark_app(kube_fake, "pi"), new_token())
    bad = await client.submit(
        spark_app(kube_fake, "broken", driver="echo Exception in thread main: boom; exit 1"), new_token()
    )
    good, failed = await asyncio.gather(outcome(client, ok, kube_fake), outcome(client, bad, kube_fake))
    assert good.status == "succeeded" and good.last and good.last.raw_state == "COMPLETED"
    assert good.last.extra["driver_pod"] == f"{ok['name']}-driver"
    assert failed.status == "failed" and failed.last and failed.last.raw_state == "FAILED"
    assert "driver container failed with ExitCode: 1" in failed.message
    assert "Exception in thread main: boom" in failed.message  # the driver pod's log tail
    assert f"{bad['name']}-driver/spark-kubernetes-driver" in failed.message
    # cancelling deletes the application; the operator's pods go with it
    await client.cancel(ok)
    assert kube_fake.fake is not None
    await eventually(
        lambda: not kube_fake.fake.get("pods", kube_fake.namespace, f"{ok['name']}-driver"),  # type: ignore[union-attr]
        timeout=10,
        what="driver pod collected",
    )


@pytest.mark.parametrize(("restart", "state"), [(None, JobState.FAILED), ("OnFailure", JobState.PENDING)])
async def test_submission_failed_is_final_only_without_retries(kube_fake: KubeTarget, restart, state) -> None:
    client, fake = kube_fake.client(), kube_fake.fake
    assert fake is not None
    extra = {"restartPolicy": {"type": restart, "onSubmissionFailureRetries": 2}} if restart else {}
    loc = await client.submit(spark_app(kube_fake, "sub", manual=True, **extra), new_token())
    fake.set_custom_status(
        "sparkoperator.k8s.io",
        "v1beta2",
        "sparkapplications",
        loc["namespace"],
        loc["name"],
        {"applicationState": {"state": "SUBMISSION_FAILED", "errorMessage": "failed to run spark-submit"}},
    )
    st = await client.status(loc)
    assert st.state is state and st.raw_state == "SUBMISSION_FAILED"
    assert "failed to run spark-submit" in st.message


async def test_an_evicted_pod_is_failed(kube_fake: KubeTarget) -> None:
    client, fake = kube_fake.client(), kube_fake.fake
    assert fake is not None
    loc = await client.submit(pod(kube_fake, "sleep 1000", name="evicted"), new_token())
    await status_until(client, loc, lambda s: s.state is JobState.RUNNING, timeout=10)
    fake.evict(loc["namespace"], loc["name"])
    result = await outcome(client, loc, kube_fake)
    assert result.status == "failed" and result.last and result.last.raw_state == "Evicted"
    assert "The node was low on resource: memory" in result.message


async def test_a_missing_crd_is_an_error_not_a_lost_job(kube_tls: TlsMaterial, tmp_path: Path) -> None:
    with fake_target(kube_tls, tmp_path, custom_resources=False) as target:
        client = target.client()
        with pytest.raises(KubeApiError, match="is its CRD installed"):
            await client.find(new_token(), since=0, spec=spark_app(target, "x"))
        loc = {
            "kind": "SparkApplication",
            "namespace": target.namespace,
            "name": "x",
            "uid": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
        }
        with pytest.raises(KubeApiError, match="is its CRD installed"):
            await client.status(loc)


# --- outages, throttling and refusals -------------------------------------------------------------------------------


async def test_transient_errors_are_retried_and_never_fail(kube_fake: KubeTarget) -> None:
    client, fake, token = kube_fake.client(), kube_fake.fake, new_token()
    assert fake is not None
    fake.fail_next(503, "ServiceUnavailable", "apiserver is shutting down", method="POST")
    loc = await client.submit(job(kube_fake, "sleep 100", name="retry"), token)  # retried: one object
    assert len(await with_token(client, "Job", kube_fake.namespace, token)) == 1
    fake.fail_next(
        429, "TooManyRequests", "slow down", method="GET", path_contains=f"/jobs/{loc['name']}", retry_after="1"
    )
    started = time.monotonic()
    assert (await client.status(loc)).state in (JobState.PENDING, JobState.RUNNING)
    assert time.monotonic() - started >= 0.95  # Retry-After honoured
    fake.fail_next(
        500, "InternalError", "etcd leader changed", count=5, method="GET", path_contains=f"/jobs/{loc['name']}"
    )
    with pytest.raises(TransientError, match="etcd leader changed"):
        await client.status(loc)
    # the watch cannot list: the job is unknown, never failed
    fake.fail_next(503, "ServiceUnavailable", "down", count=1000, path_contains="/jobs?")
    # (unknown for the job, or, when its fallback GET fails too, a failure of the endpoint: unknown for every job)
    try:
        statuses = await KubernetesClient(kube_fake.config(timeout=0.5)).statuses([loc])
    except TransientError:
        return
    assert next(iter(statuses.values())).state is JobState.UNKNOWN


async def test_refused_credentials_and_rbac_are_auth_errors(kube_fake: KubeTarget) -> None:
    client, fake = kube_fake.client(), kube_fake.fake
    assert fake is not None
    loc = await client.submit(pod(kube_fake, "sleep 100", name="auth"), new_token())
    fake.forbid("get", "pods")
    with pytest.raises(AuthError, match=r"403.*cannot get resource") as exc:
        await client.status(loc)
    assert exc.value.status == 403
    fake.rotate_token()  # the kubeconfig's static token is now refused: nothing to reload
    with pytest.raises(AuthError, match="401") as exc:
        await kube_fake.client(timeout=5.0).status(loc)
    assert exc.value.status == 401


EXEC_PLUGIN = """
import datetime, json, pathlib, sys
token_file, counter, ttl = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), float(sys.argv[3])
counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
status = {"token": token_file.read_text().strip()}
if ttl >= 0:
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
    status["expirationTimestamp"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": status}))
"""


@pytest.mark.parametrize(("ttl", "renewals"), [(-1, 0), (3600, 0), (120, 4)])
async def test_exec_plugin_tokens_are_renewed_on_expiry_and_after_a_401(
    kube_fake: KubeTarget, kube_tls: TlsMaterial, tmp_path: Path, ttl: float, renewals: int
) -> None:
    """ttl -1: no expiry stated; 3600: far away; 120: inside the 5-minute renewal margin (each request renews)."""
    fake = kube_fake.fake
    assert fake is not None
    plugin, token_file, counter = tmp_path / "plugin.py", tmp_path / "token", tmp_path / "runs"
    plugin.write_text(EXEC_PLUGIN)
    token_file.write_text(fake.token)
    exec_plugin = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": [str(plugin), str(token_file), str(counter), str(ttl)],
    }
    kubeconfig = write_kubeconfig(
        tmp_path / "exec-kubeconfig",
        kubeconfig_dict(fake.url, kube_tls.ca_pem, exec_plugin=exec_plugin, namespace=kube_fake.namespace),
    )
    client = KubernetesClient(KubernetesConfig(kubeconfig_path=str(kubeconfig), timeout=15))
    loc = await client.submit(pod(kube_fake, "sleep 100", name="exec"), new_token())
    for _ in range(3):
        await client.status(loc)
    assert int(counter.read_text()) == 1 + renewals
    token_file.write_text(fake.rotate_token())  # the cloud issued a new token; the old one is refused
    assert (await client.status(loc)).state in (JobState.PENDING, JobState.RUNNING)
    assert int(counter.read_text()) >= 2 + renewals
    assert ("GET", f"/api/v1/namespaces/{loc['namespace']}/pods/{loc['name']}") in fake.requests


async def test_tls_is_verified(kube_fake: KubeTarget, tmp_path: Path) -> None:
    fake = kube_fake.fake
    assert fake is not None
    other_ca = TlsMaterial.generate(tmp_path / "other-ca")
    kubeconfig = write_kubeconfig(tmp_path / "wrong-ca", kubeconfig_dict(fake.url, other_ca.ca_pem, token=fake.token))
    before = len(fake.requests)
    with pytest.raises(TransientError, match=r"TLS verification of .* failed.*certificate") as exc:
        await KubernetesClient(KubernetesConfig(kubeconfig_path=str(kubeconfig))).version()
    assert exc.value.connect_failed  # never sent: the server was not trusted
    assert len(fake.requests) == before  # nothing was sent
    insecure = KubernetesConfig(host=fake.url, token=fake.token, verify_ssl=False)
    assert (await KubernetesClient(insecure).version())["gitVersion"] == "v1.33.0-fake"


async def test_host_token_and_ca_data_without_a_kubeconfig(kube_fake: KubeTarget, kube_tls: TlsMaterial) -> None:
    fake = kube_fake.fake
    assert fake is not None
    config = KubernetesConfig(host=fake.url, token=fake.token, ca_data=kube_tls.ca_pem.decode(), namespace="direct")
    assert fake.token not in repr(config)
    client = KubernetesClient(config)
    loc = await client.submit(pod(kube_fake, "echo hi", name="direct"), new_token())
    assert loc["namespace"] == "direct"
    assert (await outcome(client, loc, kube_fake)).status == "succeeded"


async def test_in_cluster_service_account_with_a_rotating_token(
    kube_fake: KubeTarget, kube_tls: TlsMaterial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = kube_fake.fake
    assert fake is not None
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(fake.token)
    (sa / "ca.crt").write_bytes(kube_tls.ca_pem)
    (sa / "namespace").write_text("from-sa")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))
    client = KubernetesClient(KubernetesConfig(in_cluster=True, service_account_dir=str(sa)))
    loc = await client.submit(pod(kube_fake, "sleep 100", name="incluster"), new_token())
    assert loc["namespace"] == "from-sa"
    (sa / "token").write_text(fake.rotate_token())  # the kubelet rotated the projected token
    assert (await client.status(loc)).state in (JobState.PENDING, JobState.RUNNING)


async def test_one_connection_and_session_per_configuration_and_loop(kube: KubeTarget) -> None:
    first, second = kube.client(), kube.client()
    assert first is not second and first.key == second.key
    assert await first.connection() is await second.connection()
    conn = await first.connection()
    endpoint = conn.endpoint
    await asyncio.gather(*(first.version() for _ in range(5)), *(second.version() for _ in range(5)))
    assert conn.endpoint is endpoint  # one endpoint (one pooled session, one TLS context) served all ten requests
    assert open_sessions() == 1
    assert conn.requests["GET /version"] == 10
