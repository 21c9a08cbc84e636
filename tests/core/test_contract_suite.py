"""The contract suite itself: the in-memory ScriptedClient passes it, and each rule it states fails a client that
breaks that rule (so no test of the suite passes whatever the client does). The same for its variant where a success
is a live resource that cancel releases (``cancel_ends_success_as``, as for an EMR cluster)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from durable_jobs.clients.base import JobClient, Locator
from durable_jobs.errors import TransientError
from durable_jobs.status import JobState, JobStatus
from durable_jobs.testing import ScriptedClient
from durable_jobs.testing.contract import JobClientContract

METHODS = {"reserve", "submit", "status", "cancel", "find"}


class TestScriptedContract(JobClientContract):
    """The scripted system: the client is the system, so every "new client" is the same object."""

    settle_timeout = 1.0
    settle_interval = 0.01
    client_class: type[ScriptedClient] = ScriptedClient

    @pytest.fixture(autouse=True)
    def _system(self) -> None:
        self.client = self.client_class()

    async def make_client(self) -> JobClient[Any]:
        return self.client

    def make_spec(self) -> dict[str, Any]:
        return {}

    async def end_job(self, locator: Locator, state: JobState) -> None:
        job = self.client.jobs[locator["id"]]
        job.script, job.polls = [state], 0

    async def vanish(self, locator: Locator) -> None:
        del self.client.jobs[locator["id"]]

    @contextlib.asynccontextmanager
    async def unreachable(self) -> AsyncIterator[None]:
        self.client.down |= METHODS
        try:
            yield
        finally:
            self.client.down -= METHODS


class LiveSuccessClient(ScriptedClient):
    """A success is a live resource, like a cluster that is up: cancel releases it, and the job ends cancelled."""

    async def cancel(self, locator: Locator) -> None:
        self._check("cancel")
        job = self.jobs.get(locator["id"])
        if job is not None and (not job.peek().is_terminal or job.peek() is JobState.SUCCEEDED):
            job.cancelled = True


class TestScriptedLiveSuccessContract(TestScriptedContract):
    """The whole suite again, on a system whose successes cancel releases."""

    cancel_ends_success_as = (JobState.CANCELLED,)
    client_class = LiveSuccessClient


# --- clients that each break one rule ------------------------------------------------------------------------


class FindsNothing(ScriptedClient):
    async def find(self, token: str, **kwargs: Any) -> Locator | None:
        return None


class FindsAnyJob(ScriptedClient):
    async def find(self, token: str, **kwargs: Any) -> Locator | None:
        return {"id": next(iter(self.jobs))} if self.jobs else None


class LostWhenDown(ScriptedClient):
    async def status(self, locator: Locator) -> JobStatus:
        try:
            return await super().status(locator)
        except TransientError:
            return JobStatus(JobState.LOST, "down")


class LostAtOnce(ScriptedClient):
    async def status(self, locator: Locator) -> JobStatus:
        return JobStatus(JobState.LOST, "never heard of it")


class AcceptsAnyId(ScriptedClient):
    def validate_locator(self, locator: Any) -> Locator:
        return {"id": str(locator["id"])}


class KeysById(ScriptedClient):
    async def statuses(self, locators: Any) -> dict[str, JobStatus]:
        return {loc["id"]: await self.status(loc) for loc in locators}


class CancelRefusesEnded(ScriptedClient):
    async def cancel(self, locator: Locator) -> None:
        if self.jobs[locator["id"]].peek().is_terminal:
            raise RuntimeError("the job has already ended")
        await super().cancel(locator)


class CancelResubmits(ScriptedClient):
    async def cancel(self, locator: Locator) -> None:
        old = self.jobs.pop(locator["id"], None)
        if old is not None:  # "restarts" the job: a new one under the same token
            await self.submit(old.spec, old.token)


class SubmitsBlindly(ScriptedClient):
    async def submit(self, spec: dict[str, Any], token: str, *, reserved: Locator | None = None) -> Locator:
        self.down.discard("submit")
        return await super().submit(spec, token, reserved=reserved)


class LiveEndsSuccessFailed(LiveSuccessClient):
    async def cancel(self, locator: Locator) -> None:
        job = self.jobs[locator["id"]]
        if job.peek() is JobState.SUCCEEDED:
            job.script, job.polls = [JobState.FAILED], 0
        else:
            await super().cancel(locator)


class LiveSecondCancelChangesIt(LiveSuccessClient):
    async def cancel(self, locator: Locator) -> None:
        job = self.jobs[locator["id"]]
        if job.cancelled:  # "terminating a terminated cluster" marks it failed
            job.cancelled, job.script, job.polls = False, [JobState.FAILED], 0
        else:
            await super().cancel(locator)


class LiveCancelsFailures(LiveSuccessClient):
    async def cancel(self, locator: Locator) -> None:
        self.jobs[locator["id"]].cancelled = True  # even a failed job: it becomes cancelled


class LiveCancelRestarts(LiveSuccessClient):
    """Cancel of a success releases it and starts another job under its token, which find then adopts."""

    async def cancel(self, locator: Locator) -> None:
        job = self.jobs[locator["id"]]
        restart = job.peek() is JobState.SUCCEEDED
        await super().cancel(locator)
        if restart:
            await self.submit(job.spec, job.token)

    async def find(self, token: str, **kwargs: Any) -> Locator | None:
        mine = [j.job_id for j in self.jobs.values() if j.token == token]
        return {"id": mine[-1]} if mine else None  # the newest


Test = Callable[[JobClientContract], Awaitable[None]]
C = JobClientContract


@pytest.mark.parametrize(
    ("client_class", "test"),
    [
        (FindsNothing, C.test_find_adopts_a_job_whose_submit_answer_was_lost),
        (FindsAnyJob, C.test_find_before_submitting_finds_nothing),
        (FindsAnyJob, C.test_a_new_generation_does_not_adopt_the_old_job),
        (LostWhenDown, C.test_an_unreachable_endpoint_proves_nothing),
        (LostAtOnce, C.test_a_job_just_submitted_is_not_lost),
        (AcceptsAnyId, C.test_validate_locator_rejects_garbage),
        (KeysById, C.test_statuses_are_keyed_by_locator_key),
        (CancelRefusesEnded, C.test_cancel_of_an_ended_job_changes_nothing),
        (CancelResubmits, C.test_cancel_is_idempotent),
        (SubmitsBlindly, C.test_an_unreachable_endpoint_proves_nothing),
        (LiveSuccessClient, C.test_cancel_of_an_ended_job_changes_nothing),  # by default a success is an end
    ],
    ids=lambda v: v.__name__,
)
async def test_the_suite_fails_a_client_that_breaks_its_rule(client_class: type[ScriptedClient], test: Test) -> None:
    suite = TestScriptedContract()
    suite.client = client_class()
    with pytest.raises((AssertionError, RuntimeError)):
        await test(suite)


async def test_the_same_tests_pass_the_scripted_client() -> None:
    """The control for the test above: only the broken rule makes a test fail."""
    tests = {t for _, t in test_the_suite_fails_a_client_that_breaks_its_rule.pytestmark[0].args[1]}
    for test in tests:
        suite = TestScriptedContract()
        suite.client = ScriptedClient()
        await test(suite)


@pytest.mark.parametrize(
    ("client_class", "test"),
    [
        (ScriptedClient, C.test_cancel_of_an_ended_job_changes_nothing),  # cancel leaves a success up
        (LiveEndsSuccessFailed, C.test_cancel_of_an_ended_job_changes_nothing),
        (LiveSecondCancelChangesIt, C.test_cancel_of_an_ended_job_changes_nothing),
        (LiveCancelsFailures, C.test_cancel_of_an_ended_job_changes_nothing),
        (LiveCancelRestarts, C.test_cancel_of_an_ended_job_changes_nothing),
        (CancelResubmits, C.test_cancel_is_idempotent),
    ],
    ids=lambda v: v.__name__,
)
async def test_a_live_success_suite_fails_a_client_that_breaks_its_rule(
    client_class: type[ScriptedClient], test: Test
) -> None:
    suite = TestScriptedLiveSuccessContract()
    suite.client = client_class()
    with pytest.raises((AssertionError, RuntimeError)):
        await test(suite)


async def test_the_same_tests_pass_a_client_whose_cancel_releases_a_success() -> None:
    tests = {t for _, t in test_a_live_success_suite_fails_a_client_that_breaks_its_rule.pytestmark[0].args[1]}
    for test in tests:
        suite = TestScriptedLiveSuccessContract()
        suite.client = LiveSuccessClient()
        await test(suite)


def test_a_success_cannot_be_cancelled_into_a_success_or_an_active_state() -> None:
    for states in ((JobState.SUCCEEDED,), (JobState.CANCELLED, JobState.RUNNING)):
        with pytest.raises(TypeError, match="cancel_ends_success_as"):
            type("TestWrong", (JobClientContract,), {"cancel_ends_success_as": states})
