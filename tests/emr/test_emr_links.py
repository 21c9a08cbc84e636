"""The EMR links on the task page: the console page of each kind of job, in each AWS partition."""

from __future__ import annotations

import pytest

from durable_jobs.clients.emr import EmrClusterClient, EmrStepClient
from durable_jobs.clients.emr.aws_config import AwsConfig
from durable_jobs.clients.emr.eks import EmrEksClient
from durable_jobs.clients.emr.serverless import EmrServerlessClient
from durable_jobs.systems.emr import SYSTEM


@pytest.mark.parametrize(
    ("region", "console"),
    [
        ("eu-west-1", "https://console.aws.amazon.com"),
        ("cn-north-1", "https://console.amazonaws.cn"),
        ("us-gov-west-1", "https://console.amazonaws-us-gov.com"),
    ],
)
def test_console_pages_of_clusters_steps_serverless_runs_and_eks_virtual_clusters(region: str, console: str) -> None:
    assert [link.xcom_key for link in SYSTEM.links] == ["emr_console_url", "emr_logs_url"]
    config = AwsConfig(region_name=region)
    emr = f"{console}/emr/home?region={region}#/"
    assert EmrClusterClient(config).cluster_url("j-1ABC") == f"{emr}clusterDetails/j-1ABC"
    assert EmrStepClient(config).cluster_url("j-1ABC") == f"{emr}clusterDetails/j-1ABC"  # a step's page: its cluster's
    serverless = EmrServerlessClient(config)
    loc = {"application_id": "00fabc", "job_run_id": "00frun"}
    assert serverless.console_url(serverless.console_page, **loc) == (
        f"{emr}serverless-applications/00fabc/job-runs/00frun"
    )
    eks = EmrEksClient(config)
    loc = {"virtual_cluster_id": "vc123", "job_run_id": "run456"}
    assert eks.console_url(eks.console_page, **loc) == f"{emr}eks/clusters/vc123"
