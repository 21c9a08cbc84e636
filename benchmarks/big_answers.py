"""What a huge or hostile answer costs the triggerer: memory, the longest event-loop block, what reaches an event.

    python benchmarks/big_answers.py            # prints a table, writes build/bench/big_answers.json

Issue 11 measured, before the transport policy: a 50 MB body cost about 150 MB of RSS and blocked the loop
for up to 1 s, and a 50 MB status message went whole into the trigger event and the log. Here a server in
another process (127.0.0.1) sends those answers, and this process, with the default connection settings,
measures:

* ``body_50mb``: one GET of a 50 MB JSON body sent chunked, without a Content-Length (so it cannot be refused
  before reading; ``max_response_bytes`` default 16 MiB): RSS growth (VmHWM delta) and the longest loop block
  (a probe task sampling every 5 ms);
* ``message_12mb``: a Spark status whose ``message`` is 12 MB (under the body limit): the size of the trigger
  event's JSON;
* ``json_200kb_nesting``: a body nested 100,000 deep: what the decoder raises, and the loop block.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from loop_probe import LoopProbe, ms, print_rows, write_report  # noqa: E402

OUT = ROOT / "build" / "bench" / "big_answers.json"
SIZE = 50 * 1024 * 1024
MESSAGE = 12 * 1024 * 1024  # under the default 16 MiB body limit: the message itself must be cut
TAIL = 0.02  # the probe runs this long after the call: a block at its very end is seen too


def serve(port: int, ready: Any) -> None:
    from aiohttp import web

    big = b'{"success": true, "pad": "' + b"x" * SIZE + b'"}'
    chatty = json.dumps(
        {"action": "SubmissionStatusResponse", "success": True, "driverState": "ERROR", "message": "m" * MESSAGE}
    ).encode()
    nested = b'{"success": true, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    async def body(req: web.Request) -> web.StreamResponse:
        # chunked, no Content-Length: the client cannot refuse it before reading
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        try:
            for i in range(0, len(big), 1 << 20):
                await resp.write(big[i : i + (1 << 20)])
        except ConnectionError:
            pass  # the client gave up at its limit: what is measured
        return resp

    async def message(req: web.Request) -> web.Response:
        return web.Response(body=chatty, content_type="application/json")

    async def deep(req: web.Request) -> web.Response:
        return web.Response(body=nested, content_type="application/json")

    app = web.Application(client_max_size=1024)
    app.router.add_get("/big", body)
    app.router.add_get("/v1/submissions/status/{id}", message)
    app.router.add_get("/deep", deep)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def hwm_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


async def measure_all(port: int) -> dict[str, Any]:
    from durable_jobs.clients.spark_standalone import SparkStandaloneClient, SparkStandaloneConfig
    from durable_jobs.errors import DurableJobError
    from durable_jobs.status import JobStatus
    from durable_jobs.transport.http import Endpoint, close_sessions, request

    url = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    await request(Endpoint(url), "GET", "/deep", what="warm-up")  # the session and its connection exist
    before = hwm_kb()
    # the probe starts with the call (its first turn is the call's first wait) and runs 20 ms after it
    async with LoopProbe() as probe, probe.measuring("body", lead=0, tail=TAIL):
        t0 = time.perf_counter()
        try:
            await request(Endpoint(url), "GET", "/big", what="50 MB body")
            outcome = "read whole"
        except DurableJobError as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:120]}"
        took = time.perf_counter() - t0
    out["body_50mb"] = {
        "outcome": outcome,
        "rss_growth_mb": round((hwm_kb() - before) / 1024, 1),
        "max_loop_block_ms": ms(probe.worst()),
        "seconds": round(took, 3),
    }

    client = SparkStandaloneClient(SparkStandaloneConfig(rest_urls=(url,), ui_urls=()))
    async with LoopProbe() as probe, probe.measuring("message", lead=0, tail=TAIL):
        try:
            st: JobStatus = await client.status({"driver_id": "driver-20261121100236-0001"})
            event = json.dumps(st.to_json())
            result = {"event_json_bytes": len(event), "message_chars": len(st.message)}
        except DurableJobError as exc:
            result = {"outcome": f"{type(exc).__name__}: {str(exc)[:120]}", "event_json_bytes": 0}
    out["message_12mb"] = {**result, "max_loop_block_ms": ms(probe.worst())}

    from durable_jobs.decoding import decode_json

    resp = await request(Endpoint(url), "GET", "/deep", what="deep")
    async with LoopProbe() as probe, probe.measuring("deep", lead=0, tail=TAIL):
        try:
            decode_json(resp.body, dict[str, Any], what="deep")
            deep_outcome = "decoded"
        except DurableJobError as exc:
            deep_outcome = type(exc).__name__
    out["json_100k_nesting"] = {"outcome": deep_outcome, "max_loop_block_ms": ms(probe.worst())}
    await close_sessions()
    return out


def main() -> None:
    from durable_jobs_harness.spark_cluster import free_port

    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(60):
            raise SystemExit("the answer server did not start")
        result = asyncio.run(measure_all(port))
    finally:
        server.terminate()  # our own child, by its PID
        server.join(10)
    print_rows(
        [("answer", "<22"), ("outcome", "<60"), ("RSS MB", ">7"), ("block ms", ">9"), ("event B", ">8")],
        [
            (
                name,
                str(row.get("outcome", "status read"))[:60],
                row.get("rss_growth_mb", ""),
                row["max_loop_block_ms"],
                row.get("event_json_bytes", ""),
            )
            for name, row in result.items()
        ],
    )
    write_report(OUT, result)


if __name__ == "__main__":
    main()
