"""The ResourceManagers of one cluster over their REST API: each call, and HA failover among the RMs.

Kept apart from the job logic (:mod:`durable_jobs.clients.yarn.client`) because it is the only place that
knows how the RM answers (Hadoop's ResourceManagerRest.md, ``RMWebServices``, ``GenericExceptionHandler``):

* submit answers 202 with a ``Location`` and no body; kill answers 202 with the current state until the
  kill completes, then 200 (also 200 for an application that had already finished);
* errors are ``{"RemoteException": {"exception", "message", "javaClassName"}}``; anything unexpected is
  a 503, so 5xx is transient;
* HA: a standby RM redirects (307) to the active one, or answers 503 when it knows none;
  ``/ws/v1/cluster/info`` (never redirected) tells ``haState``. The transport follows a standby's
  redirect of a ``GET`` to the same path on another RM of the connection (``redirect_hosts``) and
  nothing else; a write (new-application, submit, kill) is never re-sent on a redirect: the client moves
  to the next RM itself, and looks for the active one again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import msgspec

from durable_jobs.clients.yarn.answers import (
    AppInfo,
    AppListing,
    adecode_listing,
    decode_app,
    decode_app_state,
    decode_cluster_info,
    decode_new_application,
    is_not_found,
    remote_exception,
)
from durable_jobs.clients.yarn.config import YarnConfig
from durable_jobs.clients.yarn.specs import validate_app_id
from durable_jobs.errors import AuthError, MalformedAnswer, PermanentError, TransientError
from durable_jobs.messages import cut
from durable_jobs.transport.base import TRANSIENT_STATUSES, Auth, Response
from durable_jobs.transport.http import Endpoint, request

log = logging.getLogger(__name__)

APPS = "/ws/v1/cluster/apps"
_JSON = {"Accept": "application/json"}


class ResourceManagers:
    """The RMs of one connection, the active one first; :class:`~durable_jobs.clients.yarn.client.YarnClient`
    builds on it."""

    def __init__(self, config: YarnConfig, auth: Auth) -> None:
        self.config = config
        self.auth: Auth = auth
        self._rms = [
            Endpoint(
                u,
                verify_ssl=config.verify_ssl,
                ca_file=config.ca_file,
                timeout=config.timeout,
                identity=self.auth.identity,
                max_body=config.max_body,
                redirect_hosts=tuple(h for h in config.rm_urls if h != u),  # HA peers: a standby's GET redirect
            )
            for u in config.rm_urls
        ]
        self._active = 0
        self._stale = len(self._rms) > 1  # which RM is active is not known yet

    @property
    def active_rm(self) -> str:
        return self._rms[self._active].base_url

    # --- HTTP plumbing with HA ------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Response:
        """Send to the active RM; on a standby, a refused redirect or a refused connection, go to the next RM.

        A GET redirected by a standby to the same path on another RM of the connection is followed by the
        transport; a write is never re-sent on a redirect (:class:`RedirectRefused`): the standby did not act
        on it, so it goes to the next RM from here, and an RM that may have received it is never asked again.
        """
        if self._stale and len(self._rms) > 1:
            await self.discover_active()
        order = [self._active, *(i for i in range(len(self._rms)) if i != self._active)]
        last: TransientError | None = None
        for i in order:
            ep = self._rms[i]
            try:
                resp = await request(
                    ep, method, path, json_body=body, params=params, headers=_JSON, what=what, auth=self.auth
                )
            except TransientError as exc:
                if not exc.connect_failed:
                    raise  # it may have reached the RM: never resend it elsewhere
                last, self._stale = exc, True
                continue
            standby = self._standby(ep, resp)
            if standby is not None:
                log.info("%s: %s", what, standby)
                last = TransientError(
                    f"{what}: {standby}", status=resp.status, retry_after=resp.retry_after(), connect_failed=True
                )
                self._stale = True
                continue
            self._active = self._index_of(resp.url, default=i)
            self._stale = False
            return resp
        assert last is not None
        raise last

    def _index_of(self, url: str, default: int) -> int:
        for i, ep in enumerate(self._rms):
            if url.startswith(ep.base_url + "/") or url == ep.base_url:
                return i
        return default

    def _standby(self, ep: Endpoint, resp: Response) -> str | None:
        """Why this answer comes from (or through) a standby RM, or None when it is the active RM's."""
        redirected = not (resp.url == ep.base_url or resp.url.startswith(ep.base_url + "/"))
        if redirected and (resp.status in (401, 403) or resp.status >= 500):
            return f"{ep.base_url} is a standby RM; the redirect to {resp.url} was not usable (HTTP {resp.status})"
        if resp.status == 503 and (
            any(str(k).lower() == "refresh" for k in resp.headers) or b"standby" in resp.body[:2000].lower()
        ):
            return f"{ep.base_url} is a standby RM and knows no active one yet (HTTP 503)"
        return None

    async def _ha_state(self, ep: Endpoint) -> str:
        resp = await request(ep, "GET", "/ws/v1/cluster/info", headers=_JSON, what="cluster info", auth=self.auth)
        if resp.status != 200:
            return f"HTTP {resp.status}"
        return decode_cluster_info(resp.body, what=f"cluster info of {ep.base_url}").haState

    async def discover_active(self) -> str | None:
        """Ask every RM's ``/ws/v1/cluster/info`` for its ``haState``; remember and return the active one."""
        results = await asyncio.gather(*(self._ha_state(ep) for ep in self._rms), return_exceptions=True)
        for i, state in enumerate(results):
            if state == "ACTIVE":
                self._active, self._stale = i, False
                return self._rms[i].base_url
        log.warning(
            "no active ResourceManager among %s: %s",
            [ep.base_url for ep in self._rms],
            ", ".join(cut(str(r), 300) for r in results),
        )
        return None

    # --- RM calls --------------------------------------------------------------------------------------------

    async def cluster_info(self) -> dict[str, Any]:
        resp = await self._call("GET", "/ws/v1/cluster/info", what="cluster info")
        _check(resp, "cluster info", ok=(200,))
        return msgspec.structs.asdict(decode_cluster_info(resp.body, what="cluster info"))

    async def new_application(self) -> str:
        resp = await self._call("POST", f"{APPS}/new-application", what="new-application")
        _check(resp, "new-application", ok=(200,))
        return decode_new_application(resp.body, what=f"new-application (HTTP {resp.status} from {resp.url})")

    async def submit_application(self, body: Mapping[str, Any]) -> str:
        app_id = validate_app_id(body.get("application-id"))
        what = f"submit {app_id}"
        resp = await self._call("POST", APPS, body=dict(body), what=what)
        _check(resp, what, ok=(202, 200, 201))
        if resp.status != 202 and resp.body.strip() and not resp.looks_like_json():
            # the RM answers 202 without a body: a 200 page (a proxy's login form) is not its acceptance
            raise MalformedAnswer(
                f"{what}: HTTP {resp.status} from {resp.url} is not the RM's answer: {resp.snippet()}"
            )
        return app_id  # the id is ours (reserved); nothing the answer says replaces it

    async def get_app(self, app_id: str) -> AppInfo | None:
        """The application's report, or None on the RM's documented not-found answer (404 NotFoundException).

        Any other failure raises: an unexpected 4xx or 404, a 5xx or a malformed answer is transient (it says
        nothing about the application), 401/403 is an :class:`AuthError`.
        """
        app_id = validate_app_id(app_id)
        what = f"status of {app_id}"
        resp = await self._call("GET", f"{APPS}/{quote(app_id)}", what=what)
        if resp.status == 200:
            return decode_app(resp.body, app_id, what=what)
        if is_not_found(resp.status, resp.body):
            return None
        _check(resp, what, ok=())
        raise AssertionError("unreachable")

    async def list_apps(
        self,
        *,
        states: Sequence[str] = (),
        tags: Sequence[str] = (),
        types: Sequence[str] = (),
        user: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        started_time_begin_ms: int | None = None,
    ) -> list[AppInfo]:
        """``GET /ws/v1/cluster/apps`` with filters; ``{"apps": null}`` is an empty list. Unreadable entries are
        left out (see :class:`AppListing` for the whole answer)."""
        listing = await self._list(
            states=states,
            tags=tags,
            types=types,
            user=user,
            queue=queue,
            limit=limit,
            started_time_begin_ms=started_time_begin_ms,
        )
        if listing.malformed or listing.unreadable:
            log.warning("list applications: %d entries could not be read", len(listing.malformed) + listing.unreadable)
        return list(listing.apps.values())

    async def _list(
        self,
        *,
        states: Sequence[str] = (),
        tags: Sequence[str] = (),
        types: Sequence[str] = (),
        user: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        started_time_begin_ms: int | None = None,
        what: str = "list applications",
    ) -> AppListing:
        params: dict[str, str] = {}
        for name, values in (("states", states), ("applicationTags", tags), ("applicationTypes", types)):
            if values:
                params[name] = ",".join(str(v).strip().lower() if name == "applicationTags" else v for v in values)
        for name, value in (("user", user), ("queue", queue), ("limit", limit)):
            if value is not None:
                params[name] = str(value)
        if started_time_begin_ms is not None:
            params["startedTimeBegin"] = str(int(started_time_begin_ms))
        params["deSelects"] = "resourceRequests"
        resp = await self._call("GET", APPS, params=params, what=what)
        _check(resp, what, ok=(200,))
        return await adecode_listing(resp.body, what=f"{what} (HTTP {resp.status} from {resp.url})")

    async def kill_app(self, app_id: str) -> tuple[int, str]:
        """One ``PUT .../state {"state":"KILLED"}``: (HTTP status, the state it reports); 404 when unknown."""
        app_id = validate_app_id(app_id)
        what = f"kill {app_id}"
        resp = await self._call("PUT", f"{APPS}/{quote(app_id)}/state", body={"state": "KILLED"}, what=what)
        if is_not_found(resp.status, resp.body):
            return 404, ""
        if resp.status == 404:
            raise TransientError(f"{what}: HTTP 404 from {resp.url} that is not the RM's: {resp.snippet()}", status=404)
        _check(resp, what, ok=(200, 202))
        try:
            state = decode_app_state(resp.body, what=f"{what} (HTTP {resp.status} from {resp.url})")
        except MalformedAnswer:
            if resp.status == 200:
                raise  # "done" is believed only from an answer that reads as the RM's
            state = ""  # accepted (202): the state it reports is only informative
        return resp.status, state


def _remote_error(resp: Response) -> str:
    remote = remote_exception(resp.body) if resp.looks_like_json() else None
    if remote is not None:
        text = f"{remote.exception}: {remote.message}" if remote.exception else remote.message
        return cut(text, 1000)
    return resp.snippet()


def _check(resp: Response, what: str, ok: tuple[int, ...]) -> None:
    """Raise the right error class for an RM answer that is not one of ``ok``."""
    if resp.status in ok:
        return
    detail = f"{what}: HTTP {resp.status} from {resp.url}: {_remote_error(resp)}"
    if resp.status in (401, 403):
        raise AuthError(detail, status=resp.status)
    if resp.status in TRANSIENT_STATUSES or resp.status >= 500 or resp.status < 400 or not ok:
        # 5xx, throttling, an unexpected 1xx/2xx/3xx; and any failure of a read (ok=()): it says nothing
        raise TransientError(detail, retry_after=resp.retry_after(), status=resp.status)
    raise PermanentError(detail, status=resp.status)


__all__ = ["APPS", "ResourceManagers"]
