"""How a worker's helpers end when the worker stops, against a real Redis: RQ's scheduler process ends as soon
as it gets SIGTERM instead of sleeping out its interval, releasing its locks as RQ's does, and still moves due
jobs to their queue; the worker's pubsub thread ends with `unsubscribe`. An idle `tfbot serve` stops in well
under a second because of both (docs/operations.md, "Stopping and restarting")."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from rq import Queue
from rq.scheduler import RQScheduler

from bot.ops.worker import TfbotWorker, WakingScheduler
from tests.support.tfbot_process import REPO_ROOT, wait_for

# Longer than any test here waits: a scheduler that sleeps out its interval cannot pass for one that wakes.
LONG_INTERVAL = 600


def started(conn, scheduler: RQScheduler) -> bool:
    """Whether the scheduler process registered its birth (its SIGTERM handler is installed before that)."""
    return bool(conn.exists(scheduler.key))


def test_a_scheduler_asked_to_stop_ends_at_once_and_releases_its_locks(redis_conn):
    queue = Queue("stop-test", connection=redis_conn)
    scheduler = WakingScheduler([queue], connection=redis_conn, interval=LONG_INTERVAL)
    scheduler.acquire_locks()
    assert scheduler.acquired_locks == {"stop-test"}
    process = scheduler.start()
    wait_for(lambda: started(redis_conn, scheduler), timeout=30, message="the scheduler's birth")
    time.sleep(0.3)  # now in its wait between two polls

    os.kill(process.pid, signal.SIGTERM)
    process.join(timeout=10)
    if process.is_alive():  # sleeping out its interval: a failure, which must not keep pytest from exiting
        process.kill()
        process.join()
    assert process.exitcode == 0, "it ended, cleanly, long before its interval"
    assert not redis_conn.exists(RQScheduler.get_locking_key("stop-test")), "its lock is released for the next one"
    assert not started(redis_conn, scheduler), "its death is registered"


def test_rqs_own_scheduler_sleeps_out_its_interval_which_is_why_tfbot_has_its_own(redis_conn):
    """If this fails, RQ's scheduler wakes by itself on SIGTERM and `WakingScheduler` can go."""
    scheduler = RQScheduler([Queue("stop-test-rq", connection=redis_conn)], connection=redis_conn,
                            interval=LONG_INTERVAL)
    scheduler.acquire_locks()
    process = scheduler.start()
    try:
        wait_for(lambda: started(redis_conn, scheduler), timeout=30, message="the scheduler's birth")
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGTERM)
        process.join(timeout=2)
        assert process.is_alive(), "RQ's scheduler still sleeps"
    finally:
        process.kill()
        process.join()


def test_the_waking_scheduler_still_moves_due_jobs_to_their_queue(redis_conn):
    queue = Queue("stop-test-due", connection=redis_conn)
    job = queue.enqueue_in(timedelta(seconds=1), "os.getpid")
    assert job.id not in queue.job_ids
    scheduler = WakingScheduler([queue], connection=redis_conn, interval=1)
    scheduler.acquire_locks()
    process = scheduler.start()
    try:
        wait_for(lambda: job.id in queue.job_ids, timeout=30, message="the due job back in its queue")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.join(timeout=30)
    assert process.exitcode == 0


def test_a_tfbot_worker_starts_the_waking_scheduler_and_stops_it_at_once(redis_conn, worker_services):
    worker = TfbotWorker([Queue("stop-test-worker", connection=redis_conn)], worker_services, connection=redis_conn)
    worker._start_scheduler()
    assert isinstance(worker.scheduler, WakingScheduler)
    wait_for(lambda: started(redis_conn, worker.scheduler), timeout=30, message="the scheduler's birth")
    worker.stop_scheduler()  # RQ's: SIGTERM, then join
    assert worker.scheduler._process.exitcode == 0
    assert not redis_conn.exists(RQScheduler.get_locking_key("stop-test-worker"))


def test_unsubscribe_ends_the_workers_pubsub_thread_even_when_it_reads_the_reply_first(redis_conn, worker_services):
    """In RQ's order (UNSUBSCRIBE, then stop the thread) the thread can read the reply before it is told to stop,
    find itself still running and listen 60 s more: RQ's join gives up after 1 s, and the worker's exit waits
    that second (seen on a busy machine in 2 of 3 idle stops of `tfbot serve`)."""
    worker = TfbotWorker([Queue("stop-test-pubsub", connection=redis_conn)], worker_services, connection=redis_conn)
    worker.subscribe()
    wait_for(lambda: redis_conn.pubsub_numsub(worker.pubsub_channel_name)[0][1] == 1, timeout=30,
             message="the worker's subscription")
    send_unsubscribe = worker.pubsub.unsubscribe

    def unsubscribe_then_lose_the_cpu(*args, **kwargs):
        sent = send_unsubscribe(*args, **kwargs)
        time.sleep(0.5)  # as a busy machine may do to this thread: the listening thread reads the reply meanwhile
        return sent

    worker.pubsub.unsubscribe = unsubscribe_then_lose_the_cpu
    worker.unsubscribe()
    assert not worker.pubsub_thread.is_alive(), "the listening thread ended"


@pytest.mark.io
def test_the_tfbot_program_freezes_its_objects_before_it_exits_and_still_runs_atexit(tmp_path):
    """`console` (the `tfbot` program, `python -m bot`) freezes what the garbage collector tracks, so the
    interpreter's last collections skip it; atexit handlers (logging's flush) still run."""
    script = ("import atexit, gc, sys\n"
              "from bot.cli import console\n"
              "atexit.register(lambda: print('atexit ran', flush=True))\n"
              "sys.argv = ['tfbot', 'schema']\n"
              "code = console()\n"
              "print('frozen', gc.get_freeze_count() > 0, flush=True)\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["frozen True", "atexit ran"]
