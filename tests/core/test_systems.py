"""The systems are found from one list: exports and provider info derive from the declarations, and stay cheap."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys

import pytest

import durable_jobs.operators
import durable_jobs.triggers
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.systems import SYSTEMS, declared
from durable_jobs.triggers.base import DurableJobTrigger

# every name the two packages exported before the declarations existed
EXPORTED = {
    "operators": [
        "DurableJobOperator",
        "SparkStandaloneOperator",
        "YarnApplicationOperator",
        "SparkOnYarnOperator",
        "EmrCreateClusterOperator",
        "EmrEksJobOperator",
        "EmrServerlessJobOperator",
        "EmrStepOperator",
        "EmrTerminateClusterOperator",
        "KubernetesJobOperator",
        "KubernetesObjectOperator",
        "KubernetesPodOperator",
        "SparkApplicationOperator",
        "DatabricksRunNowOperator",
        "DatabricksSubmitRunOperator",
        "BigQueryJobOperator",
        "GlueJobRunOperator",
    ],
    "triggers": [
        "DurableJobTrigger",
        "SparkStandaloneTrigger",
        "YarnTrigger",
        "EmrClusterTrigger",
        "EmrEksTrigger",
        "EmrServerlessTrigger",
        "EmrStepTrigger",
        "KubernetesTrigger",
        "DatabricksTrigger",
        "BigQueryTrigger",
        "GlueTrigger",
    ],
}
BASES = {"operators": DurableJobOperator, "triggers": DurableJobTrigger}


@pytest.mark.parametrize("layer", sorted(EXPORTED))
def test_every_name_exported_before_is_still_exported(layer: str) -> None:
    package = importlib.import_module(f"durable_jobs.{layer}")
    assert sorted(package.__all__) == sorted(EXPORTED[layer])
    for name in EXPORTED[layer]:
        cls = getattr(package, name)
        assert inspect.isclass(cls) and cls.__name__ == name
    namespace: dict[str, object] = {}
    exec(f"from durable_jobs.{layer} import *", namespace)
    assert set(EXPORTED[layer]) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchOperator'"):
        _ = durable_jobs.operators.NoSuchOperator
    assert not hasattr(durable_jobs.triggers, "NoSuchTrigger")


@pytest.mark.parametrize("system", declared(), ids=lambda s: s.module)
@pytest.mark.parametrize("layer", sorted(EXPORTED))
def test_a_system_declares_exactly_the_public_classes_of_its_modules(system: object, layer: str) -> None:
    """A class added to ``operators/<system>.py`` without its declaration (or the reverse) fails here."""
    module = importlib.import_module(f"durable_jobs.{layer}.{system.module}")  # type: ignore[attr-defined]
    defined = {
        name
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__
        and not name.startswith("_")
        and (issubclass(cls, BASES[layer]) or name.endswith(("Operator", "Trigger")))
    }
    assert set(getattr(system, layer)) == defined


def test_the_list_names_a_module_per_layer_for_every_system() -> None:
    assert tuple(s.module for s in declared()) == SYSTEMS
    for name in SYSTEMS:
        for layer in ("hooks", "triggers", "operators"):
            importlib.import_module(f"durable_jobs.{layer}.{name}")


def _modules_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return list(json.loads(out.stdout.splitlines()[-1]))


def test_provider_info_imports_no_hook_client_airflow_or_http_stack() -> None:
    loaded = _modules_after("from durable_jobs.get_provider_info import get_provider_info; get_provider_info()")
    heavy = [
        m
        for m in loaded
        if m.startswith(("durable_jobs.clients", "durable_jobs.triggers", "durable_jobs.operators", "airflow"))
        or m.split(".")[0] in ("aiohttp", "yarl", "dataclasses")
        or (
            m.startswith("durable_jobs.hooks.") and m not in ("durable_jobs.hooks.fields", "durable_jobs.hooks.convert")
        )
    ]
    assert heavy == []


def test_one_trigger_imports_no_other_system() -> None:
    """Other systems' declarations may load (Airflow reads provider info when ``airflow.sdk`` is imported),
    their hooks, clients, triggers and operators not."""
    loaded = _modules_after("import durable_jobs.triggers.spark_standalone")
    others = [
        m
        for m in loaded
        for layer in ("hooks", "clients", "triggers", "operators")
        for name in SYSTEMS
        if name != "spark_standalone" and m.startswith(f"durable_jobs.{layer}.{name}")
    ]
    assert others == []
    assert not [m for m in loaded if m.split(".")[0] in ("aiohttp", "yarl")]
