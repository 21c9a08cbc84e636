"""Kubernetes batch Jobs, Pods and SparkApplications, adopted by name and watched, not polled: the client.

Why it exists: KubernetesPodOperator gives pods random names and builds a new API client (a TLS handshake)
for every call; KubernetesJobOperator and SparkKubernetesOperator create a new object on every retry. Here:

* **the name is the token** (:mod:`~durable_jobs.clients.kubernetes.objects`): a create answered 409
  AlreadyExists reads the object and adopts it when its token label matches (anything else is a name collision,
  reported as such), and ``find`` after a crash is one GET by name. No window is left open between submit and
  persist, and no time window either: finding a crashed try's object does not depend on any clock;
* **one connection per credential set and event loop** (:mod:`~durable_jobs.clients.kubernetes.api`);
* **every answer is decoded typed** (:mod:`~durable_jobs.clients.kubernetes.schemas`): a wrong type in a field
  that is read makes that object *unknown*, never lost, never failed;
* **watched, not polled**: ``statuses()`` answers from one shared list+watch cache per (namespace, kind)
  (:mod:`~durable_jobs.clients.kubernetes.watch`), selected by the fixed label ``durable-jobs.io/managed``.
  A poll tick costs no request. When the watch cannot be trusted (it cannot list, or sent something
  unreadable), a bounded number of jobs is read one by one per poll (``fallback_statuses``);
* **lost is proven** (:mod:`~durable_jobs.clients.kubernetes.evidence`), and a failure's message carries the
  failed pod's reason and last log lines (:mod:`~durable_jobs.clients.kubernetes.diagnosis`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, ClassVar

from msgspec.structs import asdict

from durable_jobs.clients.base import JobClient, Locator, locator_key
from durable_jobs.clients.kubernetes.api import Connection, connection_for, forget_connection
from durable_jobs.clients.kubernetes.calls import get_object, retry
from durable_jobs.clients.kubernetes.config import SYSTEM, KubernetesConfig
from durable_jobs.clients.kubernetes.diagnosis import finish
from durable_jobs.clients.kubernetes.errors import KubeApiError, is_not_found
from durable_jobs.clients.kubernetes.evidence import confirm_gone
from durable_jobs.clients.kubernetes.objects import (
    DNS_LABEL_RE,
    DNS_SUBDOMAIN_RE,
    KINDS,
    TOKEN_LABEL,
    UID_RE,
    Kind,
    KubeObject,
    matches_token,
)
from durable_jobs.clients.kubernetes.schemas import SCHEMAS, Adoptable, Version, decode
from durable_jobs.clients.kubernetes.status import CachedObject, deleted_status, normalize
from durable_jobs.errors import AuthError, MalformedAnswer, PermanentError, RecordError, TransientError
from durable_jobs.status import JobState, JobStatus

log = logging.getLogger(__name__)

YIELD_EVERY = 1000  # jobs answered from the cache between two yields to the event loop


# --- the client --------------------------------------------------------------------------------------------


class KubernetesClient(JobClient[KubeObject]):
    system: ClassVar[str] = SYSTEM
    find_unrecorded: ClassVar[bool] = True  # one GET by the name the token gives
    cancel_deletes: ClassVar[bool] = True  # a cancel deletes the Job object

    def __init__(self, config: KubernetesConfig | None = None) -> None:
        self.config = config or KubernetesConfig()

    @property
    def key(self) -> Hashable:
        """The endpoint (server, context, namespace, CA, settings), never the credentials: see KubernetesConfig.key."""
        return self.config.key

    @property
    def endpoint_name(self) -> str:
        return f"the Kubernetes apiserver of {self.config.describe_source()}"

    async def connection(self) -> Connection:
        conn = connection_for(self.config)
        try:
            await conn.ready()
        except PermanentError:
            forget_connection(self.config, conn)  # do not keep a connection that cannot load: the next call tries again
            raise
        return conn

    def validate_locator(self, locator: Mapping[str, Any]) -> Locator:
        if not isinstance(locator, Mapping) or set(locator) != {"kind", "namespace", "name", "uid"}:
            raise RecordError(
                f"a Kubernetes locator has exactly the fields kind, namespace, name and uid; got {locator!r}"
            )
        kind, namespace, name, uid = (locator[k] for k in ("kind", "namespace", "name", "uid"))
        if not isinstance(kind, str) or kind not in KINDS:
            raise RecordError(f"unknown Kubernetes kind {kind!r} in the locator")
        if not isinstance(namespace, str) or len(namespace) > 63 or not DNS_LABEL_RE.match(namespace):
            raise RecordError(f"invalid Kubernetes namespace {namespace!r}")
        if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN_RE.match(name):
            raise RecordError(f"invalid Kubernetes object name {name!r}")
        if not isinstance(uid, str) or not UID_RE.match(uid):
            raise RecordError(f"invalid Kubernetes uid {uid!r}")
        return {"kind": kind, "namespace": namespace, "name": name, "uid": uid}

    def locator_matches_token(self, locator: Locator, token: str) -> bool:
        """The object's name is derived from the token (``object_name(prefix, token)``): check it."""
        kind = KINDS.get(str(locator.get("kind")))
        return kind is not None and matches_token(str(locator.get("name")), token, kind.max_name)

    def describe(self, locator: Locator) -> str:
        return f"{locator.get('kind')} {locator.get('namespace')}/{locator.get('name')}"

    async def namespace_for(self, spec: KubeObject) -> str:
        return spec.namespace or (await self.connection()).default_namespace

    # --- create, find, adopt -------------------------------------------------------------------------------

    async def submit(self, spec: KubeObject, token: str, *, reserved: Locator | None = None) -> Locator:
        conn = await self.connection()
        kind, namespace, name = spec.kind_info, spec.namespace or conn.default_namespace, spec.object_name(token)
        body = spec.render(token, namespace)
        what = f"create {kind.name} {namespace}/{name}"
        try:
            # safe to repeat: a create that landed before its answer was lost comes back as 409, adopted below.
            # A redirect is never followed (nor repeated): the answer of another server is never taken for the job
            reply = await retry(
                lambda: conn.call("POST", kind.collection(namespace), body=body, what=what), attempts=3, what=what
            )
        except KubeApiError as exc:
            if exc.status != 409 or exc.reason not in ("AlreadyExists", ""):
                raise
            found = await get_object(conn, kind, namespace, name, Adoptable)
            if found is None:
                raise TransientError(
                    f"{what}: answered AlreadyExists but is gone now; the next try looks again"
                ) from exc
            log.info("%s already exists: adopting it if it carries token %s", what, token)
            return self._adopt(found, token, kind, namespace, name)
        try:
            return self._adopt(decode(reply.body, Adoptable, what=what), token, kind, namespace, name, created=True)
        except MalformedAnswer as exc:
            # the apiserver accepted the create (2xx) but its answer cannot be read: read the object back, as the
            # next try would
            log.warning("%s: %s; reading the object back", what, exc)
            found = await get_object(conn, kind, namespace, name, Adoptable)
            if found is None:
                raise MalformedAnswer(
                    f"{what}: the answer cannot be read and no such object exists; the next try looks again"
                ) from exc
            return self._adopt(found, token, kind, namespace, name)

    async def find(
        self, token: str, *, since: float, spec: KubeObject, reserved: Locator | None = None
    ) -> Locator | None:
        """One GET by the name the token gives: no time window, so no clock is involved."""
        conn = await self.connection()
        kind, namespace, name = spec.kind_info, spec.namespace or conn.default_namespace, spec.object_name(token)
        obj = await get_object(conn, kind, namespace, name, Adoptable)
        return None if obj is None else self._adopt(obj, token, kind, namespace, name)

    def _adopt(
        self, obj: Adoptable, token: str, kind: Kind, namespace: str, name: str, *, created: bool = False
    ) -> Locator:
        meta = obj.metadata
        what = f"{kind.name} {namespace}/{name}"
        if meta.name and meta.name != name:
            raise MalformedAnswer(f"{what}: the apiserver answered about another object ({meta.name[:100]!r})")
        carried = (meta.labels or {}).get(TOKEN_LABEL)
        if carried != token:
            if created:  # the object we just sent carries the token: this answer is not about it
                raise MalformedAnswer(f"{what}: the create was answered with an object without this task's token")
            raise KubeApiError(
                f"{what} exists but is not this task's job: its {TOKEN_LABEL} label is {str(carried)[:80]!r}, this "
                f"task's token is {token}. A name collision: delete that object or give the operator another name",
                status=409,
                reason="NameCollision",
            )
        if not UID_RE.match(meta.uid):
            raise MalformedAnswer(f"{what}: the apiserver's answer carries no valid uid ({meta.uid[:60]!r})")
        return self.validate_locator({"kind": kind.name, "namespace": namespace, "name": name, "uid": meta.uid})

    # --- status ----------------------------------------------------------------------------------------------

    async def status(self, locator: Locator) -> JobStatus:
        loc = self.validate_locator(locator)
        return await self._read_status(await self.connection(), loc, None)

    async def _read_status(
        self, conn: Connection, loc: Locator, tombstone: CachedObject | None, *, attempts: int = 2
    ) -> JobStatus:
        kind = KINDS[loc["kind"]]
        obj = await get_object(conn, kind, loc["namespace"], loc["name"], SCHEMAS[kind.name], attempts=attempts)
        if obj is None:
            if tombstone is not None and tombstone.status.state is not JobState.UNKNOWN:
                return deleted_status(tombstone.status)  # the watch saw it deleted, and its last state
            return await confirm_gone(self, conn, loc, "NotFound", f"{self.describe(loc)} does not exist")
        uid = obj.metadata.uid
        if not UID_RE.match(uid):
            raise MalformedAnswer(f"read {self.describe(loc)}: the answer carries no valid uid ({uid[:60]!r})")
        if uid != loc["uid"]:
            return await confirm_gone(
                self,
                conn,
                loc,
                "Replaced",
                f"{self.describe(loc)} is now another object (uid {uid}; the job had {loc['uid']})",
            )
        return await finish(self, conn, loc, normalize(kind.name, obj), obj)

    async def statuses(self, locators: Sequence[Locator]) -> dict[str, JobStatus]:
        """From the shared watch of each (namespace, kind): no request per job, except to confirm a missing one.

        A group whose watch cannot be trusted (not listed, stale, or sent something unreadable) is read one job
        at a time, at most ``status_concurrency`` of them per poll (:meth:`fallback_statuses`); the others are
        left out (unknown this round).
        """
        if not locators:
            return {}
        conn = await self.connection()
        if not self.config.watch:
            return await self._read_each(conn, [(loc, None) for loc in locators], endpoint_wide=True)
        out: dict[str, JobStatus] = {}
        to_read: list[tuple[Locator, CachedObject | None]] = []
        groups: dict[tuple[str, str], list[Locator]] = {}
        for loc in locators:
            groups.setdefault((loc["kind"], loc["namespace"]), []).append(loc)
        for (kind_name, namespace), locs in groups.items():
            inf = conn.informer(KINDS[kind_name], namespace)
            inf.touch()
            try:
                await inf.wait_synced(self.config.timeout)
            except TransientError:
                out.update(await self.fallback_statuses(locs))
                continue
            if isinstance(inf.failure, AuthError) and inf.failure.status == 401:
                raise inf.failure  # the credentials, for everyone: the poller fetches fresh ones
            if inf.forbidden is not None:
                to_read.extend((loc, None) for loc in locs)  # RBAC: one GET per job, on purpose
                continue
            if not inf.fresh:
                out.update(await self.fallback_statuses(locs))
                continue
            console = bool(self.config.console_url)
            for i, loc in enumerate(locs):
                if i and not i % YIELD_EVERY:
                    await asyncio.sleep(0)  # 10,000 jobs in one poll must not hold the event loop
                cached = inf.lookup(loc["name"])
                if cached is not None and not cached.uid and not cached.deleted:
                    out[locator_key(loc)] = cached.status  # its answer could not be read: unknown, no request
                    continue
                if (
                    cached is None
                    or cached.uid != loc["uid"]
                    or (cached.deleted and not cached.status.state.is_terminal)
                ):
                    # not seen (yet), replaced, or gone from the selection: one GET settles it
                    to_read.append((loc, cached if cached is not None and cached.deleted else None))
                    continue
                cached.uid = loc["uid"]  # the same text: keep the trigger's string, free the cache's copy
                status = cached.status
                if console and not status.tracking_url:
                    status = dataclasses.replace(status, tracking_url=self.console_link(loc))
                if status.state is JobState.FAILED:
                    status = await finish(self, conn, loc, status, None)
                out[locator_key(loc)] = status  # no coroutine per waiting job per tick: it is 10,000 of them
        if to_read:
            out.update(await self._read_each(conn, to_read, endpoint_wide=False))
        return out

    async def _read_each(
        self, conn: Connection, pairs: list[tuple[Locator, CachedObject | None]], *, endpoint_wide: bool
    ) -> dict[str, JobStatus]:
        """Each job's own GET (bounded concurrency, one attempt): an error about one job makes that job unknown.

        Only credentials refused (401) concern everyone and raise; with ``endpoint_wide`` (no watch: these are
        all the jobs of the poll), so does any refusal.
        """
        out: dict[str, JobStatus] = {}
        todo = iter(pairs)
        refused: list[AuthError] = []

        async def worker() -> None:
            for loc, tombstone in todo:
                try:
                    status = await self._read_status(conn, loc, tombstone, attempts=1)
                except AuthError as exc:
                    if exc.status == 401 or endpoint_wide:
                        refused.append(exc)
                        return
                    status = JobStatus.unknown_from(exc)
                except (TransientError, PermanentError, RecordError) as exc:
                    status = JobStatus.unknown_from(exc)
                except Exception as exc:  # a bug or an unforeseen answer: unknown for this job only
                    log.warning("status of %s failed unexpectedly", self.describe(loc), exc_info=True)
                    status = JobStatus.unknown_from(exc)
                out[locator_key(loc)] = status

        await asyncio.gather(*(worker() for _ in range(min(self.status_concurrency, len(pairs)))))
        if refused:
            raise refused[0]
        return out

    # --- cancel and links --------------------------------------------------------------------------------------

    async def cancel(self, locator: Locator) -> None:
        """Delete the object (``delete_propagation_policy``), only if it is still the one recorded (its uid)."""
        loc = self.validate_locator(locator)
        conn = await self.connection()
        kind = KINDS[loc["kind"]]
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": self.config.delete_propagation_policy,
            "preconditions": {"uid": loc["uid"]},
        }
        if self.config.delete_grace_period_seconds is not None:
            body["gracePeriodSeconds"] = self.config.delete_grace_period_seconds
        what = f"delete {self.describe(loc)}"
        try:
            await retry(
                lambda: conn.call("DELETE", kind.item(loc["namespace"], loc["name"]), body=body, what=what),
                attempts=3,
                what=what,
            )
        except KubeApiError as exc:
            if is_not_found(exc, loc["name"]):
                return  # already gone
            if exc.status == 409:
                log.warning("%s: not deleted, the name now belongs to another object (%s)", what, exc)
                return
            raise
        log.info("Deleted %s (propagation %s)", self.describe(loc), self.config.delete_propagation_policy)

    def console_link(self, loc: Locator) -> str | None:
        if not self.config.console_url:
            return None
        kind = KINDS[loc["kind"]]
        return self.config.console_url.format(
            namespace=loc["namespace"], name=loc["name"], uid=loc["uid"], kind=kind.name.lower(), plural=kind.plural
        )

    async def links(self, locator: Locator) -> dict[str, str]:
        url = self.console_link(self.validate_locator(locator))
        return {"console_url": url} if url else {}

    async def version(self) -> dict[str, Any]:
        """The apiserver's ``/version`` (a cheap health check)."""
        conn = await self.connection()
        reply = await conn.call("GET", "/version", what="read /version")
        return asdict(decode(reply.body, Version, what="read /version"))
