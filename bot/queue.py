"""The job queue: RQ on the one Redis. Jobs carry only JSON (no pickles), so a shared Redis cannot run code."""
from __future__ import annotations

from typing import Any

import redis
from rq import Callback, Queue
from rq.serializers import JSONSerializer

EVENTS_QUEUE = "tfbot-events"
RUNS_QUEUE = "tfbot-runs"
# A webhook that waits longer than this in the queue is still processed: GitHub will not resend it.
JOB_TTL_SECONDS = None
RESULT_TTL_SECONDS = 3600
FAILURE_TTL_SECONDS = 7 * 24 * 3600


def events_queue(connection: redis.Redis) -> Queue:
    return Queue(EVENTS_QUEUE, connection=connection, serializer=JSONSerializer)


def runs_queue(connection: redis.Redis) -> Queue:
    return Queue(RUNS_QUEUE, connection=connection, serializer=JSONSerializer)


def enqueue_delivery(queue: Queue, delivery_id: str, event: str, payload: dict[str, Any]) -> str:
    """Queue one verified delivery for a worker; return the job id (the delivery id, for tracing)."""
    job = queue.enqueue_call(
        "bot.jobs.handle_delivery",
        args=(delivery_id, event, payload),
        job_id=f"delivery-{delivery_id}",
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        description=f"{event} delivery {delivery_id}",
        on_failure=Callback("bot.jobs.event_job_failed"),
    )
    return job.id
