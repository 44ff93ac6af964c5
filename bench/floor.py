"""The machine's floor for webhook intake: a bare in-process loop doing only the per-delivery work that cannot be
avoided, timed in the same run as case 1 so the server's throughput can be read as a fraction of it.

Per delivery, one after another in this thread: HMAC-SHA256 of the body (and the constant-time compare), `json.loads`
of it, then one Redis round trip holding the de-duplication `SET NX` of the delivery id and the enqueue of the same
job tfbot queues (`RQJobs.handle_delivery`: the same function, arguments, retry policy and callback, the body written
as received). No HTTP, no Flask, no validation, no logging, no metrics, and the `SET NX` does not even guard the
enqueue (tfbot's Lua script does, in the same single round trip): a lower bound, not a rival implementation.
It writes to a queue and keys of its own, deleted afterwards, so case 1's loss check is untouched.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from rq import Queue

from bench.stats import percentile
from bot.intake.webhooks import RawJSON
from bot.jobs import RQJobs
from bot.queue import SplicingJSONSerializer

FLOOR_QUEUE = "bench-floor"
_KEY = "bench:floor:delivery:"


@dataclass
class Floor:
    deliveries: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Deliveries per second."""
        return self.deliveries / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {"deliveries": self.deliveries, "seconds": round(self.seconds, 3), "per_second": round(self.rate, 1),
                "latency_ms": {f"p{p}": percentile(self.latencies_ms, p) for p in (50, 99)}}


def run_floor(conn: Any, sent: list[tuple[str, bytes, dict[str, str]]], secret: str) -> Floor:
    """Time the bare loop over `sent` (delivery id, body, headers), then delete what it wrote."""
    jobs = RQJobs(conn, 600)
    jobs.events = Queue(FLOOR_QUEUE, connection=conn, serializer=SplicingJSONSerializer)
    jobs.events.get_redis_server_version()  # asked once per queue object, as in the web process
    key = secret.encode()
    latencies: list[float] = []
    start = time.perf_counter()
    for delivery, body, headers in sent:
        began = time.perf_counter()
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.encode(), headers["X-Hub-Signature-256"].encode()):
            raise RuntimeError("the floor's signature check failed: the bench signs with another secret")
        payload = json.loads(body)
        pipe = conn.pipeline(transaction=False)
        # RQ staged first: it turns the pipeline into MULTI/EXEC, which must start before any command.
        jobs.handle_delivery(f"floor-{delivery}", str(headers["X-GitHub-Event"]), RawJSON.of(body, payload),
                             pipeline=pipe)
        pipe.set(_KEY + delivery, "1", nx=True, ex=3600)
        pipe.execute()
        latencies.append((time.perf_counter() - began) * 1000)
    seconds = time.perf_counter() - start
    _clean(conn, sent)
    return Floor(len(sent), seconds, latencies)


def _clean(conn: Any, sent: list[tuple[str, bytes, dict[str, str]]]) -> None:
    pipe = conn.pipeline(transaction=False)
    for delivery, _, _ in sent:
        pipe.delete(_KEY + delivery, f"rq:job:delivery-floor-{delivery}")
    pipe.delete(f"rq:queue:{FLOOR_QUEUE}")
    pipe.srem("rq:queues", f"rq:queue:{FLOOR_QUEUE}")
    pipe.execute()
