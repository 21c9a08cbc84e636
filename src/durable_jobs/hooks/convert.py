"""A connection's text as typed values: booleans, byte sizes, comma-separated lists, base URLs.

Connection extras come from JSON typed by hand or from a form that stores strings, so ``"false"``, ``""`` and
``"64MiB"`` must all mean what the user meant. No Airflow here: provider info and the declarations of
:mod:`durable_jobs.hooks.fields` use these without importing a hook.
"""

from __future__ import annotations

from typing import Any

from durable_jobs.errors import ConnectionConfigError


def extra_of(conn: Any) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    return dict(extra) if isinstance(extra, dict) else {}


def as_bool(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def byte_size(value: Any, default: int, what: str = "max_response_bytes") -> int:
    """A positive number of bytes from a connection extra (an int, or a string such as ``"64MiB"``)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of bytes, got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip().lower().replace(" ", "")
        units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "b": 1}
        factor = 1
        for unit, size in units.items():
            if text.endswith(unit):
                text, factor = text[: -len(unit)], size
                break
        try:
            n = int(float(text) * factor)
        except ValueError:
            raise ValueError(f'{what} must be a number of bytes (e.g. 16777216 or "16MiB"), got {value!r}') from None
    if n <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return n


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def base_urls(conn: Any, default_port: int, what: str) -> tuple[str, ...]:
    """The connection's host list (comma-separated, HA) as base URLs, with its scheme and port.

    A host may be a full URL (``https://m1:6066``) or ``host[:port]``.
    """
    scheme = (conn.schema or "http").lower()
    if scheme not in ("http", "https"):
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: schema must be http or https, not {scheme!r}")
    hosts = split_list(conn.host)
    if not hosts:
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: host is empty; give the {what} host(s)")
    port = conn.port or default_port
    return tuple(
        h.rstrip("/") if "://" in h else f"{scheme}://{h}" if ":" in h else f"{scheme}://{h}:{port}" for h in hosts
    )
