"""AWS Glue job runs, declared: the public classes and the link; the connection is EMR's ``aws`` connection.

Glue reads the same Airflow ``aws`` connection as EMR (:mod:`durable_jobs.systems.emr` declares it once,
with the amazon provider's field names), so a DAG keeps its ``aws_default``. It is not listed again here:
a connection type is registered once, and without the amazon provider the EMR declaration already
registers ``aws``. ``service_config`` takes ``{"glue": {"endpoint_url": ...}}`` for Glue's own endpoint.
"""

from __future__ import annotations

from durable_jobs.system import Link, System

SYSTEM = System(
    module="glue",
    integration="AWS Glue (durable)",
    doc_url="https://docs.aws.amazon.com/glue/latest/dg/aws-glue-api-jobs-runs.html",
    connections=(),  # the ``aws`` connection, declared by the EMR system
    triggers=("GlueTrigger",),
    operators=("GlueJobRunOperator",),
    tags=("aws",),
    # the run's page in the Glue Studio console
    links=(Link("Glue job run", "glue_run_url"),),
)
