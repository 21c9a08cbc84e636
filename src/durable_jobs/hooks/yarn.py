"""The ``yarn_rm`` connection type: where the ResourceManagers are, how to authenticate, and how to run
spark-submit.

Fields:

* host: one RM, or several for HA (``rm1,rm2``), each optionally a full URL (``https://rm1:8090``);
* port: the RM web port (default 8088, or 8090 with https); schema: ``http`` or ``https``;
* login: the user for Hadoop simple auth (``?user.name=``);
* extra:

  - ``auth``: ``none``, ``simple`` or ``kerberos`` (default: ``kerberos`` when a principal, keytab or
    ccache is given, ``simple`` when a login is, else ``none``);
  - Kerberos: ``principal``, ``keytab`` (a path on the workers and triggerers), or ``ccache`` (an
    existing credential cache, e.g. the one ``airflow kerberos`` keeps fresh; default ``KRB5CCNAME``),
    ``kerberos_service`` (default ``HTTP``), ``kerberos_hostname`` (the SPN host when it is not the URL's
    host), ``mutual_auth`` (default true), ``renew_margin`` (seconds, default 600);
  - TLS and timing: ``verify_ssl`` (default true), ``ca_file``, ``timeout`` (seconds per request, default
    30), ``list_batch`` (tags per batched status request, default 100);
  - ``max_response_bytes``: the largest answer read (default 16 MiB; an int or ``"64MiB"``); a larger one
    is not read whole and counts as unknown;
  - spark-submit: ``spark_submit`` (the binary; default ``$SPARK_HOME/bin/spark-submit`` or
    ``spark-submit``), ``spark_home``, ``hadoop_conf_dir``, ``yarn_conf_dir`` (their yarn-site.xml must
    point at the same RMs), ``spark_submit_timeout`` (seconds, default 900).

No secret is stored: Kerberos material is a keytab path or a ccache, both read on the machine. The other
hosts of the connection are the only places a standby RM's redirect of a read is followed to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from durable_jobs.hooks.base import DurableJobHook, as_bool, base_urls, byte_size, extra_of
from durable_jobs.transport.limits import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from durable_jobs.clients.yarn.client import YarnClient
    from durable_jobs.clients.yarn.config import YarnConfig

CONN_TYPE = "yarn_rm"


class YarnHook(DurableJobHook):
    client_module: ClassVar[str] = "durable_jobs.clients.yarn.client"
    conn_type: ClassVar[str] = CONN_TYPE
    default_conn_name: ClassVar[str] = "yarn_default"
    hook_name: ClassVar[str] = "YARN ResourceManager (REST)"

    @classmethod
    def client_from_connection(cls, conn: Any) -> YarnClient:
        from durable_jobs.clients.yarn.client import YarnClient

        return YarnClient(cls.config_from_connection(conn))

    @classmethod
    def config_from_connection(cls, conn: Any) -> YarnConfig:
        from durable_jobs.clients.yarn.config import YarnConfig
        from durable_jobs.transport.kerberos import KerberosCredentials

        extra = extra_of(conn)
        scheme = (conn.schema or "http").lower()
        rm_urls = base_urls(conn, 8090 if scheme == "https" else 8088, "ResourceManager")
        principal = extra.get("principal") or None
        keytab = extra.get("keytab") or None
        ccache = extra.get("ccache") or None
        auth = str(extra.get("auth") or "").lower()
        if not auth:
            auth = "kerberos" if (principal or keytab or ccache) else "simple" if conn.login else "none"
        kerberos = None
        if auth == "kerberos":
            kerberos = KerberosCredentials(
                principal=principal,
                keytab=keytab,
                ccache=ccache,
                renew_margin=float(extra.get("renew_margin") or 600.0),
            )
        spark_home = extra.get("spark_home") or None
        spark_env = {
            name: str(extra[key])
            for key, name in (
                ("hadoop_conf_dir", "HADOOP_CONF_DIR"),
                ("yarn_conf_dir", "YARN_CONF_DIR"),
                ("spark_home", "SPARK_HOME"),
            )
            if extra.get(key)
        }
        return YarnConfig(
            rm_urls=rm_urls,
            auth=auth,
            user=conn.login or None,
            kerberos=kerberos,
            kerberos_service=str(extra.get("kerberos_service") or "HTTP"),
            kerberos_hostname=extra.get("kerberos_hostname") or None,
            mutual_auth=as_bool(extra.get("mutual_auth"), True),
            verify_ssl=as_bool(extra.get("verify_ssl"), True),
            ca_file=extra.get("ca_file") or None,
            timeout=float(extra.get("timeout") or 30.0),
            list_batch=int(extra.get("list_batch") or 100),
            max_body=byte_size(extra.get("max_response_bytes"), DEFAULT_MAX_BODY),
            spark_submit=str(
                extra.get("spark_submit") or (f"{spark_home}/bin/spark-submit" if spark_home else "spark-submit")
            ),
            spark_env=spark_env,
            spark_submit_timeout=float(extra.get("spark_submit_timeout") or 900.0),
        )

    def test_connection(self) -> tuple[bool, str]:
        client = self.client_from_connection(self.get_connection(self.conn_id))
        try:
            info = self.probe(client.cluster_info)
        except Exception as exc:
            return False, str(exc)
        return True, (
            f"ResourceManager {client.active_rm} is {info.get('haState', 'ACTIVE')}, "
            f"state {info.get('state')}, Hadoop {info.get('hadoopVersion')}"
        )
