"""Fixtures for the Kubernetes tests: the TLS contract fake apiserver, or a real cluster, behind one interface.

``kube`` is parametrized over targets. The fake always runs. With ``DURABLE_JOBS_KUBE_REAL=1`` the same tests
also run against the cluster of ``$KUBECONFIG`` (marked ``kube_real``; namespace
``$DURABLE_JOBS_KUBE_NAMESPACE``, default ``default``; image ``$DURABLE_JOBS_KUBE_IMAGE``, default
``busybox:1.36``). Nothing skips: ``DURABLE_JOBS_KUBE_REAL=1`` without ``KUBECONFIG`` fails. Tests that need the
fake's hooks (compaction, dropped streams, evictions) take ``kube_fake`` instead.

Import the fixtures into a test module with ``from durable_jobs_harness.kube_fixtures import *``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from durable_jobs.clients.kubernetes import KubernetesClient, KubernetesConfig
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.fake_kube import KubeApiServerThread, TlsMaterial, kubeconfig_dict, write_kubeconfig
from durable_jobs_harness.waiting import eventually

REAL = os.environ.get("DURABLE_JOBS_KUBE_REAL") == "1"
NAMESPACE = "durable"
CONN_ID = "kube_test"
TEST_RUN_LABEL = "durable-jobs.io/test-run"


def _targets() -> list[Any]:
    params: list[Any] = [pytest.param("fake", id="fake")]
    if REAL:
        params.append(pytest.param("real", id="real", marks=pytest.mark.kube_real))
    return params


@dataclass
class KubeTarget:
    """Where a test runs: the fake (``fake`` is its thread) or a real cluster (``fake`` is None)."""

    name: str
    kubeconfig: Path
    namespace: str
    fake: KubeApiServerThread | None
    image: str
    time_scale: float  # how fast a script's "sleep N" runs
    run_id: str  # every object a test creates carries it as TEST_RUN_LABEL

    @property
    def labels(self) -> dict[str, str]:
        return {TEST_RUN_LABEL: self.run_id}

    def config(self, **kwargs: Any) -> KubernetesConfig:
        kwargs.setdefault("namespace", self.namespace)
        kwargs.setdefault("timeout", 15.0)
        return KubernetesConfig(kubeconfig_path=str(self.kubeconfig), **kwargs)

    def client(self, **kwargs: Any) -> KubernetesClient:
        return KubernetesClient(self.config(**kwargs))

    @property
    def wait_limit(self) -> float:
        """Upper bound for a job of a few (scaled) seconds to finish: generous, it only stops a hang."""
        return 60.0 if self.fake is not None else 300.0


def set_connection(monkeypatch: pytest.MonkeyPatch, kubeconfig: Path, namespace: str, **extra: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "kubernetes_durable",
                "extra": {"kube_config_path": str(kubeconfig), "namespace": namespace, "timeout": 15, **extra},
            }
        ),
    )
    KubernetesHook.clear_cache()


@pytest.fixture(scope="session")
def kube_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return TlsMaterial.generate(tmp_path_factory.mktemp("kube-tls"))


@contextlib.contextmanager
def fake_target(tls: TlsMaterial, tmp_path: Path, **fake_kwargs: Any) -> Iterator[KubeTarget]:
    """A fake apiserver with ``fake_kwargs`` (``gone_mode``, ``custom_resources``...) and its kubeconfig."""
    fake_kwargs.setdefault("time_scale", 0.02)
    with KubeApiServerThread(tls, **fake_kwargs) as fake:
        kubeconfig = write_kubeconfig(
            tmp_path / "kubeconfig", kubeconfig_dict(fake.url, tls.ca_pem, token=fake.token, namespace=NAMESPACE)
        )
        yield KubeTarget(
            name="fake",
            kubeconfig=kubeconfig,
            namespace=NAMESPACE,
            fake=fake,
            image="busybox:1.36",
            time_scale=fake_kwargs["time_scale"],
            run_id=uuid.uuid4().hex[:12],
        )


@contextlib.contextmanager
def real_target() -> Iterator[KubeTarget]:
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not path:
        raise RuntimeError("DURABLE_JOBS_KUBE_REAL=1 needs KUBECONFIG (the real cluster's kubeconfig)")
    target = KubeTarget(
        name="real",
        kubeconfig=Path(path),
        namespace=os.environ.get("DURABLE_JOBS_KUBE_NAMESPACE", "default"),
        fake=None,
        image=os.environ.get("DURABLE_JOBS_KUBE_IMAGE", "busybox:1.36"),
        time_scale=1.0,
        run_id=uuid.uuid4().hex[:12],
    )
    try:
        yield target
    finally:
        asyncio.run(_delete_test_objects(target))


async def _delete_test_objects(target: KubeTarget) -> None:
    """Delete what a test left on a real cluster (by its run label)."""
    from durable_jobs.clients.kubernetes import KINDS

    client = target.client()
    try:
        conn = await client.connection()
        for kind in KINDS.values():
            try:
                reply = await conn.call(
                    "GET",
                    kind.collection(target.namespace),
                    query=[("labelSelector", f"{TEST_RUN_LABEL}={target.run_id}")],
                    what="list test objects",
                )
            except Exception:  # noqa: S112 - e.g. no spark-operator CRD on this cluster
                continue
            for item in reply.json().get("items") or ():
                name = item["metadata"]["name"]
                with contextlib.suppress(Exception):
                    await conn.call(
                        "DELETE",
                        kind.item(target.namespace, name),
                        body={"propagationPolicy": "Background"},
                        what=f"delete {name}",
                    )
    finally:
        await close_sessions()


@pytest.fixture(params=_targets())
def kube(
    request: pytest.FixtureRequest, kube_tls: TlsMaterial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KubeTarget]:
    """The fake apiserver (always) or the real cluster (DURABLE_JOBS_KUBE_REAL=1), with a connection ``kube_test``."""
    with fake_target(kube_tls, tmp_path) if request.param == "fake" else real_target() as target:
        set_connection(monkeypatch, target.kubeconfig, target.namespace)
        yield target
    KubernetesHook.clear_cache()


@pytest.fixture
def kube_fake(kube_tls: TlsMaterial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeTarget]:
    """The fake apiserver only: for tests that use its hooks."""
    with fake_target(kube_tls, tmp_path) as target:
        set_connection(monkeypatch, target.kubeconfig, target.namespace)
        yield target
    KubernetesHook.clear_cache()


@pytest.fixture
async def kube_loop_cleanup() -> AsyncIterator[None]:
    """Close the test loop's Kubernetes connections and watches (and HTTP sessions) after an async test."""
    yield
    await close_sessions()


__all__ = [
    "CONN_ID",
    "NAMESPACE",
    "REAL",
    "TEST_RUN_LABEL",
    "KubeTarget",
    "eventually",
    "fake_target",
    "kube",
    "kube_fake",
    "kube_loop_cleanup",
    "kube_tls",
    "set_connection",
]
