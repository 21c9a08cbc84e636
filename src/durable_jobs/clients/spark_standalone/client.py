"""The :class:`SparkStandaloneClient`: the :class:`~durable_jobs.clients.base.JobClient` contract on Spark
standalone, over the master's REST submission server (no spark-submit, no JVM on the worker).

What the endpoint really does (measured against Spark 4.3.0; see docs/spark-standalone.md):

* ``success:false`` on status means the REST server does not know the id: never submitted, cleared,
  evicted by ``spark.deploy.retainedDrivers``, or issued before a master restart. It is LOST only when the
  master's ``/json/`` (the second source) agrees: a driver it still lists is reported in the state it shows
  there (a completed ``FINISHED`` driver succeeded), and a ``/json/`` that cannot be read leaves the
  driver UNKNOWN. The poller and the protocol then confirm LOST several times before acting on it.
* Every answer is decoded against a declared schema (:mod:`~durable_jobs.clients.spark_standalone.answers`);
  a malformed one is unknown, never lost, never permanent.
* HA: several masters; a request goes to each in turn, starting with the one that last answered as the active
  master (after a takeover, the dead master is not asked first on every request). A standby answers
  ``success:false`` with "Current state is not alive"; a refused connection, a connection not made within
  the connect timeout (a host that is down), or a redirect the transport does not follow (it never re-sends
  a POST), means the master did not act, so the next master may be tried even for create. A timeout after
  sending is not retried elsewhere (it may have landed).

Batched polls read ``/json/`` once per poll for every driver of a master
(:mod:`~durable_jobs.clients.spark_standalone.listing`); only drivers it does not list (to confirm a loss)
and ``ERROR`` drivers (for the message) are asked over REST, at most
:attr:`SparkStandaloneClient.followup_limit` per poll. When ``/json/`` fails, at most
``status_concurrency`` drivers per poll are asked over REST (:meth:`JobClient.fallback_statuses`).
Find by token is in :mod:`~durable_jobs.clients.spark_standalone.find`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from durable_jobs.clients.base import JobClient, KeyedLocator, Locator, locator_key
from durable_jobs.clients.spark_standalone.answers import (
    FAILED_MESSAGE,
    STATE_MAP,
    CreateAnswer,
    Driver,
    RefusedForThisDriver,
    RestAnswer,
    StatusAnswer,
    first_line,
    rest_answer,
)
from durable_jobs.clients.spark_standalone.config import SparkStandaloneConfig
from durable_jobs.clients.spark_standalone.find import DriverFinder
from durable_jobs.clients.spark_standalone.listing import MAPPING_SLICE, as_listing, breathe, in_turn
from durable_jobs.clients.spark_standalone.specs import SYSTEM, SparkApplication, validate_driver_id
from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    TransientError,
)
from durable_jobs.messages import cut
from durable_jobs.status import JobState, JobStatus
from durable_jobs.transport.auth import BearerAuth
from durable_jobs.transport.base import NO_AUTH, Auth
from durable_jobs.transport.http import Endpoint, request
from durable_jobs.transport.retry import DEFAULT as RETRY

log = logging.getLogger(__name__)
T = TypeVar("T")

_STANDBY_MARKERS = ("Current state is not alive", "ALIVE state")

# set while a batched poll falls back to REST because /json/ failed: a driver the REST server does not know
# is then unknown at once (its second source just failed), instead of fetching /json/ again per driver
_LISTING_PROBLEM: contextvars.ContextVar[str | None] = contextvars.ContextVar("spark_listing_problem", default=None)


class SparkStandaloneClient(DriverFinder, JobClient[SparkApplication]):
    system: ClassVar[str] = SYSTEM
    # a lost record is not looked up: find reads every driver and their workers' logs, and a driver whose log is
    # gone cannot be decided, so without an intent time to bound it a task could never submit again
    find_unrecorded: ClassVar[bool] = False
    #: REST follow-ups of a batched poll (drivers /json/ does not list, ERROR drivers), at most, in turn
    followup_limit: ClassVar[int] = 256

    def __init__(self, config: SparkStandaloneConfig) -> None:
        self.config = config
        self._rest = [self._endpoint(u, config.rest_urls) for u in config.rest_urls]
        self._ui = [self._endpoint(u, config.ui_urls) for u in config.ui_urls]
        self._auth: Auth = BearerAuth(config.bearer_token) if config.bearer_token else NO_AUTH
        self._followup_cursor = 0
        self._rest_active = 0  # the REST server that last answered as the active master: asked first
        self._listing_failing = False
        self._shared_states: dict[str, JobStatus] = {}

    def _endpoint(self, url: str, peers: Sequence[str]) -> Endpoint:
        return Endpoint(
            url,
            verify_ssl=self.config.verify_ssl,
            ca_file=self.config.ca_file,
            timeout=self.config.timeout,
            max_body=self.config.max_response_bytes,
            redirect_hosts=tuple(p for p in peers if p != url),  # HA: a GET may be redirected among them
        )

    @property
    def key(self) -> Hashable:
        # the endpoint only: clients built before and after a credential rotation share one poller
        return (self.config.rest_urls, self.config.ui_urls, self.config.verify_ssl, self.config.ca_file)

    @property
    def endpoint_name(self) -> str:
        return "Spark master " + ",".join(self.config.rest_urls)

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"driver_id"}:
            raise RecordError(f"a Spark standalone locator has exactly one field, driver_id; got {locator!r}")
        return {"driver_id": validate_driver_id(locator["driver_id"])}

    def describe(self, locator: Locator) -> str:
        return f"Spark driver {locator.get('driver_id')}"

    @property
    def master_url(self) -> str:
        hosts = ",".join(u.split("://", 1)[1].split("/", 1)[0] for u in self.config.rest_urls)
        return f"spark://{hosts}"

    @property
    def master_ui_url(self) -> str | None:
        """The UI of the master that last answered as the active one (the first configured, until one has)."""
        return self.config.ui_urls[self._ui_active] if self.config.ui_urls else None

    # --- REST plumbing ---------------------------------------------------------------------------------

    async def _rest_call(self, method: str, path: str, schema: type[T], *, what: str, body: Any = None) -> T:
        """Send to each master in turn; the first answer from an ALIVE master, decoded against ``schema``."""
        last: TransientError | None = None
        for i in in_turn(len(self._rest), self._rest_active):
            ep = self._rest[i]
            try:
                resp = await request(ep, method, path, json_body=body, auth=self._auth, what=what)
            except TransientError as exc:
                last = exc
                if exc.connect_failed:  # refused, not connected, or a redirect not followed: this master did not act
                    continue
                raise
            answer = rest_answer(resp, schema, what)
            assert isinstance(answer, RestAnswer)
            if answer.success is False and any(m in (answer.message or "") for m in _STANDBY_MARKERS):
                last = TransientError(f"{what}: master {ep.base_url} is not the active master")
                continue
            self._rest_active = i
            return answer
        assert last is not None
        raise last

    # --- the JobClient contract ------------------------------------------------------------------------

    async def submit(self, spec: SparkApplication, token: str, *, reserved: Locator | None = None) -> Locator:
        body = spec.request_body(token, self.master_url)
        what = "create Spark submission"
        answer = await self._rest_call("POST", "/v1/submissions/create", CreateAnswer, what=what, body=body)
        if answer.success is None:
            raise MalformedAnswer(f"{what}: the answer has no 'success' field")
        if answer.success is False:
            raise PermanentError(f"the Spark master refused the submission: {first_line(answer.message)}")
        try:
            driver_id = validate_driver_id(answer.submission_id)
        except RecordError:
            # the master may have created a driver: never a permanent error, the next try finds it by token
            raise MalformedAnswer(
                f"{what}: success without a usable submissionId ({cut(repr(answer.submission_id), 200)})"
            ) from None
        return {"driver_id": driver_id}

    async def status(self, locator: Locator) -> JobStatus:
        driver_id = validate_driver_id(locator["driver_id"])
        answer = await self._rest_status(driver_id)
        if answer.success:
            return self._from_rest(driver_id, answer)
        # the REST server does not know it: ask the second source before anyone may call it lost
        if not self._ui:
            return self._lost(driver_id, "no master UI is configured to confirm it")
        problem = _LISTING_PROBLEM.get()
        if problem is not None:
            return self._unconfirmed(driver_id, problem)
        try:
            listed = await self._listed_states()
        except DurableJobError as exc:  # an AuthError too: the REST server let us in, this is about the UI
            return self._unconfirmed(driver_id, str(exc))
        return self._from_listing(driver_id, listed.get(driver_id))

    async def _rest_status(self, driver_id: str) -> StatusAnswer:
        what = f"status of {driver_id}"
        try:
            answer = await self._rest_call(
                "GET", f"/v1/submissions/status/{quote(driver_id, safe='')}", StatusAnswer, what=what
            )
        except AuthError:
            raise  # about our credentials, so about every driver
        except PermanentError as exc:
            # Spark answers any id with 200 (success:false when unknown): a 4xx here comes from a proxy or a
            # misconfiguration, and says nothing about the driver. Unknown for this driver, never a failure.
            raise RefusedForThisDriver(str(exc), status=exc.status) from None
        if answer.success is None:
            raise MalformedAnswer(f"{what}: the answer has no 'success' field")
        return answer

    def _from_rest(self, driver_id: str, answer: StatusAnswer) -> JobStatus:
        raw = answer.driver_state
        if raw is None:
            raise MalformedAnswer(f"status of {driver_id}: success without a driverState")
        state = STATE_MAP.get(raw, JobState.UNKNOWN)
        message = answer.message or ""
        if raw == "FAILED" and not message:
            message = FAILED_MESSAGE
        extra = {k: v for k, v in (("workerId", answer.worker_id), ("workerHostPort", answer.worker_host_port)) if v}
        return JobStatus(state=state, raw_state=raw, message=message, tracking_url=self.master_ui_url, extra=extra)

    def _from_listing(self, driver_id: str, listed: str | None) -> JobStatus:
        """The REST server does not know ``driver_id``; ``listed`` is its state in ``/json/`` (None: absent)."""
        if listed is None:
            return self._lost(driver_id, "the master's /json/ does not list it among active or completed drivers")
        state = STATE_MAP.get(listed, JobState.UNKNOWN)
        if listed == "FAILED":
            message = FAILED_MESSAGE
        elif listed == "ERROR":
            message = "the driver could not be launched (the REST server no longer has its message)"
        else:
            message = ""
        return JobStatus(state=state, raw_state=listed, message=message, tracking_url=self.master_ui_url)

    def _lost(self, driver_id: str, why: str) -> JobStatus:
        return JobStatus(
            state=JobState.LOST,
            raw_state="success:false",
            message=(
                f"the master does not know {driver_id} ({why}): it never existed, was cleared, was evicted by "
                "spark.deploy.retainedDrivers, or was lost in a master restart"
            ),
            tracking_url=self.master_ui_url,
        )

    @staticmethod
    def _unconfirmed(driver_id: str, problem: str) -> JobStatus:
        return JobStatus.unknown(
            f"the master's REST server does not know {driver_id}, and its /json/ could not be read to confirm "
            f"that it is gone: {problem}"
        )

    async def cancel(self, locator: Locator) -> None:
        driver_id = validate_driver_id(locator["driver_id"])
        what = f"kill {driver_id}"
        answer = await RETRY.call(
            lambda: self._rest_call("POST", f"/v1/submissions/kill/{quote(driver_id, safe='')}", RestAnswer, what=what),
            what=what,
        )
        if answer.success is None:
            raise MalformedAnswer(f"{what}: the answer has no 'success' field")
        # success:false = "already finished or does not exist": nothing left to stop
        message = answer.message or ""
        if answer.success is False and "does not exist" not in message and "already finished" not in message:
            raise PermanentError(f"the master refused to kill {driver_id}: {first_line(message)}")

    async def readyz(self) -> bool:
        answer = await self._rest_call("GET", "/v1/submissions/readyz", RestAnswer, what="readyz")
        if answer.success is None:
            raise MalformedAnswer("readyz: the answer has no 'success' field")
        return answer.success

    # --- batched polls -----------------------------------------------------------------------------------

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One ``/json/`` request for every driver; REST only for what it does not settle."""
        if not (self.config.batch_status and self._ui) or len(locators) < 2:
            return await super().statuses(locators)
        try:
            listed = await self._listed_states()
        except DurableJobError as exc:
            return await self._fallback(locators, exc)
        if self._listing_failing:
            self._listing_failing = False
            log.warning("%s: /json/ answers again; polling drivers in one batch", self.endpoint_name)
        out: dict[str, JobStatus] = {}
        follow_up: list[tuple[Locator, str | None]] = []
        # one (immutable) status per raw state, shared by the jobs in it and kept from poll to poll: the poller
        # passes over a job whose status is the very object it already holds
        shared = self._shared_states
        get = listed.get
        for i, loc in enumerate(locators):
            if i and not i % MAPPING_SLICE:
                await breathe()  # 100,000 jobs are mapped in slices, with the loop served in between
            raw = get(loc["driver_id"])
            if raw is None or raw == "ERROR":
                follow_up.append((loc, raw))  # confirm a loss / fetch ERROR's message, over REST
                continue
            st = shared.get(raw)
            if st is None:
                if len(shared) >= 64:
                    shared.clear()  # raw states are a handful; a hostile master must not grow this table
                st = shared[raw] = self._from_listed_state(raw)
            out[loc.key if type(loc) is KeyedLocator else locator_key(loc)] = st
        if follow_up:
            out.update(await self._follow_up(follow_up))
        return out

    def _from_listed_state(self, raw: str) -> JobStatus:
        state = STATE_MAP.get(raw, JobState.UNKNOWN)
        message = FAILED_MESSAGE if raw == "FAILED" else ""
        return JobStatus(state=state, raw_state=raw, message=message, tracking_url=self.master_ui_url)

    async def _fallback(self, locators: Sequence[Locator], exc: DurableJobError) -> dict[str, JobStatus]:
        """``/json/`` failed: at most ``status_concurrency`` drivers over REST this poll, in turn."""
        problem = str(exc)
        if not self._listing_failing:
            self._listing_failing = True
            log.warning(
                "%s: /json/ unavailable (%s); asking at most %d drivers per poll over REST until it answers",
                self.endpoint_name,
                problem,
                self.status_concurrency,
            )
        token = _LISTING_PROBLEM.set(problem)
        try:
            return await self.fallback_statuses(locators)
        finally:
            _LISTING_PROBLEM.reset(token)

    async def _follow_up(self, items: list[tuple[Locator, str | None]]) -> dict[str, JobStatus]:
        """REST answers for drivers /json/ did not settle; at most :attr:`followup_limit` per poll, in turn.

        An error about one driver makes that driver unknown, and touches no other. A refusal of our
        credentials (401/403) is raised, for the poller to fetch fresh ones, when no follow-up of this poll got
        through; while others do, it is about that driver only (a proxy's rule), and unknown for it.
        """
        n = len(items)
        if n > self.followup_limit:
            start = self._followup_cursor % n
            items = [items[(start + i) % n] for i in range(self.followup_limit)]
            self._followup_cursor = start + self.followup_limit
        out: dict[str, JobStatus] = {}
        refused: dict[str, AuthError] = {}
        todo = iter(items)

        async def worker() -> None:
            for loc, listed in todo:
                key = locator_key(loc)
                try:
                    out[key] = await self._follow_up_one(loc["driver_id"], listed)
                except AuthError as exc:
                    refused[key] = exc

        await asyncio.gather(*(worker() for _ in range(min(self.status_concurrency, len(items)))))
        if refused:
            if not out:
                raise next(iter(refused.values()))  # refused for every driver: about our credentials
            for key, exc in refused.items():
                out[key] = JobStatus.unknown_from(exc)
        return out

    async def _follow_up_one(self, driver_id: str, listed: str | None) -> JobStatus:
        try:
            answer = await self._rest_status(driver_id)
            if answer.success:
                return self._from_rest(driver_id, answer)
        except AuthError:
            raise
        except TransientError as exc:
            if listed is not None and isinstance(exc, RefusedForThisDriver):
                # a 4xx will not go away, and /json/ says how the driver ended: only the REST detail is missing
                st = self._from_listing(driver_id, listed)
                return JobStatus(st.state, st.raw_state, f"{st.message}; REST: {exc}", st.tracking_url)
            return JobStatus.unknown_from(exc)
        except DurableJobError as exc:
            return JobStatus.unknown_from(exc)
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this driver only
            log.warning("status of %s failed unexpectedly", driver_id, exc_info=True)
            return JobStatus.unknown_from(exc)
        # both sources agree that the master does not know it (or /json/ still shows how it ended)
        return self._from_listing(driver_id, listed)

    # --- links ------------------------------------------------------------------------------------------

    async def links(self, locator: Locator) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.master_ui_url:
            out["master_ui_url"] = self.master_ui_url
        driver_id = validate_driver_id(locator["driver_id"])
        what = "links: master state"
        try:
            listing, _ = await self._fetch_listing(what, as_listing)
            workers = await self._workers(listing, what)
            worker: str | None = None
            async for batch in self._drivers(listing, Driver, what):
                for d in batch:
                    if d.id == driver_id:
                        worker = d.worker
        except DurableJobError:
            return out
        worker_ui = workers.get(worker or "")
        if worker_ui:
            out["driver_ui_url"] = f"{worker_ui.rstrip('/')}/logPage/?driverId={quote(driver_id)}&logType=stderr"
        return out


__all__ = ["SparkStandaloneClient"]
