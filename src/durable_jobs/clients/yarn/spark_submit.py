"""Spark on YARN through spark-submit: the command, its environment, the runner, and the submission.

spark-submit cannot reserve an application id (it asks for its own), so the protocol's token travels in
``spark.yarn.tags`` and the RM is the authority: whatever spark-submit printed, the application that
carries the tag is ours. The runner kills spark-submit when the worker dies (Linux), so a crashed try
leaves none running that could submit after the retry looked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from durable_jobs.clients.base import Locator
from durable_jobs.clients.yarn.config import YarnConfig
from durable_jobs.clients.yarn.specs import SparkSubmitApplication
from durable_jobs.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

_SUBMITTED_RE = re.compile(r"Submitted application (application_\d+_\d+)")
_SECRET_KEY_RE = re.compile(r"secret|password|token|credential|key", re.IGNORECASE)


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr together; the tail only


CommandRunner = Callable[[Sequence[str], Mapping[str, str], float], Awaitable[CommandResult]]
_OUTPUT_LIMIT = 64 * 1024


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL the child when the worker dies, so a crashed try leaves no spark-submit running."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def run_command(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> CommandResult:
    """Run a command, keep the tail of its output; past ``timeout`` kill it (by its pid) and raise transient."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    tail = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            tail.extend(chunk)
            del tail[:-_OUTPUT_LIMIT]

    try:
        await asyncio.wait_for(asyncio.gather(drain(), proc.wait()), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise TransientError(
            f"{argv[0]} did not finish within {timeout:.0f}s and was killed: "
            + bytes(tail[-2000:]).decode(errors="replace")
        ) from None
    return CommandResult(int(proc.returncode or 0), bytes(tail).decode(errors="replace"))


FindByTag = Callable[[str], Awaitable[Locator | None]]


def spark_submit_argv(config: YarnConfig, spec: SparkSubmitApplication, token: str) -> list[str]:
    kerberos = config.kerberos if config.auth == "kerberos" else None
    return spec.command(
        token,
        spark_submit=config.spark_submit,
        principal=kerberos.principal if kerberos and kerberos.keytab else None,
        keytab=kerberos.keytab if kerberos else None,
    )


def spark_submit_environment(config: YarnConfig) -> dict[str, str]:
    env = {**os.environ, **config.spark_env}
    kerberos = config.kerberos if config.auth == "kerberos" else None
    if kerberos is not None and kerberos.ccache:
        env["KRB5CCNAME"] = kerberos.ccache
    if config.auth == "simple" and config.user:
        env.setdefault("HADOOP_USER_NAME", config.user)
    return env


async def submit_with_spark(
    spec: SparkSubmitApplication, token: str, *, config: YarnConfig, runner: CommandRunner, find_by_tag: FindByTag
) -> Locator:
    """Run spark-submit, then find the application by its tag (also after a timeout: it may have got as far)."""
    argv = spark_submit_argv(config, spec, token)
    log.info("Running %s", " ".join(_redact(argv)))
    try:
        result = await runner(argv, spark_submit_environment(config), config.spark_submit_timeout)
    except OSError as exc:
        raise PermanentError(f"cannot run {argv[0]}: {exc}") from exc
    except TransientError:
        # killed after a timeout: it may have got as far as the RM
        found = await find_by_tag(token)
        if found is not None:
            return found
        raise
    # the RM is the authority: whatever spark-submit printed, the application carrying the tag is ours
    found = await find_by_tag(token)
    if found is not None:
        return found
    tail = result.output[-3000:]
    parsed = _SUBMITTED_RE.findall(result.output)
    if result.returncode != 0:
        raise PermanentError(
            f"spark-submit exited with code {result.returncode}; no application carries tag {token}. Output:\n{tail}"
        )
    raise PermanentError(
        f"spark-submit exited 0{' and reported ' + parsed[-1] if parsed else ''}, but no application on "
        f"{', '.join(config.rm_urls)} carries tag {token}: do spark-submit's HADOOP_CONF_DIR/"
        "YARN_CONF_DIR point at the ResourceManagers of this connection?"
    )


def _redact(argv: Sequence[str]) -> list[str]:
    out = []
    for arg in argv:
        key, sep, _ = arg.partition("=")
        out.append(f"{key}=***" if sep and _SECRET_KEY_RE.search(key) else arg)
    return out


__all__ = [
    "CommandResult",
    "CommandRunner",
    "run_command",
    "spark_submit_argv",
    "spark_submit_environment",
    "submit_with_spark",
]
