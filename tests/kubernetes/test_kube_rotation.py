"""A rotated bearer token reaches the triggers that wait, with one connection fetch per rotation.

A host + token connection (the password field), against the TLS contract fake. While triggers wait, the
apiserver starts refusing the old token (401) and the connection is given the new one. The poller's shared
watch fails with 401, the poller fetches the connection once for all its waiters (``refetch``), and every
waiting trigger still gets its success event; a trigger created after the rotation succeeds too, and costs no
fetch of its own. The client's key (the poller's identity) holds no credential, so both clients share one poller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

import pytest

from durable_jobs.clients.kubernetes import KubeObject, KubernetesClient
from durable_jobs.hooks.kubernetes import KubernetesHook
from durable_jobs.polling import active_pollers
from durable_jobs.triggers.kubernetes import KubernetesTrigger
from durable_jobs_harness.fake_kube import TlsMaterial
from durable_jobs_harness.kube_fixtures import KubeTarget, eventually

pytestmark = pytest.mark.usefixtures("kube_loop_cleanup")
CONN = "kube_rotating"
MANUAL = {"fake.durable-jobs.io/controller": "manual"}


def complete(job: dict[str, Any]) -> None:
    cond = {"status": "True", "reason": "CompletionsReached", "message": "done"}
    job["status"] = {
        "succeeded": 1,
        "conditions": [{**cond, "type": "SuccessCriteriaMet"}, {**cond, "type": "Complete"}],
    }


def spec(kube: KubeTarget, name: str) -> KubeObject:
    container = {"name": "main", "image": kube.image, "command": ["sh", "-c", "sleep 600"]}
    return KubeObject(
        "Job",
        {"metadata": {"annotations": MANUAL}, "spec": {"template": {"spec": {"containers": [container]}}}},
        name=name,
        labels=kube.labels,
    )


async def test_a_rotated_token_reaches_waiting_triggers_with_one_fetch_per_rotation(
    kube_fake: KubeTarget, kube_tls: TlsMaterial, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = kube_fake.fake
    assert fake is not None

    def connection(token: str) -> None:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{CONN.upper()}",
            json.dumps(
                {
                    "conn_type": "kubernetes_durable",
                    "host": fake.url,
                    "password": token,
                    "extra": {"ca_data": kube_tls.ca_pem.decode(), "namespace": kube_fake.namespace, "timeout": 5},
                }
            ),
        )

    fetches: list[float] = []
    real_fetch = KubernetesHook.aget_connection

    async def counting(conn_id: str) -> Any:
        fetches.append(time.monotonic())
        return await real_fetch(conn_id)

    monkeypatch.setattr(KubernetesHook, "aget_connection", counting)
    connection(fake.token)
    KubernetesHook.clear_cache()
    try:
        client = await KubernetesHook.aget_client(CONN)
        assert isinstance(client, KubernetesClient)
        tokens = ["dj" + secrets.token_hex(10) for _ in range(4)]
        locs = [await client.submit(spec(kube_fake, f"rot{i}"), tokens[i]) for i in range(3)]

        def trigger(i: int, loc: dict[str, Any]) -> KubernetesTrigger:
            return KubernetesTrigger(
                job=loc, conn_id=CONN, token=tokens[i], generation=0, poll_interval=0.2, deadline=time.time() + 60
            )

        async def run(trig: KubernetesTrigger) -> list[dict[str, Any]]:
            return [event.payload async for event in trig.run()]

        waiting = [asyncio.ensure_future(run(trigger(i, loc))) for i, loc in enumerate(locs)]
        await eventually(lambda: active_pollers() and active_pollers()[0].polls >= 2, timeout=20, what="polls")
        assert len(fetches) == 1  # every trigger shares the one fetched client
        poller = active_pollers()[0]

        old = fake.token
        new = fake.rotate_token()  # the old token is refused from now on
        fake.drop_watches()  # the shared watch reconnects, and is refused
        connection(new)  # the connection is given the new token
        for loc in locs:
            fake.update("jobs", loc["namespace"], loc["name"], complete)
        results = await asyncio.wait_for(asyncio.gather(*waiting), 30)
        assert [r[0]["status"] for r in results] == ["succeeded"] * 3, results
        assert len(fetches) == 2  # one refetch for the rotation, not one per trigger
        assert poller.refreshes == 1

        # a trigger created after the rotation: the refetched client, no fetch of its own
        fresh = await KubernetesHook.aget_client(CONN)
        assert fresh is not client and fresh.key == client.key
        loc = await fresh.submit(spec(kube_fake, "rot3"), tokens[3])
        late = asyncio.ensure_future(run(trigger(3, loc)))
        await asyncio.sleep(0.5)
        fake.update("jobs", loc["namespace"], loc["name"], complete)
        (event,) = await asyncio.wait_for(late, 30)
        assert event["status"] == "succeeded" and len(fetches) == 2
        text = json.dumps([r[0] for r in results] + [event]) + caplog.text
        assert "401" in caplog.text  # the refusal was logged...
        assert old not in text and new not in text  # ...and no token anywhere
    finally:
        KubernetesHook.clear_cache()
