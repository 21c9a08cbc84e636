"""The AWS EMR clients, one system a module: steps (``emr-step``), clusters (``emr-cluster``), EMR
Serverless (``emr-serverless``) and EMR on EKS (``emr-eks``), on a shared AWS base (``aws*.py``).

No Airflow here: the hooks (:mod:`durable_jobs.hooks.emr`) read connections and make these clients.
"""

from durable_jobs.clients.emr.aws import TOKEN_TAG, AwsJobClient, named
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.aws_errors import AwsAuthError, AwsRequestError, Throttled
from durable_jobs.clients.emr.clusters import CLUSTER_STATES, CLUSTER_SYSTEM, EmrCluster, EmrClusterClient
from durable_jobs.clients.emr.eks import EmrEksClient, EmrEksJob
from durable_jobs.clients.emr.runs import JobRunClient
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob
from durable_jobs.clients.emr.shapes import ClusterView, StepView, validate_cluster_id, validate_step_id
from durable_jobs.clients.emr.step_states import STEP_STATES
from durable_jobs.clients.emr.steps import STEP_SYSTEM, EmrStep, EmrStepClient

__all__ = [
    "CLUSTER_STATES",
    "CLUSTER_SYSTEM",
    "STEP_STATES",
    "STEP_SYSTEM",
    "TOKEN_TAG",
    "AwsAuthError",
    "AwsConfig",
    "AwsJobClient",
    "AwsRequestError",
    "ClusterView",
    "EmrCluster",
    "EmrClusterClient",
    "EmrEksClient",
    "EmrEksJob",
    "EmrServerlessClient",
    "EmrServerlessJob",
    "EmrStep",
    "EmrStepClient",
    "JobRunClient",
    "StepView",
    "Throttled",
    "named",
    "validate_cluster_id",
    "validate_step_id",
]
