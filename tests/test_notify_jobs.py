"""Sending notifications: the HTTP adapter against real local receivers (timeouts, redirects, refusals), and the
notification jobs on real Redis and RQ: queued per receiver that wants them, once where once-only, retried, counted,
and never a failure of what emitted them."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time

import pytest
import redis
from prometheus_client import generate_latest

from bot.adapters.http_post import DeliveryError, post
from bot.compose import web_services
from bot.config.models import NotificationConfig
from bot.models import Outcome, Project, ProjectResult
from bot.notify.emit import notify, notify_applies, notify_lock_waits
from bot.notify.notices import Notice
from bot.queue import NOTIFY_RETRY_ENV, NOTIFY_RETRY_INTERVALS, notify_queue
from bot.state import notified
from bot.state.metrics import Metrics
from tests.support.services_fixtures import INSTALLATION, REPO, run_jobs

SECRET = "webhook-secret-0123456789"
NETWORK = Project(repo=REPO, name="network", dir="network")
DRIFT = Notice(event="drift_found", repo=REPO, project="network", summary="2 resources changed outside Terraform",
               at=1767225600.0)


# --- the adapter --------------------------------------------------------------------------------------------------


def test_a_2xx_answer_is_delivered(make_receiver):
    receiver = make_receiver(status=204)
    assert post(receiver.url, b'{"a":1}', {"Content-Type": "application/json"}) == 204
    [got] = receiver.requests()
    assert (got.method, got.path, got.body, got.headers["Content-Type"]) == ("POST", "/hook", b'{"a":1}',
                                                                             "application/json")


def test_an_error_answer_raises_without_the_url(make_receiver):
    receiver = make_receiver(status=500)
    with pytest.raises(DeliveryError) as caught:
        post(receiver.url + "?token=SECRETTOKEN", b"{}", {})
    assert str(caught.value) == "answered HTTP 500" and "SECRETTOKEN" not in str(caught.value)


def test_a_redirect_is_not_followed(make_receiver):
    elsewhere = make_receiver()
    moved = make_receiver(status=302, location=elsewhere.url)
    with pytest.raises(DeliveryError, match="answered HTTP 302, a redirect"):
        post(moved.url, b"{}", {})
    assert len(moved.requests()) == 1 and elsewhere.requests() == []


def test_a_receiver_that_does_not_answer_is_given_up_on_after_the_timeout(make_receiver):
    slow = make_receiver(delay=5)
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="no answer within 0.5 s"):
        post(slow.url, b"{}", {}, timeout=0.5)
    assert time.monotonic() - started < 3


def test_a_receiver_that_is_not_there_raises_without_the_url(make_receiver):
    gone = make_receiver()
    url = gone.url + "?token=SECRETTOKEN"
    gone.close()
    with pytest.raises(DeliveryError) as caught:
        post(url, b"{}", {}, timeout=2)
    assert str(caught.value) == "could not deliver (ConnectionError)"


# --- the jobs -----------------------------------------------------------------------------------------------------


def with_receivers(svc, *entries: dict):
    """`svc` whose config has these `notifications` entries."""
    receivers = tuple(NotificationConfig(**entry) for entry in entries)
    return dataclasses.replace(svc, config=svc.config.model_copy(update={"notifications": receivers}))


def send_all(svc) -> None:
    run_jobs(svc, notify_queue(svc.redis))


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest("sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), header)


def test_a_drift_notice_reaches_a_slack_and_a_signed_webhook_receiver(worker_services, make_receiver):
    """notify(svc, Notice(...)) is what drift detection calls (issue 15): tested here directly."""
    slack, hook = make_receiver(), make_receiver()
    svc = with_receivers(worker_services, {"kind": "slack", "url": slack.url},
                         {"kind": "webhook", "url": hook.url, "secret": SECRET})
    assert notify(svc, DRIFT) == 2
    send_all(svc)
    [to_slack], [to_hook] = slack.requests(), hook.requests()
    assert to_slack.json()["blocks"][0]["text"]["text"] == "*Drift found* `network` in acme/infra"
    assert to_hook.json()["event"] == "drift_found" and to_hook.json()["summary"] == DRIFT.summary
    assert verify(SECRET, to_hook.body, to_hook.headers["X-Tfbot-Signature-256"])
    assert to_hook.headers["X-Tfbot-Event"] == "drift_found" and len(to_hook.headers["X-Tfbot-Delivery"]) == 36
    assert "X-Tfbot-Signature-256" not in to_slack.headers
    assert notified.counts(svc.redis) == {("slack", "drift_found", "sent"): 1, ("webhook", "drift_found", "sent"): 1}


def test_receivers_get_only_the_events_and_repositories_they_asked_for(worker_services, make_receiver):
    failures, other_repo = make_receiver(), make_receiver()
    svc = with_receivers(worker_services, {"kind": "slack", "url": failures.url, "events": ["apply_failed"]},
                         {"kind": "slack", "url": other_repo.url, "repos": ["other/*"]})
    assert notify(svc, DRIFT) == 0
    assert notify(svc, dataclasses.replace(DRIFT, event="apply_failed")) == 1
    send_all(svc)
    assert len(failures.requests()) == 1 and other_repo.requests() == []


def test_a_once_only_notice_reaches_each_receiver_once(worker_services, make_receiver):
    first, second = make_receiver(), make_receiver()
    svc = with_receivers(worker_services, {"kind": "slack", "url": first.url})
    notice = dataclasses.replace(DRIFT, key="network-run-7")
    assert notify(svc, notice) == 1
    assert notify(svc, notice) == 0
    # A receiver added later still hears of it, once.
    svc = with_receivers(worker_services, {"kind": "slack", "url": first.url}, {"kind": "slack", "url": second.url})
    assert notify(svc, notice) == 1
    send_all(svc)
    assert len(first.requests()) == 1 and len(second.requests()) == 1


def test_an_apply_is_notified_once_however_often_its_report_runs(worker_services, make_receiver):
    receiver = make_receiver()
    svc = with_receivers(worker_services, {"kind": "webhook", "url": receiver.url, "secret": SECRET})
    cmd = svc.records.new_command("merge", REPO, 12, "a" * 40, INSTALLATION, "mo", total=1,
                                  info={"title": "Bigger VPC", "html_url": "https://github.com/acme/infra/pull/12"})
    results = [ProjectResult(NETWORK, Outcome.APPLIED, summary="Apply complete! Resources: 1 added.")]
    assert notify_applies(svc, cmd, results) == 1
    assert notify_applies(svc, cmd, results) == 0  # the report tried again after a GitHub failure
    plan = svc.records.new_command("plan", REPO, 12, "a" * 40, INSTALLATION, "mo", total=1)
    assert notify_applies(svc, plan, [ProjectResult(NETWORK, Outcome.PLANNED)]) == 0
    send_all(svc)
    [got] = receiver.requests()
    assert got.json()["event"] == "apply_succeeded" and got.json()["pull"] == 12


def test_a_refusing_receiver_is_tried_again_then_logged_and_counted_by_index_and_kind(worker_services, make_receiver,
                                                                                      monkeypatch, caplog):
    monkeypatch.setenv(NOTIFY_RETRY_ENV, "0,0")  # two retries, at once
    broken, fine = make_receiver(status=500), make_receiver()
    svc = with_receivers(worker_services, {"kind": "slack", "url": fine.url},
                         {"kind": "webhook", "url": broken.url + "?token=SECRETTOKEN", "secret": SECRET})
    with caplog.at_level(logging.INFO):
        notify(svc, DRIFT)
        send_all(svc)
    tries = broken.requests()
    assert len(tries) == 3 and len(fine.requests()) == 1
    assert len({t.headers["X-Tfbot-Delivery"] for t in tries}) == 1 and len({t.body for t in tries}) == 1
    [last] = [r for r in caplog.records if r.levelno == logging.ERROR and "notification" in r.getMessage()]
    assert "to notifications[1] (webhook) failed on its last try: answered HTTP 500" in last.getMessage()
    assert "SECRETTOKEN" not in caplog.text and "127.0.0.1" not in caplog.text
    assert notified.counts(svc.redis)[("webhook", "drift_found", "failed")] == 1
    # /metrics is read by the web process: its services over the same Redis and config.
    scrape = generate_latest(Metrics(web_services(svc.config, svc.redis)).registry).decode()
    assert 'tfbot_notifications_total{event="drift_found",kind="webhook",result="failed"} 1.0' in scrape
    assert 'tfbot_notifications_total{event="drift_found",kind="slack",result="sent"} 1.0' in scrape
    assert 'tfbot_jobs{queue="tfbot-notify",state="queued"} 0.0' in scrape


def test_the_default_retries_last_about_ten_minutes(worker_services):
    svc = with_receivers(worker_services, {"kind": "slack", "url": "https://hooks.slack.com/services/x"})
    notify(svc, DRIFT)
    [job] = notify_queue(svc.redis).jobs
    assert job.retries_left == len(NOTIFY_RETRY_INTERVALS) and job.retry_intervals == list(NOTIFY_RETRY_INTERVALS)
    assert 8 * 60 <= sum(NOTIFY_RETRY_INTERVALS) <= 15 * 60
    assert job.func_name == "bot.jobs.send_notification"
    assert "hooks.slack.com" not in str(job.description) and "hooks.slack.com" not in json.dumps(job.args)


def test_a_notification_for_a_receiver_the_config_no_longer_has_is_dropped(worker_services, make_receiver):
    old, new = make_receiver(), make_receiver()
    notify(with_receivers(worker_services, {"kind": "slack", "url": old.url}), DRIFT)
    svc = with_receivers(worker_services, {"kind": "slack", "url": new.url})  # restarted with another config
    send_all(svc)
    assert old.requests() == [] and new.requests() == []
    assert notified.counts(svc.redis) == {("slack", "drift_found", "dropped"): 1}


def test_a_notification_that_cannot_be_queued_is_logged_never_raised(worker_services, make_receiver, caplog):
    receiver = make_receiver()
    svc = with_receivers(worker_services, {"kind": "slack", "url": receiver.url})
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    svc = dataclasses.replace(svc, redis=dead)
    with caplog.at_level(logging.ERROR):
        assert notify(svc, dataclasses.replace(DRIFT, key="k")) == 0
    assert "could not queue the drift_found notification of acme/infra for notifications[0] (slack)" in caplog.text


def test_a_pr_waiting_long_for_a_lock_is_told_once_per_receiver_when_its_threshold_passes(worker_services,
                                                                                        make_receiver):
    soon, later = make_receiver(), make_receiver()
    svc = with_receivers(worker_services, {"kind": "slack", "url": soon.url, "lock_waiting_after": "10m"},
                         {"kind": "webhook", "url": later.url, "secret": SECRET, "lock_waiting_after": "2h",
                          "events": ["lock_waiting_long"]})
    svc.locks.try_acquire(NETWORK, 1, "alice", pull_title="First")
    queued = svc.locks.try_acquire(NETWORK, 2, "bob", pull_title="Second <!here>",
                                   pull_url="https://github.com/acme/infra/pull/2")
    assert not queued.acquired
    now = time.time()
    assert notify_lock_waits(svc, now=now + 60) == 0
    assert notify_lock_waits(svc, now=now + 11 * 60) == 1
    assert notify_lock_waits(svc, now=now + 12 * 60) == 0
    assert notify_lock_waits(svc, now=now + 3 * 3600) == 1  # the 2h receiver, once
    assert notify_lock_waits(svc, now=now + 4 * 3600) == 0
    send_all(svc)
    [to_soon], [to_later] = soon.requests(), later.requests()
    assert "&lt;!here&gt;" in to_soon.json()["blocks"][0]["text"]["text"]
    body = to_later.json()
    assert (body["event"], body["pull"], body["user"], body["project"]) == ("lock_waiting_long", 2, "bob", "network")
    assert body["waited_seconds"] >= 3 * 3600 - 5 and body["summary"].startswith("#2 has waited 3h")


def test_no_lock_waits_are_read_when_no_receiver_wants_them(worker_services, make_receiver):
    svc = with_receivers(worker_services, {"kind": "slack", "url": make_receiver().url, "events": ["apply_failed"]})
    svc.locks.try_acquire(NETWORK, 1, "alice")
    svc.locks.try_acquire(NETWORK, 2, "bob")
    assert notify_lock_waits(svc, now=time.time() + 86400 * 7) == 0
