"""The view's page: self-contained, and carrying the ids and classes the browser tests find."""

from __future__ import annotations

import re

from durable_jobs.ui.page import PAGE

IDS = (
    "records",
    "filter-dag",
    "filter-system",
    "filter-phase",
    "filter-outcome",
    "prev-page",
    "next-page",
    "page-size",
)


def test_the_page_has_every_id_and_class_the_browser_tests_use() -> None:
    for name in (*IDS, "endpoints", "error"):
        assert f'id="{name}"' in PAGE, name
    for cls in ("cancel-job", "copy-links"):
        assert f'"{cls}"' in PAGE, cls
    assert 'el("tr", null, "record"' in PAGE and "tr.dataset.tiId" in PAGE  # rows tr.record[data-ti-id]


def test_nothing_is_fetched_from_elsewhere() -> None:
    assert not re.search(r"https?://|//cdn|<link |src=", PAGE)
    assert PAGE.count("<script>") == 1 and PAGE.count("<style>") == 1
    # its API is asked relative to the page: /durable-jobs/api/..., under any host
    assert re.findall(r'api\("([^"]+)', PAGE) == ["api/records/", "api/records?", "api/endpoints"]
