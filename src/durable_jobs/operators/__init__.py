"""Airflow operators: the worker side of the submit-once protocol.

Exports are lazy, so that importing one system's operator never imports another system's optional
dependencies (kubernetes-asyncio, aiobotocore, gssapi).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DurableJobOperator": "durable_jobs.operators.base",
    "SparkStandaloneOperator": "durable_jobs.operators.spark_standalone",
    "YarnApplicationOperator": "durable_jobs.operators.yarn",
    "SparkOnYarnOperator": "durable_jobs.operators.yarn",
    "EmrCreateClusterOperator": "durable_jobs.operators.emr",
    "EmrEksJobOperator": "durable_jobs.operators.emr",
    "EmrServerlessJobOperator": "durable_jobs.operators.emr",
    "EmrStepOperator": "durable_jobs.operators.emr",
    "EmrTerminateClusterOperator": "durable_jobs.operators.emr",
    "KubernetesJobOperator": "durable_jobs.operators.kubernetes",
    "KubernetesObjectOperator": "durable_jobs.operators.kubernetes",
    "KubernetesPodOperator": "durable_jobs.operators.kubernetes",
    "SparkApplicationOperator": "durable_jobs.operators.kubernetes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
