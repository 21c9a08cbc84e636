"""The Kubernetes client passes the JobClient contract suite, against the TLS contract fake apiserver (Pods)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.clients.kubernetes import KINDS, KubeObject
from durable_jobs.status import JobState
from durable_jobs.testing.contract import JobClientContract
from durable_jobs_harness.kube_fixtures import KubeTarget

PHASES = {JobState.SUCCEEDED: "Succeeded", JobState.FAILED: "Failed"}


class TestKubernetesContract(JobClientContract):
    settle_timeout = 10.0

    @pytest.fixture(autouse=True)
    def _cluster(self, kube_fake: KubeTarget) -> None:
        self.kube = kube_fake

    @property
    def fake(self) -> Any:
        assert self.kube.fake is not None
        return self.kube.fake

    async def make_client(self) -> JobClient[Any]:
        return self.kube.client(timeout=3.0)

    def make_spec(self) -> KubeObject:
        container = {"name": "main", "image": self.kube.image, "command": ["sh", "-c", "sleep 100000"]}
        return KubeObject("Pod", {"spec": {"containers": [container]}}, name="contract", labels=self.kube.labels)

    async def end_job(self, locator: Locator, state: JobState) -> None:
        self.fake.set_phase(locator["namespace"], locator["name"], PHASES[state])

    async def vanish(self, locator: Locator) -> None:
        # deleted at once, as by someone else or a node's loss: the API no longer has it, its watch says DELETED
        conn = await self.kube.client().connection()
        path = KINDS[locator["kind"]].item(locator["namespace"], locator["name"])
        await conn.call("DELETE", path, body={"gracePeriodSeconds": 0}, what="delete behind the client's back")

    @contextlib.asynccontextmanager
    async def unreachable(self) -> AsyncIterator[None]:
        server = self.fake.server

        async def start() -> None:
            await server.start()  # the same port and objects: the apiserver is back

        self.fake.call(server.stop)
        try:
            yield
        finally:
            self.fake.call(start)
