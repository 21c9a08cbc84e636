"""Airflow operators: the worker side of the submit-once protocol."""

from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator

__all__ = ["DurableJobOperator", "SparkStandaloneOperator"]
