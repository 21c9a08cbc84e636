"""Amazon EMR, declared: the ``aws`` connection with the amazon provider's field names, and the public classes.

The ``aws`` type is the amazon provider's. With that provider installed, it owns the type and its form, and
provider info lists no connection type here (Airflow keeps the first provider registering a type, in the
order of package names, so listing ``aws`` beside it would take the type away from it). Without it, nobody
registers ``aws``: ``airflow connections add --conn-type aws`` would store the connection as ``generic``,
which ``airflow connections test`` cannot test. So then this package registers ``aws`` itself, with this
form and :class:`~durable_jobs.hooks.emr.DurableAwsHook`, whose ``test_connection`` asks STS who the
credentials are. The fields are the same either way, so a connection made under one works under the other.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from durable_jobs.hooks.convert import as_bool
from durable_jobs.hooks.fields import MAX_RESPONSE_BYTES, Connection, Field
from durable_jobs.system import Link, System


def _verify(value: Any) -> bool | str:
    """``verify``: a boolean, or a CA bundle path."""
    if isinstance(value, bool):
        return value
    try:
        return as_bool(value, True)
    except ValueError:
        return str(value).strip()


#: the distribution that owns the ``aws`` connection type when it is installed
AMAZON_PROVIDER = "apache-airflow-providers-amazon"


def amazon_provider_installed() -> bool:
    """Whether the amazon provider is installed (its metadata is looked up; nothing is imported)."""
    try:
        metadata.distribution(AMAZON_PROVIDER)
    except metadata.PackageNotFoundError:
        return False
    return True


CONNECTION = Connection(
    conn_type="aws",
    hook_class="DurableAwsHook",
    hook_name="Amazon Web Services (durable_jobs)",
    default_conn_name="aws_default",
    own_form=not amazon_provider_installed(),
    # the form as the amazon provider lays it out, for when it is ours
    hidden=("host", "schema", "port"),
    relabel={"login": "AWS Access Key ID", "password": "AWS Secret Access Key"},
    placeholders={"extra": '{"region_name": "eu-west-1", "role_arn": "arn:aws:iam::123456789012:role/airflow-emr"}'},
    fields=(
        Field("aws_access_key_id", "Access key id", secret=True, description="when the login is empty"),
        Field("aws_secret_access_key", "Secret access key", secret=True, description="when the password is empty"),
        Field("aws_session_token", "Session token", secret=True),
        Field("region_name", "Region"),
        Field("endpoint_url", "Endpoint URL (every service)"),
        Field("service_config", "Per-service settings", "object", description='{"emr": {"endpoint_url": ...}}'),
        Field("profile_name", "Profile"),
        Field("role_arn", "Role to assume"),
        Field("assume_role_method", "Assume role method", default="assume_role", choices=("assume_role",)),
        Field("assume_role_kwargs", "AssumeRole arguments", "object"),
        Field("verify", "Verify TLS", default=True, parse=_verify, description="false, or a CA bundle path"),
        Field(
            "config_kwargs",
            "botocore Config options",
            "object",
            aliases=("botocore_config",),
            description="retries is ignored: this library retries",
        ),
        MAX_RESPONSE_BYTES,
        Field(
            "durable_jobs",
            "This library's settings",
            "object",
            fields=(
                Field("retry_budget", "Worker-side retry budget (s)", "number", 300.0),
                Field("backoff_base", "Backoff base (s)", "number", 1.0),
                Field("backoff_cap", "Backoff cap (s)", "number", 30.0),
                Field(
                    "step_cancellation_option",
                    "Step cancellation option",
                    default="SEND_INTERRUPT",
                    description="SEND_INTERRUPT or TERMINATE_PROCESS",
                ),
            ),
        ),
    ),
)

SYSTEM = System(
    module="emr",
    integration="Amazon EMR (durable)",
    doc_url="https://docs.aws.amazon.com/emr/",
    connections=(CONNECTION,),
    triggers=("EmrClusterTrigger", "EmrEksTrigger", "EmrServerlessTrigger", "EmrStepTrigger"),
    operators=(
        "EmrCreateClusterOperator",
        "EmrEksJobOperator",
        "EmrServerlessJobOperator",
        "EmrStepOperator",
        "EmrTerminateClusterOperator",
    ),
    tags=("aws",),
    # the console page of the cluster (a step's cluster), Serverless application run or EMR on EKS virtual
    # cluster; the S3 console at the job's logs when it writes logs to S3
    links=(Link("EMR console", "emr_console_url"), Link("EMR logs", "emr_logs_url")),
)
