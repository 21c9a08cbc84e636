"""Databricks: runs of a workspace over the Jobs API 2.2 (``runs/submit`` and ``run-now``), no Airflow.

One module per concern:

* :mod:`~durable_jobs.clients.databricks.specs`: what to run (:class:`SubmitRunSpec`, :class:`RunNowSpec`),
  the run id rule, the token in a run's name;
* :mod:`~durable_jobs.clients.databricks.answers`: the workspace's answers, typed;
* :mod:`~durable_jobs.clients.databricks.states`: what a run object means for a job;
* :mod:`~durable_jobs.clients.databricks.auth`: OAuth M2M (:class:`OAuthM2MAuth`); a personal access token
  is a :class:`~durable_jobs.transport.auth.BearerAuth`;
* :mod:`~durable_jobs.clients.databricks.workspace`: the Jobs API calls and what their errors mean;
* :mod:`~durable_jobs.clients.databricks.client`: :class:`DatabricksClient`, the job contract on top of them.

Each module's ``__all__`` is re-exported here, so ``from durable_jobs.clients.databricks import ...`` works;
code in this library imports from the modules themselves.
"""

from durable_jobs.clients.databricks import answers, auth, client, specs, states, workspace
from durable_jobs.clients.databricks.answers import *  # noqa: F403
from durable_jobs.clients.databricks.auth import *  # noqa: F403
from durable_jobs.clients.databricks.client import *  # noqa: F403
from durable_jobs.clients.databricks.specs import *  # noqa: F403
from durable_jobs.clients.databricks.states import *  # noqa: F403
from durable_jobs.clients.databricks.workspace import *  # noqa: F403
from durable_jobs.transport.auth import BearerAuth

__all__ = [
    *answers.__all__,
    *auth.__all__,
    *client.__all__,
    *specs.__all__,
    *states.__all__,
    *workspace.__all__,
    "BearerAuth",
]
