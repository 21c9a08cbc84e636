"""The workspace's answers, typed: the :mod:`msgspec` schemas of every answer read, and their decoders.

Only the fields read are declared. A wrong type, a truncated, empty, HTML or oversized body is *malformed*:
unknown for what it concerns, never lost, failed or permanent (docs/bad-answers.md). A run id is an int,
0 < id < 2**63: ``"123"`` is malformed. A ``runs/list`` page is read entry by entry, so one entry that
cannot be read touches its own run only (or, when even its id cannot be read, makes the listing
incomplete: nothing absent from it may then be called lost).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from durable_jobs.clients.databricks.specs import MAX_RUN_ID
from durable_jobs.clients.listing import EntryReader, Listing, decode_or_none, listed_twice
from durable_jobs.decoding import decode_json
from durable_jobs.errors import MalformedAnswer
from durable_jobs.transport.oauth import OAuthError, TokenAnswer, oauth_error_of

RunId = Annotated[int, msgspec.Meta(gt=0, le=MAX_RUN_ID - 1)]


class ErrorAnswer(msgspec.Struct, gc=False):
    """``{"error_code": "...", "message": "..."}``: every error of the REST API."""

    error_code: str
    message: str = ""


class RunState(msgspec.Struct, gc=False):
    """``state`` (all API versions; deprecated in 2.2 in favour of ``status``)."""

    life_cycle_state: str | None = None
    result_state: str | None = None
    state_message: str | None = None
    user_cancelled_or_timedout: bool | None = None


class TerminationDetails(msgspec.Struct, gc=False):
    code: str | None = None
    type: str | None = None
    message: str | None = None


class RunStatusInfo(msgspec.Struct, gc=False):
    """``status`` (newer workspaces): ``state`` and, once terminated, ``termination_details``."""

    state: str | None = None
    termination_details: TerminationDetails | None = None


class TaskRun(msgspec.Struct, gc=False):
    """One task of a multi-task run."""

    task_key: str = ""
    run_id: int | None = None
    state: RunState | None = None
    status: RunStatusInfo | None = None
    run_page_url: str | None = None


class Run(msgspec.Struct, gc=False):
    """A run, from ``runs/get`` or an entry of ``runs/list``."""

    run_id: RunId
    run_name: str | None = None
    run_type: str | None = None
    job_id: int | None = None
    state: RunState | None = None
    status: RunStatusInfo | None = None
    start_time: int | None = None
    end_time: int | None = None
    run_page_url: str | None = None
    tasks: list[TaskRun] | None = None


class Submitted(msgspec.Struct, gc=False):
    """The answer of ``runs/submit`` and ``run-now``."""

    run_id: RunId
    number_in_job: int | None = None


class _RunsPage(msgspec.Struct, gc=False):
    runs: list[msgspec.Raw] | None = None  # absent when there are none
    has_more: bool = False
    next_page_token: str | None = None


class _RunIdOnly(msgspec.Struct, gc=False):
    run_id: RunId


class JobSettings(msgspec.Struct, gc=False):
    name: str | None = None


class Job(msgspec.Struct, gc=False):
    job_id: RunId
    settings: JobSettings | None = None


class JobsPage(msgspec.Struct, gc=False):
    jobs: list[Job] | None = None
    has_more: bool = False
    next_page_token: str | None = None


def error_of(body: bytes) -> ErrorAnswer | None:
    """The ``{"error_code", "message"}`` of an error body, or None when the body is not one."""
    return decode_or_none(body, ErrorAnswer)


def decode_run(body: bytes, run_id: int, *, what: str) -> Run:
    """``runs/get`` about ``run_id``; an answer about another run is malformed."""
    run = decode_json(body, Run, what=what)
    if run.run_id != run_id:
        raise MalformedAnswer(f"{what}: the answer is about run {run.run_id}, not {run_id}")
    return run


class RunsListing(Listing[int, Run]):
    """``runs/list`` pages, entry by entry (:class:`~durable_jobs.clients.listing.Listing`)."""

    __slots__ = ()
    READER = EntryReader(
        entry=msgspec.json.Decoder(Run),
        key=lambda run: run.run_id,
        key_of_raw=lambda raw: msgspec.json.decode(raw, type=_RunIdOnly).run_id,
        name=lambda run_id: f"run {run_id}",
        problem=listed_twice(lambda a, b: (a.state, a.status) == (b.state, b.status)),
    )

    @property
    def runs(self) -> dict[int, Run]:
        return self.found


def decode_runs_page(body: bytes, *, what: str) -> tuple[list[msgspec.Raw], str | None]:
    """One ``runs/list`` page: its raw entries, and the next page's token (None at the end).

    ``has_more`` without a ``next_page_token`` is malformed: the rest of the listing cannot be read.
    """
    page = decode_json(body, _RunsPage, what=what)
    if page.has_more and not page.next_page_token:
        raise MalformedAnswer(f"{what}: has_more without a next_page_token")
    return page.runs or [], page.next_page_token if page.has_more else None


__all__ = [
    "ErrorAnswer",
    "Job",
    "JobSettings",
    "JobsPage",
    "OAuthError",
    "Run",
    "RunId",
    "RunState",
    "RunStatusInfo",
    "RunsListing",
    "Submitted",
    "TaskRun",
    "TerminationDetails",
    "TokenAnswer",
    "decode_run",
    "decode_runs_page",
    "error_of",
    "oauth_error_of",
]
