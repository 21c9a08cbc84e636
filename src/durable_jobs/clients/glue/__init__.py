"""AWS Glue job runs (system ``glue``) on the EMR room's AWS plumbing (:mod:`durable_jobs.clients.emr.aws`).

No Airflow here: the hook (:mod:`durable_jobs.hooks.glue`) reads an ``aws`` connection into an
:class:`~durable_jobs.clients.emr.aws_config.AwsConfig` and makes ``GlueClient(config)``, as the EMR hooks do.
"""

from durable_jobs.clients.glue.answers import JobRunView, validate_job_name, validate_run_id
from durable_jobs.clients.glue.client import SYSTEM, GlueClient
from durable_jobs.clients.glue.specs import TOKEN_ARGUMENT, GlueJobRunSpec
from durable_jobs.clients.glue.states import GLUE_STATES, run_status

__all__ = [
    "GLUE_STATES",
    "SYSTEM",
    "TOKEN_ARGUMENT",
    "GlueClient",
    "GlueJobRunSpec",
    "JobRunView",
    "run_status",
    "validate_job_name",
    "validate_run_id",
]
