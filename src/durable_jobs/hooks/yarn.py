"""The ``yarn_rm`` connection type: where the ResourceManagers are, how to authenticate, and how to run
spark-submit.

Fields:

* host: one RM, or several for HA (``rm1,rm2``), each optionally a full URL (``https://rm1:8090``);
* port: the RM web port (default 8088, or 8090 with https); schema: ``http`` or ``https``;
* login: the user for Hadoop simple auth (``?user.name=``);
* extra: the fields declared in :mod:`durable_jobs.systems.yarn`, read with their declared defaults:

  - ``auth``: ``none``, ``simple`` or ``kerberos`` (default: ``kerberos`` when a principal, keytab or
    ccache is given, ``simple`` when a login is, else ``none``);
  - Kerberos: ``principal``, ``keytab`` (a path on the workers and triggerers), or ``ccache`` (an
    existing credential cache, e.g. the one ``airflow kerberos`` keeps fresh; default ``KRB5CCNAME``),
    ``kerberos_service``, ``kerberos_hostname`` (the SPN host when it is not the URL's host),
    ``mutual_auth``, ``renew_margin``;
  - TLS and timing: ``verify_ssl``, ``ca_file``, ``timeout``, ``list_batch``, ``max_response_bytes``;
  - spark-submit: ``spark_submit`` (the binary; default ``$SPARK_HOME/bin/spark-submit`` or
    ``spark-submit``), ``spark_home``, ``hadoop_conf_dir``, ``yarn_conf_dir`` (their yarn-site.xml must
    point at the same RMs), ``spark_submit_timeout``.

Checked when the hook builds a client (:mod:`durable_jobs.hooks.validate`): the type, http(s) only, and
none of the cluster's RPC or other web ports (8032 is the RM's client RPC port, 8042 a NodeManager's UI).

No secret is stored: Kerberos material is a keytab path or a ccache, both read on the machine. The other
hosts of the connection are the only places a standby RM's redirect of a read is followed to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.convert import base_urls
from durable_jobs.hooks.fields import Connection
from durable_jobs.hooks.validate import Expect
from durable_jobs.systems.yarn import CONNECTION, RM_HTTPS_PORT, RM_PORT

if TYPE_CHECKING:
    from durable_jobs.clients.yarn.client import YarnClient
    from durable_jobs.clients.yarn.config import YarnConfig

CONN_TYPE = CONNECTION.conn_type


class YarnHook(DurableJobHook):
    client_module: ClassVar[str] = "durable_jobs.clients.yarn.client"
    connection: ClassVar[Connection] = CONNECTION
    conn_type: ClassVar[str] = CONNECTION.conn_type
    default_conn_name: ClassVar[str] = CONNECTION.default_conn_name
    hook_name: ClassVar[str] = CONNECTION.hook_name
    expect: ClassVar[Expect] = Expect(
        service="the ResourceManager's REST API on its web port",
        fix=(
            f"use host={{host}}, port {RM_PORT} with http or {RM_HTTPS_PORT} with https "
            "(yarn.resourcemanager.webapp.address / webapp.https.address)"
        ),
        wrong_ports={
            8032: "the ResourceManager's client RPC port (yarn.resourcemanager.address)",
            8030: "the ResourceManager's scheduler RPC port",
            8031: "the ResourceManager's resource-tracker RPC port",
            8033: "the ResourceManager's admin RPC port",
            8042: "a NodeManager's web UI",
            8188: "the timeline server",
            19888: "the MapReduce JobHistory web UI",
            10020: "the MapReduce JobHistory RPC port",
            9870: "the HDFS NameNode's web UI",
            8020: "the HDFS NameNode's RPC port",
        },
        wrong_schemes={"hdfs": "an HDFS address", "yarn": "not a URL scheme"},
    )

    @classmethod
    def client_from_connection(cls, conn: Any) -> YarnClient:
        from durable_jobs.clients.yarn.client import YarnClient

        return YarnClient(cls.config_from_connection(conn))

    @classmethod
    def config_from_connection(cls, conn: Any) -> YarnConfig:
        from durable_jobs.clients.yarn.config import YarnConfig
        from durable_jobs.transport.kerberos import KerberosCredentials

        extra = CONNECTION.read(conn)
        scheme = (conn.schema or "http").lower()
        rm_urls = base_urls(conn, RM_HTTPS_PORT if scheme == "https" else RM_PORT, "ResourceManager")
        principal, keytab, ccache = extra["principal"], extra["keytab"], extra["ccache"]
        auth = (extra["auth"] or "").lower()
        if not auth:
            auth = "kerberos" if (principal or keytab or ccache) else "simple" if conn.login else "none"
        kerberos = None
        if auth == "kerberos":
            kerberos = KerberosCredentials(
                principal=principal, keytab=keytab, ccache=ccache, renew_margin=extra["renew_margin"]
            )
        spark_home = extra["spark_home"]
        spark_env = {
            name: extra[key]
            for key, name in (
                ("hadoop_conf_dir", "HADOOP_CONF_DIR"),
                ("yarn_conf_dir", "YARN_CONF_DIR"),
                ("spark_home", "SPARK_HOME"),
            )
            if extra[key]
        }
        return YarnConfig(
            rm_urls=rm_urls,
            auth=auth,
            user=conn.login or None,
            kerberos=kerberos,
            kerberos_service=extra["kerberos_service"],
            kerberos_hostname=extra["kerberos_hostname"],
            mutual_auth=extra["mutual_auth"],
            verify_ssl=extra["verify_ssl"],
            ca_file=extra["ca_file"],
            timeout=extra["timeout"],
            list_batch=extra["list_batch"],
            max_body=extra["max_response_bytes"],
            spark_submit=extra["spark_submit"] or (f"{spark_home}/bin/spark-submit" if spark_home else "spark-submit"),
            spark_env=spark_env,
            spark_submit_timeout=extra["spark_submit_timeout"],
        )

    def test_connection(self) -> tuple[bool, str]:
        try:
            conn = self.get_connection(self.conn_id)
            self.check(conn)
            client = self.client_from_connection(conn)
            info = self.probe(client.cluster_info)
        except Exception as exc:
            return False, str(exc)
        return True, (
            f"ResourceManager {client.active_rm} is {info.get('haState', 'ACTIVE')}, "
            f"state {info.get('state')}, Hadoop {info.get('hadoopVersion')}"
        )
