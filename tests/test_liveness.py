"""The run heartbeat and the reaper, against a real Redis and real RQ registries."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from rq import Queue
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from bot import keys, liveness


def started_job(conn, started_ago: float):
    queue = Queue("tfbot-runs", connection=conn, serializer=JSONSerializer)
    job = queue.enqueue_call("bot.jobs.run_project", args=("cmd", {"name": "net"}))
    job.started_at = datetime.fromtimestamp(time.time() - started_ago, timezone.utc)
    job.save()
    # What RQ 3 writes when a worker starts a job: `<job id>:<execution id>` scored by its expiry.
    registry = StartedJobRegistry("tfbot-runs", connection=conn, serializer=JSONSerializer)
    conn.zadd(registry.key, {f"{job.id}:exec-1": time.time() + 600})
    return job


def test_a_run_without_heartbeat_is_reported_once(redis_conn):
    reported = []
    job = started_job(redis_conn, started_ago=120)
    assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append((j.id, why))) == 1
    assert reported[0][0] == job.id and "no heartbeat" in reported[0][1]
    assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append(j.id)) == 0


def test_a_beating_or_young_run_is_left_alone(redis_conn):
    reported = []
    beating = started_job(redis_conn, started_ago=120)
    young = started_job(redis_conn, started_ago=1)
    with liveness.heartbeat(redis_conn, beating.id):
        time.sleep(0.2)
        assert redis_conn.exists(keys.run_alive(beating.id))
        assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append(j.id)) == 0
    assert not redis_conn.exists(keys.run_alive(beating.id))  # a finished run stops beating
    assert young.id not in reported and reported == []
