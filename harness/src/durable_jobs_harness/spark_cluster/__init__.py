"""A throwaway local Spark standalone cluster from the pyspark wheel, its test drivers, and JWTs for its REST server.

* :class:`SparkCluster` (:mod:`.cluster`): one Master and one Worker, started and stopped by PID;
* :class:`SparkHACluster` (:mod:`.ha`): two Masters recovering through a real ZooKeeper, one Worker on both;
* :func:`build_test_apps` (:mod:`.apps`): the "sleep, then exit with code C or throw" Java and Python drivers;
* :func:`make_jwt`, :func:`new_jwt_secret` (:mod:`.tokens`): HS256 tokens for Spark's ``JWSFilter``.

``python -m durable_jobs_harness.spark_cluster smoke`` starts one, prints its URLs and stops it; ``... serve``
keeps one running on fixed ports (REST 6066, master UI 8090) for the README's quickstart.
"""

from __future__ import annotations

from durable_jobs_harness.ports import free_port
from durable_jobs_harness.spark_cluster.apps import TestApps, build_test_apps
from durable_jobs_harness.spark_cluster.cluster import (
    LOCAL_APPS_DIR,
    LOCAL_PORTS,
    SparkCluster,
    SparkClusterError,
    SparkPorts,
    connection_command,
    spark_home,
)
from durable_jobs_harness.spark_cluster.ha import MASTERS, MasterPorts, SparkHACluster
from durable_jobs_harness.spark_cluster.tokens import make_jwt, new_jwt_secret

__all__ = [
    "LOCAL_APPS_DIR",
    "LOCAL_PORTS",
    "MASTERS",
    "MasterPorts",
    "SparkCluster",
    "SparkClusterError",
    "SparkHACluster",
    "SparkPorts",
    "TestApps",
    "build_test_apps",
    "connection_command",
    "free_port",
    "make_jwt",
    "new_jwt_secret",
    "spark_home",
]
