"""BigQuery: jobs of a project over the REST v2 ``jobs`` API (insert, get, list, cancel), no Airflow.

One module per concern:

* :mod:`~durable_jobs.clients.bigquery.specs`: what to run (:class:`BigQueryJobSpec`), the id rules, the token in
  the job id and its label;
* :mod:`~durable_jobs.clients.bigquery.answers`: BigQuery's answers, typed;
* :mod:`~durable_jobs.clients.bigquery.states`: what a job object means for a job, and its result for XCom;
* :mod:`~durable_jobs.clients.bigquery.auth`: Google OAuth (service account, authorized user, metadata server,
  :func:`application_default`);
* :mod:`~durable_jobs.clients.bigquery.api`: the REST calls and what their errors mean;
* :mod:`~durable_jobs.clients.bigquery.client`: :class:`BigQueryClient`, the job contract on top of them.

Each module's ``__all__`` is re-exported here, so ``from durable_jobs.clients.bigquery import ...`` works;
code in this library imports from the modules themselves.
"""

from durable_jobs.clients.bigquery import answers, api, auth, client, specs, states
from durable_jobs.clients.bigquery.answers import *  # noqa: F403
from durable_jobs.clients.bigquery.api import *  # noqa: F403
from durable_jobs.clients.bigquery.auth import *  # noqa: F403
from durable_jobs.clients.bigquery.client import *  # noqa: F403
from durable_jobs.clients.bigquery.specs import *  # noqa: F403
from durable_jobs.clients.bigquery.states import *  # noqa: F403

__all__ = [
    *answers.__all__,
    *api.__all__,
    *auth.__all__,
    *client.__all__,
    *specs.__all__,
    *states.__all__,
]
