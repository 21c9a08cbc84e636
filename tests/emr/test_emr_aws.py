"""The shared AWS plumbing against moto: one client per endpoint and credentials, one loader, assume-role, outages."""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta, timezone

import pytest
from botocore.utils import parse_timestamp

from durable_jobs.clients.emr import EmrStepClient
from durable_jobs.clients.emr.aws_http import utc_timestamp
from durable_jobs.clients.emr.aws_pool import aws_client, clients_created, shared_loader
from durable_jobs.clients.emr.serverless import EmrServerlessClient
from durable_jobs.errors import TransientError
from durable_jobs.hooks.emr import EmrStepHook
from durable_jobs.polling import PollSettings, wait_for_outcome
from durable_jobs.status import JobState
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.moto_emr import ACCOUNT, MotoEmr


async def test_one_client_per_service_endpoint_and_credentials_sharing_one_loader(moto: MotoEmr):
    try:
        a, b = EmrStepClient(moto.config()), EmrStepClient(moto.config(label="another connection, same identity"))
        serverless = EmrServerlessClient(moto.config())
        other_creds = EmrStepClient(moto.config(aws_access_key_id="AKIAOTHER", aws_secret_access_key="other"))
        assert await a.client() is await b.client()
        assert await serverless.client() is not await a.client()
        assert await other_creds.client() is not await a.client()
        assert clients_created() == 3
        clients = [await c.client() for c in (a, serverless, other_creds)]
        assert all(c._loader is shared_loader() for c in clients)  # service models parsed once per process
        await asyncio.gather(*(a.send("list_clusters", what="list") for _ in range(20)))
        assert clients_created() == 3
    finally:
        await close_sessions()
    # close_sessions() (what a worker runs when its loop ends) closed them: the next call opens a new one
    try:
        assert clients_created() == 0
        await EmrStepClient(moto.config()).send("list_clusters", what="list")
        assert clients_created() == 1
    finally:
        await close_sessions()


async def test_each_event_loop_has_its_own_clients(moto: MotoEmr):
    config = moto.config()

    def in_another_loop() -> int:
        async def go() -> int:
            try:
                await aws_client(config, "emr")
                return id(await aws_client(config, "emr"))
            finally:
                await close_sessions()

        return asyncio.run(go())

    try:
        here = id(await aws_client(config, "emr"))
        there = await asyncio.to_thread(in_another_loop)
        assert here != there and clients_created() == 1
    finally:
        await close_sessions()


async def test_role_arn_assumes_the_role_once_and_calls_with_its_credentials(moto: MotoEmr):
    role = f"arn:aws:iam::{ACCOUNT}:role/airflow-emr"
    client = EmrStepClient(moto.config(role_arn=role, assume_role_kwargs={"ExternalId": "x-123"}))
    try:
        await client.send("list_clusters", what="list")
        await client.send("list_clusters", what="list")
    finally:
        await close_sessions()
    assert moto.count("sts", "AssumeRole") == 1 and moto.count("emr", "ListClusters") == 2


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_endpoint_is_unknown_never_failed(moto: MotoEmr):
    client = EmrStepClient(moto.config(endpoint_url=f"http://127.0.0.1:{closed_port()}", connect_timeout=2))
    loc = {"cluster_id": "j-ABCDEFGHIJKLM", "step_id": "s-ABCDEFGHIJKLM"}
    try:
        with pytest.raises(TransientError) as down:
            await client.statuses([loc])
        assert down.value.connect_failed
        result = await wait_for_outcome(client, loc, PollSettings(interval=0.05, unknown_budget=0.5))
    finally:
        await close_sessions()
    assert result.status == "unknown" and "cannot connect" in result.message


async def test_5xx_answers_are_transient(moto: MotoEmr):
    client = EmrStepClient(moto.config())
    cid = moto.create_cluster()
    loc = {"cluster_id": cid, "step_id": "s-ABCDEFGHIJKLM"}
    moto.fail("emr", "DescribeStep", code="ServiceUnavailable", status=503, times=1, message="Service Unavailable")
    try:
        with pytest.raises(TransientError, match="HTTP 503"):
            await client.status(loc)
        assert (await client.status(loc)).state is JobState.LOST  # the next answer is the real one
    finally:
        await close_sessions()


def test_hook_test_connection_asks_sts_who_we_are(moto: MotoEmr, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", moto.connection())
    ok, message = EmrStepHook(conn_id="aws_moto").test_connection()
    assert ok and message.startswith(f"authenticated as arn:aws:sts::{ACCOUNT}:")
    assert moto.count("sts", "GetCallerIdentity") == 1
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", moto.connection(endpoint_url=f"http://127.0.0.1:{closed_port()}"))
    ok, message = EmrStepHook(conn_id="aws_moto").test_connection()
    assert not ok and "Could not connect" in message


@pytest.mark.parametrize(
    "value", [1795255356, 1795255356.25, 0, "1795255356", "2026-11-21T10:02:36Z", "Sat, 21 Nov 2026 10:02:36 GMT"]
)
def test_timestamps_parse_to_the_instants_botocore_gives(value: object):
    parsed = utc_timestamp(value)
    assert parsed == parse_timestamp(value)  # the same instant
    if isinstance(value, (int, float)):
        assert parsed.tzinfo is timezone.utc and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [True, False, None, [], {"a": 1}, 1e300, "not a date"])
def test_timestamps_of_the_wrong_type_are_refused_not_read_as_1970(value: object):
    with pytest.raises(ValueError):
        utc_timestamp(value)
