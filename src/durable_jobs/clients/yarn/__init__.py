"""YARN: the ResourceManager over its REST API (``/ws/v1/cluster``), and Spark on YARN through spark-submit.

One module per concern:

* :mod:`~durable_jobs.clients.yarn.specs`: what to run (:class:`YarnApplication`,
  :class:`SparkSubmitApplication`), the application id and tag rules;
* :mod:`~durable_jobs.clients.yarn.answers`: the RM's answers, typed, and their decoders;
* :mod:`~durable_jobs.clients.yarn.states`: what an application report means for a job;
* :mod:`~durable_jobs.clients.yarn.config`: the settings of a connection (:class:`YarnConfig`);
* :mod:`~durable_jobs.clients.yarn.resource_manager`: the RM calls, and HA failover among the RMs;
* :mod:`~durable_jobs.clients.yarn.spark_submit`: the spark-submit path;
* :mod:`~durable_jobs.clients.yarn.client`: :class:`YarnClient`, the job contract on top of them.

Each module's ``__all__`` is re-exported here (as :mod:`asyncio` does), so ``from durable_jobs.clients.yarn
import ...`` keeps working; code in this library imports from the modules themselves.
"""

from durable_jobs.clients.yarn import answers, client, config, resource_manager, spark_submit, specs, states
from durable_jobs.clients.yarn.answers import *  # noqa: F403
from durable_jobs.clients.yarn.client import *  # noqa: F403
from durable_jobs.clients.yarn.config import *  # noqa: F403
from durable_jobs.clients.yarn.resource_manager import *  # noqa: F403
from durable_jobs.clients.yarn.spark_submit import *  # noqa: F403
from durable_jobs.clients.yarn.specs import *  # noqa: F403
from durable_jobs.clients.yarn.states import *  # noqa: F403
from durable_jobs.transport.auth import SimpleAuth
from durable_jobs.transport.kerberos import KerberosCredentials

__all__ = [
    *answers.__all__,
    *client.__all__,
    *config.__all__,
    *resource_manager.__all__,
    *spark_submit.__all__,
    *specs.__all__,
    *states.__all__,
    "KerberosCredentials",
    "SimpleAuth",
]
