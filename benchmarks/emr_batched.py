"""How many AWS requests does watching N EMR steps (or Serverless runs) cost per poll interval?

Runs the real poller and EMR clients against moto in this process (``ThreadedMotoServer`` on 127.0.0.1):
N ``wait_for_outcome`` waiters, as N deferred tasks in one triggerer would, watch N active steps on one
cluster (or N runs on one EMR Serverless application). moto pages ``ListSteps`` at 50 like AWS. For each N
it counts the requests the server received per poller tick, then finishes every job and counts the
requests until every waiter has its outcome. The baseline is what per-job polling costs (one
``DescribeStep``/``GetJobRun`` per job per interval, as the amazon provider's triggers do).

    python benchmarks/emr_batched.py            # prints a table, writes build/bench/emr_batched.json
    python benchmarks/emr_batched.py --sizes 10 500 --ticks 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from durable_jobs.clients.emr import EmrStepClient  # noqa: E402
from durable_jobs.clients.emr.serverless import EmrServerlessClient, EmrServerlessJob  # noqa: E402
from durable_jobs.polling import PollSettings, wait_for_outcome  # noqa: E402
from durable_jobs.record import make_token  # noqa: E402
from durable_jobs.transport.http import close_sessions  # noqa: E402
from durable_jobs_harness.moto_emr import ROLE_ARN, MotoEmr  # noqa: E402


async def watch(
    moto: MotoEmr, client: Any, locators: list[dict[str, str]], finish: Any, service: str, ticks: int, interval: float
) -> dict[str, Any]:
    """Watch ``locators`` for ``ticks`` poller ticks, then finish them all; count the requests."""
    per_tick: list[int] = []
    tick_seconds: list[float] = []
    enough = asyncio.Event()
    original = client.statuses

    async def counting(locs: Any) -> Any:
        before, started = len(moto.requests), time.perf_counter()
        out = await original(locs)
        per_tick.append(len(moto.requests) - before)
        tick_seconds.append(time.perf_counter() - started)
        if len(per_tick) >= ticks:
            enough.set()
        return out

    client.statuses = counting
    settings = PollSettings(interval=interval)
    waits = [asyncio.create_task(wait_for_outcome(client, loc, settings)) for loc in locators]
    await asyncio.wait_for(enough.wait(), 120)
    steady = list(per_tick[:ticks])
    by_action: dict[str, int] = {}
    for svc, action in moto.requests:
        if svc == service:
            by_action[action] = by_action.get(action, 0) + 1
    before, started = len(moto.requests), time.monotonic()
    finish()
    results = await asyncio.wait_for(asyncio.gather(*waits), 300)
    assert {r.status for r in results} == {"succeeded"}, {r.status for r in results}
    client.statuses = original
    return {
        "watched": len(locators),
        "requests_per_tick": steady,
        "requests_by_action_while_watching": by_action,
        "seconds_per_tick_max": round(max(tick_seconds[:ticks]), 4),
        "requests_to_collect_all_outcomes": len(moto.requests) - before,
        "seconds_to_collect_all_outcomes": round(time.monotonic() - started, 3),
    }


async def steps_scenario(moto: MotoEmr, n: int, ticks: int, interval: float) -> dict[str, Any]:
    moto.reset()
    cid = moto.create_cluster()
    added = moto.cluster(cid).add_steps(
        [{"name": f"bench-{i}", "hadoop_jar_step": {"Jar": "command-runner.jar"}} for i in range(n)]
    )
    locators = [{"cluster_id": cid, "step_id": s.id} for s in added]

    def finish() -> None:
        for step in moto.steps(cid):
            step.state = "COMPLETED"

    client = EmrStepClient(moto.config())
    try:
        out = await watch(moto, client, locators, finish, "emr", ticks, interval)
    finally:
        await close_sessions()
    out["per_job_polling_requests_per_tick"] = n  # one DescribeStep per watched step
    out["expected_list_steps_per_tick"] = math.ceil(n / 50) if n > 10 else 1
    return out


async def serverless_scenario(moto: MotoEmr, n: int, ticks: int, interval: float) -> dict[str, Any]:
    moto.reset()
    app = moto.create_application()
    client = EmrServerlessClient(moto.config())
    try:
        spec = EmrServerlessJob(
            application_id=app,
            execution_role_arn=ROLE_ARN,
            job_driver={"sparkSubmit": {"entryPoint": "s3://b/x.py"}},
            name="bench",
        )
        locators = [await client.submit(spec, make_token("bench", "run", "t", i, 0)) for i in range(n)]
        for run in moto.serverless_runs(app):
            run.state = "RUNNING"  # moto starts runs finished
        moto.requests.clear()

        def finish() -> None:
            for run in moto.serverless_runs(app):
                run.state = "SUCCESS"

        out = await watch(moto, client, locators, finish, "emr-serverless", ticks, interval)
    finally:
        await close_sessions()
    out["per_job_polling_requests_per_tick"] = n  # one GetJobRun per watched run
    return out


async def main(sizes: list[int], ticks: int, interval: float) -> dict[str, Any]:
    moto = MotoEmr().start()
    try:
        report: dict[str, Any] = {"interval_s": interval, "ticks": ticks, "emr_steps": [], "emr_serverless": []}
        for n in sizes:
            report["emr_steps"].append(await steps_scenario(moto, n, ticks, interval))
            report["emr_serverless"].append(await serverless_scenario(moto, n, ticks, interval))
        return report
    finally:
        moto.stop()


def print_table(report: dict[str, Any]) -> None:
    print(f"{'what':<16}{'watched':>8}{'requests/tick':>15}{'per-job polling':>17}{'to collect all':>16}{'s':>8}")
    for kind in ("emr_steps", "emr_serverless"):
        for row in report[kind]:
            ticks = row["requests_per_tick"]
            print(
                f"{kind:<16}{row['watched']:>8}{max(ticks):>15}{row['per_job_polling_requests_per_tick']:>17}"
                f"{row['requests_to_collect_all_outcomes']:>16}{row['seconds_to_collect_all_outcomes']:>8}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50, 500])
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--out", default=str(ROOT / "build" / "bench" / "emr_batched.json"))
    args = parser.parse_args()
    result = asyncio.run(main(args.sizes, args.ticks, args.interval))
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
