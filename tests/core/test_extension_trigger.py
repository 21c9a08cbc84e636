"""Subclassing a trigger with constructor arguments of its own, and passing them from an operator."""

from __future__ import annotations

import datetime
import json
from typing import Any, ClassVar

import pytest
from airflow.sdk.module_loading import import_string

from durable_jobs.clients.base import JobClient
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.spark_standalone import SparkStandaloneHook
from durable_jobs.operators.base import DurableJobOperator
from durable_jobs.record import JobRecord
from durable_jobs.testing.scripted import ScriptedClient
from durable_jobs.triggers.base import BASE_KWARGS, DurableJobTrigger
from durable_jobs.triggers.spark_standalone import SparkStandaloneTrigger
from durable_jobs_harness.airflow_ctx import run_until_deferred, task_context

BASE = {"job": {"id": "job-1"}, "conn_id": "c", "token": "dj0123456789abcdef0123", "generation": 0}


class RegionTrigger(SparkStandaloneTrigger):
    """One extra argument, the rest forwarded."""

    def __init__(self, *, region: str = "eu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region = region


class TaggedRegionTrigger(RegionTrigger):
    """A subclass of a subclass: its own argument, and its parent's reached through ``**kwargs``."""

    def __init__(self, *, tags: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tags = list(tags or [])


class NamedTrigger(SparkStandaloneTrigger):
    """The base arguments by name, no ``**kwargs``."""

    def __init__(
        self, *, job: dict[str, Any], conn_id: str, token: str, generation: int, poll_interval: float = 30.0,
        deadline: float | None = None, unknown_budget: float = 1800.0, lost_confirmations: int = 3,
        queue: str = "default",
    ) -> None:  # fmt: skip
        base = {"poll_interval": poll_interval, "deadline": deadline, "unknown_budget": unknown_budget}
        super().__init__(
            job=job, conn_id=conn_id, token=token, generation=generation, lost_confirmations=lost_confirmations, **base
        )
        self.queue = queue


class HiddenTrigger(SparkStandaloneTrigger):
    """Stores its argument under another name: serialize() cannot find it."""

    def __init__(self, *, region: str = "eu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._region = region


def round_trip(trigger: DurableJobTrigger) -> DurableJobTrigger:
    classpath, kwargs = trigger.serialize()
    again = import_string(classpath)(**kwargs)
    assert isinstance(again, DurableJobTrigger)
    assert again.serialize() == (classpath, kwargs)
    return again


def test_base_triggers_serialize_exactly_the_base_kwargs():
    assert SparkStandaloneTrigger.extra_kwargs == ()
    classpath, kwargs = SparkStandaloneTrigger(**BASE).serialize()
    assert classpath == "durable_jobs.triggers.spark_standalone.SparkStandaloneTrigger"
    assert tuple(kwargs) == BASE_KWARGS


def test_an_extra_argument_round_trips_through_serialize_and_the_classpath():
    assert RegionTrigger.extra_kwargs == ("region",)
    classpath, kwargs = RegionTrigger(**BASE, region="us-west").serialize()
    assert classpath == f"{__name__}.RegionTrigger"
    assert kwargs["region"] == "us-west" and kwargs["job"] == BASE["job"]
    again = round_trip(RegionTrigger(**BASE, region="us-west"))
    assert isinstance(again, RegionTrigger) and again.region == "us-west"


def test_arguments_of_every_subclass_on_the_way_are_serialized():
    assert TaggedRegionTrigger.extra_kwargs == ("tags", "region")
    again = round_trip(TaggedRegionTrigger(**BASE, region="ap", tags=["a", "b"]))
    assert isinstance(again, TaggedRegionTrigger) and (again.region, again.tags) == ("ap", ["a", "b"])


def test_an_init_naming_every_argument_works_too():
    assert NamedTrigger.extra_kwargs == ("queue",)
    again = round_trip(NamedTrigger(**BASE, queue="etl"))
    assert isinstance(again, NamedTrigger) and again.queue == "etl"


def test_airflow_serde_of_the_kwargs_gives_them_back():
    """The path of Airflow's trigger table: serde, JSON text, serde back, ``cls(**kwargs)``."""
    from airflow.sdk.serde import deserialize, serialize
    from airflow.serialization.enums import stringify_encoding_keys

    trigger = TaggedRegionTrigger(**BASE, region="eu", tags=["x"], deadline=1_800_000_000.5)
    classpath, kwargs = trigger.serialize()
    stored = json.dumps(serialize(stringify_encoding_keys(kwargs)))
    back = deserialize(json.loads(stored))
    assert back == kwargs
    again = import_string(classpath)(**back)
    assert (again.region, again.tags, again.deadline) == ("eu", ["x"], 1_800_000_000.5)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (datetime.datetime(2026, 1, 1), "datetime.datetime"),
        ({"a", "b"}, "builtins.set"),
        (float("nan"), "NaN"),
        ({1: "x"}, "key 1"),
        (["ok", object()], "RegionTrigger.region[1]"),
    ],
)
def test_a_value_the_trigger_table_cannot_hold_fails_clearly(value, says):
    trigger = RegionTrigger(**BASE, region=value)
    with pytest.raises(TypeError, match=r"RegionTrigger\.region") as exc:
        trigger.serialize()
    assert says in str(exc.value)


def test_an_argument_not_stored_under_its_name_fails_clearly():
    with pytest.raises(TypeError, match=r"takes 'region' but the trigger has no attribute 'region'.*self\.region"):
        HiddenTrigger(**BASE).serialize()


def test_an_init_that_drops_a_base_argument_fails_when_the_class_is_defined():
    with pytest.raises(TypeError, match="does not take 'poll_interval'"):

        class Dropping(SparkStandaloneTrigger):
            def __init__(self, *, job: dict[str, Any], conn_id: str, token: str, generation: int) -> None:
                super().__init__(job=job, conn_id=conn_id, token=token, generation=generation)


def test_a_positional_only_argument_fails_when_the_class_is_defined():
    with pytest.raises(TypeError, match="by position only"):

        class Positional(SparkStandaloneTrigger):
            def __init__(self, region: str, /, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.region = region


def test_a_subclass_with_its_own_serialize_is_left_to_it():
    class Own(SparkStandaloneTrigger):
        def __init__(self, *, job: dict[str, Any], conn_id: str, token: str, generation: int) -> None:
            super().__init__(job=job, conn_id=conn_id, token=token, generation=generation)

        def serialize(self) -> tuple[str, dict[str, Any]]:
            classpath, kwargs = super().serialize()
            return classpath, {k: kwargs[k] for k in ("job", "conn_id", "token", "generation")}

    assert Own(**BASE).serialize()[1] == BASE


# --- the operator side: trigger_kwargs() ------------------------------------------------------------------


class RegionOperator(DurableJobOperator):
    hook_class: ClassVar[type[DurableJobHook]] = SparkStandaloneHook  # not used: get_client is overridden
    trigger_class: ClassVar[type[DurableJobTrigger]] = RegionTrigger

    def __init__(self, *, client: ScriptedClient, extra: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(conn_id="c", **kwargs)
        self.client = client
        self.extra = extra

    def get_client(self) -> JobClient[Any]:
        return self.client

    def build_spec(self, context: Any) -> dict[str, Any]:
        return {}

    def trigger_kwargs(self, record: JobRecord) -> dict[str, Any]:
        return dict(self.extra)


def run(store: Any, extra: dict[str, Any]) -> Any:
    operator = RegionOperator(task_id="t", client=ScriptedClient(), extra=extra, deferrable=True)
    return run_until_deferred(operator, task_context(store, ("dag", "run1", "t", -1)))


def test_trigger_kwargs_reach_the_deferred_trigger(store):
    deferred = run(store, {"region": "us-east"})
    assert isinstance(deferred.trigger, RegionTrigger) and deferred.trigger.region == "us-east"
    classpath, kwargs = deferred.trigger.serialize()
    assert kwargs["region"] == "us-east" and kwargs["job"] == {"id": "job-1"}
    assert import_string(classpath)(**kwargs).region == "us-east"


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"zone": "a"}, "'zone', which RegionTrigger.__init__ does not take \\(it takes: region\\)"),
        ({"conn_id": "other"}, "'conn_id', which the operator sets itself"),
        ({"region": datetime.timedelta(hours=1)}, "RegionTrigger.region is a datetime.timedelta"),
    ],
)
def test_trigger_kwargs_mistakes_fail_before_deferring(store, extra, says):
    with pytest.raises(TypeError, match=says):
        run(store, extra)
