"""Fixtures of the Databricks client's tests: a stub workspace behind the mock transport, instant retries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from durable_jobs.clients.databricks import DatabricksClient
from durable_jobs.transport import retry
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.transport.http import use_transport
from tests.databricks.stub_workspace import HOST, PAT, StubWorkspace


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    with retry.instant_waits():
        yield


@pytest.fixture
def ws() -> Iterator[StubWorkspace]:
    stub = StubWorkspace()
    with use_transport(stub.transport):
        yield stub


@pytest.fixture
def client(ws: StubWorkspace) -> DatabricksClient:
    return DatabricksClient(HOST, auth=BearerAuth(PAT), timeout=5.0)
