"""Airflow triggers: wait for a recorded job from the triggerer, holding no worker slot.

Exports are lazy (see :mod:`durable_jobs.operators`); each system declares its triggers in
:mod:`durable_jobs.systems`. The triggerer imports triggers by classpath.
"""

from __future__ import annotations

from typing import Any

from durable_jobs.systems import lazy_export

_CORE = {"DurableJobTrigger": "durable_jobs.triggers.base"}


def __getattr__(name: str) -> Any:
    value = lazy_export("triggers", _CORE, name)
    globals()[name] = value
    return value
