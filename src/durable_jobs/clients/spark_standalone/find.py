"""Find by token: which driver, if any, a crashed try submitted (:meth:`DriverFinder.find`).

Every submission carries ``spark.durable_jobs.submission_tag=<token>`` and the token in ``spark.app.name``
(``"<name> [<token>]"``). The master's ``/json/`` lists drivers without names or properties, so find takes
the drivers started since the intent with the same main class and reads each one's launch command from its
worker's log page. The window is in the **master's** clock (its ``Date`` header against ours) and widened
by :data:`FIND_WINDOW_MARGIN` for workers whose clocks disagree, and the launch command confirms the token,
so a skewed clock neither hides the crashed try's driver nor adopts another one. Spark redacts
launch-command values whose key or value matches ``spark.redaction.regex``; when ours is redacted and the
app name does not settle it either, the driver counts as undecidable, never as "not ours". **The window
that stays open**: a driver still ``SUBMITTED`` (waiting for a worker) has no launch command yet; find then
raises :class:`~durable_jobs.errors.UndecidableError` and the try is retried later instead of submitting a
possible duplicate.
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import ClassVar

from durable_jobs.clients.base import Locator
from durable_jobs.clients.spark_standalone.answers import ACTIVE_STATES, STATE_MAP, Driver
from durable_jobs.clients.spark_standalone.config import SparkStandaloneConfig
from durable_jobs.clients.spark_standalone.listing import MasterListing, as_listing
from durable_jobs.clients.spark_standalone.specs import DRIVER_ID_RE, TOKEN_PROPERTY, SparkApplication
from durable_jobs.errors import DurableJobError, MalformedAnswer, TransientError, UndecidableError
from durable_jobs.messages import cut
from durable_jobs.transport.http import Endpoint, request

_APP_NAME_TOKEN_RE = re.compile(r"\[(dj[0-9a-f]{20})\]")
_REDACTED = "*********(redacted)"
#: find looks this much further back than the intent, in the master's clock: the worker that wrote the intent
#: and the one that looks may disagree by this much (the master's own clock is read from its Date header)
FIND_WINDOW_MARGIN = 15 * 60.0
# a worker's log page is asked for 64 KiB; anything much larger is not a log page
_LOG_MAX_BODY = 1 << 20


class DriverFinder(MasterListing):
    """The find half of :class:`~durable_jobs.clients.spark_standalone.client.SparkStandaloneClient`."""

    config: SparkStandaloneConfig
    status_concurrency: ClassVar[int]

    async def find(
        self, token: str, *, since: float, spec: SparkApplication, reserved: Locator | None = None
    ) -> Locator | None:
        what = "find: master state"
        listing, offset = await self._fetch_listing(what, as_listing)
        workers = await self._workers(listing, what)
        # the intent in the master's clock: ours corrected by the master's Date header (when it sent one),
        # widened for a worker (the one that wrote the intent) whose clock disagrees with ours
        since_ms = (since + (offset or 0.0)) * 1000.0
        lower_ms = since_ms - FIND_WINDOW_MARGIN * 1000.0
        main_class = spec.effective_main_class
        candidates: list[tuple[float, str, str, str]] = []  # (distance from the intent, id, state, worker UI)
        async for batch in self._drivers(listing, Driver, what):
            for d in batch:
                if d.mainclass != main_class or not DRIVER_ID_RE.match(d.id):
                    continue
                start = _start_ms(d.starttime)
                if start is not None and start < lower_ms:
                    continue
                distance = abs(start - since_ms) if start is not None else math.inf
                candidates.append((distance, d.id, d.state, workers.get(d.worker or "", "")))
        del listing
        candidates.sort(key=lambda c: c[0])  # the crashed try's driver started right after its intent
        needle = f"-D{TOKEN_PROPERTY}={token}"
        undecided: list[str] = []
        for start in range(0, len(candidates), self.status_concurrency):
            wave = candidates[start : start + self.status_concurrency]
            verdicts = await asyncio.gather(*(self._check_candidate(c, token, needle) for c in wave))
            for (_, driver_id, _, _), (verdict, why) in zip(wave, verdicts, strict=True):
                if verdict is True:
                    return {"driver_id": driver_id}
                if verdict is None:
                    undecided.append(f"{driver_id} ({why})")
        if undecided:
            raise UndecidableError(
                "drivers started since the intent cannot be checked for the token yet: " + "; ".join(undecided[:20])
            )
        return None

    async def _check_candidate(
        self, candidate: tuple[float, str, str, str], token: str, needle: str
    ) -> tuple[bool | None, str]:
        """Does this driver carry ``token``? (True / False / None = cannot tell yet, and why)."""
        _, driver_id, raw, worker_ui = candidate
        raw = cut(raw, 40)
        active = raw in ACTIVE_STATES or raw not in STATE_MAP
        if not worker_ui:
            return (None, f"{raw}, no worker yet") if active else (False, "")
        try:
            launch = await self._driver_stderr_head(worker_ui, driver_id)
        except TransientError as exc:
            # a driver that ended without success and whose worker is gone is not waited for: if it was ours,
            # one new driver replaces a failed one. One that FINISHED may have been ours: never rerun it blindly.
            return (None, f"worker log unreadable: {exc}") if active or raw == "FINISHED" else (False, "")
        except DurableJobError as exc:  # the worker UI refuses us: nothing can be told, never "not ours"
            return None, f"worker log refused: {exc}"
        verdict = _launch_carries(launch, token, needle)
        if verdict is None and launch:
            return None, f"{raw}, its launch command is redacted"
        if not launch:
            if raw == "FINISHED":
                return None, "FINISHED, but its launch command is gone (worker work dir cleaned)"
            return (None, f"{raw}, launch command not written yet") if active else (False, "")
        return verdict, ""

    async def _driver_stderr_head(self, worker_ui: str, driver_id: str) -> str:
        try:
            ep = Endpoint(
                worker_ui,
                verify_ssl=self.config.verify_ssl,
                ca_file=self.config.ca_file,
                timeout=self.config.timeout,
                max_body=_LOG_MAX_BODY,
            )
        except ValueError as exc:
            raise MalformedAnswer(f"worker UI address {cut(worker_ui, 200)!r} is not usable: {exc}") from None
        what = f"launch command of {driver_id}"
        resp = await request(  # no credentials: the worker's address came from the master's answer
            ep,
            "GET",
            "/log/",
            params={"driverId": driver_id, "logType": "stderr", "offset": "0", "byteLength": "65536"},
            what=what,
        )
        if resp.status == 404:
            return ""
        resp.raise_for_status(what)
        # Until the worker writes it, the page answers 200 with "==== Bytes 0-0 of 0 ..." or "invalid log
        # directory": that is "not written yet" (undecidable), never "not ours".
        text = resp.text
        return text if "Launch Command:" in text else ""


def _start_ms(value: str | int | float) -> float | None:
    """A driver's ``starttime`` (epoch ms, the master's clock), or None when it cannot be read."""
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return None
    return ms if math.isfinite(ms) else None


def _launch_carries(launch: str, token: str, needle: str) -> bool | None:
    """Does this launch command carry ``token``? None when redaction hides the answer."""
    if needle in launch or f"[{token}]" in launch:
        return True
    if f"-D{TOKEN_PROPERTY}=" not in launch:
        return False  # not submitted by durable_jobs at all
    if f"-D{TOKEN_PROPERTY}={_REDACTED}" not in launch:
        return False  # our property, another token
    other = _APP_NAME_TOKEN_RE.search(launch)
    return False if other and other.group(1) != token else None


__all__ = ["FIND_WINDOW_MARGIN", "DriverFinder"]
