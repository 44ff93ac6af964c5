"""`/metrics`: webhook counts and latency observed by the web process, jobs, locks and runs read from Redis."""
from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from rq.registry import FailedJobRegistry

from bot.models import LockState
from bot.queue import RUNS_QUEUE
from tests.support import webhook_payloads as wp
from tests.support.browser import make_web_app, seed_lock, seed_run

SECRET = "page-tests"  # the webhook secret of tests.support.browser.web_config


@pytest.fixture
def web(redis_conn, tmp_path, app_private_key):
    return make_web_app(redis_conn, tmp_path, app_private_key)


def scrape(app) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST  # charset=utf-8 once, as Prometheus sends it
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.get_data(as_text=True)) for s in family.samples}


def post(client, event: str, payload: dict, secret: str | None = SECRET, delivery: str | None = None):
    body, headers = wp.signed_request(event, payload, secret, delivery)
    return client.post("/events", data=body, headers=headers)


def pull_event(repo_name: str) -> dict:
    repo = wp.repository(repo_name)
    return wp.pull_request_event("opened", repo, wp.pull_request(repo, 4, "a" * 40, "grow", "b" * 40), 99, "alice")


def test_webhooks_are_counted_by_event_and_outcome_with_their_latency(web):
    app, _ = web
    client = app.test_client()
    assert post(client, "ping", wp.ping_event()).status_code == 200
    assert post(client, "ping", wp.ping_event(), secret="wrong").status_code == 401
    assert post(client, "pull_request", pull_event("other/repo")).status_code == 202  # not configured: ignored
    assert post(client, "pull_request", pull_event("acme/infra"), delivery="d-1").status_code == 202
    assert post(client, "pull_request", pull_event("acme/infra"), delivery="d-1").status_code == 200  # duplicate
    assert post(client, "made_up_event", {"x": 1}, secret="wrong").status_code == 401
    m = scrape(app)
    count = "tfbot_webhooks_received_total"
    assert m[(count, (("event", "ping"), ("outcome", "ping")))] == 1
    assert m[(count, (("event", "ping"), ("outcome", "rejected")))] == 1
    assert m[(count, (("event", "pull_request"), ("outcome", "ignored")))] == 1
    assert m[(count, (("event", "pull_request"), ("outcome", "queued")))] == 1
    assert m[(count, (("event", "pull_request"), ("outcome", "duplicate")))] == 1
    assert m[(count, (("event", "other"), ("outcome", "rejected")))] == 1  # unknown names never become labels
    assert m[("tfbot_webhook_handling_seconds_count", (("event", "pull_request"),))] == 3
    assert m[("tfbot_webhook_handling_seconds_sum", (("event", "pull_request"),))] > 0
    assert m[("tfbot_jobs", (("queue", "tfbot-events"), ("state", "queued")))] == 1


def test_locks_jobs_and_runs_are_read_from_redis_at_scrape_time(web, redis_conn):
    app, services = web
    m = scrape(app)
    assert m[("tfbot_locks_held", ())] == 0 and m[("tfbot_oldest_lock_age_seconds", ())] == 0
    assert m[("tfbot_redis_up", ())] == 1

    seed_lock(redis_conn, dir="network", age=3600, state=LockState.APPLY_FAILED)
    seed_lock(redis_conn, dir="dns", age=60)
    seed_lock(redis_conn, dir="db", age=10)
    for i, (kind, seconds, ok) in enumerate([("plan", 10, True), ("plan", 30, True), ("plan", 20, False),
                                             ("apply", 100, True)]):
        seed_run(services.records, f"r-{i}", "", kind=kind, duration=seconds, ok=ok)
    services.runs_queue.enqueue_call("bot.jobs.run_project", args=("c", {}))
    services.runs_queue.enqueue_in(timedelta(seconds=60), "bot.jobs.run_project", "c", {}, 1)  # deferred
    job = services.events_queue.enqueue_call("bot.jobs.handle_delivery", args=("d", "ping", {}))
    FailedJobRegistry(RUNS_QUEUE, connection=redis_conn).add(job, ttl=60, exc_string="boom")
    m = scrape(app)
    assert m[("tfbot_locks_held", ())] == 3
    assert m[("tfbot_locks_by_state", (("state", "apply failed"),))] == 1
    assert m[("tfbot_locks_by_state", (("state", "planned"),))] == 2
    assert 3600 <= m[("tfbot_oldest_lock_age_seconds", ())] < 3600 + 120
    assert m[("tfbot_run_duration_seconds", (("kind", "plan"), ("quantile", "0.5")))] == 20
    assert m[("tfbot_run_duration_seconds", (("kind", "plan"), ("quantile", "1")))] == 30
    assert m[("tfbot_run_duration_seconds", (("kind", "apply"), ("quantile", "0")))] == 100
    assert m[("tfbot_recent_runs", (("kind", "plan"), ("outcome", "failed")))] == 1
    assert m[("tfbot_recent_runs", (("kind", "plan"), ("outcome", "ok")))] == 2
    assert m[("tfbot_jobs", (("queue", "tfbot-runs"), ("state", "queued")))] == 1
    assert m[("tfbot_jobs", (("queue", "tfbot-events"), ("state", "queued")))] == 1
    assert m[("tfbot_jobs", (("queue", "tfbot-runs"), ("state", "failed")))] == 1
    assert m[("tfbot_jobs", (("queue", "tfbot-runs"), ("state", "running")))] == 0
    assert m[("tfbot_jobs", (("queue", "tfbot-runs"), ("state", "scheduled")))] == 1
    assert m[("tfbot_jobs", (("queue", "tfbot-events"), ("state", "scheduled")))] == 0


def test_each_app_has_its_own_registry(redis_conn, tmp_path, app_private_key):
    first, _ = make_web_app(redis_conn, tmp_path, app_private_key)
    second, _ = make_web_app(redis_conn, tmp_path, app_private_key)
    post(first.test_client(), "ping", wp.ping_event())
    key = ("tfbot_webhooks_received_total", (("event", "ping"), ("outcome", "ping")))
    assert scrape(first)[key] == 1 and key not in scrape(second)


def test_a_redis_outage_still_answers_the_scrape(tmp_path, app_private_key):
    import redis

    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    app, _ = make_web_app(dead, tmp_path, app_private_key)
    m = scrape(app)
    assert m[("tfbot_redis_up", ())] == 0 and ("tfbot_locks_held", ()) not in m
