"""YARN, declared: the ``yarn_rm`` connection (ResourceManager REST, Kerberos, spark-submit) and the public classes."""

from __future__ import annotations

from durable_jobs.hooks.fields import CA_FILE, MAX_RESPONSE_BYTES, TIMEOUT, VERIFY_SSL, Connection, Field
from durable_jobs.system import Link, System

RM_PORT = 8088
RM_HTTPS_PORT = 8090

CONNECTION = Connection(
    conn_type="yarn_rm",
    hook_class="YarnHook",
    hook_name="YARN ResourceManager (REST)",
    default_conn_name="yarn_default",
    default_port=RM_PORT,  # RM_HTTPS_PORT with https
    fields=(
        Field(
            "auth",
            "Auth: none, simple or kerberos",
            description="default: kerberos when a principal, keytab or ccache is given, simple when a login is",
        ),
        Field("principal", "Kerberos principal"),
        Field("keytab", "Keytab path", description="a path readable on the workers and the triggerers"),
        Field("ccache", "Kerberos ccache (instead of a keytab)", description="default: KRB5CCNAME"),
        Field("kerberos_service", "SPN service", default="HTTP"),
        Field("kerberos_hostname", "SPN host (if not the URL's)"),
        Field("mutual_auth", "Require mutual auth", "boolean", True),
        Field(
            "renew_margin",
            "Ticket renew margin (s)",
            "number",
            600.0,
            description="seconds before expiry a ticket is replaced",
        ),
        VERIFY_SSL,
        CA_FILE,
        TIMEOUT,
        Field("list_batch", "Tags per status list request", "integer", 100, description="between 1 and 200"),
        MAX_RESPONSE_BYTES,
        Field("spark_home", "SPARK_HOME on workers"),
        Field("spark_submit", "spark-submit binary", description="default: $SPARK_HOME/bin/spark-submit, or on PATH"),
        Field("hadoop_conf_dir", "HADOOP_CONF_DIR for spark-submit"),
        Field("yarn_conf_dir", "YARN_CONF_DIR for spark-submit"),
        Field("spark_submit_timeout", "spark-submit timeout (s)", "number", 900.0, positive=True),
    ),
    hidden=("password",),
    relabel={
        "host": "ResourceManager host(s), comma-separated for HA",
        "port": "RM web port",
        "schema": "Scheme (http or https)",
        "login": "User (simple auth)",
    },
    placeholders={
        "host": "rm1.example.com,rm2.example.com",
        "schema": "http",
        "login": "etl",
        "extra": '{"principal": "etl@EXAMPLE.COM", "keytab": "/etc/security/keytabs/etl.keytab"}',
    },
)

SYSTEM = System(
    module="yarn",
    integration="YARN (durable)",
    doc_url="https://hadoop.apache.org/docs/stable/hadoop-yarn/hadoop-yarn-site/ResourceManagerRest.html",
    connections=(CONNECTION,),
    triggers=("YarnTrigger",),
    operators=("YarnApplicationOperator", "SparkOnYarnOperator"),
    # the RM's page of the application, and its tracking URL (the Spark UI through the proxy) once the RM has one
    links=(Link("YARN application", "rm_app_url"), Link("YARN tracking URL", "tracking_url")),
)
