"""BigQuery, declared: the ``bigquery_durable`` connection (a project and Google credentials) and the public classes.

The connection also reads the google provider's ``google_cloud_platform`` connections as they are: its
extras ``project``, ``key_path``, ``keyfile_dict`` and ``scope``, also under their old
``extra__google_cloud_platform__`` prefix, and its default name ``google_cloud_default``, so a DAG moves over
by renaming its imports. The provider's ways of getting credentials that this library does not implement
(``key_secret_name``, ``credential_config_file``, ``impersonation_chain``) are read only to refuse them: a
connection relying on them must not fall back to other credentials silently.
"""

from __future__ import annotations

from durable_jobs.hooks.fields import CA_FILE, MAX_RESPONSE_BYTES, TIMEOUT, VERIFY_SSL, Connection, Field
from durable_jobs.system import Link, System

DEFAULT_BASE_URL = "https://bigquery.googleapis.com"
#: the extras of the google provider that name credentials this library does not fetch
REFUSED_EXTRAS = ("key_secret_name", "credential_config_file", "impersonation_chain")

CONNECTION = Connection(
    conn_type="bigquery_durable",
    hook_class="BigQueryHook",
    hook_name="BigQuery (durable_jobs)",
    default_conn_name="google_cloud_default",
    fields=(
        Field(
            "project",
            "Project id",
            description="the project jobs run in (default: the key's project_id, else $GOOGLE_CLOUD_PROJECT)",
        ),
        Field("key_path", "Keyfile path", description="a service-account (or authorized_user) key JSON file"),
        Field(
            "keyfile_dict",
            "Keyfile JSON",
            "raw",
            secret=True,
            description="the key's JSON itself; without a key, Application Default Credentials",
        ),
        Field("scope", "Scopes (comma-separated)", "list", description="default: cloud-platform"),
        Field("location", "Default location", description="where jobs run unless the task says (e.g. EU, us-east1)"),
        Field(
            "base_url",
            "API base URL",
            default=DEFAULT_BASE_URL,
            description="the BigQuery REST endpoint; another one only for a fake or an emulator",
        ),
        VERIFY_SSL,
        CA_FILE,
        TIMEOUT,
        MAX_RESPONSE_BYTES,
        *(
            Field(name, f"{name} (not supported)", description="the google provider's; refused with the fix")
            for name in REFUSED_EXTRAS
        ),
    ),
    hidden=("host", "schema", "login", "password", "port"),
    placeholders={"extra": '{"project": "my-project", "key_path": "/etc/gcp/sa.json"}'},
    legacy_prefixes=("extra__google_cloud_platform__",),
    also_accepts=("google_cloud_platform",),  # the google provider's connections, read as they are
)

SYSTEM = System(
    module="bigquery",
    integration="Google BigQuery (durable)",
    doc_url="https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs",
    connections=(CONNECTION,),
    triggers=("BigQueryTrigger",),
    operators=("BigQueryJobOperator",),
    tags=("gcp",),
    # the job's page in the Google Cloud console
    links=(Link("BigQuery job", "bigquery_job_url"),),
)
