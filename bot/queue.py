"""The job queue: RQ on the one Redis. Jobs carry only JSON (no pickles), so a shared Redis cannot run code."""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import redis
from rq import Callback, Queue, Retry
from rq.serializers import JSONSerializer

EVENTS_QUEUE = "tfbot-events"
RUNS_QUEUE = "tfbot-runs"
# A webhook that waits longer than this in the queue is still processed: GitHub will not resend it.
JOB_TTL_SECONDS = None
RESULT_TTL_SECONDS = 3600
FAILURE_TTL_SECONDS = 7 * 24 * 3600
# An event job (a webhook, a hand-over, a re-plan) that raises is tried again after each of these waits:
# 8 retries over 74 minutes, so an hour-long GitHub outage loses no merge. The worker's scheduler moves a
# job back to its queue when its wait is over. Only after the last retry is the PR told (bot.lifecycle.events_failed).
EVENT_RETRY_INTERVALS = (15, 60, 180, 600, 900, 900, 900, 900)
# Operators (and tests) may choose other waits: comma-separated seconds, e.g. "1,1" for two quick retries.
RETRY_ENV = "TFBOT_EVENT_RETRY_INTERVALS"
log = logging.getLogger(__name__)


def events_queue(connection: redis.Redis) -> Queue:
    return Queue(EVENTS_QUEUE, connection=connection, serializer=JSONSerializer)


def runs_queue(connection: redis.Redis) -> Queue:
    return Queue(RUNS_QUEUE, connection=connection, serializer=JSONSerializer)


def retry_intervals(environ: Mapping[str, str] | None = None) -> tuple[int, ...]:
    """The waits between tries of an event job: TFBOT_EVENT_RETRY_INTERVALS if set and valid, else the default."""
    raw = (os.environ if environ is None else environ).get(RETRY_ENV, "").strip()
    if not raw:
        return EVENT_RETRY_INTERVALS
    try:
        values = tuple(int(v) for v in raw.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 0 or v > 86400 for v in values):
        log.warning("%s=%r is not a list of seconds (0-86400, comma-separated; 0: at once); using %s", RETRY_ENV, raw,
                    ",".join(map(str, EVENT_RETRY_INTERVALS)))
        return EVENT_RETRY_INTERVALS
    return values


def event_retry() -> Retry:
    intervals = retry_intervals()
    return Retry(max=len(intervals), interval=list(intervals))


def enqueue_event(queue: Queue, func: str, args: Sequence[Any], description: str, *, job_id: str | None = None,
                  report_failure: bool = True) -> str:
    """Queue an event job (`bot.jobs.*` on the events queue) with the retry policy; return the job id.

    `report_failure`: when the last retry fails, `bot.jobs.event_job_failed` tells the PR what to do.
    """
    job = queue.enqueue_call(
        func,
        args=tuple(args),
        job_id=job_id,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        description=description,
        retry=event_retry(),
        on_failure=Callback("bot.jobs.event_job_failed") if report_failure else None,
    )
    return job.id


def enqueue_delivery(queue: Queue, delivery_id: str, event: str, payload: dict[str, Any]) -> str:
    """Queue one verified delivery for a worker; return the job id (the delivery id, for tracing)."""
    return enqueue_event(queue, "bot.jobs.handle_delivery", (delivery_id, event, payload),
                         f"{event} delivery {delivery_id}", job_id=f"delivery-{delivery_id}")


def queue_report(queue: Queue, command_id: str) -> None:
    """Report a completed command in a job of its own, retried with backoff while GitHub is unreachable."""
    queue.enqueue_call(
        "bot.jobs.report_command", args=(command_id,), retry=Retry(max=5, interval=[5, 15, 60, 180, 600]),
        result_ttl=RESULT_TTL_SECONDS, failure_ttl=FAILURE_TTL_SECONDS, description=f"report command {command_id}",
    )
