"""Run an application on YARN through the ResourceManager REST API, submitted exactly once.

``YarnApplicationOperator`` asks the RM for an application id (``new-application``), writes it to the
task state store **before** it submits the ApplicationSubmissionContext, then defers while the
triggerer watches the application. A worker that dies anywhere in between leaves nothing to guess: the
retry GETs the recorded id, and adopts the application if it exists or submits it (with the same id)
if it does not. A retry after the application *failed* submits a new one.

The AM here is a plain shell command (YARN runs any command as the ApplicationMaster container; it
fails after ``max-app-attempts`` unless it registers with the RM, which a real AM does). Set up a
connection ``yarn_default`` of type ``yarn_rm``, for example with Kerberos (see docs/yarn.md):

    export AIRFLOW_CONN_YARN_DEFAULT='{"conn_type": "yarn_rm", "host": "rm1,rm2", "port": 8088,
        "extra": {"principal": "etl@EXAMPLE.COM", "keytab": "/etc/security/keytabs/etl.keytab"}}'
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.yarn import YarnApplicationOperator

with DAG(
    dag_id="durable_yarn_rest",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "yarn"],
):
    YarnApplicationOperator(
        task_id="distributed_shell",
        conn_id="yarn_default",
        name="durable-distributed-shell",
        # not a Jinja template: {{JAVA_HOME}} and <LOG_DIR> are YARN's, expanded by the NodeManager
        command=(
            "{{JAVA_HOME}}/bin/java -Xmx256m org.apache.hadoop.yarn.applications.distributedshell.ApplicationMaster "
            "--container_memory 128 --num_containers 1 --shell_command 'sleep 5' "
            "1><LOG_DIR>/AppMaster.stdout 2><LOG_DIR>/AppMaster.stderr"
        ),
        # a jar already on HDFS, localized into the AM container; size and timestamp must be the file's
        # (`hdfs dfs -stat "%b %Y" <path>`), or the NodeManager refuses to localize it
        local_resources={
            "AppMaster.jar": {
                "resource": os.environ.get(
                    "DURABLE_JOBS_EXAMPLE_DSHELL_JAR", "hdfs:///apps/hadoop-yarn-applications-distributedshell.jar"
                ),
                "type": "FILE",
                "visibility": "APPLICATION",
                "size": int(os.environ.get("DURABLE_JOBS_EXAMPLE_DSHELL_JAR_SIZE", "0")),
                "timestamp": int(os.environ.get("DURABLE_JOBS_EXAMPLE_DSHELL_JAR_TIMESTAMP", "0")),
            }
        },
        environment={"CLASSPATH": "{{CLASSPATH}}<CPS>./*<CPS>"},
        yarn_queue=os.environ.get("DURABLE_JOBS_EXAMPLE_QUEUE", "default"),
        memory_mb=512,
        vcores=1,
        application_type="DURABLE-JOBS",
        tags=["example"],
        max_app_attempts=1,
        retries=2,
        poll_interval=15,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(hours=1),
    )
