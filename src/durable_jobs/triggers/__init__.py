"""Airflow triggers: wait for a recorded job from the triggerer, holding no worker slot.

Exports are lazy (see :mod:`durable_jobs.operators`). The triggerer imports triggers by classpath.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DurableJobTrigger": "durable_jobs.triggers.base",
    "SparkStandaloneTrigger": "durable_jobs.triggers.spark_standalone",
    "YarnTrigger": "durable_jobs.triggers.yarn",
    "EmrClusterTrigger": "durable_jobs.triggers.emr",
    "EmrEksTrigger": "durable_jobs.triggers.emr",
    "EmrServerlessTrigger": "durable_jobs.triggers.emr",
    "EmrStepTrigger": "durable_jobs.triggers.emr",
    "KubernetesTrigger": "durable_jobs.triggers.kubernetes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
