"""The library's metrics, under one prefix, sent through Airflow's own ``Stats``.

Every metric is named ``durable_jobs.<name>`` (:data:`PREFIX`) and goes wherever the deployment sends
Airflow's metrics: StatsD, Datadog's DogStatsD or OpenTelemetry, as ``[metrics]`` configures it (Airflow
puts its ``statsd_prefix`` / ``otel_prefix`` in front). ``docs/metrics.md`` lists them all.

Two rules, for the places that emit:

* **a metric never breaks anything**: whatever the backend raises is swallowed (logged once at DEBUG),
  and without Airflow (the protocol and the poller are plain Python) the calls do nothing;
* **cost grows with endpoints, not jobs**: the poller of 100,000 jobs emits a few metrics per poll, never
  one per job per poll. Per-job metrics (decisions, submissions, event latency) are emitted once per event.

Plain StatsD drops tags (unless ``[metrics] statsd_influxdb_enabled`` appends them to the name), so the
dimension that matters most is part of the name where there is one (``durable_jobs.resume.adopted``);
tags (``system``, ``endpoint``, ``hostname``) refine it where the backend keeps them.

The backend is ``airflow.sdk.observability.stats``, the module Airflow names for libraries. Airflow
configures it in every process that imports ``airflow.sdk`` (the task runner, the triggerer and its trigger
runner), from the same ``[metrics]`` options as its own metrics.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

#: every metric of the library starts with this
PREFIX = "durable_jobs."

#: the resume decisions an ``execute()`` takes, each counted as ``durable_jobs.resume.<decision>``
FRESH = "fresh"  # no job recorded: generation 0 submitted
NOT_FOUND = "not_found"  # an intent recorded, no job carries its token: the crashed try did not submit
ADOPTED = "adopted"  # an intent recorded and a job found by its token: a crashed try submitted it
REATTACHED = "reattached"  # a recorded job still running (or its status unknown): waited for again
RETURNED = "returned"  # the recorded job already succeeded: its result returned, nothing run
NEXT_GENERATION = "next_generation"  # the recorded job ended without success: the next generation submitted
LOST = "lost"  # the system forgot the recorded job: the task fails, nothing rerun (on_lost="fail")
UNRECORDED = "unrecorded"  # no record after earlier tries, a job found by its token: adopted, or its result returned
FAILED = "failed"  # the job this same try submitted ended without success: the try fails, nothing is submitted
DECISIONS = (FRESH, NOT_FOUND, ADOPTED, REATTACHED, RETURNED, NEXT_GENERATION, LOST, UNRECORDED, FAILED)

Tags = Mapping[str, str]

_stats: Any = None  # the backend module once imported; False when there is none
_URL_HOST = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/\s]*@)?([^/\s,?#@]+)")
# a tag or a name keeps these characters: StatsD lines split on ":", "|", "@" and "#", InfluxDB tags on "," and "="
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def _backend() -> Any:
    global _stats
    if _stats is None:
        try:
            from airflow.sdk.observability import stats

            _stats = stats
        except Exception:  # no Airflow here (the protocol used alone): metrics are off
            _stats = False
    return _stats


def _emit(kind: str, name: str, *args: Any, tags: Tags | None) -> None:
    stats = _backend()
    if stats is False:
        return
    try:
        getattr(stats, kind)(PREFIX + name, *args, tags=dict(tags) if tags else None)
    except Exception:
        _failed(name)


_reported: set[str] = set()


def _failed(name: str) -> None:
    if name not in _reported:
        _reported.add(name)
        log.debug("metric %s%s could not be sent", PREFIX, name, exc_info=True)


def incr(name: str, tags: Tags | None = None, count: int = 1) -> None:
    """Add ``count`` to the counter ``durable_jobs.<name>``."""
    _emit("incr", name, count, tags=tags)


def gauge(name: str, value: float, tags: Tags | None = None) -> None:
    """Set the gauge ``durable_jobs.<name>``."""
    _emit("gauge", name, value, tags=tags)


def timing(name: str, seconds: float, tags: Tags | None = None) -> None:
    """Record ``seconds`` in the timer ``durable_jobs.<name>`` (StatsD shows milliseconds)."""
    _emit("timing", name, timedelta(seconds=max(0.0, seconds)), tags=tags)


def decision(name: str, system: str) -> None:
    """Count one resume decision (one of :data:`DECISIONS`) of ``execute()``."""
    incr(f"resume.{name}", {"system": system})


def endpoint_tag(client: Any) -> str:
    """The ``endpoint`` tag of a client: the hosts and ports of its URLs (``m1.example_6066``), never a user
    or a password.

    Taken from the client's ``endpoint_name``; a name without a URL gives the client's system. The hosts of
    one HA endpoint are joined with ``+``.
    """
    name = str(getattr(client, "endpoint_name", "") or "")
    hosts = dict.fromkeys(_URL_HOST.findall(name))
    return _UNSAFE.sub("_", "+".join(hosts))[:200] if hosts else str(client.system)


def client_tags(client: Any) -> dict[str, str]:
    """``system`` and ``endpoint`` tags of a client."""
    return {"system": str(client.system), "endpoint": endpoint_tag(client)}


_HOSTNAME: str | None = None


def hostname() -> str:
    """This machine's name, for the ``hostname`` tag of the per-triggerer gauge (as Airflow's own)."""
    global _HOSTNAME
    if _HOSTNAME is None:
        _HOSTNAME = _UNSAFE.sub("_", socket.gethostname())[:200] or "unknown"
    return _HOSTNAME
