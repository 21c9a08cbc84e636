"""Airflow hooks: turn a connection into a shared client.

One module per system; each reads its connection through the declaration in :mod:`durable_jobs.systems`
(:mod:`durable_jobs.hooks.fields` holds the declaration types, :mod:`durable_jobs.hooks.convert` the
conversions of a connection's text, :mod:`durable_jobs.hooks.validate` the checks made before a client is built).
"""
