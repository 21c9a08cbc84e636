"""Airflow ``aws`` connections -> the EMR clients (:mod:`durable_jobs.clients.emr`), without the amazon provider.

The connection is the one the amazon provider defines (conn_type ``aws``), read with its field names:

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

Credentials are read here, on the worker or inside the triggerer, and never enter trigger kwargs. The
client's poller key is the connection and endpoint, not the credentials: after the keys of the connection
are rotated, the first refused call makes the running poller fetch the connection again (once for all its
triggers) and go on with a client that signs with the new keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from durable_jobs.hooks.base import DurableJobHook, as_bool, byte_size, extra_of
from durable_jobs.transport.limits import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from durable_jobs.clients.emr.aws import AwsJobClient
    from durable_jobs.clients.emr.aws_config import AwsConfig
    from durable_jobs.clients.emr.steps import EmrStepClient

CONN_TYPE = "aws"


def _verify(value: Any) -> bool | str:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    try:
        return as_bool(value, True)
    except ValueError:
        return str(value).strip()  # a CA bundle path


def _mapping(value: Any, name: str, conn_id: str) -> Mapping[str, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"connection {conn_id!r}: extra {name} must be a JSON object")
    return value


class DurableAwsHook(DurableJobHook):
    """Base of the EMR hooks: an ``aws`` connection -> :class:`AwsConfig` -> a flavour's client."""

    conn_type: ClassVar[str] = CONN_TYPE
    default_conn_name: ClassVar[str] = "aws_default"
    hook_name: ClassVar[str] = "Amazon Web Services (durable_jobs)"
    client_class_name: ClassVar[str]  # in client_module

    @classmethod
    def client_class(cls) -> type[AwsJobClient[Any]]:
        kind: type[AwsJobClient[Any]] = getattr(importlib.import_module(cls.client_module), cls.client_class_name)
        return kind

    @classmethod
    def config_from_connection(cls, conn: Any) -> AwsConfig:
        from durable_jobs.clients.emr.aws_config import AwsConfig

        conn_id = str(getattr(conn, "conn_id", "") or "aws")
        extra = extra_of(conn)
        method = extra.get("assume_role_method") or "assume_role"
        if method != "assume_role":
            raise ValueError(f"connection {conn_id!r}: assume_role_method {method!r} is not supported (assume_role)")
        services = _mapping(extra.get("service_config"), "service_config", conn_id)
        endpoints = {
            str(svc): str(cfg["endpoint_url"])
            for svc, cfg in services.items()
            if isinstance(cfg, Mapping) and cfg.get("endpoint_url")
        }
        own = _mapping(extra.get("durable_jobs"), "durable_jobs", conn_id)
        botocore_config = _mapping(extra.get("config_kwargs") or extra.get("botocore_config"), "config_kwargs", conn_id)
        return AwsConfig(
            region_name=extra.get("region_name") or None,
            endpoint_url=extra.get("endpoint_url") or None,
            service_endpoints=endpoints,
            aws_access_key_id=conn.login or extra.get("aws_access_key_id") or None,
            aws_secret_access_key=conn.password or extra.get("aws_secret_access_key") or None,
            aws_session_token=extra.get("aws_session_token") or None,
            profile_name=extra.get("profile_name") or None,
            role_arn=extra.get("role_arn") or None,
            assume_role_kwargs=_mapping(extra.get("assume_role_kwargs"), "assume_role_kwargs", conn_id),
            verify=_verify(extra.get("verify")),
            max_body=byte_size(extra.get("max_response_bytes"), DEFAULT_MAX_BODY),
            botocore_config={k: v for k, v in botocore_config.items() if k != "retries"},
            retry_budget=float(own.get("retry_budget", 300.0)),
            backoff_base=float(own.get("backoff_base", 1.0)),
            backoff_cap=float(own.get("backoff_cap", 30.0)),
            label=conn_id,
        )

    @classmethod
    def client_from_connection(cls, conn: Any) -> AwsJobClient[Any]:
        return cls.client_class()(cls.config_from_connection(conn))

    def test_connection(self) -> tuple[bool, str]:
        """``sts:GetCallerIdentity`` with the connection's credentials."""
        from durable_jobs.clients.emr.aws_pool import aws_client

        config = self.config_from_connection(self.get_connection(self.conn_id))

        async def caller() -> str:
            identity = await (await aws_client(config, "sts")).get_caller_identity()
            return str(identity.get("Arn"))

        try:
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

        own = _mapping(extra_of(conn).get("durable_jobs"), "durable_jobs", str(getattr(conn, "conn_id", "")))
        option = str(own.get("step_cancellation_option") or "SEND_INTERRUPT")
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
