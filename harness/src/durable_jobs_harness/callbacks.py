"""Airflow's callback table, read back for tests: no REST API shows a triggerer callback (the reaper's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from durable_jobs_harness.airflow_env import AirflowEnv


@dataclass(frozen=True)
class Callback:
    """One row: its state (None until it runs), its output (the callback's line) and its call."""

    state: str | None
    output: str | None
    path: str
    kwargs: dict[str, Any]


def callbacks(af: AirflowEnv, path: str) -> list[Callback]:
    """Every callback row of ``af`` that calls ``path`` (an import path, e.g. the reaper's)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(af.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT state, output, data FROM callback")).all()
    finally:
        engine.dispose()
    out = []
    for state, output, data in rows:
        call = unwrap(json.loads(data) if isinstance(data, str) else data)
        if call.get("path") == path:
            out.append(Callback(state, output, path, dict(call.get("kwargs") or {})))
    return out


def unwrap(value: Any) -> Any:
    """A value as Airflow's ExtendedJSON stores it (``{"__var": ..., "__type": ...}`` envelopes), unwrapped."""
    if isinstance(value, dict):
        if "__var" in value:
            return unwrap(value["__var"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value
