"""The EMR test job of the crash matrix: "sleep N seconds, exit with C", as a Serverless ``jobDriver`` or step args.

The e2e DAGs build it (:func:`sleep_exit_driver`, :func:`sleep_exit_args`) and the moto server process reads
it (:func:`sleep_exit_of`, :func:`sleep_exit_of_args`, in :mod:`durable_jobs_harness.moto_emr_server`) to play
the run or step. A module of its own, without moto, because every Airflow worker imports it while parsing the
DAG file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SLEEP_EXIT", "sleep_exit_args", "sleep_exit_driver", "sleep_exit_of", "sleep_exit_of_args"]

#: the test job's entry point: its arguments are ``<seconds> <exit code>``
SLEEP_EXIT = "s3://durable-jobs-e2e/sleep_exit.py"
_SCRIPT_RE = re.compile(r"^sleep (\S+); exit (\d+)$")  # a step's last argument


def sleep_exit_driver(seconds: float, exit_code: int) -> dict[str, Any]:
    """The ``jobDriver`` of a run that sleeps ``seconds``, then exits with ``exit_code``."""
    return {"sparkSubmit": {"entryPoint": SLEEP_EXIT, "entryPointArguments": [f"{seconds:g}", str(exit_code)]}}


def sleep_exit_of(job_driver: Mapping[str, Any] | None) -> tuple[float, int]:
    """``(seconds, exit code)`` of a run's ``jobDriver``; anything unreadable is a run of 0 s that succeeds."""
    args = ((job_driver or {}).get("sparkSubmit") or {}).get("entryPointArguments") or []
    try:
        seconds = float(args[0]) if args else 0.0
        exit_code = int(args[1]) if len(args) > 1 else 0
    except (TypeError, ValueError):
        return 0.0, 0
    return max(seconds, 0.0), exit_code


def sleep_exit_args(seconds: float, exit_code: int) -> list[str]:
    """The ``command-runner.jar`` arguments of a step that sleeps ``seconds``, then exits with ``exit_code``."""
    return ["bash", "-c", f"sleep {seconds:g}; exit {exit_code}"]


def sleep_exit_of_args(args: Sequence[Any] | None) -> tuple[float, int]:
    """``(seconds, exit code)`` of a step's arguments; anything else is a step of 0 s that succeeds."""
    match = _SCRIPT_RE.match(str(args[-1])) if args else None
    if match is None:
        return 0.0, 0
    try:
        return max(float(match[1]), 0.0), int(match[2])
    except ValueError:
        return 0.0, 0
