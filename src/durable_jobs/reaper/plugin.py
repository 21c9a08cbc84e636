"""The Airflow plugin that registers the reaper's listener in every Airflow process.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), which Airflow always loads: the
``plugins`` of provider info are skipped under the default ``[core] lazy_discover_providers = True``. Every
process that loads plugins imports this module and the listener (a worker too), so both import only what
is cheap; the listener acts only in the api-server's mark routes.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from durable_jobs.reaper import listener


class ReaperPlugin(AirflowPlugin):  # type: ignore[misc]
    """Cancels the job of a task a user marked failed, success or skipped (see :mod:`durable_jobs.reaper`)."""

    name = "durable_jobs_reaper"
    listeners = [listener]
