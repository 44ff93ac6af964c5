"""bench/timeline.py's account of how a PR's project jobs shared the workers: the overlap arithmetic over plain
intervals, and the figures read back from jobs a real RQ worker ran against a real Redis."""
from __future__ import annotations

import time

import pytest
import redis
from rq import Queue, SimpleWorker

from bench.timeline import busy_seconds, project_jobs
from bot.state.records import Records


def test_busy_seconds_splits_the_window_by_how_many_intervals_overlap() -> None:
    # Two lanes: [0, 4) and [1, 3) overlap in [1, 3); [5, 6) runs alone; nothing runs in [4, 5) nor [6, 8).
    split = busy_seconds([(0.0, 4.0), (1.0, 3.0), (5.0, 6.0)], 0.0, 8.0)
    assert split == {0: pytest.approx(3.0), 1: pytest.approx(3.0), 2: pytest.approx(2.0)}
    assert sum(split.values()) == pytest.approx(8.0)


def test_busy_seconds_clips_intervals_to_the_window() -> None:
    # Only [2, 5] is looked at: the interval's parts before and after it do not count.
    assert busy_seconds([(0.0, 3.0), (4.0, 9.0)], 2.0, 5.0) == {0: pytest.approx(1.0), 1: pytest.approx(2.0)}
    assert busy_seconds([], 2.0, 5.0) == {0: pytest.approx(3.0)}


def test_project_jobs_from_jobs_one_worker_ran(redis_conn: redis.Redis) -> None:
    sent = time.time()
    queue = Queue("bench-timeline", connection=redis_conn)
    for i in range(3):
        queue.enqueue_call(time.sleep, args=(0.05,), description=f"plan acme/infra#1 p{i}")
    records = Records(redis_conn)
    for i in range(3):
        records.save_run(f"run-{i}", {"started_at": sent + 0.01, "duration": 0.04,
                                      "steps": [["terraform init", 0.01], ["terraform plan", 0.02]]}, "")
    worker = SimpleWorker([queue], connection=redis_conn)
    worker.work(burst=True)
    # As in tfbot, the report is queued once the last project job has ended: the window closes there.
    queue.enqueue_call(time.sleep, args=(0.0,), description="report command c1")
    worker.work(burst=True)

    found = project_jobs(redis_conn, sent)

    assert list(found["jobs_per_worker"].values()) == [3]  # one worker took the three project jobs
    assert [len(g) for g in found["gaps_between_jobs_per_worker"].values()] == [2]
    assert all(gap >= 0 for gaps in found["gaps_between_jobs_per_worker"].values() for gap in gaps)
    running = found["seconds_with_k_jobs_running"]
    assert set(running) <= {0, 1} and running[1] >= 3 * 0.05  # one worker: never two at once
    assert sum(running.values()) == pytest.approx(found["window_seconds"])
    assert found["job_seconds_total"] >= 3 * 0.05
    assert found["run_record_seconds_total"] == pytest.approx(0.12)
    assert found["terraform_seconds_total"] == {"terraform init": pytest.approx(0.03),
                                                "terraform plan": pytest.approx(0.06)}
    assert found["run_record_minus_terraform_seconds_total"] == pytest.approx(0.03)


def test_project_jobs_is_empty_until_a_report_is_queued(redis_conn: redis.Redis) -> None:
    sent = time.time()
    queue = Queue("bench-timeline", connection=redis_conn)
    queue.enqueue_call(time.sleep, args=(0.0,), description="plan acme/infra#1 p0")
    SimpleWorker([queue], connection=redis_conn).work(burst=True)
    assert project_jobs(redis_conn, sent) == {}
