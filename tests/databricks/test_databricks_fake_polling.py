"""Many runs of one workspace watched by Databricks triggers through the library's shared poller, on the fake.

Each tick is one walk of ``runs/list?active_only=true`` (24 runs a page) for every waiting trigger, and no
``runs/get`` while every run is active; the runs that ended are asked with one ``runs/get`` each in the next poll,
all of them. With OAuth M2M the triggers wait across token refreshes (a token per part of its lifetime, not per
request), and tokens the workspace revokes cost one 401 and one new token, never a failed wait. A run the workspace
forgets mid-wait ends its own trigger LOST, after the confirmations, and no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from durable_jobs.clients.base import Locator
from durable_jobs.clients.databricks import DatabricksClient, OAuthM2MAuth, SubmitRunSpec
from durable_jobs.hooks.databricks import DatabricksHook
from durable_jobs.polling import StatusPoller, active_pollers
from durable_jobs.transport.http import close_sessions
from durable_jobs.triggers.databricks import DatabricksTrigger
from durable_jobs_harness.fake_databricks import FakeDatabricks
from durable_jobs_harness.waiting import eventually
from tests.databricks.workspace import API, new_token

pytestmark = pytest.mark.timeout(90)

CONN_ID = "dbx_poll"
PAGE = 24
LIST = f"{API}/runs/list"
GET = f"{API}/runs/get"
#: runs that last until the test ends them
SPEC = SubmitRunSpec(
    {
        "run_name": "watched",
        "tasks": [
            {
                "task_key": "main",
                "notebook_task": {"notebook_path": "/w", "base_parameters": {"s": "durable-fake:3600s:SUCCESS"}},
            }
        ],
    }
)

Request = tuple[str, str, dict[str, str]]


def connection(fake: FakeDatabricks, *, oauth: bool) -> dict[str, Any]:
    conn: dict[str, Any] = {"conn_type": "databricks_durable", "host": fake.url}
    if oauth:
        return {
            **conn,
            "login": fake.client_id,
            "password": fake.client_secret,
            "extra": {"service_principal_oauth": True},
        }
    return {**conn, "password": fake.pat}


async def start_runs(n: int) -> list[tuple[str, Locator]]:
    """``n`` runs submitted through the connection's client: (token, locator) each."""
    client = await DatabricksHook.aget_client(CONN_ID)
    out = []
    for _ in range(n):
        tok = new_token()
        out.append((tok, await client.submit(SPEC, tok)))
    return out


class Watching:
    """One trigger per run, each run as the triggerer runs it, until its one event."""

    def __init__(self, runs: list[tuple[str, Locator]], interval: float) -> None:
        self.tasks: dict[int, asyncio.Task[dict[str, Any]]] = {}
        for tok, job in runs:
            trigger = DatabricksTrigger(
                job=job, conn_id=CONN_ID, token=tok, generation=0, poll_interval=interval, unknown_budget=60
            )
            self.tasks[job["run_id"]] = asyncio.create_task(self._event(trigger))

    @staticmethod
    async def _event(trigger: DatabricksTrigger) -> dict[str, Any]:
        async for event in trigger.run():
            payload: dict[str, Any] = event.payload
            return payload
        raise AssertionError("the trigger ended without an event")

    def done(self) -> list[int]:
        return [run_id for run_id, task in self.tasks.items() if task.done()]

    async def poller(self, watched: int) -> StatusPoller:
        """The one poller, once it watches ``watched`` runs."""

        def one_poller() -> bool:
            return len(active_pollers()) == 1 and len(active_pollers()[0]) == watched

        await eventually(one_poller, timeout=30, what=f"one poller watching {watched} runs", interval=0.005)
        (poller,) = active_pollers()
        return poller

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


@dataclass
class Watched:
    fake: FakeDatabricks
    watching: Watching
    poller: StatusPoller
    client: DatabricksClient


@contextlib.asynccontextmanager
async def watched_runs(
    monkeypatch: pytest.MonkeyPatch, n: int, interval: float, *, oauth: bool = False, token_ttl: float = 3600.0
) -> AsyncIterator[Watched]:
    """A fake workspace as the connection ``dbx_poll``, ``n`` runs on it, and a trigger waiting for each."""
    DatabricksHook.clear_cache()
    fake = await FakeDatabricks(token_ttl=token_ttl).start()
    watching: Watching | None = None
    try:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection(fake, oauth=oauth)))
        watching = Watching(await start_runs(n), interval)
        poller = await watching.poller(n)
        client = await DatabricksHook.aget_client(CONN_ID)
        assert isinstance(client, DatabricksClient)
        yield Watched(fake, watching, poller, client)
    finally:
        if watching is not None:
            await watching.stop()
        await close_sessions()
        await fake.stop()
        DatabricksHook.clear_cache()


async def next_poll(poller: StatusPoller) -> int:
    """Wait until the poll in progress (or the next one) has ended; the poll count. The poller then naps."""
    polls = poller.polls
    await eventually(lambda: poller.polls > polls, timeout=30, what=f"poll {polls + 1}", interval=0.005)
    return poller.polls


def walks(requests: list[Request]) -> list[list[dict[str, str]]]:
    """The ``runs/list`` requests grouped into walks (each starts without a page token)."""
    out: list[list[dict[str, str]]] = []
    for _, path, query in requests:
        if path != LIST:
            continue
        if "page_token" not in query:
            out.append([])
        assert out, f"a page of a walk that never started: {query}"
        out[-1].append(query)
    return out


def assert_active_walks(found: list[list[dict[str, str]]], pages: int) -> None:
    assert found, "no walk of the active runs"
    for walk in found:
        assert len(walk) == pages, [len(w) for w in found]
        assert all(q["active_only"] == "true" and q["limit"] == str(PAGE) for q in walk), walk


async def test_500_runs_cost_one_active_walk_per_tick_and_each_ending_run_one_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 500
    async with watched_runs(monkeypatch, n, interval=0.4) as w:
        fake, watching, poller = w.fake, w.watching, w.poller
        await next_poll(poller)  # from here on every poll watches all 500
        start, polls = len(fake.requests), poller.polls
        for _ in range(3):
            await next_poll(poller)
        seen = fake.requests[start:]
        assert [p for _, p, _ in seen if p != LIST] == []  # no runs/get while every run is active
        assert len(walks(seen)) == poller.polls - polls == 3  # one walk per tick (the poller naps now)
        assert_active_walks(walks(seen), math.ceil(n / PAGE))  # 21 pages of 24
        assert watching.done() == []

        ending = sorted(watching.tasks)[::5]  # 100 runs end between two polls
        assert len(ending) == 100
        start = len(fake.requests)
        for run_id in ending:
            fake.finish(run_id, "SUCCESS")
        events = await asyncio.wait_for(asyncio.gather(*(watching.tasks[r] for r in ending)), 20)
        assert {e["status"] for e in events} == {"succeeded"}
        assert {e["details"]["last"]["raw_state"] for e in events} == {"TERMINATED/SUCCESS"}
        # the next poll resolved all 100: its walk (400 active runs), then one runs/get for each, then nothing
        # but walks (a later poll may have started meanwhile)
        seen = fake.requests[start:]
        pages = math.ceil((n - 100) / PAGE)
        assert [p for _, p, _ in seen[:pages]] == [LIST] * pages
        gets = seen[pages : pages + 100]
        assert [p for _, p, _ in gets] == [GET] * 100
        assert sorted(int(q["run_id"]) for _, _, q in gets) == ending  # each ended run once
        assert [p for _, p, _ in seen[pages + 100 :]] == [LIST] * (len(seen) - pages - 100)
        assert sorted(watching.done()) == ending

        start = len(fake.requests)
        await next_poll(poller)
        await next_poll(poller)
        seen = fake.requests[start:]
        assert [p for _, p, _ in seen if p != LIST] == []  # the 400 left: walks only again
        assert_active_walks(walks(seen)[1:], pages)  # the first may have begun before the mark


class RefusalCount:
    """Counts the API requests the fake refused for their credentials (a spy on its bearer check)."""

    def __init__(self, fake: FakeDatabricks, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refused: list[str] = []
        check = fake._authorized

        def spy(request: Any) -> bool:
            ok = check(request)
            if not ok:
                self.refused.append(request.path)
            return ok

        monkeypatch.setattr(fake, "_authorized", spy)


def oauth_of(watched: Watched) -> OAuthM2MAuth:
    auth = watched.client.auth
    assert isinstance(auth, OAuthM2MAuth)
    return auth


async def finish_all(watched: Watched) -> None:
    for run_id in watched.watching.tasks:
        watched.fake.finish(run_id, "SUCCESS")
    events = await asyncio.wait_for(asyncio.gather(*watched.watching.tasks.values()), 20)
    assert {e["status"] for e in events} == {"succeeded"}


async def test_oauth_triggers_wait_across_token_refreshes(monkeypatch: pytest.MonkeyPatch) -> None:
    # a token lives 1 s and is renewed from half its life on, by the first request after that
    ttl = 1.0
    async with watched_runs(monkeypatch, 30, interval=0.2, oauth=True, token_ttl=ttl) as w:  # 2 pages a walk
        fake, watching, poller, auth = w.fake, w.watching, w.poller, oauth_of(w)
        refusals = RefusalCount(fake, monkeypatch)
        issued, requests, started = fake.oauth_tokens_issued, len(fake.requests), time.monotonic()
        await asyncio.sleep(3.0)
        elapsed = time.monotonic() - started
        refreshed = fake.oauth_tokens_issued - issued
        api = sum(1 for _, p, _ in fake.requests[requests:] if p.startswith("/api/"))
        assert watching.done() == [] and poller.sick_since is None and poller.refreshes == 0
        assert refusals.refused == []  # every request carried a live token
        # several refreshes, about one per lifetime (at most one per half-life), not one per request
        assert max(2, elapsed / ttl - 1) <= refreshed <= elapsed / (ttl / 2) + 1, (refreshed, elapsed)
        assert api >= 3 * refreshed, (api, refreshed)
        assert auth.fetches == fake.oauth_tokens_issued
        await finish_all(w)


async def test_oauth_tokens_revoked_mid_wait_cost_one_401_and_one_token(monkeypatch: pytest.MonkeyPatch) -> None:
    async with watched_runs(monkeypatch, 30, interval=0.2, oauth=True) as w:
        fake, watching, poller, auth = w.fake, w.watching, w.poller, oauth_of(w)
        refusals = RefusalCount(fake, monkeypatch)
        await next_poll(poller)
        assert fake.oauth_tokens_issued == 1
        fake.expire_tokens()  # between two polls
        for _ in range(3):
            await next_poll(poller)
        assert refusals.refused == [LIST]  # the next poll's first page, once
        assert fake.oauth_tokens_issued == auth.fetches == 2
        assert watching.done() == [] and poller.sick_since is None and poller.refreshes == 0
        await finish_all(w)


async def test_a_run_forgotten_mid_wait_ends_lost_and_the_others_wait_on(monkeypatch: pytest.MonkeyPatch) -> None:
    async with watched_runs(monkeypatch, 30, interval=0.1) as w:
        gone = sorted(w.watching.tasks)[7]
        polls = await next_poll(w.poller)
        w.fake.forget_run(gone)
        event = await asyncio.wait_for(w.watching.tasks[gone], 20)
        assert event["status"] == "lost" and event["job"] == {"run_id": gone}
        assert event["details"]["last"]["raw_state"] == "RESOURCE_DOES_NOT_EXIST"
        assert w.poller.polls >= polls + 3  # denied by runs/get and the whole active list, three polls in a row
        assert w.watching.done() == [gone]
