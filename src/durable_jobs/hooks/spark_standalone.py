"""The ``spark_standalone_rest`` connection type: where the Spark masters' REST servers are, and how to auth.

Fields:

* host: one master, or several for HA (``m1,m2``), each optionally a full URL (``https://m1:6066``);
* port: the REST port (default 6066); schema: ``http`` or ``https``;
* password: a JWT bearer token for Spark 4's ``JWSFilter`` (optional, never logged);
* extra: ``master_ui_urls`` (comma-separated; default: each master on port 8080), ``verify_ssl``
  (default true), ``ca_file``, ``timeout`` (seconds per request, default 30), ``batch_status``
  (one ``/json/`` call per poll for every driver, default true), ``max_response_bytes`` (the largest
  answer read whole, an int or ``"64MiB"``; default 16 MiB; a master listing 100,000 drivers sends about
  26 MB of ``/json/``).

The client built from a connection is keyed by its URLs only, never by the token: after a JWT rotation
the poller's refetch (after a 403) brings the new token to every waiting trigger of that master.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from durable_jobs.hooks.base import DurableJobHook, as_bool, base_urls, byte_size, extra_of, split_list
from durable_jobs.transport.limits import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from durable_jobs.clients.spark_standalone.client import SparkStandaloneClient
    from durable_jobs.clients.spark_standalone.config import SparkStandaloneConfig

CONN_TYPE = "spark_standalone_rest"


class SparkStandaloneHook(DurableJobHook):
    conn_type: ClassVar[str] = CONN_TYPE
    default_conn_name: ClassVar[str] = "spark_standalone_default"
    hook_name: ClassVar[str] = "Spark Standalone (REST)"
    client_module: ClassVar[str] = "durable_jobs.clients.spark_standalone.client"

    @classmethod
    def client_from_connection(cls, conn: Any) -> SparkStandaloneClient:
        from durable_jobs.clients.spark_standalone.client import SparkStandaloneClient

        return SparkStandaloneClient(cls.config_from_connection(conn))

    @classmethod
    def config_from_connection(cls, conn: Any) -> SparkStandaloneConfig:
        from durable_jobs.clients.spark_standalone.config import SparkStandaloneConfig

        extra = extra_of(conn)
        rest_urls = base_urls(conn, 6066, "Spark master")
        ui_urls = tuple(split_list(extra.get("master_ui_urls")))
        if not ui_urls:
            ui_urls = tuple(f"{u.rsplit(':', 1)[0]}:8080" for u in rest_urls)
        return SparkStandaloneConfig(
            rest_urls=rest_urls,
            ui_urls=ui_urls,
            bearer_token=conn.password or None,
            verify_ssl=as_bool(extra.get("verify_ssl"), True),
            ca_file=extra.get("ca_file") or None,
            timeout=float(extra.get("timeout") or 30.0),
            batch_status=as_bool(extra.get("batch_status"), True),
            max_response_bytes=byte_size(extra.get("max_response_bytes"), DEFAULT_MAX_BODY),
        )

    def test_connection(self) -> tuple[bool, str]:
        client = self.client_from_connection(self.get_connection(self.conn_id))
        try:
            ok = self.probe(client.readyz)
        except Exception as exc:
            return False, str(exc)
        return ok, "the Spark master REST server is ready" if ok else "the Spark master is not ready"
