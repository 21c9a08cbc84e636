"""The reaper: no job left running after a user marks its task failed, success or skipped.

Airflow's only hook for such a mark on a deferred task is the trigger's ``on_kill``, which runs only inside a
*running* trigger: a task marked within about a second of its deferral, or while every triggerer is down,
kept its job forever. The reaper closes that window in two steps (docs/reaper.md):

* :mod:`~durable_jobs.reaper.listener`, a listener of the api-server (registered by
  :mod:`~durable_jobs.reaper.plugin` through the ``airflow.plugins`` entry point), sees the mark inside the
  request and, in the request's own transaction, turns the record into a **tombstone** and queues a
  triggerer callback; both commit or roll back with the mark;
* :mod:`~durable_jobs.reaper.callback` runs on the first triggerer to loop (or to start) and cancels the job.

:mod:`~durable_jobs.reaper.orphan` decides what a mark asks for; it imports no Airflow.
"""
