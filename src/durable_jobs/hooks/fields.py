"""A connection type declared once: Airflow's connection form and the hook's reading of ``extra`` both come from it.

Written twice, a form and a hook drift apart: a key the hook reads that the form does not offer, a default
in the form that is not the hook's. So a system declares its :class:`Connection` (type, hook, form layout)
and its :class:`Field` s (name, label, kind, default, description) once, in ``durable_jobs.systems.<system>``:

* :meth:`Connection.provider_entry` is its ``connection-types`` entry in provider info (``conn-fields``
  and ``ui-field-behaviour``, which Airflow's UI reads without importing the hook);
* :meth:`Connection.read` gives the hook every declared field of a connection's extra, converted to its
  kind, with its default when absent or empty, and reads no other key.

No Airflow and no client here: provider info is built from the declarations in any process that lists
providers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from durable_jobs.errors import ConnectionConfigError
from durable_jobs.hooks.convert import as_bool, byte_size, split_list
from durable_jobs.transport.limits import DEFAULT_MAX_BODY

#: kind -> the JSON type of the form field
_FORM_TYPES = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "number": "number",
    "bytes": "integer",  # the form takes a number; the extra also takes "64MiB"
    "list": "string",  # comma-separated
    "object": "object",
    "raw": "string",  # any JSON value, given to the hook as it is (e.g. a kubeconfig as text or a mapping)
}


class Field:
    """One key of a connection's extra: how the form shows it and how the hook reads it.

    A plain class with slots, like :class:`Connection`: every process that lists providers builds the
    declarations, and should not pay for importing dataclasses.
    """

    __slots__ = (
        "aliases",
        "choices",
        "default",
        "description",
        "fields",
        "kind",
        "label",
        "name",
        "parse",
        "positive",
        "secret",
    )

    def __init__(
        self,
        name: str,
        label: str,
        kind: str = "string",
        default: Any = None,
        *,
        description: str = "",
        secret: bool = False,
        choices: tuple[str, ...] = (),
        positive: bool = False,
        aliases: tuple[str, ...] = (),
        fields: tuple[Field, ...] = (),
        parse: Callable[[Any], Any] | None = None,
    ) -> None:
        if kind not in _FORM_TYPES:
            raise ValueError(f"field {name}: unknown kind {kind!r}")
        self.name = name
        self.label = label
        self.kind = kind  # a key of _FORM_TYPES
        self.default = default
        self.description = description
        self.secret = secret  # the form masks it
        self.choices = choices  # the values it may take
        self.positive = positive  # a number that must be > 0
        self.aliases = aliases  # older names, read when the name is absent
        self.fields = fields  # kind "object": its keys, read the same way
        self.parse = parse  # a conversion of its own, for a value of no single kind

    def __repr__(self) -> str:
        return f"Field({self.name!r}, kind={self.kind!r}, default={self.default!r})"

    def form_field(self) -> dict[str, Any]:
        """The field's ``conn-fields`` entry."""
        schema: dict[str, Any] = {"type": [_FORM_TYPES[self.kind], "null"], "default": self.default}
        if self.secret:
            schema["format"] = "password"
        if self.choices and self.default is not None:
            schema["enum"] = list(self.choices)
        if self.positive:
            schema["exclusiveMinimum"] = 0
        entry: dict[str, Any] = {"label": self.label, "schema": schema}
        if self.description:
            entry["description"] = self.description
        return entry

    def convert(self, raw: Any, path: str = "") -> Any:
        """``raw`` (None when absent or empty) as this field's value; ValueError naming the field."""
        where = f"extra {path}{self.name}"
        if self.kind == "object":
            mapping = {} if raw is None else raw
            if not isinstance(mapping, Mapping):
                raise ValueError(f"{where} must be a JSON object")
            return read_fields(self.fields, mapping, path=f"{path}{self.name}.") if self.fields else dict(mapping)
        try:
            value = self._value(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        if self.choices and value is not None and value not in self.choices:
            raise ValueError(f"{where} must be one of {', '.join(self.choices)}, not {value!r}")
        if self.positive and value is not None and value <= 0:
            raise ValueError(f"{where} must be positive, got {value!r}")
        return value

    def _value(self, raw: Any) -> Any:
        if raw is None:
            return self.default
        if self.parse is not None:
            return self.parse(raw)
        if self.kind == "boolean":
            return as_bool(raw, self.default)
        if self.kind == "bytes":
            return byte_size(raw, self.default, self.name)
        if self.kind == "list":
            return tuple(split_list(raw) if isinstance(raw, str) else (str(v) for v in raw))
        if self.kind in ("integer", "number"):
            if isinstance(raw, bool):
                raise ValueError(f"expected a number, got {raw!r}")
            number = float(raw)
            if self.kind == "number":
                return number
            if not number.is_integer():
                raise ValueError(f"expected an integer, got {raw!r}")
            return int(raw) if isinstance(raw, int) else int(number)
        if self.kind == "string":
            return raw if isinstance(raw, str) else str(raw)
        return raw


def read_fields(
    fields: tuple[Field, ...], extra: Mapping[str, Any], prefixes: tuple[str, ...] = (), path: str = ""
) -> dict[str, Any]:
    """Every declared field of ``extra``, by name: its own key, else an alias, else an old prefixed key.

    Only these keys are read (``extra`` is never iterated). None and ``""`` (what a form stores for a
    field left empty) count as absent.
    """
    out: dict[str, Any] = {}
    for field in fields:
        raw = None
        for key in (field.name, *field.aliases, *(prefix + field.name for prefix in prefixes)):
            value = extra.get(key)
            if value is not None and not (isinstance(value, str) and value == ""):
                raw = value
                break
        out[field.name] = field.convert(raw, path)
    return out


class Connection:
    """A connection type: what Airflow lists and shows in its form, and the extra its hook reads."""

    __slots__ = (
        "also_accepts",
        "conn_type",
        "default_conn_name",
        "default_port",
        "fields",
        "hidden",
        "hook_class",
        "hook_name",
        "legacy_prefixes",
        "own_form",
        "placeholders",
        "relabel",
    )

    def __init__(
        self,
        *,
        conn_type: str,
        hook_class: str,
        hook_name: str,
        default_conn_name: str,
        fields: tuple[Field, ...],
        default_port: int | None = None,
        hidden: tuple[str, ...] = (),
        relabel: Mapping[str, str] | None = None,
        placeholders: Mapping[str, str] | None = None,
        legacy_prefixes: tuple[str, ...] = (),
        own_form: bool = True,
        also_accepts: tuple[str, ...] = (),
    ) -> None:
        self.conn_type = conn_type
        self.hook_class = hook_class  # the hook's class name in durable_jobs.hooks.<system>
        self.hook_name = hook_name  # shown in the UI's connection type list
        self.default_conn_name = default_conn_name
        self.fields = fields
        self.default_port = default_port
        self.hidden = hidden  # standard fields the form hides (login, password, schema, port)
        self.relabel = relabel or {}  # standard field -> label
        self.placeholders = placeholders or {}  # field -> placeholder
        self.legacy_prefixes = legacy_prefixes  # also read "<prefix><name>" (another provider's old form keys)
        self.own_form = own_form  # False: another provider owns the type and its form; we only read it
        self.also_accepts = also_accepts  # other types the hook reads as they are (another provider's)

    @property
    def accepted_types(self) -> tuple[str, ...]:
        """The connection types the hook accepts: its own first."""
        return (self.conn_type, *self.also_accepts)

    def __repr__(self) -> str:
        return f"Connection({self.conn_type!r})"

    def read(self, conn: Any) -> dict[str, Any]:
        """Every declared field of ``conn``'s extra (see :func:`read_fields`); ValueError naming the connection."""
        extra = getattr(conn, "extra_dejson", None)
        try:
            return read_fields(self.fields, extra if isinstance(extra, Mapping) else {}, self.legacy_prefixes)
        except ValueError as exc:
            raise ConnectionConfigError(f"connection {getattr(conn, 'conn_id', None)!r}: {exc}") from None

    def provider_entry(self, hook_module: str) -> dict[str, Any]:
        """The ``connection-types`` entry of provider info."""
        placeholders = dict(self.placeholders)
        if self.default_port is not None:
            placeholders.setdefault("port", str(self.default_port))
        return {
            "connection-type": self.conn_type,
            "hook-class-name": f"{hook_module}.{self.hook_class}",
            "hook-name": self.hook_name,
            "ui-field-behaviour": {
                "hidden-fields": list(self.hidden),
                "relabeling": dict(self.relabel),
                "placeholders": placeholders,
            },
            "conn-fields": {field.name: field.form_field() for field in self.fields},
        }


# Fields that mean the same for every HTTP system, declared once.
VERIFY_SSL = Field(
    "verify_ssl", "Verify TLS", "boolean", True, description="TLS certificates are verified unless false"
)
CA_FILE = Field("ca_file", "CA bundle path", description="a PEM file of the CAs to trust (default: the system's)")
TIMEOUT = Field("timeout", "Request timeout (s)", "number", 30.0, description="seconds per request", positive=True)
MAX_RESPONSE_BYTES = Field(
    "max_response_bytes",
    "Largest answer read (bytes)",
    "bytes",
    DEFAULT_MAX_BODY,
    description='an int, or a string such as "64MiB" in the extra; a larger answer is not read and counts as unknown',
)

__all__ = ["CA_FILE", "MAX_RESPONSE_BYTES", "TIMEOUT", "VERIFY_SSL", "Connection", "Field", "read_fields"]
