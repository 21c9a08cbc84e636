"""The EMR Serverless test job of the crash matrix: a ``jobDriver`` that says "sleep N seconds, exit with C".

The e2e DAGs build it (:func:`sleep_exit_driver`) and the moto server process reads it
(:func:`sleep_exit_of`, in :mod:`durable_jobs_harness.moto_emr_server`) to play the run. A module of its own,
without moto, because every Airflow worker imports it while parsing the DAG file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SLEEP_EXIT", "sleep_exit_driver", "sleep_exit_of"]

#: the test job's entry point: its arguments are ``<seconds> <exit code>``
SLEEP_EXIT = "s3://durable-jobs-e2e/sleep_exit.py"


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
