"""The job service's trigger: which hook the triggerer builds its client with; the rest is the base's.

Its classpath (``<package>.triggers.JobServiceTrigger``) is stored in Airflow's trigger table while a task
waits: keep it importable under that name.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.triggers.base import DurableJobTrigger

from .hooks import JobServiceHook


class JobServiceTrigger(DurableJobTrigger):
    hook_class: ClassVar[type[DurableJobHook]] = JobServiceHook
