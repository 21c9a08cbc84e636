"""Create an EMR cluster, run a Spark step on it, terminate it: each action taken exactly once.

The pattern of the AWS tutorials, made crash-safe:

* ``create_cluster`` calls ``RunJobFlow`` once (the cluster's name and a ``durable-jobs:token`` tag
  carry the task's token), records the cluster id, and defers until the cluster is ``WAITING``. A
  retry adopts the cluster a crashed try created instead of starting a second one.
* ``spark_pi`` adds one step (its name carries the token) and defers; a retry re-attaches to the step,
  or adopts it through ``ListSteps`` if the crash came before the id was recorded. Every step watched by
  the triggerer on a cluster costs one ``ListSteps`` per page of 50 per interval, not one call each.
* ``terminate_cluster`` runs whatever happened upstream (``trigger_rule="all_done"``), so a failed step
  does not leave the cluster running. It finds the cluster id even when ``create_cluster`` failed after
  creating it.

Credentials come from the Airflow connection ``aws_default`` (conn_type ``aws``, as for the amazon
provider; the amazon provider itself is not needed). ``DURABLE_JOBS_EXAMPLE_EMR_LOG_URI`` sets where
EMR writes the cluster's logs.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG

from durable_jobs.operators.emr import EmrCreateClusterOperator, EmrStepOperator, EmrTerminateClusterOperator

JOB_FLOW = {
    "ReleaseLabel": "emr-7.1.0",
    "Applications": [{"Name": "Spark"}],
    "Instances": {
        "InstanceGroups": [
            {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
            {"Name": "core", "InstanceRole": "CORE", "InstanceType": "m5.xlarge", "InstanceCount": 2},
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    },
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
    "LogUri": os.environ.get("DURABLE_JOBS_EXAMPLE_EMR_LOG_URI", "s3://my-emr-logs/durable-jobs/"),
    "Tags": [{"Key": "team", "Value": "data"}],
}
CLUSTER_ID = EmrCreateClusterOperator.cluster_id_template("create_cluster")

with DAG(
    dag_id="durable_emr_cluster_step",
    schedule=None,
    catchup=False,
    tags=["durable_jobs", "example", "emr"],
):
    create_cluster = EmrCreateClusterOperator(
        task_id="create_cluster",
        name="durable-jobs-example",
        job_flow_overrides=JOB_FLOW,
        retries=1,
        job_timeout=timedelta(minutes=30),  # a cluster not ready by then is terminated
    )
    spark_pi = EmrStepOperator(
        task_id="spark_pi",
        cluster_id=CLUSTER_ID,
        args=["spark-submit", "--deploy-mode", "cluster", "/usr/lib/spark/examples/src/main/python/pi.py", "100"],
        retries=2,
        poll_interval=30,  # seconds between status polls (default 30 s)
        job_timeout=timedelta(hours=2),  # the step is cancelled when it passes
    )
    terminate_cluster = EmrTerminateClusterOperator(
        task_id="terminate_cluster",
        cluster_id=CLUSTER_ID,
        trigger_rule="all_done",
        retries=3,
    )
    create_cluster >> spark_pi >> terminate_cluster
