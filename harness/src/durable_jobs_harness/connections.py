"""Connections as a hook reads them, and what a hook says when it refuses one: for the validation tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from durable_jobs.errors import ConnectionConfigError


def connection(defaults: dict[str, Any], **fields: Any) -> SimpleNamespace:
    """An Airflow connection's fields (``conn_id``, ``conn_type``, host, port, schema, login, password,
    ``extra_dejson``): ``defaults`` overridden by ``fields``."""
    base: dict[str, Any] = {"conn_type": None, "host": None, "port": None, "schema": "", "login": None}
    base.update(password=None, extra_dejson={})
    return SimpleNamespace(**{**base, **defaults, **fields})


class Recorded:
    """Records the arguments it is built with: in place of a client or an auth class, for a hook's tests."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def refusal(hook: Any, conn: Any, secrets: tuple[str, ...] = ()) -> str:
    """The message of the :class:`ConnectionConfigError` ``hook`` raises building a client from ``conn``."""
    with pytest.raises(ConnectionConfigError) as exc:
        hook.build_client(conn)
    text = str(exc.value)
    for secret in secrets:
        assert secret not in text
    return text


__all__ = ["Recorded", "connection", "refusal"]
