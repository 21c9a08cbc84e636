"""The :class:`YarnClient`: the :class:`~durable_jobs.clients.base.JobClient` contract on YARN.

**The id is known before the job exists.** :meth:`YarnClient.reserve` asks ``new-application`` for an
application id; the protocol records it in the intent; only then does :meth:`YarnClient.submit` POST the
ApplicationSubmissionContext with that id. A crash at any point leaves nothing to guess: find is a GET by
id (404 = never submitted, confirmed by the list by tag), and submitting an id the RM already holds again
is a no-op in the RM (``ClientRMService.submitApplication`` returns early for it). Every application also
carries the protocol's token as a YARN tag: that is how the spark-submit path (which cannot reserve an id)
finds what a crashed try submitted, and how one list request per tick serves every watched application.

**Lost** (docs/bad-answers.md) needs the RM's documented not-found answer to the GET (404 +
``RemoteException`` ``NotFoundException``) *and* the list by the application's tag not returning it (an
application without a tag is looked up among the finished applications the RM still holds); an
application the list still shows is reported as the list shows it, and a list that cannot be read leaves
it unknown.

**Batched polling.** The RM has no "these ids" filter, but ``applicationTags=t1,t2`` matches any of the
tags, in every state (finished ones included), and each watched application carries its own token as a
tag. So :meth:`YarnClient.statuses` lists exactly the watched applications, ``list_batch`` tags per
request (the query stays far below URL limits), and GETs only those the list did not return (at most
``status_concurrency`` per poll). An entry of the list that cannot be read makes that application
unknown, nothing else; a list that fails makes the poll ask at most ``status_concurrency`` applications
one by one (:meth:`~durable_jobs.clients.base.JobClient.fallback_statuses`), never one request per job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.clients.yarn.answers import AppInfo
from durable_jobs.clients.yarn.config import YarnConfig, make_auth
from durable_jobs.clients.yarn.resource_manager import ResourceManagers
from durable_jobs.clients.yarn.spark_submit import (
    CommandRunner,
    run_command,
    spark_submit_argv,
    spark_submit_environment,
    submit_with_spark,
)
from durable_jobs.clients.yarn.specs import (
    TOKEN_TAG_RE,
    SparkSubmitApplication,
    YarnSpec,
    app_id_order,
    validate_app_id,
)
from durable_jobs.clients.yarn.states import (
    FINISHED_STATES,
    lost,
    safe_url,
    status_or_unknown,
    status_with_tag,
)
from durable_jobs.errors import (
    AuthError,
    DurableJobError,
    MalformedAnswer,
    PermanentError,
    RecordError,
    RedirectRefused,
    TransientError,
)
from durable_jobs.messages import cut
from durable_jobs.status import JobStatus
from durable_jobs.transport.backoff import Backoff
from durable_jobs.transport.base import Auth
from durable_jobs.transport.retry import DEFAULT as RETRY
from durable_jobs.transport.retry import RetryPolicy

log = logging.getLogger(__name__)

SYSTEM = "yarn"
# locators handled between two turns of the loop when many are watched
_LOOP_SLICE = 1000
# waits between two kills of an application the RM still says is stopping
_KILL_BACKOFF = Backoff(base=0.2, cap=2.0)


class _StillStopping(TransientError):
    """The RM accepted the kill, and the application has not stopped yet."""


class YarnClient(ResourceManagers, JobClient[YarnSpec]):
    """One YARN cluster (one or several RMs). Locator: ``{"application_id": ..., "tag": <token>}``."""

    system: ClassVar[str] = SYSTEM
    find_unrecorded: ClassVar[bool] = True  # one applications query by the token's tag

    def __init__(
        self,
        config: YarnConfig,
        *,
        auth: Auth | None = None,
        runner: CommandRunner | None = None,
    ) -> None:
        super().__init__(config, auth or make_auth(config))
        self.runner: CommandRunner = runner or run_command
        self._follow_cursor = 0

    @property
    def key(self) -> Hashable:
        """The RMs and who we are, never a credential: a keytab replaced at the same path or a new simple-auth
        user keeps the key, so the running poller takes the new client (refetch) instead of starting another."""
        kerberos = self.config.kerberos if self.config.auth == "kerberos" else None
        who = kerberos.identity if kerberos is not None else self.config.auth
        return (SYSTEM, self.config.rm_urls, self.config.verify_ssl, self.config.ca_file, who)

    @property
    def endpoint_name(self) -> str:
        return "ResourceManager " + ",".join(self.config.rm_urls)

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or not set(locator) <= {"application_id", "tag"}:
            raise RecordError(f"a YARN locator has the fields application_id and tag; got {locator!r}")
        out: Locator = {"application_id": validate_app_id(locator.get("application_id"))}
        tag = locator.get("tag")
        if tag is not None:
            if not isinstance(tag, str) or not TOKEN_TAG_RE.match(tag):
                raise RecordError(f"invalid durable_jobs tag {tag!r} in a YARN locator")
            out["tag"] = tag
        return out

    def locator_matches_token(self, locator: Locator, token: str) -> bool:
        """The application's tag is the token it was submitted with."""
        tag = locator.get("tag")
        return tag is None or tag == token

    def describe(self, locator: Locator) -> str:
        return f"YARN application {locator.get('application_id')}"

    # --- the JobClient contract -----------------------------------------------------------------------------

    async def reserve(self, spec: YarnSpec, token: str) -> Locator | None:
        if isinstance(spec, SparkSubmitApplication):
            return None  # spark-submit asks for its own id; the tag finds it
        return {"application_id": await self.new_application(), "tag": token}

    async def submit(self, spec: YarnSpec, token: str, *, reserved: Locator | None = None) -> Locator:
        if isinstance(spec, SparkSubmitApplication):
            return await self._spark_submit(spec, token)
        app_id = validate_app_id(reserved["application_id"]) if reserved else await self.new_application()
        await self.submit_application(spec.request_body(app_id, token))
        return {"application_id": app_id, "tag": token}

    async def status(self, locator: Locator) -> JobStatus:
        """GET the application; on the RM's not-found answer, ask the second source before saying LOST."""
        app_id = validate_app_id(locator["application_id"])
        tag = locator.get("tag")
        try:
            app = await self.get_app(app_id)
        except AuthError as exc:
            if await self._refused_everything(locator):
                raise  # our credentials: the poller fetches fresh ones, the protocol fails the try
            raise TransientError(f"{exc} (other requests are accepted: this is about {app_id} only)") from None
        if app is not None:
            return status_with_tag(app, tag)
        return await self._not_found(app_id, tag)

    async def _not_found(self, app_id: str, tag: str | None) -> JobStatus:
        """GET said 404. LOST only if the list by tag (without a tag: the finished applications) agrees."""
        source = f"the applications tagged {tag}" if tag else "the finished applications the RM holds"
        try:
            if tag:
                listing = await self._list(tags=[tag], what=f"applications tagged {tag}")
            else:
                listing = await self._list(states=FINISHED_STATES, what="finished applications")
        except AuthError:
            raise
        except PermanentError as exc:  # the second source cannot be read: unknown, not lost, not a failure
            raise TransientError(f"{app_id}: the RM's GET says it does not exist, and {source}: {exc}") from None
        if app_id in listing.malformed:
            raise MalformedAnswer(listing.malformed[app_id])
        found = listing.apps.get(app_id)
        if found is not None:
            log.info("%s: the RM's GET says it does not exist, but %s include it: using that", app_id, source)
            return status_with_tag(found, tag)
        if not listing.complete:
            raise MalformedAnswer(
                f"{app_id}: the RM's GET says it does not exist, and {listing.unreadable} entries of {source} "
                "could not be read: cannot tell whether it is among them"
            )
        return lost(app_id, source)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """One list request per ``list_batch`` tags; a bounded number of GETs for what it did not return.

        A list that fails makes this poll ask at most ``status_concurrency`` applications one by one
        (:meth:`fallback_statuses`); an entry that cannot be read makes its application unknown.
        """
        tagged = [loc for loc in locators if loc.get("tag")]
        if len(locators) < 2 or not tagged:
            return await self._each(locators)
        by_tag: dict[str, list[Locator]] = {}
        for loc in tagged:
            by_tag.setdefault(str(loc["tag"]), []).append(loc)
        tags = sorted(by_tag)
        listed: dict[str, AppInfo] = {}
        bad: dict[str, str] = {}
        incomplete: set[str] = set()  # tags of lists with entries that could not be read
        failed: set[str] = set()  # tags of lists that failed
        error: DurableJobError | None = None
        for start in range(0, len(tags), self.config.list_batch):
            chunk = tags[start : start + self.config.list_batch]
            try:
                listing = await self._list(tags=chunk, what=f"list of {len(chunk)} watched applications")
            except AuthError:
                raise  # our credentials, refused for everyone: the poller fetches fresh ones
            except (TransientError, PermanentError) as exc:
                if isinstance(exc, TransientError) and exc.connect_failed and not isinstance(exc, RedirectRefused):
                    raise  # no (active) RM answers: every job is unknown, asking them one by one cannot help
                error = error or exc
                failed.update(chunk)
                continue
            listed.update(listing.apps)
            bad.update(listing.malformed)
            if not listing.complete:
                incomplete.update(chunk)
        out: dict[str, JobStatus] = {}
        follow_up: list[Locator] = []
        fallback: list[Locator] = []
        for n, loc in enumerate(locators):
            if n and n % _LOOP_SLICE == 0:
                await asyncio.sleep(0)
            app_id, tag = loc["application_id"], loc.get("tag")
            if tag in failed:
                fallback.append(loc)
            elif app_id in bad:
                out[locator_key(loc)] = JobStatus.unknown(bad[app_id])
            elif app_id in listed:
                out[locator_key(loc)] = status_or_unknown(listed[app_id], tag)
            else:
                follow_up.append(loc)  # not listed: a GET tells LOST (404) from a missing tag
        if follow_up:
            out.update(await self._follow_up(follow_up, incomplete))
        if fallback:
            assert error is not None
            log.info("%s; asking at most %d applications one by one", error, self.status_concurrency)
            out.update(await self.fallback_statuses(fallback))
        return out

    async def _each(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """:meth:`status` of each (``status_concurrency`` at a time); an error about one touches that one."""
        gate = asyncio.Semaphore(self.status_concurrency)

        async def one(loc: Locator) -> JobStatus:
            async with gate:
                return await self._isolated(loc)

        results = await asyncio.gather(*(one(loc) for loc in locators))
        return {locator_key(loc): st for loc, st in zip(locators, results, strict=True)}

    async def _isolated(self, locator: Locator) -> JobStatus:
        try:
            return await self.status(locator)
        except AuthError:
            raise  # refused for everything (status() checked): the poller fetches fresh credentials
        except DurableJobError as exc:
            return JobStatus.unknown_from(exc)
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this application only
            log.warning("status of %s failed unexpectedly", self.describe(locator), exc_info=True)
            return JobStatus.unknown_from(exc)

    async def _refused_everything(self, locator: Locator) -> bool:
        """After a 401/403 about one application: are our credentials refused for other requests too? (One
        more request, on this error path only: an RM may refuse one application to a user and not the rest.)"""
        tag = locator.get("tag")
        try:
            if tag:
                await self._list(tags=[tag], what=f"applications tagged {tag}")
            else:
                await self.cluster_info()
        except AuthError:
            return True
        except DurableJobError:
            return False
        return False

    async def _follow_up(self, locators: list[Locator], incomplete: set[str]) -> dict[str, JobStatus]:
        """GETs for applications a list did not return: at most ``status_concurrency`` per poll, in turn."""
        n = len(locators)
        if n <= self.status_concurrency:
            window = locators
        else:
            start = self._follow_cursor % n
            window = [locators[(start + i) % n] for i in range(self.status_concurrency)]
            self._follow_cursor = start + self.status_concurrency
        results = await asyncio.gather(*(self._unlisted(loc, loc.get("tag") not in incomplete) for loc in window))
        return {locator_key(loc): st for loc, st in zip(window, results, strict=True)}

    async def _unlisted(self, locator: Locator, listed_whole: bool) -> JobStatus:
        """An application the list did not return. The list read fine with our credentials, so any error
        here (an auth refusal included) is about this application only: unknown for it."""
        app_id, tag = locator["application_id"], locator.get("tag")
        try:
            app = await self.get_app(app_id)
            if app is not None:
                return status_with_tag(app, tag)
            if tag and listed_whole:
                return lost(app_id, f"the applications tagged {tag}")
            return await self._not_found(app_id, tag)
        except DurableJobError as exc:
            return JobStatus.unknown_from(exc)
        except Exception as exc:  # a bug or an unforeseen answer: unknown for this application only
            log.warning("status of %s failed unexpectedly", app_id, exc_info=True)
            return JobStatus.unknown_from(exc)

    async def cancel(self, locator: Locator) -> None:
        """PUT KILLED until the RM answers 200 (idempotent: 200 for a finished app, 404 for a forgotten one)."""
        app_id = validate_app_id(locator["application_id"])
        what = f"kill {app_id}"

        async def kill() -> tuple[int, str]:
            status, state = await RETRY.call(lambda: self.kill_app(app_id), what=what)
            if status not in (200, 404):
                raise _StillStopping(f"{app_id} is still {cut(state, 100)}")
            return status, state

        # the kill is asked again while the RM says the application is stopping, for at most kill_wait seconds
        until_stopped = RetryPolicy(
            attempts=None, budget=self.config.kill_wait, backoff=_KILL_BACKOFF, only=(_StillStopping,)
        )
        try:
            status, state = await until_stopped.call(kill, what=what, level=logging.DEBUG)
        except _StillStopping as exc:
            log.warning("%s: the kill was accepted but %s after %.0fs", app_id, exc, self.config.kill_wait)
            return
        if status == 404:
            log.info("%s is unknown to the ResourceManager: nothing to kill", app_id)
        else:
            log.info("%s is %s", app_id, cut(state, 100) or "stopped")

    async def find(
        self, token: str, *, since: float, spec: YarnSpec, reserved: Locator | None = None
    ) -> Locator | None:
        """The application of ``token``. No time window is used (the id was reserved, or the tag is exact),
        so the worker's clock plays no part."""
        if reserved is None:
            return await self._find_by_tag(token)
        app_id = validate_app_id(reserved["application_id"])
        app = await self.get_app(app_id)
        if app is not None:
            if token not in app.tags:
                raise PermanentError(
                    f"{app_id} was reserved for token {token} but the application carries tags "
                    f"{cut(str(sorted(app.tags)), 300)}; refusing to adopt it"
                )
            return {"application_id": app_id, "tag": token}
        # 404: never submitted, or submitted and already forgotten by the GET: the tag list must agree
        found = await self._find_by_tag(token)
        if found is not None and found["application_id"] != app_id:
            raise PermanentError(
                f"{app_id} was reserved for token {token}, but {found['application_id']} carries that token "
                "instead; refusing to adopt or submit anything"
            )
        return found

    async def _find_by_tag(self, token: str) -> Locator | None:
        listing = await self._list(tags=[token], what=f"applications tagged {token}")
        ids = []
        for n, app in enumerate(listing.apps.values()):
            if n and n % _LOOP_SLICE == 0:
                await asyncio.sleep(0)  # a list that ignores its filter may hold the whole cluster
            raw = app.applicationTags
            if (isinstance(raw, str) and token not in raw.lower()) or token not in app.tags:
                continue  # a list that ignores its filter: not ours
            try:
                ids.append(validate_app_id(app.id))
            except RecordError:
                listing.malformed[app.id] = f"an application carries tag {token} but has a malformed id"
        if not ids:
            if listing.malformed or not listing.complete:
                raise MalformedAnswer(
                    f"{len(listing.malformed) + listing.unreadable} entries of the applications tagged {token} "
                    "could not be read: cannot tell whether one of them is ours"
                )
            return None
        ids.sort(key=app_id_order)
        if len(ids) > 1:
            log.warning("several applications carry tag %s: %s; adopting the first", token, ids[:20])
        return {"application_id": ids[0], "tag": token}

    async def links(self, locator: Locator) -> dict[str, str]:
        app_id = validate_app_id(locator["application_id"])
        out = {"rm_app_url": f"{self.active_rm}/cluster/app/{app_id}"}
        try:
            app = await self.get_app(app_id)
        except DurableJobError:
            return out
        url = safe_url(app.trackingUrl) if app is not None else None
        if url:
            out["tracking_url"] = url
        return out

    # --- spark-submit (:mod:`durable_jobs.clients.yarn.spark_submit`) ------------------------------------------

    def spark_submit_command(self, spec: SparkSubmitApplication, token: str) -> list[str]:
        return spark_submit_argv(self.config, spec, token)

    def spark_submit_env(self) -> dict[str, str]:
        return spark_submit_environment(self.config)

    async def _spark_submit(self, spec: SparkSubmitApplication, token: str) -> Locator:
        return await submit_with_spark(
            spec, token, config=self.config, runner=self.runner, find_by_tag=self._find_by_tag
        )


__all__ = ["SYSTEM", "YarnClient"]
