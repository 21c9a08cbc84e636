"""Whether an operator field is still to be filled in by Airflow when the task runs.

The parse-time spec check (:class:`~durable_jobs.operators.base.DurableJobOperator`) only runs on fields
that hold their final value: a Jinja template or an XComArg is checked once rendered. The test follows
what Airflow's renderer does with a template field: a string is a Jinja template (or, ending in one of
the operator's ``template_ext``, a template file), lists, tuples, sets and dicts are rendered item by
item, an object with ``resolve`` (an XComArg, a DAG param, a mapped argument) is resolved, and an object
with ``template_fields`` has those rendered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

_JINJA_MARKERS = ("{{", "{%", "{#")


def is_templated(value: Any, template_ext: Sequence[str] = ()) -> bool:
    """True when rendering may change ``value``: it holds Jinja, a template file name, or a value to resolve."""
    if isinstance(value, str):
        return any(m in value for m in _JINJA_MARKERS) or (bool(template_ext) and value.endswith(tuple(template_ext)))
    if isinstance(value, dict):
        return any(is_templated(v, template_ext) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(is_templated(v, template_ext) for v in value)
    if value is None or isinstance(value, (bool, int, float)):
        return False
    if isinstance(value, os.PathLike):  # Airflow renders an ObjectStoragePath's path
        return is_templated(str(value))
    return callable(getattr(value, "resolve", None)) or hasattr(value, "template_fields")
