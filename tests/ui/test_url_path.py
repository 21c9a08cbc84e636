"""The "Durable jobs" view under a URL path: a real api-server with ``[api] base_url = http://127.0.0.1:PORT/airflow``.

Airflow then serves everything under ``/airflow`` (the UI's ``<base href>``, its ``_token`` cookie's path, the
plugins' mounts), and the UI frames the nav entry's ``href`` as given. The tests follow what a browser does:
the UI's page says its base; the nav entry's ``href`` is resolved against it; the view's page is loaded
there; its relative fetches (``api/records``, ``api/endpoints``) are resolved against the page's URL and sent
with the cookie a cookie jar sends to that URL (the UI's login sets ``_token`` at the base path). The harness's
Airflow runs with an empty DAG folder: the API answers no records (the records themselves are tested in
test_view_api.py).
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable_jobs.ui.plugin import page_href
from durable_jobs_harness.airflow_env import AirflowEnv

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]
PATH = "/airflow"


@pytest.fixture(scope="module")
def under_path() -> Iterator[AirflowEnv]:
    dags = Path(tempfile.mkdtemp(prefix="durable-jobs-ui-path-"))
    af = AirflowEnv(dags, url_path=PATH)
    try:
        af.start()
        yield af
    finally:
        print(af.logs_tail(60))  # shown when a test failed
        af.stop()
        shutil.rmtree(dags, ignore_errors=True)


def origin(af: AirflowEnv) -> str:
    return f"http://127.0.0.1:{af.port}"


def fetch(opener: urllib.request.OpenerDirector, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def ui_base(af: AirflowEnv) -> str:
    """The UI's ``<base href>``, as its index page (served at the base URL) gives it."""
    status, html = fetch(urllib.request.build_opener(), f"{af.base_url}/")
    assert status == 200, html[:500]
    found = re.search(r'<base href="([^"]*)"', html)
    assert found, html[:500]
    return found.group(1)


def browser(af: AirflowEnv, cookie_path: str) -> urllib.request.OpenerDirector:
    """A client whose cookie jar holds the UI's ``_token`` at ``cookie_path`` (as the UI's login sets it)."""
    jar = http.cookiejar.CookieJar()
    jar.set_cookie(
        http.cookiejar.Cookie(
            version=0,
            name="_token",
            value=af.api.token(),
            port=None,
            port_specified=False,
            domain="127.0.0.1",
            domain_specified=False,
            domain_initial_dot=False,
            path=cookie_path,
            path_specified=True,
            secure=False,
            expires=None,
            discard=True,
            comment=None,
            comment_url=None,
            rest={"HttpOnly": ""},
        )
    )
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def nav_entry(af: AirflowEnv) -> dict[str, Any]:
    plugins = {p["name"]: p for p in af.api.call("GET", "/api/v2/plugins")["plugins"]}
    (view,) = plugins["durable_jobs_ui"]["external_views"]
    return dict(view)


def test_the_nav_entry_points_under_the_path() -> None:
    assert page_href(None) == page_href("") == page_href("http://host:8080") == "/durable-jobs/"
    assert page_href("http://host:8080/") == "/durable-jobs/"
    assert page_href("https://host/airflow") == page_href("https://host/airflow/") == "/airflow/durable-jobs/"
    assert page_href("https://host/a/b/") == "/a/b/durable-jobs/"


def test_the_page_and_its_api_answer_under_the_path(under_path: AirflowEnv) -> None:
    af = under_path
    base = ui_base(af)
    assert base == f"{PATH}/"
    view = nav_entry(af)
    assert (view["href"], view["url_route"]) == (f"{PATH}/durable-jobs/", "durable-jobs")
    # the UI frames the href resolved against its document (its <base href>)
    page_url = urllib.parse.urljoin(origin(af) + base, view["href"])
    assert page_url == f"{af.base_url}/durable-jobs/"
    client = browser(af, base)
    status, html = fetch(client, page_url)
    assert status == 200 and "<title>Durable jobs</title>" in html
    assert '"api/records?"' in html and '"api/endpoints"' in html  # relative: resolved against the page's URL
    status, body = fetch(client, urllib.parse.urljoin(page_url, "api/records?limit=50&offset=0"))
    assert status == 200, body
    assert json.loads(body) == {"total": 0, "limit": 50, "offset": 0, "records": []}
    status, body = fetch(client, urllib.parse.urljoin(page_url, "api/endpoints"))
    assert (status, json.loads(body)) == (200, {"endpoints": []})


def test_nothing_of_the_view_is_served_outside_the_path(under_path: AirflowEnv) -> None:
    """Why the href carries the path: the api-server mounts the plugin's app under it only, so a frame of
    ``/durable-jobs/`` (the href without the path) shows a 404."""
    af = under_path
    client = browser(af, "/")
    for path in ("/durable-jobs/", "/durable-jobs/api/records"):
        status, body = fetch(client, f"{origin(af)}{path}")
        assert (status, json.loads(body)) == (404, {"detail": "Not Found"})


def test_a_script_reaches_the_api_under_the_path_with_a_bearer_token(under_path: AirflowEnv) -> None:
    af = under_path
    auth = {"Authorization": f"Bearer {af.api.token()}", "Accept": "application/json"}
    status, body = fetch(urllib.request.build_opener(), f"{af.base_url}/durable-jobs/api/records?limit=5", auth)
    assert (status, json.loads(body)["limit"]) == (200, 5)
    status, body = fetch(urllib.request.build_opener(), f"{af.base_url}/durable-jobs/api/records")
    assert status == 401, body
