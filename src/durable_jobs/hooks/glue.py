"""Airflow ``aws`` connections -> the Glue client (:mod:`durable_jobs.clients.glue`), read as EMR reads them.

The connection is the amazon provider's ``aws`` type, read by :class:`~durable_jobs.hooks.emr.DurableAwsHook`
into an :class:`~durable_jobs.clients.emr.aws_config.AwsConfig` (keys or the default chain, ``region_name``,
``endpoint_url`` or ``service_config.glue.endpoint_url``, ``role_arn``, ``verify``, ``config_kwargs``,
``max_response_bytes``, the ``durable_jobs`` retry settings): one reading of the connection for every AWS
system. ``test_connection`` asks STS who the credentials are, as EMR's does.

The credentials stay in the config, on the worker or inside the triggerer; trigger kwargs carry the
connection id only.
"""

from __future__ import annotations

from typing import ClassVar

from durable_jobs.hooks.emr import DurableAwsHook


class GlueHook(DurableAwsHook):
    """An ``aws`` connection -> :class:`~durable_jobs.clients.glue.GlueClient` (built from the config, as EMR's)."""

    client_module: ClassVar[str] = "durable_jobs.clients.glue"
    client_class_name: ClassVar[str] = "GlueClient"


__all__ = ["GlueHook"]
