"""Fixtures of real Spark standalone clusters started from the pyspark package (registered by ``tests/conftest.py``).

Nothing here skips: a missing pyspark, java or javac makes the fixtures raise, so the tests fail.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from durable_jobs.clients.spark_standalone import SparkStandaloneClient, SparkStandaloneConfig
from durable_jobs.transport.http import close_sessions
from durable_jobs_harness.spark_cluster import SparkCluster, SparkHACluster, TestApps, build_test_apps, new_jwt_secret

# Cheap driver JVMs: every driver is a full JVM, and the suite starts many.
DRIVER_CONF: dict[str, str] = {
    "spark.driver.memory": "512m",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def _require_spark_and_java() -> None:
    """Raise (never skip) when the cluster cannot be started here."""
    problems = []
    if importlib.util.find_spec("pyspark") is None:
        problems.append("pyspark is not installed in this interpreter")
    for tool in ("java", "javac", "jar"):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is not on PATH (a JDK 17+ is required)")
    if problems:
        raise RuntimeError("the Spark integration tests cannot run: " + "; ".join(problems))


def make_client(cluster: SparkCluster, *, token: str | None = None) -> SparkStandaloneClient:
    return SparkStandaloneClient(
        SparkStandaloneConfig(
            rest_urls=(cluster.rest_url,),
            ui_urls=(cluster.master_ui_url,),
            bearer_token=token,
        )
    )


def _start_cluster(run_dir: Path, **kwargs: Any) -> SparkCluster:
    _require_spark_and_java()
    cluster = SparkCluster(run_dir, worker_cores=4, worker_memory="4g", **kwargs)
    started = time.monotonic()
    cluster.start()
    print(f"\nSpark cluster in {run_dir} ready in {time.monotonic() - started:.1f}s")
    return cluster


@pytest.fixture(scope="session")
def spark_apps(tmp_path_factory: pytest.TempPathFactory) -> TestApps:
    _require_spark_and_java()
    return build_test_apps(tmp_path_factory.mktemp("spark-apps"))


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    cluster = _start_cluster(tmp_path_factory.mktemp("spark-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def spark_jwt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    cluster = _start_cluster(tmp_path_factory.mktemp("spark-jwt-cluster"), jwt_secret=new_jwt_secret())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def spark_own(tmp_path: Path) -> Iterator[SparkCluster]:
    """A private cluster for tests that restart or kill daemons."""
    cluster = _start_cluster(tmp_path / "spark-own")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def spark_ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkHACluster]:
    """Two masters recovering through a real ZooKeeper, and a worker on both (tests kill masters)."""
    _require_spark_and_java()
    cluster = SparkHACluster(tmp_path_factory.mktemp("spark-ha"), worker_cores=4, worker_memory="4g")
    started = time.monotonic()
    cluster.start()
    print(f"\nSpark HA cluster ready in {time.monotonic() - started:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()


def make_ha_client(cluster: SparkHACluster) -> SparkStandaloneClient:
    """A client of both masters, in the order a (the first leader), b."""
    return SparkStandaloneClient(SparkStandaloneConfig(rest_urls=cluster.rest_urls, ui_urls=cluster.ui_urls))


@pytest.fixture
async def client(spark: SparkCluster) -> AsyncIterator[SparkStandaloneClient]:
    yield make_client(spark)
    await close_sessions()
    # let the shared pollers of this loop notice they have no watches left and end
    await asyncio.sleep(0)
