"""Airflow triggers: wait for a recorded job from the triggerer, holding no worker slot."""

from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger

__all__ = ["DurableJobTrigger", "SparkStandaloneTrigger"]
