"""The Airflow plugin of the "Durable jobs" view: a FastAPI app for the api-server and an entry in the UI's nav.

Registered through the ``airflow.plugins`` entry point ``durable_jobs_ui`` (pyproject.toml), as the reaper's
plugin is: Airflow always loads entry-point plugins, while the ``plugins`` of provider info are skipped under
the default ``[core] lazy_discover_providers = True``.

Why these two kinds (docs/ui.md): Airflow 3.3's UI is a React app served by the api-server, and a plugin
extends it with ``fastapi_apps`` (mounted under their ``url_prefix`` by the api-server, behind its own
middlewares and auth), ``external_views`` (a link, or with ``url_route`` a page shown inside the UI's frame)
and ``react_apps`` (a JavaScript bundle loaded into the UI). A React app needs a bundle built against the
UI's React and shared libraries, a JavaScript toolchain in this repo, and is tied to the UI's version; the
external view shows our own page in the UI's frame, same origin, so the UI's ``_token`` cookie authenticates
its requests to our app, with nothing built.

Every Airflow process imports plugins (workers, triggerers, the scheduler), so this module imports nothing
heavy: the app is built (FastAPI, the ORM models) on the api-server's first request only.

Under a URL path (``[api] base_url = https://host/airflow``) the api-server serves everything, our mount
included, under that path, and the UI's ``_token`` cookie is scoped to it; the UI frames the nav entry's
``href`` as given. So the ``href`` carries the path (:func:`page_href`), or the frame would load a page outside
Airflow whose requests carry no cookie (docs/ui.md, "Under a URL path").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/durable-jobs"
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def page_href(base_url: str | None) -> str:
    """The page's URL path under the api-server's ``[api] base_url``: its path (as Airflow's own
    ``API_ROOT_PATH`` takes it), then ``durable-jobs/``."""
    root = urlsplit(base_url or "").path.rstrip("/")
    return f"{root}{URL_PREFIX}/"


class LazyApp:
    """An ASGI app that builds :func:`durable_jobs.ui.app.create_app` on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if self._app is None:
            from durable_jobs.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "durable_jobs.ui.app:create_app"


class DurableJobsPlugin(AirflowPlugin):  # type: ignore[misc]
    """Every job this library tracks, its generations and its endpoints, in Airflow's UI (see docs/ui.md)."""

    name = "durable_jobs_ui"
    fastapi_apps = [{"name": "durable_jobs_ui", "app": LazyApp(), "url_prefix": URL_PREFIX}]
    external_views = [
        {
            "name": "Durable jobs",
            "href": page_href(conf.get("api", "base_url", fallback="")),
            "destination": "nav",
            "url_route": "durable-jobs",
            "category": "browse",
        }
    ]
