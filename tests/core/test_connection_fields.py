"""A connection's form and its hook cannot drift: both read one declaration per system.

For every hook: the keys it reads from a connection's extra are exactly the declared fields (read through a
mapping that records each key asked for and refuses to be iterated), and each declared field, set alone to
a value other than its default, changes what the hook builds. The form in provider info offers every
declared field with the declared default, and the system's doc names each one.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from durable_jobs.get_provider_info import get_provider_info
from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.fields import Connection, Field, read_fields
from durable_jobs.systems import declared

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: fake user credentials (no private key): what BigQuery's key_path and keyfile_dict samples hold
USER_KEY = Path(__file__).resolve().parents[1] / "bigquery" / "authorized_user.json"

# the standard fields a connection of each type needs to build a client at all
STANDARD = {
    "spark_standalone_rest": {"host": "m1", "schema": "http"},
    "yarn_rm": {"host": "rm1", "schema": "http"},
    "databricks_durable": {"host": "adb-1.azuredatabricks.net", "login": "token", "password": "dapi-secret"},
}
# values where a field's kind alone does not give a valid one
SAMPLES: dict[tuple[str, str], Any] = {
    ("yarn_rm", "auth"): "simple",
    ("kubernetes_durable", "namespace"): "batch",
    ("kubernetes_durable", "kube_config"): {"apiVersion": "v1", "kind": "Config", "current-context": "c"},
    ("aws", "aws_access_key_id"): "AKIDOTHER",
    ("aws", "aws_secret_access_key"): "other-secret",
    ("aws", "endpoint_url"): "http://localhost:5000",
    ("aws", "service_config"): {"emr": {"endpoint_url": "http://localhost:5001"}},
    ("aws", "verify"): "/etc/ssl/ca.pem",
    ("aws", "step_cancellation_option"): "TERMINATE_PROCESS",
    ("databricks_durable", "auth"): "oauth",
    ("databricks_durable", "host"): "https://adb-2.azuredatabricks.net",
    ("databricks_durable", "list_limit"): 10,
    ("bigquery_durable", "project"): "other-project",
    ("bigquery_durable", "key_path"): str(USER_KEY),
    ("bigquery_durable", "keyfile_dict"): USER_KEY.read_text(),
    ("bigquery_durable", "base_url"): "http://127.0.0.1:9050",
}
# the rest of the extra a field needs to have an effect (the baseline it is compared with has it too)
CONTEXT: dict[tuple[str, str], dict[str, Any]] = {
    ("yarn_rm", "renew_margin"): {"auth": "kerberos"},
    ("aws", "aws_access_key_id"): {"aws_access_key_id": "AKID", "aws_secret_access_key": "secret"},
    ("aws", "aws_secret_access_key"): {"aws_access_key_id": "AKID", "aws_secret_access_key": "secret"},
}
# fields that are only checked: the one value they may take is the default
CHECKED_ONLY = {("aws", "assume_role_method")} | {
    ("bigquery_durable", name) for name in ("key_secret_name", "credential_config_file", "impersonation_chain")
}


@pytest.fixture(autouse=True)
def _a_gcp_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """BigQuery's project when no extra names one (as Application Default Credentials find it)."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "drift-project")


class RecordingExtra(Mapping[str, Any]):
    """An extra that records every key asked for, and fails a reader that walks all its keys."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the extra was iterated: a hook reads only the declared keys")

    def __len__(self) -> int:
        raise AssertionError("the extra was measured: a hook reads only the declared keys")


def _hooks() -> list[type[DurableJobHook]]:
    found = []
    for system in declared():
        module = importlib.import_module(f"durable_jobs.hooks.{system.module}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DurableJobHook) and cls.__module__ == module.__name__ and cls.client_module:
                found.append(cls)
    return found


HOOKS = _hooks()


def _conn(connection: Connection, extra: Mapping[str, Any]) -> SimpleNamespace:
    standard = {"host": None, "port": None, "schema": None, "login": None, "password": None}
    standard.update(STANDARD.get(connection.conn_type, {}))
    return SimpleNamespace(conn_id="drift", extra_dejson=extra, **standard)


def _sample(conn_type: str, field: Field) -> Any:
    if (conn_type, field.name) in SAMPLES:
        return SAMPLES[(conn_type, field.name)]
    if field.choices:
        return next(c for c in field.choices if c != field.default)
    by_kind = {
        "boolean": lambda: not field.default,
        "integer": lambda: (field.default or 0) + 7,
        "number": lambda: (field.default or 0) + 7.5,
        "bytes": lambda: "64MiB",
        "list": lambda: "http://ui-a:8080,http://ui-b:8080",
        "object": lambda: {"connect_timeout": 5, "ExternalId": "x"},
        "string": lambda: f"/non-default/{field.name}",
    }
    return by_kind[field.kind]()


def _cases(connection: Connection) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(field path, baseline extra, the same with the field set to another value than its default)."""
    for field in connection.fields:
        if (connection.conn_type, field.name) in CHECKED_ONLY:
            continue
        context = CONTEXT.get((connection.conn_type, field.name), {})
        if field.kind == "object" and field.fields:
            for sub in field.fields:
                sample = _sample(connection.conn_type, sub)
                yield f"{field.name}.{sub.name}", context, {**context, field.name: {sub.name: sample}}
        else:
            yield field.name, context, {**context, field.name: _sample(connection.conn_type, field)}


def _built(hook: type[DurableJobHook], conn: Any) -> tuple[Any, dict[str, Any]]:
    """What the hook builds: its config, and the client's own public settings."""
    config = hook.config_from_connection(conn)  # type: ignore[attr-defined]
    client = hook.client_from_connection(conn)
    settings = {k: v for k, v in vars(client).items() if not k.startswith("_") and isinstance(v, str | int | float)}
    return config, settings


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.__name__)
def test_a_hook_reads_exactly_the_declared_fields(hook: type[DurableJobHook]) -> None:
    connection: Connection = hook.connection  # type: ignore[attr-defined]
    extra = RecordingExtra({})
    hook.client_from_connection(_conn(connection, extra))
    names = {f.name for f in connection.fields}
    allowed = names | {a for f in connection.fields for a in f.aliases}
    allowed |= {p + n for p in connection.legacy_prefixes for n in names}
    assert extra.asked <= allowed, f"read but not declared: {sorted(extra.asked - allowed)}"
    assert names <= extra.asked, f"declared but never read: {sorted(names - extra.asked)}"


CONNECTIONS = {hook.connection.conn_type: hook.connection for hook in HOOKS}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("conn_type", "path", "baseline", "changed"),
    [(conn_type, *case) for conn_type, connection in CONNECTIONS.items() for case in _cases(connection)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_declared_field_reaches_what_a_hook_builds(
    conn_type: str, path: str, baseline: dict[str, Any], changed: dict[str, Any]
) -> None:
    """Set alone to another value than its default, a field changes what a hook of its connection type builds
    (EMR's ``step_cancellation_option`` is the step hook's only)."""
    connection = CONNECTIONS[conn_type]
    hooks = [hook for hook in HOOKS if hook.connection is connection]  # type: ignore[attr-defined]
    changes = []
    for hook in hooks:
        before = _built(hook, _conn(connection, baseline))
        assert _built(hook, _conn(connection, baseline)) == before  # the comparison means something
        changes.append(_built(hook, _conn(connection, changed)) != before)
    assert any(changes), f"extra {path} is declared but no hook of {conn_type} uses it"


def test_a_checked_only_field_refuses_another_value() -> None:
    from durable_jobs.hooks.emr import DurableAwsHook

    with pytest.raises(ValueError, match="assume_role_method must be one of assume_role"):
        DurableAwsHook.config_from_connection(_conn(DurableAwsHook.connection, {"assume_role_method": "web_identity"}))


def test_the_form_offers_every_declared_field_with_its_default() -> None:
    entries = {entry["connection-type"]: entry for entry in get_provider_info()["connection-types"]}
    connections = [c for system in declared() for c in system.connections]
    assert sorted(entries) == sorted(c.conn_type for c in connections if c.own_form)
    for connection in connections:
        if not connection.own_form:
            continue
        form = entries[connection.conn_type]["conn-fields"]
        assert list(form) == [f.name for f in connection.fields]
        for field in connection.fields:
            assert form[field.name]["schema"]["default"] == field.default, field.name
            assert form[field.name]["label"] == field.label


@pytest.mark.parametrize("system", declared(), ids=lambda s: s.module)
def test_each_connection_names_its_hook_and_the_hook_reads_it(system: Any) -> None:
    for connection in system.connections:
        hook = getattr(importlib.import_module(f"durable_jobs.hooks.{system.module}"), connection.hook_class)
        assert hook.connection is connection
        assert (hook.conn_type, hook.hook_name, hook.default_conn_name) == (
            connection.conn_type,
            connection.hook_name,
            connection.default_conn_name,
        )


@pytest.mark.parametrize("system", declared(), ids=lambda s: s.module)
def test_the_system_doc_names_every_field(system: Any) -> None:
    doc = (DOCS / f"{system.module.replace('_', '-')}.md").read_text()
    for connection in system.connections:
        assert f"`{connection.conn_type}`" in doc
        for field in connection.fields:
            for name in (field.name, *(sub.name for sub in field.fields)):
                assert f"`{name}`" in doc, f"docs/{system.module}.md does not name extra {name}"


def test_empty_values_mean_the_default_and_bad_values_name_the_field() -> None:
    from durable_jobs.hooks.spark_standalone import SparkStandaloneHook

    conn = SparkStandaloneHook.connection
    values = conn.read(_conn(conn, {"verify_ssl": "", "timeout": None, "max_response_bytes": "1KiB"}))
    assert (values["verify_ssl"], values["timeout"], values["max_response_bytes"]) == (True, 30.0, 1024)
    for extra, message in [
        ({"timeout": "0"}, "extra timeout must be positive"),
        ({"timeout": True}, "extra timeout: expected a number"),
        ({"batch_status": "maybe"}, "extra batch_status: expected a boolean"),
    ]:
        with pytest.raises(ValueError, match=f"connection 'drift': {message}"):
            conn.read(_conn(conn, extra))


def test_each_kind_reads_what_a_form_or_a_json_extra_holds() -> None:
    fields = (
        Field("n", "N", "integer", 5),
        Field("ratio", "R", "number", 1.0),
        Field("urls", "U", "list"),
        Field("size", "S", "bytes", 10),
        Field("new_name", "New", aliases=("old_name",)),
        Field("opts", "O", "object", fields=(Field("depth", "D", "integer", 1),)),
    )
    extra = {"n": "12", "ratio": 2, "urls": "a, b,,c", "size": "2KiB", "old_name": "x", "opts": {"depth": "3"}}
    assert read_fields(fields, extra) == {
        "n": 12,
        "ratio": 2.0,
        "urls": ("a", "b", "c"),
        "size": 2048,
        "new_name": "x",
        "opts": {"depth": 3},
    }
    assert read_fields(fields, {}) == {
        "n": 5,
        "ratio": 1.0,
        "urls": None,
        "size": 10,
        "new_name": None,
        "opts": {"depth": 1},
    }
    assert read_fields(fields[:1], {"extra__old__n": 7}, prefixes=("extra__old__",)) == {"n": 7}
    assert read_fields(fields[:1], {"n": 8, "extra__old__n": 7}, prefixes=("extra__old__",)) == {"n": 8}
    for bad, message in [
        ({"n": "1.5"}, "extra n: expected an integer"),
        ({"opts": "deep"}, "extra opts must be a JSON object"),
        ({"opts": {"depth": "x"}}, "extra opts.depth: could not convert"),
    ]:
        with pytest.raises(ValueError, match=message):
            read_fields(fields, bad)
    with pytest.raises(ValueError, match="unknown kind"):
        Field("f", "F", "date")
