"""A loop's pooled sessions are closed when the loop ends, and only then.

``airflow dags test`` runs a deferred task's trigger as ``asyncio.run(anext(trigger.run()))``
(``InProcessTestSupervisor.run_trigger_in_process``): nobody closes that loop's sessions by hand, and asyncio
reported them as unclosed at the end of every run. The long-lived triggerer must keep one session per endpoint
for all its triggers.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.transport.http import DEFAULT_TRANSPORT, close_sessions
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs_harness.fake_spark import FakeSparkMaster
from tests.core.test_quickstart_readme import _blocks

DRIVERS = ("driver-20261203100000-0001", "driver-20261203100000-0002")


def _connection(master: FakeSparkMaster) -> str:
    return json.dumps({"conn_type": "spark_standalone_rest", "host": "127.0.0.1", "port": master.port})


@pytest.fixture
async def master(monkeypatch: pytest.MonkeyPatch) -> Any:
    m = await FakeSparkMaster().start()
    m.drivers.update(dict.fromkeys(DRIVERS, "FINISHED"))
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_FAKE", _connection(m))
    SparkStandaloneHook.clear_cache()
    yield m
    await m.stop()
    await close_sessions()
    SparkStandaloneHook.clear_cache()


def _trigger(driver: str) -> SparkStandaloneTrigger:
    return SparkStandaloneTrigger(
        job={"driver_id": driver}, conn_id="spark_fake", token="dj0123456789abcdef0123", generation=0, poll_interval=0.1
    )


# Run in a fresh interpreter, so that asyncio's reports at garbage collection (and at exit) are all in its stderr.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger

    def trigger(driver):
        return SparkStandaloneTrigger(
            job={"driver_id": driver}, conn_id="spark_fake", token="dj0123456789abcdef0123", generation=0,
            poll_interval=0.1,
        )

    # what `airflow dags test` does (airflow.sdk.execution_time.supervisor, run_trigger_in_process)
    async def _run_trigger():
        return await anext(trigger(sys.argv[1]).run(), None)

    event = asyncio.run(_run_trigger())
    print("dags-test:", event.payload["status"])

    # the worker's private loop (non-deferrable), closed at once: the shared poller may still be in its nap
    from durable_jobs.operators.base import _WorkerLoop
    worker = _WorkerLoop()
    try:
        print("worker:", worker.run(trigger(sys.argv[2]).run().__anext__()).payload["status"])
    finally:
        worker.close()
    del worker
    gc.collect()
    print("collected")
    """
)


async def test_a_trigger_run_as_dags_test_runs_it_leaves_no_session_unclosed(master: FakeSparkMaster) -> None:
    env = {**os.environ, "AIRFLOW_CONN_SPARK_FAKE": _connection(master), "PYTHONASYNCIODEBUG": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",
        "-c",
        _SCRIPT,
        *DRIVERS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, stderr
    lines = [line for line in stdout.splitlines() if line.startswith(("dags-test:", "worker:", "collected"))]
    assert lines == ["dags-test: succeeded", "worker: succeeded", "collected"], stdout + stderr
    assert master.requests  # the sessions were real: the master was asked
    for report in ("Unclosed client session", "Unclosed connector", "ResourceWarning", "Task was destroyed"):
        assert report not in stderr, stderr


async def test_triggers_on_one_long_lived_loop_share_one_open_session(master: FakeSparkMaster) -> None:
    first = await anext(_trigger(DRIVERS[0]).run())
    assert first.payload["status"] == "succeeded"
    (session,) = _sessions()
    assert not session.closed  # a trigger's end closes nothing: the triggerer's next trigger uses it
    second = await anext(_trigger(DRIVERS[1]).run())
    assert second.payload["status"] == "succeeded"
    assert _sessions() == [session] and not session.closed


async def test_a_cancelled_trigger_leaves_the_loops_session_open(master: FakeSparkMaster) -> None:
    """The triggerer cancels triggers one by one (a task cleared, a trigger timed out): the pool stays."""
    await anext(_trigger(DRIVERS[0]).run())
    (session,) = _sessions()
    master.drivers[DRIVERS[1]] = "RUNNING"
    watching = asyncio.create_task(anext(_trigger(DRIVERS[1]).run()))
    await asyncio.sleep(0.3)
    watching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watching
    await asyncio.sleep(0)
    assert _sessions() == [session] and not session.closed


async def test_the_session_is_closed_when_its_loop_ends(master: FakeSparkMaster) -> None:
    """asyncio.run's end (every task cancelled) closes it (another thread: this loop serves the master)."""
    seen: list[aiohttp.ClientSession] = []

    async def run(driver: str) -> str:
        event = await anext(_trigger(driver).run())
        seen.extend(_sessions())
        return str(event.payload["status"])

    assert await asyncio.to_thread(asyncio.run, run(DRIVERS[0])) == "succeeded"
    assert len(seen) == 1 and seen[0].closed


def _sessions() -> list[aiohttp.ClientSession]:
    impl: Any = DEFAULT_TRANSPORT._impl
    return list((impl._sessions.peek() or {}).values())


# --- the README's quickstart, walked: `airflow dags test` against the fake master ----------------------------------


async def _airflow(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "airflow",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _finish_once_watched(master: FakeSparkMaster) -> None:
    """The submitted driver runs until the trigger has polled it once, then finishes."""
    while not master.drivers or not master.created:
        await asyncio.sleep(0.1)
    polls = len(master.requests)
    while len(master.requests) == polls:
        await asyncio.sleep(0.1)
    for driver in master.drivers:
        master.drivers[driver] = "FINISHED"


@pytest.mark.airflow_db
async def test_airflow_dags_test_of_the_quickstart_dag_leaves_no_session_unclosed(tmp_path: Path) -> None:
    master = await FakeSparkMaster().start()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "durable_spark_quickstart.py").write_text(_blocks("python")[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW_CONN_SPARK_STANDALONE_DEFAULT=json.dumps(
            {**json.loads(_connection(master)), "extra": {"master_ui_urls": master.url}}
        ),
    )
    finisher = asyncio.create_task(_finish_once_watched(master))
    try:
        code, out = await _airflow(env, "db", "migrate")
        assert code == 0, out
        code, out = await _airflow(env, "dags", "test", "durable_spark_quickstart")
    finally:
        finisher.cancel()
        await master.stop()
    assert code == 0, out
    assert "[DAG TEST] running trigger in line" in out  # the trigger ran under dags test's own asyncio.run
    assert "state=success" in out and len(master.created) == 1, out
    for report in ("Unclosed client session", "Unclosed connector", "Task was destroyed"):
        assert report not in out, out
