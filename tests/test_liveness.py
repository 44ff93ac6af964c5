"""The run heartbeat and the reaper, against a real Redis and real RQ registries."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from bot.jobs import apply_drift, beats, is_run, run_project
from bot.state import keys
from bot.state import liveness


def started_job(conn, started_ago: float, func=run_project, args=("cmd", {"name": "net"})):
    queue = Queue("tfbot-runs", connection=conn, serializer=JSONSerializer)
    job = queue.enqueue_call(func, args=args)
    job.started_at = datetime.fromtimestamp(time.time() - started_ago, timezone.utc)
    job.save()
    # What RQ 3 writes when a worker starts a job: `<job id>:<execution id>` scored by its expiry.
    registry = StartedJobRegistry("tfbot-runs", connection=conn, serializer=JSONSerializer)
    conn.zadd(registry.key, {f"{job.id}:exec-1": time.time() + 600})
    return job


def test_a_run_without_heartbeat_is_reported_once(redis_conn):
    reported = []
    job = started_job(redis_conn, started_ago=120)
    assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append((j.id, why)), is_run) == 1
    assert reported[0][0] == job.id and "no heartbeat" in reported[0][1]
    assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append(j.id), is_run) == 0


def test_a_drift_apply_without_heartbeat_is_reported_as_a_run_is(redis_conn):
    reported = []
    job = started_job(redis_conn, started_ago=120, func=apply_drift,
                      args=("acme/infra", 99, 12, "alice", "https://github.com/acme/infra/issues/12#c1"))
    assert not is_run(job) and beats(job)
    assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append(j.id), beats) == 1
    assert reported == [job.id]


def test_a_dead_drift_apply_is_reported_once_whichever_path_finds_it(redis_conn):
    from bot.jobs import queue_interrupted_report

    job = started_job(redis_conn, started_ago=120, func=apply_drift,
                      args=("acme/infra", 99, 12, "alice", "https://github.com/acme/infra/issues/12#c1"))
    events = Queue("tfbot-events", connection=redis_conn, serializer=JSONSerializer)
    queue_interrupted_report(redis_conn, job, "its worker stopped (no heartbeat)")  # the reaper
    queue_interrupted_report(redis_conn, job, "its worker stopped without finishing it")  # RQ's clean-up
    assert [j.func_name for j in events.get_jobs()] == ["bot.jobs.report_drift_interrupted"]


def test_a_beating_or_young_run_is_left_alone(redis_conn):
    reported = []
    beating = started_job(redis_conn, started_ago=120)
    young = started_job(redis_conn, started_ago=1)
    with liveness.heartbeat(redis_conn, beating.id):
        time.sleep(0.2)
        assert redis_conn.exists(keys.run_alive(beating.id))
        assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append(j.id), is_run) == 0
    assert not redis_conn.exists(keys.run_alive(beating.id))  # a finished run stops beating
    assert young.id not in reported and reported == []


# --- death is confirmed before a run is reported -------------------------------------------------------------


def taken_by(conn, job, worker_name: str, hostname: str | None, pid: int) -> None:
    """Record, as RQ does, that `worker_name` took `job`, and register that worker if `hostname` is given."""
    job.worker_name = worker_name
    job.save()
    if hostname is not None:
        conn.hset(f"rq:worker:{worker_name}", mapping={"hostname": hostname, "pid": str(pid)})
        conn.expire(f"rq:worker:{worker_name}", 95)


def dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_stalled_run_whose_worker_lives_is_not_reported(redis_conn):
    import os

    reported = []
    here = started_job(redis_conn, started_ago=120)
    taken_by(redis_conn, here, "w-here", "this-host", os.getpid())  # alive on this host
    elsewhere = started_job(redis_conn, started_ago=120)
    taken_by(redis_conn, elsewhere, "w-there", "other-host", dead_pid())  # a pid elsewhere says nothing here
    assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append(j.id), is_run,
                              this_host="this-host") == 0
    assert reported == []
    # The stalled run beats again later and finishes: nothing was ever claimed for it.
    assert not redis_conn.exists(keys.run_reaped(here.id))


def test_a_run_is_reported_once_its_worker_is_confirmed_dead(redis_conn):
    reported = []
    gone_here = started_job(redis_conn, started_ago=120)
    taken_by(redis_conn, gone_here, "w-dead", "this-host", dead_pid())
    expired = started_job(redis_conn, started_ago=120)
    taken_by(redis_conn, expired, "w-expired", None, 0)  # its registration expired (no heartbeat of the worker)
    assert liveness.reap_once(redis_conn, "tfbot-runs", lambda c, j, why: reported.append((j.id, why)), is_run,
                              this_host="this-host") == 2
    why = dict(reported)
    assert "pid" in why[gone_here.id] and "gone" in why[gone_here.id]
    assert "registration expired" in why[expired.id]


def test_death_verdict_is_pure():
    assert liveness.death_verdict(None, "h") == "its worker's registration expired"
    assert liveness.death_verdict({"hostname": "h", "pid": "7"}, "h", alive=lambda pid: True) is None
    assert "pid 7" in liveness.death_verdict({"hostname": "h", "pid": "7"}, "h", alive=lambda pid: False)
    assert liveness.death_verdict({"hostname": "other", "pid": "7"}, "h", alive=lambda pid: False) is None


@pytest.mark.io
def test_a_zombie_is_dead_and_this_process_is_alive():
    import os
    import subprocess

    proc = subprocess.Popen(["true"])
    time.sleep(0.2)  # exited, not yet waited for: a zombie
    try:
        assert not liveness.pid_alive(proc.pid)
    finally:
        proc.wait()
    assert liveness.pid_alive(os.getpid())
