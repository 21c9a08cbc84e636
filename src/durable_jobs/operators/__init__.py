"""Airflow operators: the worker side of the submit-once protocol.

Exports are lazy, so that importing one system's operator never imports another system's optional
dependencies (kubernetes-asyncio, aiobotocore, gssapi). Each system declares its operators in
:mod:`durable_jobs.systems`; nothing here lists them.
"""

from __future__ import annotations

from typing import Any

from durable_jobs.systems import lazy_export

_CORE = {"DurableJobOperator": "durable_jobs.operators.base"}


def __getattr__(name: str) -> Any:
    value = lazy_export("operators", _CORE, name)
    globals()[name] = value
    return value
