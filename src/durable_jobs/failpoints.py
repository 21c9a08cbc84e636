"""Named crash points in the protocol, for tests that kill the process at a precise step.

Enabled only by ``DURABLE_JOBS_FAILPOINTS`` (comma-separated names, each optionally ``name=action``
where action is ``exit`` (``os._exit(70)``, the default), ``kill`` (SIGKILL to itself), ``stop`` (SIGSTOP to
itself: frozen at the step, so that a test can kill something bigger there, e.g. the whole Celery worker),
``raise`` (:class:`SimulatedCrash`, for in-process tests) or ``pause``). ``DURABLE_JOBS_FAILPOINTS_ONCE=<dir>``
makes each point fire only once per directory, so that the retry that follows survives; the marker it writes
there (``fired-<name>``) holds the PID. ``pause`` needs that directory: the process waits at the point until a
test creates ``resume-<name>`` next to the marker (at most :data:`PAUSE_LIMIT` seconds), so that the test can
break something else at exactly that step (kill the active Spark master between submit and persist) and then
let the protocol go on. When the variable is unset, :func:`failpoint` is a set lookup on an empty frozenset.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

BEFORE_INTENT = "before_intent"
AFTER_INTENT = "after_intent"
AFTER_SUBMIT = "after_submit"  # the job exists, its locator is not persisted yet
AFTER_PERSIST = "after_persist"  # the locator is persisted, defer() not called yet
BEFORE_OUTCOME = "before_outcome"

ALL = (BEFORE_INTENT, AFTER_INTENT, AFTER_SUBMIT, AFTER_PERSIST, BEFORE_OUTCOME)
ACTIONS = ("exit", "kill", "stop", "raise", "pause")
#: the longest a ``pause`` waits for its ``resume-<name>`` file before going on
PAUSE_LIMIT = 600.0


class SimulatedCrash(BaseException):
    """Raised by a ``raise`` fail-point. A BaseException, so that ``except Exception`` cannot hide it."""


def _parse(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, action = item.partition("=")
        if name not in ALL:
            raise ValueError(f"unknown fail-point {name!r}; known: {', '.join(ALL)}")
        if action and action not in ACTIONS:
            raise ValueError(f"unknown fail-point action {action!r}; known: {', '.join(ACTIONS)}")
        out[name] = action or "exit"
    return out


_ACTIVE: dict[str, str] = _parse(os.environ.get("DURABLE_JOBS_FAILPOINTS", ""))


def configure(spec: str) -> None:
    """Set the active fail-points (tests); ``""`` disables them all."""
    global _ACTIVE
    _ACTIVE = _parse(spec)


def failpoint(name: str) -> None:
    """Crash here if ``name`` is enabled."""
    if not _ACTIVE or name not in _ACTIVE:
        return
    once_dir = os.environ.get("DURABLE_JOBS_FAILPOINTS_ONCE")
    action = _ACTIVE[name]
    if action == "pause" and not once_dir:
        raise ValueError(f"fail-point {name}=pause needs DURABLE_JOBS_FAILPOINTS_ONCE (where resume-{name} appears)")
    if once_dir:
        marker = Path(once_dir) / f"fired-{name}"
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            with open(marker, "x") as fh:
                fh.write(str(os.getpid()))
        except FileExistsError:
            return
    if action == "pause":
        assert once_dir is not None
        _pause(Path(once_dir) / f"resume-{name}")
        return
    if action == "raise":
        raise SimulatedCrash(name)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
        return  # resumed (SIGCONT): carry on
    os._exit(70)


def _pause(resume: Path) -> None:
    """Wait until ``resume`` exists (or :data:`PAUSE_LIMIT` has passed)."""
    deadline = time.monotonic() + PAUSE_LIMIT
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
