"""Spark standalone: drivers run in cluster mode over the master's REST submission server.

One module per concern:

* :mod:`~durable_jobs.clients.spark_standalone.specs`: what to run (:class:`SparkApplication`), its
  request body, the driver id rule;
* :mod:`~durable_jobs.clients.spark_standalone.config`: the settings of a connection
  (:class:`SparkStandaloneConfig`);
* :mod:`~durable_jobs.clients.spark_standalone.answers`: the master's answers, typed, and what a driver
  state means;
* :mod:`~durable_jobs.clients.spark_standalone.listing`: reading the master's ``/json/``, in slices;
* :mod:`~durable_jobs.clients.spark_standalone.find`: finding a crashed try's driver by its token;
* :mod:`~durable_jobs.clients.spark_standalone.client`: :class:`SparkStandaloneClient`, the job contract on
  top of them (the module the hook imports off the event loop).

The public names are re-exported here, so ``from durable_jobs.clients.spark_standalone import ...`` keeps
working; code in this library imports from the modules themselves. A test or benchmark that patches a name
patches the module that reads it (``listing.LISTING_SLICE``, ``listing._wall_clock``), never this package.
"""

from durable_jobs.clients.spark_standalone.client import SparkStandaloneClient
from durable_jobs.clients.spark_standalone.config import SparkStandaloneConfig
from durable_jobs.clients.spark_standalone.find import FIND_WINDOW_MARGIN
from durable_jobs.clients.spark_standalone.specs import (
    CLIENT_SPARK_VERSION,
    DRIVER_ID_RE,
    PYTHON_RUNNER,
    SYSTEM,
    TOKEN_PROPERTY,
    SparkApplication,
    validate_driver_id,
)

__all__ = [
    "CLIENT_SPARK_VERSION",
    "DRIVER_ID_RE",
    "FIND_WINDOW_MARGIN",
    "PYTHON_RUNNER",
    "SYSTEM",
    "TOKEN_PROPERTY",
    "SparkApplication",
    "SparkStandaloneClient",
    "SparkStandaloneConfig",
    "validate_driver_id",
]
