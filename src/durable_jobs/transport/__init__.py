"""The HTTP transport shared by every client: one seam, the policy in one place, pooled sessions, auth.

Import from the modules, not from this package (which imports nothing, so that a hook reading
:mod:`~durable_jobs.transport.limits` does not load the HTTP stack onto the triggerer's event loop):

* :mod:`~durable_jobs.transport.base`: the seam (``Transport``, ``Request``, ``Response``, ``Auth``);
* :mod:`~durable_jobs.transport.http`: the policy (``request``: redirects, size limits, redaction),
  ``Endpoint``, pooled aiohttp sessions, ``close_sessions``;
* :mod:`~durable_jobs.transport.default`: the aiohttp transport;
* :mod:`~durable_jobs.transport.auth`, :mod:`~durable_jobs.transport.spnego`,
  :mod:`~durable_jobs.transport.kerberos`: credentials;
* :mod:`~durable_jobs.transport.retry`: the one retry policy (tenacity), its waits in
  :mod:`~durable_jobs.transport.backoff`;
* :mod:`~durable_jobs.transport.limits`: ``DEFAULT_MAX_BODY``.
"""
