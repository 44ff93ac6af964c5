"""Case 1, webhook intake: signed `pull_request` deliveries at a given concurrency against `tfbot serve`.

What is measured: the web process alone (gunicorn, Flask, HMAC check, payload validation, de-duplication
and RQ enqueue into the embedded Redis). The workers are paused (SIGSTOP) while the load runs, so they
neither compete for the 2 cores nor empty the queue, and "nothing lost" is checked exactly afterwards: every
delivery id has its `tfbot:delivery:<id>` key and its RQ job, and the queue holds one job per distinct
delivery. One delivery in 100 is a redelivery of an earlier id, which must be answered 200 "duplicate".
The deliveries are `labeled` actions of PRs of a configured repository: intake does the same work for every
action, and a worker routes `labeled` to no handler, so the drain afterwards measures RQ's own cost per job.
(A repository missing from `repos` would not do: intake answers 202 "ignored" before touching Redis.)
The load generator is bench/http_load.py, on the same machine as the server.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from rq.job import Job

from bench.floor import run_floor
from bench.http_load import build_request, run_load
from bench.proctree import TreeSampler
from bench.report import CaseResult
from bench.rig import World, pause_workers, resume
from bench.stats import percentile
from bot.state import keys
from bot.queue import events_queue
from tests.support import webhook_payloads as wp
from tests.support.scenario import INSTALLATION, REPO, SECRET

P99_TARGET_MS = 50.0
IDLE_SETTLE_SECONDS = 2.0  # after /healthz answers: the workers finish importing the job modules
ALONE_P99_TARGET_MS = 5.0
FLOOR_SHARE_TARGET = 0.40  # tfbot's throughput at concurrency 50, as a share of the bare loop's
REDELIVERY_EVERY = 100


def deliveries(count: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """(delivery id, body, headers) for `count` deliveries; every 100th repeats an earlier one's id and body."""
    repo = wp.repository(REPO)
    out: list[tuple[str, bytes, dict[str, str]]] = []
    for i in range(count):
        if i % REDELIVERY_EVERY == REDELIVERY_EVERY - 1:
            out.append(out[i // 2])  # GitHub's redelivery: same id, same body, same signature
            continue
        number = i + 1
        pull = wp.pull_request(repo, number, uuid.uuid4().hex + "00000000", f"change-{number}", "0" * 40)
        payload = wp.pull_request_event("opened", repo, pull, INSTALLATION, "alice")
        payload["action"] = "labeled"
        payload["label"] = {"id": 1, "name": "infra", "color": "ededed", "default": False, "description": None}
        delivery = str(uuid.uuid4())
        body = wp.encode(payload)
        out.append((delivery, body, wp.headers("pull_request", body, SECRET, delivery)))
    return out


def run(world: World, quick: bool) -> tuple[CaseResult, dict[str, Any]]:
    """Case 1; also returns the memory peaks of the serve tree under this load (for case 7)."""
    count, concurrency, warmup, drain_limit = (200, 10, 20, 2.0) if quick else (5000, 50, 200, 10.0)
    serial = 50 if quick else 500
    case = CaseResult("intake", "1 webhook intake")
    scenario = world.scenario("intake", workers=2)
    # The web server as `tfbot serve` runs it by default: one process per core. (The test scenario's default is one
    # process, because the suite starts many servers at once; with it, this case measured one process's GIL.)
    scenario.settings["server"]["processes"] = 0
    scenario.start()
    host, port = "127.0.0.1", scenario.port
    conn = scenario.redis()
    warm = deliveries(warmup)
    load = deliveries(count)
    one_by_one = deliveries(serial)
    warm_requests = [build_request(host, port, "/events", h, b) for _, b, h in warm]
    requests = [build_request(host, port, "/events", h, b) for _, b, h in load]
    serial_requests = [build_request(host, port, "/events", h, b) for _, b, h in one_by_one]
    assert scenario.server is not None and scenario.server.proc is not None
    time.sleep(IDLE_SETTLE_SECONDS)
    idle = TreeSampler(scenario.server.proc.pid)
    idle.sample(with_pss=True)  # the tree at rest: started, healthy, nothing received yet
    with TreeSampler(scenario.server.proc.pid) as sampler:
        paused = pause_workers(scenario)
        try:
            run_load(host, port, warm_requests, concurrency)  # first requests connect to Redis, warm caches
            floor = run_floor(conn, load, SECRET)  # the same deliveries, same run: the machine's floor right now
            cpu = time.thread_time()  # the load generator runs in this thread
            result = run_load(host, port, requests, concurrency)
            client_cpu = time.thread_time() - cpu
            alone = run_load(host, port, serial_requests, 1)  # no queueing: the server's own time per delivery
            lost, queued, distinct = _check_nothing_lost(conn, warm + load + one_by_one)
        finally:
            resume(paused)
        drained, drain_seconds = _drain(conn, queued, drain_limit)
    ok = [a for a in result.answers if a.status in (200, 202)]
    errors = [a for a in result.answers + alone.answers if a.status not in (200, 202)]
    duplicates = sum(1 for a in result.answers if a.status == 200 and b"duplicate" in a.body)
    expected_duplicates = sum(1 for i in range(count) if i % REDELIVERY_EVERY == REDELIVERY_EVERY - 1)
    latencies_ms = [a.latency * 1000 for a in result.answers]
    p50, p99 = percentile(latencies_ms, 50), percentile(latencies_ms, 99)
    label = f"{count:,} deliveries, concurrency {concurrency}"
    rate = len(ok) / result.wall
    case.add("floor: bare loop, HMAC + JSON parse + SET NX and enqueue in one round trip", floor.rate, "req/s",
             note=f"{floor.deliveries:,} deliveries one after another in the bench's process (bench/floor.py)")
    case.add(f"throughput ({label})", rate, "req/s", baseline=floor.rate, baseline_label="floor",
             target=f">= {FLOOR_SHARE_TARGET:.0%} of the floor", met=rate >= FLOOR_SHARE_TARGET * floor.rate)
    case.add("latency p50", p50, "ms")
    case.add("latency p99", p99, "ms", target=f"<= {P99_TARGET_MS:.0f} ms", met=p99 <= P99_TARGET_MS)
    alone_ms = [a.latency * 1000 for a in alone.answers]
    alone_p99 = percentile(alone_ms, 99)
    case.add("latency p50, one at a time (service time)", percentile(alone_ms, 50), "ms",
             note=f"{serial} deliveries at concurrency 1")
    case.add("latency p99, one at a time", alone_p99, "ms", target=f"<= {ALONE_P99_TARGET_MS:.0f} ms",
             met=alone_p99 <= ALONE_P99_TARGET_MS)
    case.add("errors (non-2xx or dropped)", len(errors), "count", target="0", met=not errors)
    case.add("lost (no key or no job in Redis)", lost, "count", target="0", met=lost == 0)
    case.add("redeliveries answered 'duplicate'", duplicates, "count", target=f"{expected_duplicates}",
             met=duplicates == expected_duplicates)
    case.add("worker drain, no-op jobs (2 workers)", drained / drain_seconds if drain_seconds else None, "jobs/s",
             note=f"{drained} jobs in {drain_seconds:.1f} s after the load")
    case.details = {
        "floor": floor.summary(), "throughput_share_of_floor": rate / floor.rate if floor.rate else None,
        "deliveries": count, "concurrency": concurrency, "warmup": warmup, "wall_seconds": result.wall,
        "status_counts": _counts(a.status for a in result.answers),
        "latency_ms": {f"p{p}": percentile(latencies_ms, p) for p in (50, 90, 95, 99, 100)},
        "errors_sample": [a.error or a.body.decode(errors="replace") for a in errors[:5]],
        "distinct_deliveries": distinct, "queued_after_load": queued,
        "popped_by_paused_workers": distinct - queued, "lost": lost, "duplicates": duplicates,
        "drained_jobs": drained, "drain_seconds": drain_seconds,
        "workers_paused_during_load": True,
        "client_cpu_ms_per_request": client_cpu * 1000 / count,
        "one_at_a_time": {"deliveries": serial, "latency_ms": {f"p{p}": percentile(alone_ms, p) for p in (50, 99)},
                          "errors": sum(1 for a in alone.answers if a.status not in (200, 202))},
    }
    world.stop(scenario)
    return case, {"peaks": sampler.peaks, "label": label, "idle": idle.peaks, "workers": 2}


def _check_nothing_lost(conn: Any, sent: list[tuple[str, bytes, dict[str, str]]]) -> tuple[int, int, int]:
    """(distinct deliveries missing their delivery key or their RQ job, jobs waiting in the events queue,
    distinct deliveries).

    A paused worker may hold one job it popped (its BLPOP was already waiting in Redis when it was stopped):
    that job is not in the queue any more, but it exists and is the worker's to run, so it is not lost.
    """
    ids = sorted({d for d, _, _ in sent})
    pipe = conn.pipeline(transaction=False)
    for delivery in ids:
        pipe.exists(keys.delivery(delivery))
        pipe.exists(Job.key_for(f"delivery-{delivery}"))
    found = pipe.execute()
    lost = sum(1 for i in range(len(ids)) if not (found[2 * i] and found[2 * i + 1]))
    return lost, events_queue(conn).count, len(ids)


def _drain(conn: Any, queued: int, limit: float) -> tuple[int, float]:
    """Let the resumed workers take jobs for at most `limit` seconds; (jobs taken, seconds)."""
    queue = events_queue(conn)
    start = time.perf_counter()
    while queue.count and time.perf_counter() - start < limit:
        time.sleep(0.2)
    return queued - queue.count, time.perf_counter() - start


def _counts(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out
