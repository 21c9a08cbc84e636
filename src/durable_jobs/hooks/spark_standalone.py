"""The ``spark_standalone_rest`` connection type: where the Spark masters' REST servers are, and how to auth.

Fields:

* host: one master, or several for HA (``m1,m2``), each optionally a full URL (``https://m1:6066``);
* port: the REST port (default 6066); schema: ``http`` or ``https``;
* password: a JWT bearer token for Spark 4's ``JWSFilter`` (optional, never logged);
* extra: the fields declared in :mod:`durable_jobs.systems.spark_standalone` (``master_ui_urls``,
  ``verify_ssl``, ``ca_file``, ``timeout``, ``batch_status``, ``max_response_bytes``: a master listing
  100,000 drivers sends about 26 MB of ``/json/``), read with their declared defaults.

Checked when the hook builds a client (:mod:`durable_jobs.hooks.validate`): the type, http(s) only, and
none of the master's other ports (7077 is its legacy RPC port, what ``spark://`` URLs name; 8080 its web UI).

The client built from a connection is keyed by its URLs only, never by the token: after a JWT rotation
the poller's refetch (after a 403) brings the new token to every waiting trigger of that master.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.convert import base_urls
from durable_jobs.hooks.fields import Connection
from durable_jobs.hooks.validate import HTTP_SCHEMES, Expect, bare_host
from durable_jobs.systems.spark_standalone import CONNECTION, REST_PORT, UI_PORT

if TYPE_CHECKING:
    from durable_jobs.clients.spark_standalone.client import SparkStandaloneClient
    from durable_jobs.clients.spark_standalone.config import SparkStandaloneConfig

CONN_TYPE = CONNECTION.conn_type
REST_FIX = f"use host={{host}}, port={REST_PORT} (spark.master.rest.enabled=true on the master), scheme http or https"


class SparkStandaloneHook(DurableJobHook):
    connection: ClassVar[Connection] = CONNECTION
    conn_type: ClassVar[str] = CONNECTION.conn_type
    default_conn_name: ClassVar[str] = CONNECTION.default_conn_name
    hook_name: ClassVar[str] = CONNECTION.hook_name
    client_module: ClassVar[str] = "durable_jobs.clients.spark_standalone.client"
    expect: ClassVar[Expect] = Expect(
        service="the Spark master's REST submission server",
        fix=REST_FIX,
        wrong_ports={
            7077: "the master's legacy RPC port (what spark:// URLs name)",
            UI_PORT: "the master's web UI (it belongs in extra master_ui_urls)",
            8081: "a worker's web UI",
            4040: "an application's web UI",
            18080: "the history server's web UI",
        },
        wrong_schemes={"spark": "the master's legacy RPC address"},
    )

    @classmethod
    def connection_problems(cls, conn: Any) -> list[str]:
        """``master_ui_urls`` must be the masters' web UIs over http(s), not their REST or RPC ports."""
        problems = []
        for url in CONNECTION.read(conn)["master_ui_urls"] or ():
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme not in HTTP_SCHEMES:
                problems.append(
                    f"extra master_ui_urls names {url!r}, which is not an http(s) URL: give each master's web UI, "
                    f"e.g. http://{bare_host(url)}:{UI_PORT}"
                )
            elif url.rstrip("/").endswith((f":{REST_PORT}", ":7077")):
                problems.append(
                    f"extra master_ui_urls names {url!r}, a REST or RPC port: /json/ is read from the master's web "
                    f"UI (port {UI_PORT} by default, spark.master.ui.port)"
                )
        return problems

    @classmethod
    def client_from_connection(cls, conn: Any) -> SparkStandaloneClient:
        from durable_jobs.clients.spark_standalone.client import SparkStandaloneClient

        return SparkStandaloneClient(cls.config_from_connection(conn))

    @classmethod
    def config_from_connection(cls, conn: Any) -> SparkStandaloneConfig:
        from durable_jobs.clients.spark_standalone.config import SparkStandaloneConfig

        extra = CONNECTION.read(conn)
        rest_urls = base_urls(conn, REST_PORT, "Spark master")
        ui_urls = extra["master_ui_urls"] or tuple(f"{u.rsplit(':', 1)[0]}:{UI_PORT}" for u in rest_urls)
        return SparkStandaloneConfig(
            rest_urls=rest_urls,
            ui_urls=ui_urls,
            bearer_token=conn.password or None,
            verify_ssl=extra["verify_ssl"],
            ca_file=extra["ca_file"],
            timeout=extra["timeout"],
            batch_status=extra["batch_status"],
            max_response_bytes=extra["max_response_bytes"],
        )

    def test_connection(self) -> tuple[bool, str]:
        try:
            conn = self.get_connection(self.conn_id)
            self.check(conn)
            client = self.client_from_connection(conn)
            ok = self.probe(client.readyz)
        except Exception as exc:
            return False, str(exc)
        return ok, "the Spark master REST server is ready" if ok else "the Spark master is not ready"
