"""YARN connections set up wrong: an RPC port, another service's web port or a non-HTTP URL, named with the fix."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from durable_jobs.clients.yarn.client import YarnClient
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs_harness.connections import connection, refusal

FIX = "use host=rm, port 8088 with http or 8090 with https (yarn.resourcemanager.webapp.address / webapp.https.address)"


def conn(**fields: Any) -> SimpleNamespace:
    return connection({"conn_id": "yarn_default", "conn_type": "yarn_rm", "host": "rm"}, **fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"port": 8032},
            "connection 'yarn_default' names port 8032 (rm), the ResourceManager's client RPC port "
            "(yarn.resourcemanager.address); durable_jobs"
            f" talks to the ResourceManager's REST API on its web port: {FIX}",
        ),
        ({"port": 8030}, "names port 8030 (rm), the ResourceManager's scheduler RPC port"),
        ({"host": "http://rm:8042"}, "names port 8042 (http://rm:8042), a NodeManager's web UI"),
        ({"port": 19888}, "the MapReduce JobHistory web UI"),
        ({"host": "hdfs://rm:8020"}, "names hdfs://rm:8020, an HDFS address; durable_jobs talks to the Resource"),
        ({"schema": "thrift"}, "has schema 'thrift'; the schema field is the URL scheme of the ResourceManager's"),
        ({"conn_type": "hive_cli"}, "has type 'hive_cli'; the YARN ResourceManager (REST) hook needs type 'yarn_rm'"),
    ],
)
def test_wrong_connections_are_named_with_the_fix(fields, message):
    assert message in refusal(YarnHook, conn(**fields))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"port": 8088},
        {"schema": "https", "port": 8090},
        {"host": "rm1,rm2"},
        {"host": "https://rm1:8090,https://rm2"},
    ],
)
def test_right_connections_pass(fields):
    assert isinstance(YarnHook.build_client(conn(**fields)), YarnClient)
