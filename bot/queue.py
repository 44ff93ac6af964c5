"""The queues on the one Redis and their retry policies. Jobs carry only JSON (no pickles), so a shared Redis
cannot run code; which jobs exist, and the queueing of them, is bot/jobs.py."""
from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any, Callable, Mapping

import redis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from bot.intake.webhooks import RawJSON

EVENTS_QUEUE = "tfbot-events"
RUNS_QUEUE = "tfbot-runs"
# Notifications: a worker takes one only when no event or run is queued (it lists this queue last).
NOTIFY_QUEUE = "tfbot-notify"
RESULT_TTL_SECONDS = 3600
FAILURE_TTL_SECONDS = 7 * 24 * 3600
# An event job (a webhook, a hand-over, a re-plan) that raises is tried again after each of these waits:
# 8 retries over 74 minutes, so an hour-long GitHub outage loses no merge. The worker's scheduler moves a
# job back to its queue when its wait is over. Only after the last retry is the PR told (bot.lifecycle.events_failed).
EVENT_RETRY_INTERVALS = (15, 60, 180, 600, 900, 900, 900, 900)
# Operators (and tests) may choose other waits: comma-separated seconds, e.g. "1,1" for two quick retries.
RETRY_ENV = "TFBOT_EVENT_RETRY_INTERVALS"
# A notification a receiver refuses (or never answers) is tried again after each of these waits: 5 retries over
# about 10 minutes. After the last, an ERROR line names the receiver and tfbot_notifications_total counts it failed.
NOTIFY_RETRY_INTERVALS = (10, 30, 90, 180, 300)
NOTIFY_RETRY_ENV = "TFBOT_NOTIFY_RETRY_INTERVALS"
log = logging.getLogger(__name__)


class SplicingJSONSerializer:
    """RQ's JSONSerializer, except that a `RawJSON` argument is written as its bytes (one `json.dumps` of the small
    rest, then a splice). What it writes is plain JSON: RQ's JSONSerializer and every worker read it unchanged."""

    # A string no argument holds: a NUL and a per-process random id; JSON writes the NULs as \u0000.
    _MARK = f"\x00tfbot-raw-json-{uuid.uuid4().hex}\x00"
    _MARK_JSON = json.dumps(_MARK).encode()

    @classmethod
    def dumps(cls, obj: Any) -> bytes:
        raws: list[bytes] = []

        def raw(value: Any) -> str:
            if isinstance(value, RawJSON):
                raws.append(value.text)
                return cls._MARK
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

        text = json.dumps(obj, default=raw).encode()
        for body in raws:  # json.dumps meets them in order, and replace() takes the first mark left
            text = text.replace(cls._MARK_JSON, body, 1)
        return text

    @staticmethod
    def loads(data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


def events_queue(connection: redis.Redis) -> Queue:
    """The queue of event jobs; intake writes a delivery's body into its job as received (`RawJSON`)."""
    return Queue(EVENTS_QUEUE, connection=connection, serializer=SplicingJSONSerializer)


def runs_queue(connection: redis.Redis) -> Queue:
    return Queue(RUNS_QUEUE, connection=connection, serializer=JSONSerializer)


def notify_queue(connection: redis.Redis) -> Queue:
    return Queue(NOTIFY_QUEUE, connection=connection, serializer=JSONSerializer)


def retry_intervals(environ: Mapping[str, str] | None = None, variable: str = RETRY_ENV,
                    default: tuple[int, ...] = EVENT_RETRY_INTERVALS) -> tuple[int, ...]:
    """The waits between tries of a job: `variable` (TFBOT_EVENT_RETRY_INTERVALS) if set and valid, else `default`."""
    raw = (os.environ if environ is None else environ).get(variable, "").strip()
    if not raw:
        return default
    try:
        values = tuple(int(v) for v in raw.split(","))
    except ValueError:
        values = ()
    if not values or any(v < 0 or v > 86400 for v in values):
        log.warning("%s=%r is not a list of seconds (0-86400, comma-separated; 0: at once); using %s", variable, raw,
                    ",".join(map(str, default)))
        return default
    return values


def event_retry() -> Retry:
    intervals = retry_intervals()
    return Retry(max=len(intervals), interval=list(intervals))


def notify_retry() -> Retry:
    """A notification's retries: NOTIFY_RETRY_INTERVALS, or TFBOT_NOTIFY_RETRY_INTERVALS."""
    intervals = retry_intervals(variable=NOTIFY_RETRY_ENV, default=NOTIFY_RETRY_INTERVALS)
    return Retry(max=len(intervals), interval=list(intervals))


def function_name(func: Callable[..., Any]) -> str:
    """The dotted name RQ stores for a job function (`bot.jobs.run_project`)."""
    return f"{func.__module__}.{func.__qualname__}"
