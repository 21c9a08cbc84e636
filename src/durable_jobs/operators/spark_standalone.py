"""Run a Spark application on a standalone cluster in cluster mode, submitted once over REST."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.spark_standalone.specs import SparkApplication
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.links import system_links
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.record import JobRecord
from durable_jobs.systems.spark_standalone import SYSTEM
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger


class SparkStandaloneOperator(DurableJobOperator):
    """Submit a jar (``main_class``) or a Python script (``.py``, run through ``PythonRunner``).

    :param application: ``file:`` URI or absolute path of the jar or ``.py`` file, readable by the workers.
    :param main_class: the jar's main class (not for Python applications).
    :param name: application name (default: the task id); the protocol's token is appended to it.
    :param application_args: arguments of the application.
    :param conf: Spark properties (``spark.driver.supervise`` must stay false).
    :param py_files: extra ``.py``/``.zip`` files for Python applications.
    :param env_vars: environment of the driver (passed unfiltered by the REST server).
    :param driver_memory: shortcut for ``spark.driver.memory``.
    :param driver_cores: shortcut for ``spark.driver.cores``.
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = SparkStandaloneTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = (
        "conn_id",
        "application",
        "main_class",
        "name",
        "application_args",
        "conf",
        "py_files",
        "env_vars",
    )

    def __init__(
        self,
        *,
        application: str,
        main_class: str | None = None,
        name: str | None = None,
        application_args: Sequence[Any] = (),
        conf: Mapping[str, Any] | None = None,
        py_files: Sequence[str] = (),
        env_vars: Mapping[str, str] | None = None,
        driver_memory: str | None = None,
        driver_cores: int | None = None,
        conn_id: str = SparkStandaloneHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.application = application
        self.main_class = main_class
        self.name = name
        self.application_args = list(application_args)
        self.conf = dict(conf or {})
        if driver_memory:
            self.conf["spark.driver.memory"] = driver_memory
        if driver_cores:
            self.conf["spark.driver.cores"] = str(driver_cores)
        self.py_files = list(py_files)
        self.env_vars = dict(env_vars or {})

    def build_spec(self, context: Any, record: JobRecord | None = None) -> SparkApplication:
        return SparkApplication(
            app_resource=self.application,
            main_class=self.main_class,
            name=self.name or self.task_id,
            app_args=[str(a) for a in self.application_args],
            conf=self.conf,
            py_files=self.py_files,
            environment=self.env_vars,
        )
