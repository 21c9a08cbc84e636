"""The Kubernetes link on the task page: the connection's ``console_url`` template, filled for the object."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from durable_jobs.clients.kubernetes import KubernetesClient
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs.systems.kubernetes import SYSTEM

UID = "0b9e4c1e-6f61-4c1a-9d0e-3f2a1b4c5d6e"


def client(extra: dict[str, str]) -> KubernetesClient:
    conn = SimpleNamespace(conn_id="k8s", host="https://api.k8s:6443", port=None, password=None, extra_dejson=extra)
    return KubernetesHook.client_from_connection(conn)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("Job", "https://dash.example/#/job/batch/etl-1?uid=" + UID + "&plural=jobs"),
        ("Pod", "https://dash.example/#/pod/batch/etl-1?uid=" + UID + "&plural=pods"),
        (
            "SparkApplication",
            "https://dash.example/#/sparkapplication/batch/etl-1?uid=" + UID + "&plural=sparkapplications",
        ),
    ],
)
async def test_the_connections_console_url_names_the_object(kind: str, expected: str) -> None:
    assert [link.xcom_key for link in SYSTEM.links] == ["console_url"]
    template = "https://dash.example/#/{kind}/{namespace}/{name}?uid={uid}&plural={plural}"
    loc = {"kind": kind, "namespace": "batch", "name": "etl-1", "uid": UID}
    assert await client({"console_url": template}).links(loc) == {"console_url": expected}
    # the cncf-kubernetes provider's old prefix is read too
    assert await client({"extra__kubernetes__console_url": template}).links(loc) == {"console_url": expected}


async def test_without_a_console_url_there_is_no_link() -> None:
    loc = {"kind": "Job", "namespace": "batch", "name": "etl-1", "uid": UID}
    assert await client({}).links(loc) == {}
