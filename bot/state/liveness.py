"""A run's heartbeat, and the reaper that notices runs whose worker died with them.

RQ finds an abandoned job only 60 s after its last heartbeat, and only during a worker's maintenance.
Project runs beat faster: a key with a short TTL renewed by a thread of the job process. A reaper thread
in every worker looks at each started run whose key expired, so the PR hears within about half a minute;
RQ's own clean-up later finds the run already reported and does nothing.

A missing beat alone does not prove death: a run stalled past the TTL (a stopped VM, a swapping host, a
Redis blip) beats again later, and reporting it "interrupted" would be a lie the real result then
contradicts. So death is confirmed by the RQ worker that took the job (`job.worker_name`): it is gone
when its registration (`rq:worker:<name>`, renewed by its own heartbeat) has expired, or, when it ran on
this host, when its pid is no longer a live process. While that worker lives it watches its job process
itself (a killed one is reported through `bot.jobs.horse_killed`), so the reaper leaves the run alone.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import redis
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.worker import Worker
from rq.serializers import JSONSerializer

from bot.adapters.procs import alive as pid_alive
from bot.state import keys

log = logging.getLogger(__name__)
BEAT_SECONDS = 5.0
TTL_SECONDS = 20
REAP_EVERY_SECONDS = 5.0
# Called with the connection, the dead run's job and why it is taken for dead (bot.jobs.queue_interrupted_report).
ReportDead = Callable[[redis.Redis, Job, str], None]
# Whether a job keeps a heartbeat while it runs (bot.jobs.beats: project runs, drift applies); other jobs on the runs
# queue do not.
IsRun = Callable[[Job], bool]


@contextmanager
def heartbeat(conn: redis.Redis, job_id: str) -> Iterator[None]:
    """Keep `keys.run_alive(job_id)` alive while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                conn.set(keys.run_alive(job_id), "1", ex=TTL_SECONDS)
            except redis.RedisError:
                pass  # Redis is down: the reaper cannot run either
            if stop.wait(BEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        conn.delete(keys.run_alive(job_id))


def death_verdict(worker: dict[str, str] | None, this_host: str,
                  alive: Callable[[int], bool] = pid_alive) -> str | None:
    """Pure: why the worker that took a run is confirmed dead, or None while it may still be running it.

    `worker` is its RQ registration (hostname, pid), None when that expired or never existed.
    """
    if worker is None:
        return "its worker's registration expired"
    pid = worker.get("pid", "")
    if worker.get("hostname") == this_host and pid.isdigit() and not alive(int(pid)):
        return f"its worker (pid {pid} on this host) is gone"
    return None


def worker_registration(conn: redis.Redis, worker_name: str | None) -> dict[str, str] | None:
    """The RQ worker hash of `worker_name` (hostname, pid), or None when it expired."""
    if not worker_name:
        return None
    raw = conn.hgetall(Worker.redis_worker_namespace_prefix + worker_name)
    if not raw:
        return None
    return {keys.text(k): keys.text(v) for k, v in raw.items() if k in (b"hostname", b"pid")}


def reap_once(conn: redis.Redis, queue_name: str, report: ReportDead, is_run: IsRun,
              this_host: str | None = None) -> int:
    """Report every started project run of `queue_name` whose heartbeat expired and whose worker is confirmed
    dead; return how many."""
    this_host = this_host or socket.gethostname()
    reaped = 0
    registry = StartedJobRegistry(queue_name, connection=conn, serializer=JSONSerializer)
    for job_id in registry.get_job_ids(cleanup=False):  # RQ's clean-up runs callbacks: main thread only
        job_id = job_id.split(":")[0]  # entries may carry the execution id after the job id
        if conn.exists(keys.run_alive(job_id)):
            continue
        try:
            job = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
        except Exception:  # noqa: BLE001 - finished and expired meanwhile
            continue
        if not is_run(job) or job.started_at is None:
            continue
        started = job.started_at.timestamp()
        if time.time() - started < TTL_SECONDS + BEAT_SECONDS:
            continue  # not yet had the time to beat
        why = death_verdict(worker_registration(conn, job.worker_name), this_host)
        if why is None:
            log.info("run job %s missed its heartbeat but its worker %s lives: stalled, not reported", job_id,
                     job.worker_name)
            continue
        if conn.set(keys.run_reaped(job_id), "1", nx=True, ex=24 * 3600):
            log.warning("run job %s lost its heartbeat and %s: its worker died with it", job_id, why)
            report(conn, job, f"its worker stopped without finishing it (no heartbeat for {TTL_SECONDS} s, "
                              f"and {why})")
            reaped += 1
    return reaped


def start_reaper(conn: redis.Redis, queue_name: str, report: ReportDead, is_run: IsRun) -> threading.Thread:
    """A daemon thread of a worker process that reaps dead runs every few seconds."""

    def loop() -> None:
        while True:
            time.sleep(REAP_EVERY_SECONDS)
            try:
                reap_once(conn, queue_name, report, is_run)
            except Exception:  # noqa: BLE001 - the reaper must outlive a Redis outage
                log.debug("reaper pass failed", exc_info=True)

    thread = threading.Thread(target=loop, name="run-reaper", daemon=True)
    thread.start()
    return thread
