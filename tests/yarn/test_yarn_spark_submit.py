"""Spark on YARN through spark-submit: the exact command, the tag flow against the fake RM, the runner.

spark-submit cannot reach a YARN cluster here, so the command runner is injected: a fake that registers
the application with its ``spark.yarn.tags`` on the fake RM, as Spark's YARN ``Client`` does. The real
runner (:func:`run_command`) is exercised with ordinary commands.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from durable_jobs.clients.yarn import SparkSubmitApplication, YarnClient, YarnConfig, run_command
from durable_jobs.errors import PermanentError, TransientError
from durable_jobs.status import JobState
from durable_jobs.transport.kerberos import KerberosCredentials
from durable_jobs_harness.fake_yarn import FakeSparkSubmit
from durable_jobs_harness.waiting import wait_until
from durable_jobs_harness.yarn_fixtures import rm, simple_client

__all__ = ["rm"]

TOKEN = "dj00112233445566778899"
SPEC = SparkSubmitApplication(
    application="hdfs:///apps/etl.jar",
    main_class="com.example.Etl",
    name="etl",
    application_args=["--day", "2026-11-21"],
    conf={"spark.executor.memory": "2g", "spark.yarn.tags": "Team-A", "spark.dynamicAllocation.enabled": True},
    queue="etl",
    jars=["hdfs:///libs/a.jar", "hdfs:///libs/b.jar"],
    files=["hdfs:///conf/app.conf"],
    tags=["nightly"],
)


def test_the_exact_command():
    assert SPEC.command(TOKEN, spark_submit="/opt/spark/bin/spark-submit") == [
        "/opt/spark/bin/spark-submit",
        "--master",
        "yarn",
        "--deploy-mode",
        "cluster",
        "--name",
        "etl",
        "--queue",
        "etl",
        "--class",
        "com.example.Etl",
        "--jars",
        "hdfs:///libs/a.jar,hdfs:///libs/b.jar",
        "--files",
        "hdfs:///conf/app.conf",
        "--conf",
        "spark.dynamicAllocation.enabled=true",
        "--conf",
        "spark.executor.memory=2g",
        "--conf",
        "spark.yarn.submit.waitAppCompletion=false",
        "--conf",
        f"spark.yarn.tags={TOKEN},team-a,nightly",
        "hdfs:///apps/etl.jar",
        "--day",
        "2026-11-21",
    ]


def test_kerberos_keytab_goes_to_spark_submit_and_a_ccache_to_its_environment():
    keytab = YarnClient(
        YarnConfig(
            rm_urls=("http://rm:8088",),
            auth="kerberos",
            kerberos=KerberosCredentials(principal="etl@EXAMPLE.TEST", keytab="/etc/security/etl.keytab"),
            spark_env={"HADOOP_CONF_DIR": "/etc/hadoop/conf"},
        )
    )
    argv = keytab.spark_submit_command(SparkSubmitApplication(application="/apps/job.py"), TOKEN)
    assert argv[argv.index("--principal") + 1] == "etl@EXAMPLE.TEST"
    assert argv[argv.index("--keytab") + 1] == "/etc/security/etl.keytab"
    assert argv[-1] == "/apps/job.py" and "--class" not in argv
    assert keytab.spark_submit_env()["HADOOP_CONF_DIR"] == "/etc/hadoop/conf"
    ccache = YarnClient(
        YarnConfig(rm_urls=("http://rm:8088",), auth="kerberos", kerberos=KerberosCredentials(ccache="FILE:/tmp/cc"))
    )
    assert "--keytab" not in ccache.spark_submit_command(SPEC, TOKEN)
    assert ccache.spark_submit_env()["KRB5CCNAME"] == "FILE:/tmp/cc"


@pytest.mark.parametrize(
    ("conf", "match"),
    [
        ({"spark.submit.deployMode": "client"}, "cluster"),
        ({"spark.master": "local[2]"}, "spark.master"),
        ({"spark.yarn.submit.waitAppCompletion": "true"}, "waitAppCompletion"),
    ],
)
def test_settings_that_would_break_tracking_are_refused(conf, match):
    with pytest.raises(ValueError, match=match):
        SparkSubmitApplication(application="/a.jar", main_class="M", conf=conf)
    with pytest.raises(ValueError, match="main_class"):
        SparkSubmitApplication(application="/a.jar")


async def test_submit_runs_spark_submit_and_finds_the_app_by_its_tag(rm):
    runner = FakeSparkSubmit(rm.cluster)
    client = simple_client(rm)
    client.runner = runner
    assert await client.reserve(SPEC, TOKEN) is None  # spark-submit asks for its own id
    loc = await client.submit(SPEC, TOKEN)
    (app_id,) = rm.apps
    assert loc == {"application_id": app_id, "tag": TOKEN}
    assert set(rm.apps[app_id].tags) == {TOKEN, "team-a", "nightly"} and rm.apps[app_id].app_type == "SPARK"
    argv, env = runner.calls[0]
    assert argv == client.spark_submit_command(SPEC, TOKEN)
    assert env["HADOOP_USER_NAME"] == "alice"
    # a crashed try's application is found by the tag, and tracked over REST
    assert await client.find(TOKEN, since=0, spec=SPEC) == loc
    assert await client.find("dj" + "f" * 20, since=0, spec=SPEC) is None
    rm.advance(app_id, "FINISHED", "SUCCEEDED")
    assert (await client.status(loc)).state is JobState.SUCCEEDED


async def test_spark_submit_that_failed_after_the_rm_accepted_is_adopted(rm):
    client = simple_client(rm)
    client.runner = FakeSparkSubmit(rm.cluster, returncode=1)  # e.g. killed while printing the report
    loc = await client.submit(SPEC, TOKEN)
    assert loc["application_id"] in rm.apps and len(rm.apps) == 1


async def test_spark_submit_that_never_reached_the_rm_fails_permanently(rm):
    client = simple_client(rm)
    client.runner = FakeSparkSubmit(rm.cluster, register=False)
    with pytest.raises(PermanentError, match=r"(?s)exited with code 1.*ConnectException"):
        await client.submit(SPEC, TOKEN)
    assert rm.apps == {}


async def test_spark_submit_exiting_0_without_an_app_on_this_rm_points_at_the_config(rm):
    client = simple_client(rm)

    async def elsewhere(argv, env, timeout):  # registered on another cluster than the connection's
        from durable_jobs.clients.yarn import CommandResult

        return CommandResult(0, "INFO YarnClientImpl: Submitted application application_42_0001\n")

    client.runner = elsewhere
    with pytest.raises(PermanentError, match="HADOOP_CONF_DIR"):
        await client.submit(SPEC, TOKEN)


async def test_a_missing_spark_submit_binary_is_permanent(rm):
    client = YarnClient(YarnConfig(rm_urls=(rm.url,), user="alice", spark_submit="/nonexistent/spark-submit"))
    with pytest.raises(PermanentError, match="cannot run /nonexistent/spark-submit"):
        await client.submit(SPEC, TOKEN)


async def test_run_command_returns_code_and_output():
    result = await run_command(
        ["/bin/sh", "-c", "echo 'Submitted application application_1_2'; echo oops >&2; exit 3"], dict(os.environ), 30
    )
    assert result.returncode == 3
    assert "application_1_2" in result.output and "oops" in result.output


async def test_run_command_kills_a_hung_command_at_its_timeout():
    started = time.monotonic()
    with pytest.raises(TransientError, match="did not finish within"):
        await run_command(["/bin/sh", "-c", "echo starting; exec sleep 60"], dict(os.environ), 0.5)
    assert time.monotonic() - started < 10


def test_spark_submit_dies_with_a_crashed_worker(tmp_path):
    """A worker killed mid-submit must not leave spark-submit running (it could submit after the retry looked)."""
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from durable_jobs.clients.yarn import run_command
        asyncio.run(run_command(["/bin/sh", "-c", "echo $$ > {pid_file}; exec sleep 60"], dict(os.environ), 120))
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", script])
    child = 0
    try:
        wait_until(
            "the child to start",
            lambda: pid_file.exists() and pid_file.read_text().strip(),
            timeout=30,
            interval=0.05,
            error=AssertionError,
        )
        child = int(pid_file.read_text())
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        wait_until(
            "spark-submit to die with its worker",
            lambda: not _alive(child),
            timeout=10,
            interval=0.05,
            error=AssertionError,
        )
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        if child and _alive(child):  # only when the test failed: do not leave our sleep behind
            os.kill(child, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
