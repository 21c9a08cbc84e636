"""Databricks, declared: the ``databricks_durable`` connection (a workspace, a PAT or OAuth M2M) and the public classes.

The connection also reads what the ``databricks`` provider's connections hold (its type, and its extras
``token``, ``host`` and ``service_principal_oauth``), so a DAG moves over by renaming its imports and keeps its
``databricks_default`` connection.
"""

from __future__ import annotations

from typing import Any

from durable_jobs.hooks.fields import CA_FILE, MAX_RESPONSE_BYTES, TIMEOUT, VERIFY_SSL, Connection, Field
from durable_jobs.system import Link, System

#: the largest ``limit`` of ``runs/list`` on Jobs API 2.2 (25 on 2.1; 2.2 answers 400 above 24)
MAX_LIST_LIMIT = 24
AUTH_CHOICES = ("pat", "oauth")


def _list_limit(raw: Any) -> int:
    """``list_limit``: an integer between 1 and 24."""
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    number = float(raw)
    if not number.is_integer():
        raise ValueError(f"expected an integer, got {raw!r}")
    if not 1 <= number <= MAX_LIST_LIMIT:
        raise ValueError(
            f"must be between 1 and {MAX_LIST_LIMIT} (the largest runs/list page of Jobs API 2.2), got {raw!r}"
        )
    return int(number)


CONNECTION = Connection(
    conn_type="databricks_durable",
    hook_class="DatabricksHook",
    hook_name="Databricks (durable_jobs)",
    default_conn_name="databricks_default",
    fields=(
        Field(
            "auth",
            "Auth: pat or oauth",
            choices=AUTH_CHOICES,
            description="default: oauth when service_principal_oauth is true, else pat (a personal access token)",
        ),
        Field(
            "service_principal_oauth",
            "OAuth M2M with a service principal",
            "boolean",
            False,
            description="the databricks provider's flag: login = client id, password = OAuth secret",
        ),
        Field(
            "token",
            "Personal access token (when the password is empty)",
            secret=True,
            description="the databricks provider's extra; the password field is the better place",
        ),
        Field("host", "Workspace URL (the databricks provider's extra)", description="default: the host field"),
        VERIFY_SSL,
        CA_FILE,
        TIMEOUT,
        MAX_RESPONSE_BYTES,
        Field(
            "list_limit",
            "Runs per runs/list page",
            "integer",
            MAX_LIST_LIMIT,
            description=f"between 1 and {MAX_LIST_LIMIT}",
            parse=_list_limit,
        ),
    ),
    relabel={
        "host": "Workspace URL",
        "schema": "Scheme (default https)",
        "login": "OAuth client id (empty for a token)",
        "password": "Personal access token, or OAuth secret",
    },
    placeholders={
        "host": "https://adb-1234567890123456.7.azuredatabricks.net",
        "login": "",
        "extra": '{"service_principal_oauth": true}',
    },
    also_accepts=("databricks",),  # the databricks provider's connections, read as they are
)

SYSTEM = System(
    module="databricks",
    integration="Databricks (durable)",
    doc_url="https://docs.databricks.com/api/workspace/jobs",
    connections=(CONNECTION,),
    triggers=("DatabricksTrigger",),
    operators=("DatabricksSubmitRunOperator", "DatabricksRunNowOperator"),
    tags=("service",),
    # the run's page in the workspace (runs/get's run_page_url)
    links=(Link("Databricks run", "run_page_url"),),
)
