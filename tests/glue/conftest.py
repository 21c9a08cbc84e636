"""The Glue tests' moto: the shared moto server of the EMR tests, with Glue's gaps closed (moto_glue)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from durable_jobs_harness.moto_emr import MotoEmr, moto, moto_server  # noqa: F401
from durable_jobs_harness.moto_glue import GlueMoto, like_aws


@pytest.fixture
def glue(moto: MotoEmr) -> Iterator[GlueMoto]:  # noqa: F811
    with like_aws():
        yield GlueMoto(moto)
