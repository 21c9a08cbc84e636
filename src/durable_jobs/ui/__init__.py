"""The "Durable jobs" view: every job this library tracks, across tasks, in Airflow's own UI (docs/ui.md).

* :mod:`~durable_jobs.ui.plugin`: the Airflow plugin (``airflow.plugins`` entry point ``durable_jobs_ui``): a
  FastAPI app mounted by the api-server at ``/durable-jobs`` and a nav entry, "Durable jobs", that shows its
  page inside the UI. It imports nothing heavy: every Airflow process loads plugins.
* :mod:`~durable_jobs.ui.app`: the routes (built on the api-server's first request), under Airflow's own auth;
* :mod:`~durable_jobs.ui.filters`: what a request asks for, checked, and the SQL it filters with;
* :mod:`~durable_jobs.ui.rows`: one stored record and its task instance, as the API answers it (no Airflow);
* :mod:`~durable_jobs.ui.query`: the metadata DB queries (the state store joined to the task instances);
* :mod:`~durable_jobs.ui.page`: the one self-contained HTML page.
"""
