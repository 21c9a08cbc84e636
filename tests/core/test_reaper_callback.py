"""The triggerer callback that cancels a marked task's job (:func:`durable_jobs.reaper.callback.cancel_orphan`).

Run in process, with a hook that hands out a scripted client (on a triggerer the hook fetches the connection
through the supervisor).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from durable_jobs.errors import ConnectionConfigError, TransientError
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.reaper.callback import ReapError, cancel_orphan
from durable_jobs.record import TaskIdentity
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import FakeJob, ScriptedClient
from durable_jobs.transport import retry
from tests.core.test_reaper_orphan import callback_kwargs

HOOK = f"{__name__}.ScriptedHook"


class ScriptedHook(DurableJobHook):
    client: ClassVar[ScriptedClient]

    @classmethod
    def client_from_connection(cls, conn: Any) -> ScriptedClient:
        return cls.client

    @classmethod
    async def aget_client(cls, conn_id: str) -> Any:
        if conn_id == "broken":
            raise ConnectionConfigError("connection 'broken': its host is missing")
        if conn_id == "missing":  # what Airflow raises for a connection that is not defined
            raise LookupError("The conn_id `missing` isn't defined")
        return cls.client


@pytest.fixture
def client() -> Iterator[ScriptedClient]:
    c = ScriptedClient()
    c.jobs["job-1"] = FakeJob("job-1", TaskIdentity("dag", "run", "task", -1).token(0), {}, [JobState.RUNNING])
    ScriptedHook.client = c
    with retry.instant_waits():
        yield c


def kwargs(**over: Any) -> dict[str, Any]:
    """What the listener queues (as in test_reaper_orphan), with this module's hook."""
    return callback_kwargs(**{"hook": HOOK, **over})


async def test_it_cancels_once_and_says_so_in_one_line(client: ScriptedClient, caplog: Any) -> None:
    caplog.set_level(logging.INFO, "durable_jobs.reaper.callback")
    text = await cancel_orphan(**kwargs())
    assert client.jobs["job-1"].cancelled and client.calls == ["cancel"]
    assert (
        text.startswith("durable_jobs reaper: cancelled id=job-1 (generation 0, token dj") and "marked failed" in text
    )
    assert [r.getMessage() for r in caplog.records] == [text]


async def test_a_transient_error_is_retried_then_it_cancels(client: ScriptedClient) -> None:
    real, failures = client.cancel, [TransientError("503"), TransientError("connection reset")]

    async def flaky(locator: Any) -> None:
        if failures:
            client.calls.append("cancel")
            raise failures.pop(0)
        await real(locator)

    client.cancel = flaky  # type: ignore[method-assign]
    await cancel_orphan(**kwargs())
    assert client.jobs["job-1"].cancelled and client.calls == ["cancel", "cancel", "cancel"]


async def test_run_twice_it_is_idempotent(client: ScriptedClient) -> None:
    await cancel_orphan(**kwargs())
    await cancel_orphan(**kwargs())  # a triggerer died after the cancel; another one runs it again
    assert client.jobs["job-1"].cancelled and client.calls == ["cancel", "cancel"]


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"token": TaskIdentity("dag", "run", "other", -1).token(0)}, "is not the task's token for generation 0"),
        ({"generation": 1}, "is not the task's token for generation 1"),
        ({"job": {"id": "../x"}}, "invalid scripted job id"),
        ({"system": "yarn"}, "builds a scripted client, but the job is a yarn job"),
        ({"hook": "durable_jobs.record.JobRecord"}, "is not a durable_jobs hook class"),
        ({"hook": "no_such_module.Hook"}, "No module named 'no_such_module'"),
        ({"conn_id": "broken"}, "connection 'broken': its host is missing"),
        ({"conn_id": "missing"}, "no client from connection 'missing': LookupError: The conn_id `missing` isn't"),
    ],
)
async def test_it_refuses_what_it_cannot_trust_and_cancels_nothing(
    client: ScriptedClient, caplog: Any, over: dict[str, Any], says: str
) -> None:
    with pytest.raises(ReapError) as err:
        await cancel_orphan(**kwargs(**over))
    assert says in str(err.value) and "NOT cancelled" in str(err.value) and "Cancel it by hand" in str(err.value)
    assert not client.jobs["job-1"].cancelled and "cancel" not in client.calls
    assert [r.levelname for r in caplog.records if r.name == "durable_jobs.reaper.callback"] == ["ERROR"]


async def test_keywords_of_a_later_release_are_ignored(client: ScriptedClient) -> None:
    await cancel_orphan(**kwargs(reason="added later"))
    assert client.jobs["job-1"].cancelled


async def test_airflows_callback_trigger_runs_it_and_reports_success_or_failure(client: ScriptedClient) -> None:
    """Through Airflow's own CallbackTrigger, as a triggerer runs it: RUNNING, then SUCCESS with our line."""
    from airflow.triggers.callback import CallbackTrigger

    events = [e.payload async for e in CallbackTrigger("durable_jobs.reaper.callback.cancel_orphan", kwargs()).run()]
    assert [e["state"] for e in events] == ["running", "success"]
    assert events[1]["body"].startswith("durable_jobs reaper: cancelled id=job-1")
    failed = [
        e.payload
        async for e in CallbackTrigger("durable_jobs.reaper.callback.cancel_orphan", kwargs(conn_id="broken")).run()
    ]
    assert failed[-1]["state"] == "failed" and "connection 'broken'" in failed[-1]["body"]
