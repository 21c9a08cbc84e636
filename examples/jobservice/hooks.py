"""The connection of the job service: host, port, and an optional token (the connection's password)."""

from __future__ import annotations

from typing import Any, ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.convert import base_urls, extra_of
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.transport.base import NO_AUTH

from .client import JobServiceClient


class JobServiceHook(DurableJobHook):
    conn_type: ClassVar[str] = "jobservice"
    default_conn_name: ClassVar[str] = "jobservice_default"
    hook_name: ClassVar[str] = "Job service"

    @classmethod
    def client_from_connection(cls, conn: Any) -> JobServiceClient:
        # no I/O here: it runs on the triggerer's event loop. The token stays in the connection, never in
        # the trigger's kwargs (Airflow stores those as plain JSON)
        auth = BearerAuth(conn.password) if conn.password else NO_AUTH
        timeout = float(extra_of(conn).get("timeout", 30))
        return JobServiceClient(base_urls(conn, 8080, "job service")[0], auth=auth, timeout=timeout)
