"""Airflow ``aws`` connections -> the EMR clients (:mod:`durable_jobs.clients.emr`), without the amazon provider.

The connection is the one the amazon provider defines (conn_type ``aws``), read with its field names (without
that provider installed, this package registers the ``aws`` type itself, with :class:`DurableAwsHook`: see
:mod:`durable_jobs.systems.emr`):

* login / password: access key id / secret access key (or extra ``aws_access_key_id`` /
  ``aws_secret_access_key``); none of them: botocore's default chain (environment, profile, instance or
  pod role);
* extra ``aws_session_token``, ``region_name``, ``endpoint_url``, ``service_config`` (per-service
  ``{"emr": {"endpoint_url": ...}}``), ``profile_name``, ``role_arn`` with ``assume_role_kwargs``
  (``assume_role_method`` must be ``assume_role``), ``verify`` (false or a CA bundle path; TLS is verified
  by default), ``config_kwargs`` (botocore ``Config`` options; its ``retries`` are always off, see
  :mod:`durable_jobs.clients.emr.aws_errors`);
* extra ``max_response_bytes``: the largest answer read (an int, or ``"16MiB"``; default 16 MiB); a
  larger one is not read and counts as unknown;
* extra ``durable_jobs``: this library's knobs, ``{"retry_budget": 300, "backoff_base": 1,
  "backoff_cap": 30, "step_cancellation_option": "SEND_INTERRUPT"}``.

Every field and its default is declared once, in :mod:`durable_jobs.systems.emr`.

Checked when the hook builds a client (:mod:`durable_jobs.hooks.validate`): the type (``aws``) and every
endpoint URL (``endpoint_url``, ``service_config``) an http(s) URL.

Credentials are read here, on the worker or inside the triggerer, and never enter trigger kwargs. The
client's poller key is the connection and endpoint, not the credentials: after the keys of the connection
are rotated, the first refused call makes the running poller fetch the connection again (once for all its
triggers) and go on with a client that signs with the new keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from durable_jobs.hooks.base import DurableJobHook
from durable_jobs.hooks.fields import Connection
from durable_jobs.systems.emr import CONNECTION

if TYPE_CHECKING:
    from durable_jobs.clients.emr.aws import AwsJobClient
    from durable_jobs.clients.emr.aws_config import AwsConfig
    from durable_jobs.clients.emr.steps import EmrStepClient

CONN_TYPE = CONNECTION.conn_type


class DurableAwsHook(DurableJobHook):
    """Base of the EMR hooks: an ``aws`` connection -> :class:`AwsConfig` -> a flavour's client."""

    connection: ClassVar[Connection] = CONNECTION
    conn_type: ClassVar[str] = CONNECTION.conn_type
    default_conn_name: ClassVar[str] = CONNECTION.default_conn_name
    hook_name: ClassVar[str] = CONNECTION.hook_name
    client_class_name: ClassVar[str]  # in client_module

    @classmethod
    def connection_problems(cls, conn: Any) -> list[str]:
        """Every endpoint URL must be a URL with its scheme (botocore would take ``localhost:5000`` as a host)."""
        extra = CONNECTION.read(conn)
        urls = [("endpoint_url", extra["endpoint_url"])] + [
            (f"service_config.{svc}.endpoint_url", cfg.get("endpoint_url"))
            for svc, cfg in extra["service_config"].items()
            if isinstance(cfg, Mapping)
        ]
        return [
            f"extra {key} {url!r} is not an http(s) URL: write it with its scheme, e.g. "
            f"'https://{str(url).split('://')[-1]}'"
            for key, url in urls
            if url and not str(url).startswith(("http://", "https://"))
        ]

    @classmethod
    def client_class(cls) -> type[AwsJobClient[Any]]:
        kind: type[AwsJobClient[Any]] = getattr(importlib.import_module(cls.client_module), cls.client_class_name)
        return kind

    @classmethod
    def config_from_connection(cls, conn: Any) -> AwsConfig:
        from durable_jobs.clients.emr.aws_config import AwsConfig

        conn_id = str(getattr(conn, "conn_id", "") or "aws")
        extra = CONNECTION.read(conn)
        endpoints = {
            str(svc): str(cfg["endpoint_url"])
            for svc, cfg in extra["service_config"].items()
            if isinstance(cfg, Mapping) and cfg.get("endpoint_url")
        }
        own = extra["durable_jobs"]
        return AwsConfig(
            region_name=extra["region_name"],
            endpoint_url=extra["endpoint_url"],
            service_endpoints=endpoints,
            aws_access_key_id=conn.login or extra["aws_access_key_id"],
            aws_secret_access_key=conn.password or extra["aws_secret_access_key"],
            aws_session_token=extra["aws_session_token"],
            profile_name=extra["profile_name"],
            role_arn=extra["role_arn"],
            assume_role_kwargs=extra["assume_role_kwargs"],
            verify=extra["verify"],
            max_body=extra["max_response_bytes"],
            botocore_config={k: v for k, v in extra["config_kwargs"].items() if k != "retries"},
            retry_budget=own["retry_budget"],
            backoff_base=own["backoff_base"],
            backoff_cap=own["backoff_cap"],
            label=conn_id,
        )

    @classmethod
    def client_from_connection(cls, conn: Any) -> AwsJobClient[Any]:
        return cls.client_class()(cls.config_from_connection(conn))

    def test_connection(self) -> tuple[bool, str]:
        """``sts:GetCallerIdentity`` with the connection's credentials."""
        from durable_jobs.clients.emr.aws_pool import aws_client

        async def caller() -> str:
            identity = await (await aws_client(config, "sts")).get_caller_identity()
            return str(identity.get("Arn"))

        try:
            conn = self.get_connection(self.conn_id)
            self.check(conn)
            config = self.config_from_connection(conn)
            arn = self.probe(caller)
        except Exception as exc:
            return False, str(exc)
        return True, f"authenticated as {arn}"


class EmrStepHook(DurableAwsHook):
    client_module: ClassVar[str] = "durable_jobs.clients.emr.steps"
    client_class_name: ClassVar[str] = "EmrStepClient"

    @classmethod
    def client_from_connection(cls, conn: Any) -> EmrStepClient:
        from durable_jobs.clients.emr.steps import EmrStepClient

        option = CONNECTION.read(conn)["durable_jobs"]["step_cancellation_option"]
        return EmrStepClient(cls.config_from_connection(conn), cancellation_option=option)


class EmrClusterHook(DurableAwsHook):
    client_module: ClassVar[str] = "durable_jobs.clients.emr.clusters"
    client_class_name: ClassVar[str] = "EmrClusterClient"


class EmrServerlessHook(DurableAwsHook):
    client_module: ClassVar[str] = "durable_jobs.clients.emr.serverless"
    client_class_name: ClassVar[str] = "EmrServerlessClient"


class EmrEksHook(DurableAwsHook):
    client_module: ClassVar[str] = "durable_jobs.clients.emr.eks"
    client_class_name: ClassVar[str] = "EmrEksClient"


__all__ = ["CONN_TYPE", "DurableAwsHook", "EmrClusterHook", "EmrEksHook", "EmrServerlessHook", "EmrStepHook"]
