"""What the base operator does once for every system: the spec check, the hook, the task identity, the record."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from airflow.sdk import DAG, BaseOperator
from airflow.sdk.exceptions import TaskDeferred

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.hooks.yarn import YarnHook
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.operators.emr import (
    EmrCreateClusterOperator,
    EmrEksJobOperator,
    EmrServerlessJobOperator,
    EmrStepOperator,
)
from durable_jobs.operators.kubernetes import KubernetesJobOperator, KubernetesPodOperator, SparkApplicationOperator
from durable_jobs.operators.spark_standalone import SparkStandaloneOperator
from durable_jobs.operators.templated import is_templated
from durable_jobs.operators.yarn import SparkOnYarnOperator, YarnApplicationOperator
from durable_jobs.record import STATE_KEY, JobRecord, TaskIdentity
from durable_jobs.status import JobState
from durable_jobs.testing.scripted import ScriptedClient
from durable_jobs.triggers.base import DurableJobTrigger
from durable_jobs.triggers.emr import EmrClusterTrigger, EmrEksTrigger, EmrServerlessTrigger, EmrStepTrigger
from durable_jobs.triggers.kubernetes import KubernetesTrigger
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs.triggers.yarn import YarnTrigger
from durable_jobs_harness.airflow_ctx import task_context

SRC = Path(__file__).resolve().parents[2] / "src" / "durable_jobs"
ROW = ("dag", "run1", "spark", -1)

# --- the parse-time check -------------------------------------------------------------------------------

BAD_LITERAL_SPECS: list[tuple[Any, dict[str, Any], str]] = [
    (SparkStandaloneOperator, {"application": "file:/apps/a.jar"}, "main_class is required"),
    (YarnApplicationOperator, {"command": "", "name": "n"}, "AM command"),
    (SparkOnYarnOperator, {"application": "hdfs:///apps/a.jar"}, "main_class is required"),
    (EmrStepOperator, {"cluster_id": "cluster-1", "args": ["x"]}, "cluster id"),
    (EmrCreateClusterOperator, {"job_flow_overrides": {"ReleaseLabel": "emr-7.1.0"}}, "Instances"),
    (EmrServerlessJobOperator, {"application_id": "a", "execution_role_arn": "arn:r", "job_driver": {}}, "job_driver"),
    (EmrEksJobOperator, {"virtual_cluster_id": "vc1"}, "job template"),
    (KubernetesJobOperator, {"image": "busybox", "namespace": "Not A Namespace"}, "invalid namespace"),
    (KubernetesPodOperator, {"pod": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Always"}}, "Never"),
    (SparkApplicationOperator, {"application": {"type": "Scala"}, "namespace": "-bad-"}, "invalid namespace"),
]

TEMPLATED_SPECS: list[tuple[Any, dict[str, Any]]] = [
    (SparkStandaloneOperator, {"application": "{{ params.script }}"}),
    (YarnApplicationOperator, {"command": "", "name": "{{ params.name }}"}),
    (SparkOnYarnOperator, {"application": "{% if true %}hdfs:///a.jar{% endif %}"}),
    (EmrStepOperator, {"cluster_id": "{{ ti.xcom_pull('c')['cluster_id'] }}", "args": ["x"]}),
    (EmrCreateClusterOperator, {"job_flow_overrides": "{{ var.json.cluster }}"}),
    (EmrServerlessJobOperator, {"application_id": "a", "execution_role_arn": "arn:r", "job_driver": "{{ x }}"}),
    (EmrEksJobOperator, {"virtual_cluster_id": "vc1", "name": "{{ ds }}"}),
    (KubernetesJobOperator, {"image": "busybox", "namespace": "{{ var.value.ns }}"}),
    (KubernetesPodOperator, {"pod": {"restartPolicy": "Always", "containers": []}, "labels": {"a": "{{ ds }}"}}),
    (SparkApplicationOperator, {"application": {"type": "Scala"}, "namespace": "{{ params.ns }}"}),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD_LITERAL_SPECS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_bad_literal_spec_fails_at_parse_time_for_every_system(cls: Any, kwargs: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        cls(task_id="t", **kwargs)


@pytest.mark.parametrize(("cls", "kwargs"), TEMPLATED_SPECS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_templated_spec_is_not_checked_at_parse_time(cls: Any, kwargs: dict[str, Any]):
    cls(task_id="t", **kwargs)  # the same spec, literal, would be refused: checked once rendered


def test_an_xcom_arg_is_checked_once_resolved():
    with DAG("xcom_arg", schedule=None):
        upstream = BaseOperator(task_id="create")
        step = EmrStepOperator(task_id="s", cluster_id=upstream.output["cluster_id"], args=["x"])
    assert upstream in step.upstream_list  # Airflow still sees the dependency
    assert is_templated(upstream.output) and is_templated({"k": [upstream.output]})


def test_what_counts_as_templated():
    assert is_templated("{{ ds }}") and is_templated("{% raw %}x{% endraw %}") and is_templated(["a", ("{# c #}",)])
    assert is_templated("query.sql", (".sql",)) and not is_templated("query.sql")
    assert not is_templated({"a": 1, "b": [True, None, 2.5, "plain"]})
    assert not is_templated(object())  # Airflow renders neither an arbitrary object nor what it holds


def test_spark_with_a_jinja_application_parses_then_renders_and_validates_at_execute(monkeypatch, store):
    client = ScriptedClient(scripts=[[JobState.RUNNING]])
    monkeypatch.setattr(SparkStandaloneHook, "get_client", classmethod(lambda cls, conn_id: client))

    def op() -> SparkStandaloneOperator:
        return SparkStandaloneOperator(task_id="spark", application="{{ params.script }}", deferrable=True)

    def context(script: str, try_number: int = 1) -> dict[str, Any]:
        c = task_context(store, ROW, try_number)
        c["params"] = {"script": script}
        return c

    bad, c = op(), context("file:/apps/etl.jar")
    bad.render_template_fields(c)
    with pytest.raises(ValueError, match=r"main_class is required for the jar application 'file:/apps/etl\.jar'"):
        bad.execute(c)
    assert STATE_KEY not in store.rows[ROW] and client.calls == []  # refused before anything was recorded

    good, c = op(), context("file:/apps/etl.py", try_number=2)
    good.render_template_fields(c)
    with pytest.raises(TaskDeferred):
        good.execute(c)
    (job,) = client.jobs.values()
    assert job.spec.app_resource == "file:/apps/etl.py"
    assert job.spec.effective_main_class == "org.apache.spark.deploy.PythonRunner"


# --- build_spec gets the record ---------------------------------------------------------------------------


class _Op(DurableJobOperator):
    trigger_class: ClassVar[type[DurableJobTrigger]] = SparkStandaloneTrigger
    seen: ClassVar[list[Any]] = []

    def build_spec(self, context: Any, record: JobRecord | None = None) -> dict[str, Any]:
        self.seen.append((context is None, None if record is None else (record.phase.value, record.generation)))
        return {"app": "x"}


def test_build_spec_gets_the_record_of_the_generation_it_submits(monkeypatch, store):
    client = ScriptedClient(scripts=[[JobState.FAILED], [JobState.RUNNING]], reserving=True)
    monkeypatch.setattr(SparkStandaloneHook, "get_client", classmethod(lambda cls, conn_id: client))
    _Op.seen.clear()
    op = _Op(task_id="spark", conn_id="c", deferrable=True)
    assert _Op.seen == [(True, None)]  # the parse-time check
    with pytest.raises(TaskDeferred):
        op.execute(task_context(store, ROW))
    client.jobs["job-1"].polls = 1  # it failed: the next try submits generation 1
    with pytest.raises(TaskDeferred) as second:
        _Op(task_id="spark", conn_id="c", deferrable=True).execute(task_context(store, ROW, 2))
    assert second.value.trigger.generation == 1
    assert [s for s in _Op.seen if not s[0]] == [(False, ("submitting", 0)), (False, ("submitting", 1))]


def test_a_one_parameter_build_spec_written_for_0_1_0_still_works(monkeypatch, store):
    client = ScriptedClient()
    monkeypatch.setattr(SparkStandaloneHook, "get_client", classmethod(lambda cls, conn_id: client))

    class Legacy(DurableJobOperator):
        trigger_class: ClassVar[type[DurableJobTrigger]] = SparkStandaloneTrigger

        def build_spec(self, context: Any) -> dict[str, Any]:  # type: ignore[override]
            if context["params"].get("bad"):  # needs the task's context: not checkable at parse time
                raise ValueError("bad params")
            return {"app": context["params"]["app"]}

    class LegacyStrict(Legacy):
        def __init__(self, *, app: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.app = app

        def build_spec(self, context: Any) -> dict[str, Any]:  # type: ignore[override]
            if not self.app:
                raise ValueError("app is required")
            return {"app": self.app}

    op = Legacy(task_id="spark", conn_id="c", deferrable=True)  # the TypeError at parse time is not an error
    with pytest.raises(TaskDeferred):
        op.execute({**task_context(store, ROW), "params": {"app": "x"}})
    assert [j.spec for j in client.jobs.values()] == [{"app": "x"}]
    with pytest.raises(ValueError, match="app is required"):
        LegacyStrict(task_id="t", conn_id="c", app="")
    assert LegacyStrict(task_id="t", conn_id="c", app="a").app == "a"


def test_the_record_is_passed_the_way_build_spec_takes_it():
    seen: list[Any] = []

    class Keyword(_Op):
        def build_spec(self, context: Any, *, record: JobRecord | None = None) -> dict[str, Any]:  # type: ignore[override]
            seen.append(("keyword", record))
            return {}

    class Star(_Op):
        def build_spec(self, *args: Any) -> dict[str, Any]:  # type: ignore[override]
            seen.append(("star", args))
            return {}

    Keyword(task_id="k", conn_id="c")
    Star(task_id="s", conn_id="c")
    assert seen == [("keyword", None), ("star", (None, None))]


def test_the_check_runs_once_after_the_outermost_init_even_through_a_mixin():
    calls: list[str] = []

    class Base(DurableJobOperator):
        trigger_class: ClassVar[type[DurableJobTrigger]] = SparkStandaloneTrigger

        def __init__(self, *, app: str = "a", **kwargs: Any) -> None:
            super().__init__(conn_id="c", **kwargs)
            self.app = app

        def build_spec(self, context: Any, record: JobRecord | None = None) -> dict[str, Any]:
            calls.append(self.app)
            return {"app": self.app}

    class Child(Base):
        def __init__(self, *, extra: str = "e", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.extra = extra

    class Mixin:
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.mixed = True

    class Mixed(Mixin, Child):
        pass

    for cls in (Base, Child, Mixed):
        calls.clear()
        cls(task_id="t", app="z")
        assert calls == ["z"], cls


# --- the hook comes from the trigger -----------------------------------------------------------------------


def test_every_operator_takes_its_hook_from_its_trigger():
    pairs = {
        SparkStandaloneOperator: SparkStandaloneTrigger,
        YarnApplicationOperator: YarnTrigger,
        SparkOnYarnOperator: YarnTrigger,
        EmrStepOperator: EmrStepTrigger,
        EmrCreateClusterOperator: EmrClusterTrigger,
        EmrServerlessJobOperator: EmrServerlessTrigger,
        EmrEksJobOperator: EmrEksTrigger,
        KubernetesJobOperator: KubernetesTrigger,
        KubernetesPodOperator: KubernetesTrigger,
        SparkApplicationOperator: KubernetesTrigger,
    }
    for op, trigger in pairs.items():
        assert op.trigger_class is trigger and op.hook_class is trigger.hook_class, op
    for module in ("spark_standalone", "yarn", "emr", "kubernetes"):
        assert "hook_class" not in (SRC / "operators" / f"{module}.py").read_text(), module


def test_a_declared_hook_class_and_a_new_trigger_class_are_honoured():
    class YarnTriggerOp(SparkStandaloneOperator):
        trigger_class: ClassVar[type[DurableJobTrigger]] = YarnTrigger  # the hook follows the trigger

    class OwnHook(SparkStandaloneOperator):
        hook_class: ClassVar[type[DurableJobHook]] = YarnHook  # an explicit hook is kept

    assert YarnTriggerOp.hook_class is YarnHook and OwnHook.hook_class is YarnHook
    assert OwnHook.trigger_class is SparkStandaloneTrigger

    class NoHookTrigger(DurableJobTrigger):
        pass

    with pytest.raises(TypeError, match="has no hook_class"):

        class Broken(SparkStandaloneOperator):
            trigger_class: ClassVar[type[DurableJobTrigger]] = NoHookTrigger


# --- the task identity ----------------------------------------------------------------------------------


def test_task_identity_from_a_context_normalises_map_index():
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=None, try_number=3)
    assert TaskIdentity.from_context({"ti": ti, "dag_run": SimpleNamespace(clear_number=2)}) == TaskIdentity(
        "d", "r", "t", -1, 3, 2
    )
    mapped = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index="4")
    assert TaskIdentity.from_context({"ti": mapped}) == TaskIdentity("d", "r", "t", 4, 1, 0)
    assert TaskIdentity.from_ti(SimpleNamespace(dag_id="d", run_id="r", task_id="t")).map_index == -1


# --- Airflow's private API stays in one module -------------------------------------------------------------

_PRIVATE = ("airflow.sdk.execution_time", "airflow.models", "airflow.utils", "airflow.jobs", "airflow.api")


def test_only_the_compat_module_uses_airflow_private_api():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "airflow_compat.py":
            continue
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("airflow."):
                names = [node.value]
            for name in names:
                if name.startswith("airflow") and (name.startswith(_PRIVATE) or "._" in name):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {name}")  # type: ignore[attr-defined]
        for attr in ("_log_config_logger_name", "_logger_name", "SUPERVISOR_COMMS"):
            if attr in text.replace("SUPERVISOR_COMMS_TARGET", ""):
                offenders.append(f"{path.relative_to(SRC)}: {attr}")
    assert offenders == []


def test_the_compat_module_imports_no_airflow_until_used():
    code = "import sys, durable_jobs.airflow_compat; print(sorted(m for m in sys.modules if m.startswith('airflow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
