"""The :class:`~durable_jobs.clients.base.JobClient` contract as a test suite, for every system's client.

The protocol's promise (never a duplicate, never a lost job) rests on a few things each client must get
right: find by token after any crash, LOST only when proven, idempotent locator validation, batched
statuses keyed by :func:`~durable_jobs.clients.base.locator_key`, idempotent cancel. A system author
subclasses :class:`JobClientContract` in a test module and fills in five hooks; pytest collects the
suite's tests under the subclass's name. Every built-in client passes the same suite.

::

    import pytest
    from durable_jobs.testing.contract import JobClientContract, endpoint_down

    class TestMyClientContract(JobClientContract):
        @pytest.fixture(autouse=True)
        async def _endpoint(self, my_server):  # whatever starts the endpoint; kept on self
            self.server = my_server

        async def make_client(self):
            return MyClient(self.server.url)

        def make_spec(self):
            return MySpec(command="sleep 600")

        async def end_job(self, locator, state):  # JobState.SUCCEEDED or JobState.FAILED
            self.server.finish(locator["job_id"], state.value)

        async def vanish(self, locator):  # the system forgets the job, as after a TTL or an eviction
            self.server.forget(locator["job_id"])

        def unreachable(self):  # connections refused while inside; back on the same port after
            return endpoint_down(self.server.stop, self.server.start)

The tests are coroutines (pytest-asyncio; marked, so its strict mode runs them too). pytest is imported
only when a subclass is defined, so the library does not depend on it. A hook's change may take time to
show (a cached listing, an eventually consistent API): checks wait up to :attr:`settle_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, TypeVar

from durable_jobs.clients.base import JobClient, KeyedLocator, Locator, locator_key
from durable_jobs.errors import DurableJobError, RecordError, TransientError, UndecidableError
from durable_jobs.record import make_token
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.http import close_sessions

T = TypeVar("T")

# characters that would change a URL's path, query or fragment, or a header, if an id carried them
UNSAFE_SUFFIXES = ("/../x", "/x", "?x=1", "#x", "%2F..", " x", "\nx", "\r\n", "\x00", "\n")
# values of the wrong type for any field of a flat JSON locator
WRONG_TYPES: tuple[Any, ...] = (1.5, True, [], ["x"], {"x": "y"})


@contextlib.asynccontextmanager
async def endpoint_down(stop: Callable[[], Awaitable[Any]], start: Callable[[], Awaitable[Any]]) -> AsyncIterator[None]:
    """For :meth:`JobClientContract.unreachable`: ``stop()`` on entry, ``start()`` on exit, whatever happened."""
    await stop()
    try:
        yield
    finally:
        await start()


class JobClientContract:
    """The tests every :class:`~durable_jobs.clients.base.JobClient` passes; subclass it and fill in the hooks.

    The subclass's name must start with ``Test`` for pytest to collect it. Each test builds a client with
    :meth:`make_client` (a second one plays the next try after a crash), works on jobs with fresh tokens,
    and closes the library's HTTP sessions at its end.
    """

    #: seconds a change made through a hook, or a submission, may take to show in the client's answers
    settle_timeout: ClassVar[float] = 15.0
    #: seconds between two looks while waiting for a change to show
    settle_interval: ClassVar[float] = 0.2
    #: Empty (the default): a success is an end, which cancel leaves as it is. Where a success is a long-lived
    #: resource that cancel releases (an EMR cluster job succeeds once the cluster is up, and cancel terminates
    #: it), the states such a cancel ends in, e.g. ``(JobState.CANCELLED,)``: terminal, never SUCCEEDED. Then
    #: :meth:`test_cancel_of_an_ended_job_changes_nothing` checks that cancel of a success ends it in one of
    #: them for good (a second cancel changes nothing, no job is created), and takes a job that ended in
    #: failure as the ended job that cancel leaves as it is.
    cancel_ends_success_as: ClassVar[tuple[JobState, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        wrong = [s for s in cls.cancel_ends_success_as if not s.is_terminal or s is JobState.SUCCEEDED]
        if wrong:
            raise TypeError(f"{cls.__name__}.cancel_ends_success_as: {wrong} are no end of a cancel")
        import pytest  # only under pytest: the library itself does not depend on it

        marks = getattr(cls, "pytestmark", [])
        setattr(cls, "pytestmark", [*(marks if isinstance(marks, list) else [marks]), pytest.mark.asyncio])  # noqa: B010

    # --- the hooks a system author provides ------------------------------------------------------------

    async def make_client(self) -> JobClient[Any]:
        """A client of the endpoint under test, as its hook would build it."""
        raise NotImplementedError(f"{type(self).__name__} must define make_client()")

    def make_spec(self) -> Any:
        """A job spec the endpoint accepts; its jobs keep running until :meth:`end_job` or a cancel."""
        raise NotImplementedError(f"{type(self).__name__} must define make_spec()")

    async def end_job(self, locator: Locator, state: JobState) -> None:
        """Make the job end, in ``JobState.SUCCEEDED`` or ``JobState.FAILED``."""
        raise NotImplementedError(f"{type(self).__name__} must define end_job()")

    async def vanish(self, locator: Locator) -> None:
        """Make the system forget the job in every source the client asks (a TTL, an eviction, a clear)."""
        raise NotImplementedError(f"{type(self).__name__} must define vanish()")

    def unreachable(self) -> AbstractAsyncContextManager[None]:
        """While inside, the endpoint cannot be reached (connections refused); on exit it is back."""
        raise NotImplementedError(f"{type(self).__name__} must define unreachable()")

    # --- helpers -----------------------------------------------------------------------------------------

    def token(self, generation: int = 0, run: str | None = None) -> str:
        """A real token for a made-up task, fresh for each test unless ``run`` is given."""
        return make_token("contract", run or uuid.uuid4().hex, type(self).__name__, -1, generation)

    async def _submit(self, client: JobClient[Any], token: str) -> Locator:
        """What the protocol does: reserve, then submit with the reservation; the validated locator."""
        spec = self.make_spec()
        reserved = await client.reserve(spec, token)
        if reserved is not None:
            reserved = client.validate_locator(reserved)
        return client.validate_locator(await client.submit(spec, token, reserved=reserved))

    async def _find(self, client: JobClient[Any], token: str, since: float, reserved: Locator | None = None) -> Any:
        """``find`` as a retried try calls it; undecidable for a while is allowed, not forever."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            try:
                found = await client.find(token, since=since, spec=self.make_spec(), reserved=reserved)
            except UndecidableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(self.settle_interval)
                continue
            return None if found is None else client.validate_locator(found)

    async def _eventually(self, look: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
        deadline = time.monotonic() + self.settle_timeout
        while True:
            seen = await look()
            if ok(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still {seen!r} after {self.settle_timeout}s")
            await asyncio.sleep(self.settle_interval)

    async def _state(self, client: JobClient[Any], locator: Locator, *states: JobState) -> JobStatus:
        """Wait until ``status`` says one of ``states``; the status."""
        names = "/".join(s.value for s in states)
        return await self._eventually(
            lambda: client.status(locator), lambda st: st.state in states, f"status of {locator} should be {names}"
        )

    async def _with_client(self, test: Callable[[JobClient[Any]], Awaitable[None]]) -> None:
        client = await self.make_client()
        try:
            await test(client)
        finally:
            await close_sessions()

    # --- find by token, after a crash at each point ------------------------------------------------------

    async def test_find_before_submitting_finds_nothing(self) -> None:
        """A crash after the intent, before the submit (and after the reservation, where there is one)."""

        async def test(client: JobClient[Any]) -> None:
            other = await self._submit(client, self.token())  # another task's job, submitted just before
            token, since = self.token(), time.time()
            found = await self._find(client, token, since)
            assert found is None, f"find must say None: nothing carries this token (it found {found}, other {other})"
            reserved = await client.reserve(self.make_spec(), token)
            if reserved is not None:
                reserved = client.validate_locator(reserved)
                found = await self._find(await self.make_client(), token, since, reserved)
                assert found is None, f"{reserved} was reserved, never submitted: find must say None, not {found}"

        await self._with_client(test)

    async def test_find_adopts_a_job_whose_submit_answer_was_lost(self) -> None:
        """A crash after the submit, before its answer was recorded: the next try finds the same job."""

        async def test(client: JobClient[Any]) -> None:
            token, since = self.token(), time.time()
            spec = self.make_spec()
            reserved = await client.reserve(spec, token)
            if reserved is not None:
                reserved = client.validate_locator(reserved)
            submitted = client.validate_locator(await client.submit(spec, token, reserved=reserved))
            retry = await self.make_client()  # the next try's client, in another process
            found = await self._eventually(
                lambda: self._find(retry, token, since, reserved), lambda f: f is not None, f"find({token})"
            )
            assert found == submitted, f"find returned {found}, the submitted job is {submitted}"
            assert await self._find(retry, token, since, reserved) == submitted, "a second find changed its answer"

        await self._with_client(test)

    async def test_a_new_generation_does_not_adopt_the_old_job(self) -> None:
        """After a confirmed failure the next generation's token finds nothing, then only its own job."""

        async def test(client: JobClient[Any]) -> None:
            run = uuid.uuid4().hex
            old_token, new_token = self.token(0, run), self.token(1, run)
            old_since = time.time()
            old = await self._submit(client, old_token)
            await self.end_job(old, JobState.FAILED)
            await self._state(client, old, JobState.FAILED)
            new_since = time.time()
            found = await self._find(client, new_token, new_since)
            assert found is None, f"generation 1 must not adopt generation 0's job {old}, found {found}"
            new = await self._submit(client, new_token)
            assert new != old, "the new generation's submission returned the old job"
            found = await self._eventually(
                lambda: self._find(client, new_token, new_since), lambda f: f is not None, f"find({new_token})"
            )
            assert found == new, f"the new token found {found}, its job is {new}"
            assert await self._find(client, old_token, old_since) == old, "the old token must still find the old job"

        await self._with_client(test)

    # --- LOST needs proof --------------------------------------------------------------------------------

    async def test_a_job_just_submitted_is_not_lost(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            job = await self._submit(client, self.token())
            for _ in range(3):
                st = await client.status(job)
                assert st.state.is_active or st.state is JobState.UNKNOWN, f"a job just submitted is {st}"

        await self._with_client(test)

    async def test_an_unreachable_endpoint_proves_nothing(self) -> None:
        """Unknown is never LOST, find never says None, submit never succeeds blindly."""

        async def test(client: JobClient[Any]) -> None:
            token, since = self.token(), time.time()
            job = await self._submit(client, token)
            async with self.unreachable():
                for _ in range(3):
                    try:
                        st = await client.status(job)
                    except TransientError:
                        continue
                    assert st.state is JobState.UNKNOWN, f"with the endpoint unreachable the status was {st}"
                try:
                    found = await client.find(token, since=since, spec=self.make_spec())
                except TransientError:
                    pass
                else:
                    raise AssertionError(f"find answered {found} with the endpoint unreachable; it must raise")
                try:
                    other = await client.submit(self.make_spec(), self.token())
                except TransientError:
                    pass
                else:
                    raise AssertionError(f"submit answered {other} with the endpoint unreachable")
            await self._state(client, job, JobState.PENDING, JobState.RUNNING)

        await self._with_client(test)

    async def test_a_vanished_job_is_lost_and_stays_lost(self) -> None:
        """The system's not-found answer, agreed by every source: LOST, again at every confirmation."""

        async def test(client: JobClient[Any]) -> None:
            job, other = await self._submit(client, self.token()), await self._submit(client, self.token())
            await self.vanish(job)
            await self._state(client, job, JobState.LOST)
            for _ in range(3):  # the protocol and the poller confirm LOST several times before acting
                st = await client.status(job)
                assert st.state is JobState.LOST, f"a vanished job must stay LOST, got {st}"
            answer = await self._eventually(
                lambda: client.statuses([job, other]),
                lambda a: locator_key(job) in a and a[locator_key(job)].state is JobState.LOST,
                "statuses() of the vanished job",
            )
            kept = answer.get(locator_key(other))
            assert kept is None or kept.state is not JobState.LOST, f"another job was called lost: {kept}"

        await self._with_client(test)

    # --- locators ------------------------------------------------------------------------------------------

    async def test_locators_are_plain_json_objects(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            job = await self._submit(client, self.token())
            assert type(job) is dict, f"a locator is a dict, not a {type(job).__name__}"
            assert 0 < len(job) <= 16, f"a locator has 1 to 16 fields: {job}"
            for k, v in job.items():
                assert type(k) is str and len(k) <= 64, f"locator key {k!r}"
                assert v is None or type(v) in (str, int), f"locator field {k!r} is {v!r}: str, int or None only"
                assert not isinstance(v, str) or len(v) <= 2048, f"locator field {k!r} is too long"
            back = json.loads(json.dumps(job))
            assert back == job and client.validate_locator(back) == job, "a locator must survive JSON unchanged"

        await self._with_client(test)

    async def test_validate_locator_is_idempotent(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            job = await self._submit(client, self.token())
            once = client.validate_locator(job)
            assert client.validate_locator(once) == once, "validate(validate(x)) must equal validate(x)"
            assert client.validate_locator(KeyedLocator(job)) == once, "a keyed locator validates the same"
            assert type(once) is dict, f"validate_locator returns a plain dict, not a {type(once).__name__}"

        await self._with_client(test)

    async def test_validate_locator_rejects_garbage(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            job = await self._submit(client, self.token())
            bad: list[Any] = [None, [], "x", 1, list(job.items()), {}]
            for key, value in job.items():
                bad += [{**job, key: wrong} for wrong in WRONG_TYPES]
                if isinstance(value, str):
                    bad += [{**job, key: value + suffix} for suffix in UNSAFE_SUFFIXES]
                    bad.append({**job, key: "../" + value})
            for locator in bad:
                try:
                    clean = client.validate_locator(locator)
                except RecordError:
                    continue
                except Exception as exc:
                    raise AssertionError(
                        f"validate_locator({locator!r}) raised {type(exc).__name__}: {exc}; it must raise RecordError"
                    ) from exc
                raise AssertionError(f"validate_locator accepted {locator!r} as {clean!r}")

        await self._with_client(test)

    # --- statuses ------------------------------------------------------------------------------------------

    async def test_ended_jobs_report_how_they_ended(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            ok, bad = await self._submit(client, self.token()), await self._submit(client, self.token())
            await self.end_job(ok, JobState.SUCCEEDED)
            await self.end_job(bad, JobState.FAILED)
            await self._state(client, ok, JobState.SUCCEEDED)
            await self._state(client, bad, JobState.FAILED)

        await self._with_client(test)

    async def test_statuses_are_keyed_by_locator_key(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            jobs = [await self._submit(client, self.token()) for _ in range(3)]
            await self.end_job(jobs[1], JobState.SUCCEEDED)
            await self.end_job(jobs[2], JobState.FAILED)
            want = {locator_key(jobs[1]): JobState.SUCCEEDED, locator_key(jobs[2]): JobState.FAILED}
            for locators in (jobs, [KeyedLocator(j) for j in jobs]):
                answer = await self._eventually(
                    lambda ls=locators: client.statuses(ls),  # type: ignore[misc]
                    lambda a: all(k in a and a[k].state is s for k, s in want.items()),
                    "statuses() of two ended jobs",
                )
                self._check_keys(answer, jobs)
                running = answer.get(locator_key(jobs[0]))
                assert running is None or running.state.is_active or running.state is JobState.UNKNOWN, running
            single = await client.statuses(jobs[1:2])
            self._check_keys(single, jobs[1:2])

        await self._with_client(test)

    @staticmethod
    def _check_keys(answer: Any, jobs: Sequence[Locator]) -> None:
        assert isinstance(answer, dict), f"statuses() returned a {type(answer).__name__}, not a dict"
        extra = set(answer) - {locator_key(j) for j in jobs}
        assert not extra, f"statuses() answered keys that are no locator_key() of the jobs asked: {extra}"
        assert all(isinstance(st, JobStatus) for st in answer.values()), answer

    async def test_statuses_with_the_endpoint_unreachable_know_nothing(self) -> None:
        """Raise a DurableJobError, or call no job anything but unknown: the poller handles both."""

        async def test(client: JobClient[Any]) -> None:
            jobs = [await self._submit(client, self.token()) for _ in range(2)]
            async with self.unreachable():
                for locators in (jobs, jobs[:1]):
                    try:
                        answer = await client.statuses(locators)
                    except DurableJobError:
                        continue
                    self._check_keys(answer, locators)
                    known = {k: st for k, st in answer.items() if st.state is not JobState.UNKNOWN}
                    assert not known, f"with the endpoint unreachable statuses() still said {known}"

        await self._with_client(test)

    # --- cancel ----------------------------------------------------------------------------------------------

    async def test_cancel_is_idempotent(self) -> None:
        async def test(client: JobClient[Any]) -> None:
            token, since = self.token(), time.time()
            job = await self._submit(client, token)
            await client.cancel(job)
            await client.cancel(job)
            st = await self._eventually(
                lambda: client.status(job), lambda s: s.state.is_terminal, "status after cancel"
            )
            assert st.state is not JobState.SUCCEEDED, f"a cancelled job reported {st}"
            await client.cancel(job)
            found = await self._find(client, token, since)
            assert found in (None, job), f"cancel must not create or replace a job: find gave {found}, not {job}"

        await self._with_client(test)

    async def test_cancel_of_an_ended_job_changes_nothing(self) -> None:
        """No error, and no other outcome: a success stays a success (or is gone, where cancel deletes).

        Where a success is a resource that cancel releases (:attr:`cancel_ends_success_as`), the ended job is
        one that failed, which stays failed (or is gone); and cancel of a success ends it as that attribute
        says, for good: a second cancel changes nothing, and no job is created.
        """
        if self.cancel_ends_success_as:
            await self._with_client(self._cancel_of_a_failure_and_of_a_live_success)
            return

        async def test(client: JobClient[Any]) -> None:
            job = await self._submit(client, self.token())
            await self.end_job(job, JobState.SUCCEEDED)
            await self._state(client, job, JobState.SUCCEEDED)
            await client.cancel(job)
            await client.cancel(job)
            st = await client.status(job)
            assert st.state in (JobState.SUCCEEDED, JobState.LOST), f"cancelling a success changed it to {st}"

        await self._with_client(test)

    async def _cancel_of_a_failure_and_of_a_live_success(self, client: JobClient[Any]) -> None:
        failed = await self._submit(client, self.token())
        await self.end_job(failed, JobState.FAILED)
        await self._state(client, failed, JobState.FAILED)
        await client.cancel(failed)
        await client.cancel(failed)
        st = await client.status(failed)
        assert st.state in (JobState.FAILED, JobState.LOST), f"cancelling a failed job changed it to {st}"

        token, since = self.token(), time.time()
        job = await self._submit(client, token)
        await self.end_job(job, JobState.SUCCEEDED)
        await self._state(client, job, JobState.SUCCEEDED)
        await client.cancel(job)
        ended = await self._state(client, job, *self.cancel_ends_success_as)
        await client.cancel(job)
        for _ in range(3):
            st = await client.status(job)
            assert st.state is ended.state, f"a cancelled success was {ended}, then (after a second cancel) {st}"
        found = await self._find(client, token, since)
        kept = (None, job) if ended.state is JobState.LOST else (job,)  # a cancel that deletes leaves nothing
        assert found in kept, f"cancel must not create or replace a job: find gave {found}, not {job}"


__all__ = ["JobClientContract", "endpoint_down"]
