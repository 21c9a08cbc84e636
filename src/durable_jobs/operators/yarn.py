"""Run applications on YARN, submitted once: over the RM REST API, or Spark through spark-submit.

* :class:`YarnApplicationOperator` posts an ApplicationSubmissionContext. Its application id comes from
  ``new-application`` and is written into the intent **before** the submission, so a crash at any point
  leaves nothing to guess: the retry GETs that id.
* :class:`SparkOnYarnOperator` runs ``spark-submit --master yarn --deploy-mode cluster`` with
  ``spark.yarn.submit.waitAppCompletion=false`` and the token in ``spark.yarn.tags``; spark-submit
  returns once the RM accepted the application, and a retry after a crash finds it by its tag.

Both defer to :class:`~durable_jobs.triggers.yarn.YarnTrigger`, which tracks the application over REST.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from durable_jobs.clients.yarn.specs import SparkSubmitApplication, YarnApplication
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.links import system_links
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.record import JobRecord
from durable_jobs.systems.yarn import SYSTEM
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.yarn import YarnTrigger


class YarnApplicationOperator(DurableJobOperator):
    """Submit a YARN application (its ApplicationMaster command) through the RM REST API.

    :param command: the AM container's command, e.g. ``"{{JAVA_HOME}}/bin/java ... 1><LOG_DIR>/stdout"``.
    :param name: application name (default: the task id).
    :param yarn_queue: the YARN queue (not ``queue``, which is Airflow's executor queue).
    :param memory_mb: AM container memory in MB (default 1024); ``vcores``: its virtual cores (default 1).
    :param environment: the AM container's environment.
    :param local_resources: name -> ``{"resource", "type", "visibility", "size", "timestamp"}``.
    :param application_type: YARN application type (the RM's default is ``YARN``).
    :param tags: extra YARN tags (lower-cased; the token is always the first tag).
    :param max_app_attempts: AM attempts (default: the RM's ``yarn.resourcemanager.am.max-attempts``).
    :param priority: application priority.
    :param submission_context: further ApplicationSubmissionContext keys, sent as given.

    ``command``, ``environment``, ``local_resources`` and ``submission_context`` are not Jinja templates:
    YARN's own ``{{JAVA_HOME}}``/``{{CLASSPATH}}`` markers (expanded by the NodeManager) would be taken for
    Jinja expressions. ``name``, ``yarn_queue`` and ``tags`` are templated.
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = YarnTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = ("conn_id", "name", "yarn_queue", "tags")

    def __init__(
        self,
        *,
        command: str,
        name: str | None = None,
        yarn_queue: str | None = None,
        memory_mb: int = 1024,
        vcores: int = 1,
        environment: Mapping[str, str] | None = None,
        local_resources: Mapping[str, Mapping[str, Any]] | None = None,
        application_type: str | None = None,
        tags: Sequence[str] = (),
        max_app_attempts: int | None = None,
        priority: int | None = None,
        submission_context: Mapping[str, Any] | None = None,
        conn_id: str = YarnHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.command = command
        self.name = name
        self.yarn_queue = yarn_queue
        self.memory_mb = memory_mb
        self.vcores = vcores
        self.environment = dict(environment or {})
        self.local_resources = {k: dict(v) for k, v in (local_resources or {}).items()}
        self.application_type = application_type
        self.tags = list(tags)
        self.max_app_attempts = max_app_attempts
        self.priority = priority
        self.submission_context = dict(submission_context or {})

    def build_spec(self, context: Any, record: JobRecord | None = None) -> YarnApplication:
        return YarnApplication(
            name=self.name or self.task_id,
            command=self.command,
            queue=self.yarn_queue,
            memory_mb=int(self.memory_mb),
            vcores=int(self.vcores),
            environment=self.environment,
            local_resources=self.local_resources,
            application_type=self.application_type,
            tags=self.tags,
            max_app_attempts=self.max_app_attempts,
            priority=self.priority,
            extra=self.submission_context,
        )


class SparkOnYarnOperator(DurableJobOperator):
    """Run a Spark application on YARN in cluster mode through ``spark-submit``, tracked over the RM REST API.

    spark-submit runs on the worker (it needs a Spark distribution and ``HADOOP_CONF_DIR`` there; see the
    connection's ``spark_home``/``hadoop_conf_dir``) and returns as soon as the RM accepted the application.

    :param application: the jar, ``.py`` or ``.R`` file (a local path or a URI the cluster can read).
    :param main_class: the jar's main class (not for scripts).
    :param name: application name (default: the task id).
    :param application_args: arguments of the application.
    :param conf: Spark properties (``spark.master``, ``spark.submit.deployMode`` and
        ``spark.yarn.submit.waitAppCompletion`` are fixed; ``spark.yarn.tags`` is merged with the token).
    :param yarn_queue: the YARN queue (not ``queue``, which is Airflow's executor queue).
    :param py_files, jars, files, archives: as for spark-submit.
    :param tags: extra YARN tags.
    :param driver_memory, executor_memory, executor_cores, num_executors: shortcuts for their properties.
    """

    trigger_class: ClassVar[type[DurableJobTrigger]] = YarnTrigger
    operator_extra_links = system_links(SYSTEM)
    template_fields: Sequence[str] = (
        "conn_id",
        "application",
        "main_class",
        "name",
        "application_args",
        "conf",
        "yarn_queue",
        "py_files",
        "jars",
        "files",
        "archives",
    )

    def __init__(
        self,
        *,
        application: str,
        main_class: str | None = None,
        name: str | None = None,
        application_args: Sequence[Any] = (),
        conf: Mapping[str, Any] | None = None,
        yarn_queue: str | None = None,
        py_files: Sequence[str] = (),
        jars: Sequence[str] = (),
        files: Sequence[str] = (),
        archives: Sequence[str] = (),
        tags: Sequence[str] = (),
        driver_memory: str | None = None,
        executor_memory: str | None = None,
        executor_cores: int | None = None,
        num_executors: int | None = None,
        conn_id: str = YarnHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_id=conn_id, **kwargs)
        self.application = application
        self.main_class = main_class
        self.name = name
        self.application_args = list(application_args)
        self.conf = dict(conf or {})
        for key, value in (
            ("spark.driver.memory", driver_memory),
            ("spark.executor.memory", executor_memory),
            ("spark.executor.cores", executor_cores),
            ("spark.executor.instances", num_executors),
        ):
            if value is not None:
                self.conf[key] = str(value)
        self.yarn_queue = yarn_queue
        self.py_files = list(py_files)
        self.jars = list(jars)
        self.files = list(files)
        self.archives = list(archives)
        self.tags = list(tags)

    def build_spec(self, context: Any, record: JobRecord | None = None) -> SparkSubmitApplication:
        return SparkSubmitApplication(
            application=self.application,
            main_class=self.main_class,
            name=self.name or self.task_id,
            application_args=[str(a) for a in self.application_args],
            conf=self.conf,
            queue=self.yarn_queue,
            py_files=self.py_files,
            jars=self.jars,
            files=self.files,
            archives=self.archives,
            tags=self.tags,
        )
