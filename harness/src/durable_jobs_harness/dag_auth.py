"""An auth manager for tests: Airflow's SimpleAuthManager, with some users kept to a list of DAGs.

SimpleAuthManager (the harness's default) knows only roles (viewer, user, op, admin): every user who may
read one DAG may read them all, so it cannot say "this user may not see that DAG". Airflow's real
per-DAG permissions come from another auth manager (FAB's, Keycloak's), none of which is installed here.
This subclass adds the one rule a permission test needs, answered through the auth manager's own interface
(``is_authorized_dag``, from which ``get_authorized_dag_ids`` is derived), exactly where FAB's answers.

Set ``AIRFLOW__CORE__AUTH_MANAGER=durable_jobs_harness.dag_auth.DagListAuthManager`` and
``DURABLE_JOBS_HARNESS_DAG_ACCESS='{"user name": ["dag id", ...]}'``; users not listed keep their role's access.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

ENV = "DURABLE_JOBS_HARNESS_DAG_ACCESS"


class DagListAuthManager(SimpleAuthManager):  # type: ignore[misc]
    """SimpleAuthManager, where a user listed in :data:`ENV` may act only on the DAGs listed for them."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        allowed = bool(
            super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        )
        dags = dag_access().get(user.get_name())
        if dags is None or details is None or details.id is None:
            return allowed
        return allowed and details.id in dags


def dag_access() -> dict[str, list[str]]:
    raw = json.loads(os.environ.get(ENV) or "{}")
    return {str(k): [str(d) for d in v] for k, v in raw.items()}
