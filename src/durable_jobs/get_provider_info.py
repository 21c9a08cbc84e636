"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point.

Assembled from the systems' declarations (:mod:`durable_jobs.systems`): no hook, client or Airflow import,
so ``airflow providers list`` and the connection form work without the optional dependencies of every
system installed.
"""

from __future__ import annotations

from typing import Any

from durable_jobs import __version__
from durable_jobs.system import LINK_CLASS
from durable_jobs.systems import declared


def get_provider_info() -> dict[str, Any]:
    systems = declared()
    return {
        "package-name": "airflow-durable-jobs",
        "name": "Durable Jobs",
        "description": "Deferrable, crash-safe operators for long-running external jobs (submit once, reattach).",
        "versions": [__version__],
        "integrations": [system.integration_entry() for system in systems],
        "operators": [system.modules_entry("operators") for system in systems],
        "triggers": [system.modules_entry("triggers") for system in systems],
        "hooks": [system.modules_entry("hooks") for system in systems],
        "connection-types": [entry for system in systems for entry in system.connection_types()],
        "extra-links": sorted({LINK_CLASS for system in systems if system.links}),
    }
