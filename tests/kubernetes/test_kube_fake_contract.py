"""The contract fake against the stock kubernetes_asyncio client: typed APIs, models and ``Watch``.

These pin the fake to the wire behaviour of the real client stack (kubeconfig loader, TLS, bearer token, typed
models, ``Watch``; docs/kubernetes.md), so a fake that drifts (a boolean spelled only one way, a missing Status, a
lenient PATCH) fails here rather than hiding a client bug. They also document why the library runs its own watch
loop: the stock ``Watch`` retries a 410 with the same stale resourceVersion, and an abruptly cut stream ends its
iteration with an error.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.http_exceptions import LineTooLong
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

from durable_jobs_harness.fake_kube import TlsMaterial
from durable_jobs_harness.kube_fixtures import KubeTarget, eventually, fake_target

MANUAL = {"fake.durable-jobs.io/controller": "manual"}
SPARK = ("sparkoperator.k8s.io", "v1beta2")


async def api_for(kube: KubeTarget) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=cfg)
    return k8s.ApiClient(configuration=cfg)


@pytest.fixture
async def api(kube_fake: KubeTarget) -> AsyncIterator[k8s.ApiClient]:
    client = await api_for(kube_fake)
    async with client:
        yield client


def v1_pod(name: str, script: str, **meta: Any) -> k8s.V1Pod:
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=name, **meta),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            containers=[k8s.V1Container(name="main", image="busybox:1.36", command=["sh", "-c", script])],
        ),
    )


def body_of(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def watch_requests(requests: list[tuple[str, str]]) -> list[dict[str, list[str]]]:
    out = []
    for method, path_qs in requests:
        query = parse_qs(urlsplit(path_qs).query)
        if method == "GET" and query.get("watch"):
            out.append(query)
    return out


async def test_pod_lifecycle_through_the_typed_api_and_watch(api: k8s.ApiClient, kube_fake: KubeTarget) -> None:
    v1, ns = k8s.CoreV1Api(api), kube_fake.namespace
    before = (await v1.list_namespaced_pod(ns)).metadata.resource_version  # watch from here: the create's ADDED
    created = await v1.create_namespaced_pod(ns, v1_pod("p1", "echo hello; sleep 5", labels={"app": "x"}))
    assert isinstance(created, k8s.V1Pod) and created.metadata.uid and created.status.phase == "Pending"
    phases: list[tuple[str, str]] = []
    versions: list[int] = []
    w = Watch()
    async for event in w.stream(
        v1.list_namespaced_pod,
        ns,
        label_selector="app=x",
        resource_version=before,
        timeout_seconds=10,
        allow_watch_bookmarks=True,
    ):
        if event["type"] == "BOOKMARK":
            continue
        pod = event["object"]
        versions.append(int(pod.metadata.resource_version))
        if not phases or phases[-1][1] != pod.status.phase:
            phases.append((event["type"], pod.status.phase))
        if pod.status.phase == "Succeeded":
            w.stop()
    await w.close()
    assert phases == [("ADDED", "Pending"), ("MODIFIED", "Running"), ("MODIFIED", "Succeeded")]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    read = await v1.read_namespaced_pod("p1", ns)
    assert read.status.phase == "Succeeded" and isinstance(read.status.start_time, datetime.datetime)
    assert await v1.read_namespaced_pod_log("p1", ns, container="main", tail_lines=10) == "hello\n"
    listed = await v1.list_namespaced_pod(ns, field_selector="status.phase=Succeeded")
    assert [p.metadata.name for p in listed.items] == ["p1"] and listed.metadata.resource_version
    deleted = await v1.delete_namespaced_pod("p1", ns)
    assert isinstance(deleted, k8s.V1Pod)  # a pod's DELETE answers the pod
    with pytest.raises(ApiException) as exc:
        await v1.read_namespaced_pod("p1", ns)
    assert exc.value.status == 404
    assert body_of(exc.value) | {"message": ""} == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "",
        "reason": "NotFound",
        "details": {"name": "p1", "group": "", "kind": "pods"},
        "code": 404,
    }


async def test_status_errors_409_and_401(api: k8s.ApiClient, kube_fake: KubeTarget) -> None:
    v1, ns = k8s.CoreV1Api(api), kube_fake.namespace
    await v1.create_namespaced_pod(ns, v1_pod("dup", "true", annotations=MANUAL))
    with pytest.raises(ApiException) as exc:
        await v1.create_namespaced_pod(ns, v1_pod("dup", "true"))
    assert exc.value.status == 409 and body_of(exc.value)["reason"] == "AlreadyExists"
    assert kube_fake.fake is not None
    kube_fake.fake.rotate_token()
    with pytest.raises(ApiException) as exc:
        await v1.read_namespaced_pod("dup", ns)
    assert exc.value.status == 401 and body_of(exc.value)["reason"] == "Unauthorized"


async def test_job_generate_name_status_and_delete(api: k8s.ApiClient, kube_fake: KubeTarget) -> None:
    batch, ns = k8s.BatchV1Api(api), kube_fake.namespace
    job = k8s.V1Job(
        metadata=k8s.V1ObjectMeta(generate_name="gen-", annotations=MANUAL),
        spec=k8s.V1JobSpec(
            backoff_limit=0,
            template=k8s.V1PodTemplateSpec(
                spec=k8s.V1PodSpec(restart_policy="Never", containers=[k8s.V1Container(name="c", image="i")])
            ),
        ),
    )
    created = await batch.create_namespaced_job(ns, job)
    name = created.metadata.name
    assert name.startswith("gen-") and len(name) == 9
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": created.metadata.uid}
    assert kube_fake.fake is not None
    kube_fake.fake.update(
        "jobs",
        ns,
        name,
        lambda j: j.__setitem__(
            "status",
            {
                "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit"},
                ],
            },
        ),
    )
    status = await batch.read_namespaced_job_status(name, ns)
    assert status.status.failed == 1 and status.status.conditions[-1].reason == "BackoffLimitExceeded"
    gone = await batch.delete_namespaced_job(name, ns, propagation_policy="Background")
    assert isinstance(gone, k8s.V1Status) and gone.status == "Success"  # a Job's DELETE answers a Status
    bad = k8s.V1Job(metadata=k8s.V1ObjectMeta(name="x"), spec=job.spec)
    bad.spec.template.spec.restart_policy = "Always"
    with pytest.raises(ApiException) as exc:
        await batch.create_namespaced_job(ns, bad)
    assert exc.value.status == 422 and body_of(exc.value)["reason"] == "Invalid"
    assert "restartPolicy" in body_of(exc.value)["message"]


async def test_custom_object_patch_content_types(api: k8s.ApiClient, kube_fake: KubeTarget) -> None:
    custom, ns = k8s.CustomObjectsApi(api), kube_fake.namespace
    body = {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": "pi", "annotations": MANUAL},
        "spec": {"type": "Scala", "mode": "cluster", "image": "spark:4.0.0"},
    }
    created = await custom.create_namespaced_custom_object(*SPARK, ns, "sparkapplications", body)
    assert created["metadata"]["uid"] and "status" not in created
    with pytest.raises(ApiException) as exc:  # the pitfall: a dict body goes out as json-patch
        await custom.patch_namespaced_custom_object(*SPARK, ns, "sparkapplications", "pi", {"spec": {"image": "x"}})
    assert exc.value.status == 400 and "cannot unmarshal object" in body_of(exc.value)["message"]
    patched = await custom.patch_namespaced_custom_object(
        *SPARK,
        ns,
        "sparkapplications",
        "pi",
        {"spec": {"image": "spark:4.1.0"}},
        _content_type="application/merge-patch+json",
    )
    assert patched["spec"]["image"] == "spark:4.1.0" and patched["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as exc:  # custom resources have no strategic merge patch
        await custom.patch_namespaced_custom_object(
            *SPARK,
            ns,
            "sparkapplications",
            "pi",
            {"spec": {"image": "y"}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415
    ops = [{"op": "replace", "path": "/spec/image", "value": "spark:4.2.0"}]
    patched = await custom.patch_namespaced_custom_object(*SPARK, ns, "sparkapplications", "pi", ops)
    assert patched["spec"]["image"] == "spark:4.2.0"
    done = await custom.delete_namespaced_custom_object(*SPARK, ns, "sparkapplications", "pi")
    assert done["status"] == "Success"


@pytest.mark.parametrize("gone_mode", ["stream", "http"])
async def test_410_in_both_forms_and_the_stock_watch_retrying_the_stale_version(
    kube_tls: TlsMaterial, tmp_path: Path, gone_mode: str
) -> None:
    with fake_target(kube_tls, tmp_path, gone_mode=gone_mode) as kube:
        fake = kube.fake
        assert fake is not None
        async with await api_for(kube) as api:
            v1 = k8s.CoreV1Api(api)
            pod = await v1.create_namespaced_pod(kube.namespace, v1_pod("old", "true", annotations=MANUAL))
            stale = pod.metadata.resource_version
            fake.set_phase(kube.namespace, "old", "Running")
            fake.compact()
            w = Watch()
            with pytest.raises(ApiException) as exc:  # bounded: raised at once
                async for _ in w.stream(
                    v1.list_namespaced_pod, kube.namespace, resource_version=stale, timeout_seconds=5
                ):
                    pass
            assert exc.value.status == 410
            before = len(watch_requests(fake.requests))
            w = Watch()
            with pytest.raises(ApiException) as exc:  # unbounded: one useless retry with the same version
                await asyncio.wait_for(
                    w.stream(v1.list_namespaced_pod, kube.namespace, resource_version=stale).__anext__(), 10
                )
            assert exc.value.status == 410
            retried = watch_requests(fake.requests)[before:]
            assert len(retried) == 2 and retried[0] == retried[1] and retried[0]["resourceVersion"] == [stale]
            # the remedy: list, then watch from the list's version
            listed = await v1.list_namespaced_pod(kube.namespace)
            w = Watch()
            stream = w.stream(
                v1.list_namespaced_pod,
                kube.namespace,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=5,
            )
            fake.set_phase(kube.namespace, "old", "Succeeded")
            event = await asyncio.wait_for(stream.__anext__(), 10)
            assert (event["type"], event["object"].status.phase) == ("MODIFIED", "Succeeded")
            await w.close()


async def test_the_stock_watch_resumes_after_eof_but_not_after_a_cut(api: k8s.ApiClient, kube_fake: KubeTarget) -> None:
    fake = kube_fake.fake
    assert fake is not None
    v1, ns = k8s.CoreV1Api(api), kube_fake.namespace
    await v1.create_namespaced_pod(ns, v1_pod("resume", "true", annotations=MANUAL))
    w = Watch()
    stream = w.stream(v1.list_namespaced_pod, ns)  # no timeout_seconds: reconnects on EOF
    seen = []

    async def next_phase() -> str:
        event = await asyncio.wait_for(stream.__anext__(), 10)
        seen.append((event["type"], event["object"].status.phase, event["object"].metadata.resource_version))
        return event["object"].status.phase

    assert await next_phase() == "Pending"
    fake.set_phase(ns, "resume", "Running")
    assert await next_phase() == "Running"
    await eventually(lambda: fake.open_watches() == 1, timeout=10, what="the stream")
    fake.drop_watches(clean=True)  # EOF: the stock Watch reconnects from the last version
    fake.set_phase(ns, "resume", "Succeeded")
    assert await next_phase() == "Succeeded"
    assert [s[:2] for s in seen] == [("ADDED", "Pending"), ("MODIFIED", "Running"), ("MODIFIED", "Succeeded")]
    assert watch_requests(fake.requests)[-1]["resourceVersion"] == [seen[1][2]]
    await eventually(lambda: fake.open_watches() == 1, timeout=10, what="the reconnected stream")
    fake.drop_watches()  # cut mid-chunk: the stock Watch gives up (the library's own loop resumes instead)
    with pytest.raises(Exception, match="payload is not completed"):
        await asyncio.wait_for(stream.__anext__(), 10)
    await w.close()


@pytest.mark.parametrize(("size_mib", "ok"), [(1.4, True), (5, False)])
async def test_event_line_limit_of_the_client(
    api: k8s.ApiClient, kube_fake: KubeTarget, size_mib: float, ok: bool
) -> None:
    fake = kube_fake.fake
    assert fake is not None
    v1, ns = k8s.CoreV1Api(api), kube_fake.namespace
    await v1.create_namespaced_pod(ns, v1_pod("big", "true", annotations=MANUAL))
    w = Watch()
    stream = w.stream(v1.list_namespaced_pod, ns, timeout_seconds=10)
    await asyncio.wait_for(stream.__anext__(), 10)  # ADDED
    blob = "x" * int(size_mib * 1024 * 1024)  # written behind the apiserver's back (etcd would refuse 5 MiB)
    fake.update("pods", ns, "big", lambda p: p["metadata"].setdefault("annotations", {}).__setitem__("blob", blob))
    if ok:
        event = await asyncio.wait_for(stream.__anext__(), 10)
        assert len(event["object"].metadata.annotations["blob"]) == len(blob)
    else:
        with pytest.raises((LineTooLong, ValueError)):
            await asyncio.wait_for(stream.__anext__(), 10)
    await w.close()


async def test_request_body_limit_is_3_mib(api: k8s.ApiClient, kube_fake: KubeTarget) -> None:
    v1, ns = k8s.CoreV1Api(api), kube_fake.namespace
    fits = v1_pod("fits", "true", annotations={**MANUAL, "blob": "x" * (2 * 1024 * 1024)})
    assert (await v1.create_namespaced_pod(ns, fits)).metadata.name == "fits"
    too_big = v1_pod("too-big", "true", annotations={"blob": "x" * (3 * 1024 * 1024 + 1)})
    with pytest.raises(ApiException) as exc:
        await v1.create_namespaced_pod(ns, too_big)
    assert exc.value.status == 413 and body_of(exc.value)["reason"] == "RequestEntityTooLarge"
