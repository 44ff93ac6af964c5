"""Redelivery of missed webhooks: the pure decision, then the pass against real Redis and the fake GitHub."""
from __future__ import annotations

import time

import pytest

from bot.state import keys
from bot.config import GitHubConfig, parse_config
from bot.adapters.github import GitHubApp, HookDelivery
from bot.ops.recovery import Recovery
from bot.ops.redelivery import MAX_ATTEMPTS, OVERLAP_SECONDS, Verdict, decide, redeliver_missed, retryable
from tests.support import webhook_payloads as wp

T0 = 1_700_000_000.0


def attempt(id: int, guid: str = "g1", status: int = 502, at: float = T0, event: str = "pull_request",
            redelivery: bool = False, action: str = "opened") -> HookDelivery:
    return HookDelivery(id=id, guid=guid, delivered_at=at, redelivery=redelivery, status_code=status, event=event,
                        action=action, installation_id=99, repository_id=1)


def verdicts(decisions) -> dict[str, Verdict]:
    return {d.guid: d.verdict for d in decisions}


# --- the decision -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status,expected", [(0, True), (500, True), (502, True), (503, True), (504, True),
                                             (408, True), (429, True), (400, False), (401, False), (404, False),
                                             (413, False), (302, False)])
def test_only_failures_for_want_of_tfbot_are_retryable(status, expected):
    assert retryable(status) is expected


def test_a_failed_event_is_redelivered_through_its_newest_attempt():
    decisions = decide([attempt(1, at=T0), attempt(7, at=T0 + 60, redelivery=True)], seen=set(), asked={"g1": {1}})
    [d] = decisions
    assert (d.verdict, d.delivery.id, d.asked, d.first_at) == (Verdict.REDELIVER, 7, 1, T0)


def test_seen_delivered_refused_and_unhandled_events_are_not_redelivered():
    decisions = decide(
        [
            attempt(1, "seen"),
            attempt(2, "ok-later", status=502, at=T0), attempt(3, "ok-later", status=202, at=T0 + 5),
            attempt(4, "ok-then-failed", status=200, at=T0), attempt(5, "ok-then-failed", status=503, at=T0 + 5),
            attempt(6, "bad-signature", status=401),
            attempt(8, "5xx-then-401", status=502, at=T0), attempt(9, "5xx-then-401", status=401, at=T0 + 5),
            attempt(10, "starred", event="star"),
            attempt(11, "missed", status=0),
        ],
        seen={"seen"},
        asked={},
    )
    assert verdicts(decisions) == {
        "seen": Verdict.SEEN,
        "ok-later": Verdict.DELIVERED,
        "ok-then-failed": Verdict.DELIVERED,
        "bad-signature": Verdict.REFUSED,
        "5xx-then-401": Verdict.REFUSED,
        "missed": Verdict.REDELIVER,
    }


def test_of_missed_check_run_events_only_a_button_press_is_redelivered():
    decisions = decide([attempt(1, "made", event="check_run", action="created", status=0),
                        attempt(2, "done", event="check_run", action="completed", status=0),
                        attempt(3, "pressed", event="check_run", action="requested_action", status=0)],
                       seen=set(), asked={})
    assert verdicts(decisions) == {"pressed": Verdict.REDELIVER}


def test_an_asked_attempt_is_pending_and_an_event_is_given_up_after_max_attempts():
    pending = decide([attempt(1), attempt(2, at=T0 + 1)], seen=set(), asked={"g1": {2}})
    assert [d.verdict for d in pending] == [Verdict.PENDING]
    tried = set(range(100, 100 + MAX_ATTEMPTS))
    exhausted = decide([attempt(1), attempt(500, at=T0 + 1)], seen=set(), asked={"g1": tried})
    assert [d.verdict for d in exhausted] == [Verdict.GAVE_UP]
    one_left = decide([attempt(1), attempt(500, at=T0 + 1)], seen=set(), asked={"g1": set(list(tried)[1:])})
    assert [d.verdict for d in one_left] == [Verdict.REDELIVER]


def test_events_are_redelivered_oldest_first():
    decisions = decide([attempt(3, "new", at=T0 + 30), attempt(1, "old", at=T0), attempt(2, "mid", at=T0 + 10)],
                       seen=set(), asked={})
    assert [d.guid for d in decisions] == ["old", "mid", "new"]


# --- the pass against real Redis and the fake GitHub --------------------------------------------------------


@pytest.fixture
def app(fake_github, app_keys, redis_conn) -> GitHubApp:
    config = GitHubConfig(api_url=fake_github.base_url, app_id=fake_github.app_id,
                          private_key=app_keys[0].decode(), webhook_secret="s", retries=0, write_interval=0)
    return GitHubApp(config, redis_conn, keys.installation_token)


def failed(fake, status: int = 502, event: str = "pull_request", guid: str | None = None) -> dict:
    repo = wp.repository("acme/infra", clone_url="file:///nowhere")
    payload = wp.pull_request_event("opened", repo, wp.pull_request(repo, 7, "a" * 40, "f", "b" * 40), 99, "alice")
    return fake.add_hook_delivery(event, payload, status_code=status, guid=guid, installation_id=99)


def test_a_pass_asks_once_for_each_missed_event_and_remembers_it(fake_github, app, redis_conn):
    missed = failed(fake_github, 502)
    unanswered = failed(fake_github, 0)
    failed(fake_github, 401)
    failed(fake_github, 200)
    queued = failed(fake_github, 503)
    redis_conn.set(keys.delivery(queued["guid"]), "1")  # intake took it after all

    report = redeliver_missed(app, redis_conn)
    assert fake_github.redelivery_attempts() == [missed["id"], unanswered["id"]]
    assert [d.id for d in report.asked] == [missed["id"], unanswered["id"]]
    assert redis_conn.smembers(keys.redelivery_asked(missed["guid"])) == {str(missed["id"]).encode()}
    assert 0 < redis_conn.ttl(keys.redelivery_asked(missed["guid"])) <= 3 * 24 * 3600

    # GitHub's redeliveries (answered 200 by the fake, with no hook) now show; nothing is asked again.
    again = redeliver_missed(app, redis_conn)
    assert fake_github.redelivery_attempts() == [missed["id"], unanswered["id"]]
    assert again.asked == []
    assert {d.guid: d.verdict for d in again.decisions}[missed["guid"]] == Verdict.DELIVERED


def test_a_redelivery_that_fails_again_is_asked_for_again_up_to_the_limit(fake_github, app, redis_conn):
    fake_github.set_redeliver_hook(lambda delivery: 503)  # tfbot's Redis is still down
    missed = failed(fake_github, 502)
    for _ in range(MAX_ATTEMPTS + 2):
        redeliver_missed(app, redis_conn)
    attempts = fake_github.redelivery_attempts()
    assert len(attempts) == MAX_ATTEMPTS
    assert attempts[0] == missed["id"] and len(set(attempts)) == MAX_ATTEMPTS  # each attempt asked once
    last = redeliver_missed(app, redis_conn)
    assert {d.guid: d.verdict for d in last.decisions} == {missed["guid"]: Verdict.GAVE_UP}


def test_a_refused_request_is_tried_again_next_pass(fake_github, app, redis_conn):
    missed = failed(fake_github, 502)
    fake_github.fail_next(1, 502, path_contains="/attempts")
    first = redeliver_missed(app, redis_conn)
    assert first.asked == [] and len(first.errors) == 1 and "502" in first.errors[0]
    assert redis_conn.smembers(keys.redelivery_asked(missed["guid"])) == set()
    redeliver_missed(app, redis_conn)
    assert fake_github.redelivery_attempts() == [missed["id"]]


def test_an_attempt_claimed_by_another_host_is_not_asked_again(fake_github, app, redis_conn):
    missed = failed(fake_github, 502)
    redis_conn.sadd(keys.redelivery_asked(missed["guid"]), missed["id"])
    redeliver_missed(app, redis_conn)
    assert fake_github.redelivery_attempts() == []


def test_only_the_retention_window_is_examined(fake_github, app, redis_conn):
    failed(fake_github, 502)
    report = redeliver_missed(app, redis_conn, now=time.time() + 3 * 24 * 3600 + 60)
    assert report.examined == 0 and fake_github.redelivery_attempts() == []


def test_later_passes_look_back_only_a_little_before_the_newest_attempt_examined(fake_github, app, redis_conn):
    failed(fake_github, 200)
    redeliver_missed(app, redis_conn)
    mark = float(redis_conn.get(keys.redelivery_checked()))
    assert abs(mark - time.time()) < 5
    # As if the last pass had seen attempts up to an hour from now: older ones are outside the window.
    redis_conn.set(keys.redelivery_checked(), repr(time.time() + 3600))
    assert redeliver_missed(app, redis_conn).examined == 0
    redis_conn.set(keys.redelivery_checked(), repr(time.time() + OVERLAP_SECONDS - 60))
    assert redeliver_missed(app, redis_conn).examined == 1


def test_many_deliveries_are_paged(fake_github, app, redis_conn):
    ids = [failed(fake_github, 502)["id"] for _ in range(130)]
    report = redeliver_missed(app, redis_conn)
    assert report.examined == 130
    assert fake_github.redelivery_attempts() == ids  # oldest first


# --- one recovery pass per period across hosts ---------------------------------------------------------------


def recovery(fake_github, app_keys, redis_conn, tmp_path, interval: float = 300) -> Recovery:
    config = parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id,
                   "private_key": app_keys[0].decode(), "webhook_secret": "s", "retries": 0},
        "data_dir": str(tmp_path), "repos": [{"name": "acme/*"}],
    }, base_dir=tmp_path)
    # Reconciliation has its own tests (test_reconcile): here only when it runs is recorded.
    made = Recovery(config, redis_conn, interval, services=lambda: None,
                    reconcile_pass=lambda svc, origin: made.reconcile_calls.append(origin) or [])
    made.reconcile_calls = []  # type: ignore[attr-defined]
    return made


def test_one_host_per_period_redelivers_but_every_start_does(fake_github, app_keys, redis_conn, tmp_path):
    first, second = (recovery(fake_github, app_keys, redis_conn, tmp_path) for _ in range(2))
    failed(fake_github, 502)
    assert first.run_pass(startup=False) is True
    assert second.run_pass(startup=False) is False  # this period is taken
    assert len(fake_github.redelivery_attempts()) == 1
    failed(fake_github, 502)
    assert second.run_pass(startup=True) is True  # a host that starts always looks
    assert len(fake_github.redelivery_attempts()) == 2
    redis_conn.delete(keys.recovery_due())  # the period ran out
    failed(fake_github, 502)
    assert second.run_pass(startup=False) is True
    assert len(fake_github.redelivery_attempts()) == 3


def test_a_failing_pass_is_logged_and_does_not_raise(fake_github, app_keys, redis_conn, tmp_path, caplog):
    rec = recovery(fake_github, app_keys, redis_conn, tmp_path)
    failed(fake_github, 502)
    fake_github.fail_next(1, 500, path_contains="/app/hook/deliveries")
    assert rec.run_pass(startup=True) is True
    assert "redelivery of missed webhooks failed" in caplog.text and "500" in caplog.text
    assert fake_github.redelivery_attempts() == []
    redis_conn.delete(keys.recovery_due())
    rec.run_pass()
    assert len(fake_github.redelivery_attempts()) == 1


def test_reconciliation_runs_every_period_not_only_until_a_clean_pass(fake_github, app_keys, redis_conn, tmp_path):
    first, second = (recovery(fake_github, app_keys, redis_conn, tmp_path) for _ in range(2))
    first.run_pass(startup=True)
    assert first.reconcile_calls == ["its check at startup"] and first.reconciled
    second.run_pass(startup=True)  # a host that starts reconciles, whoever has the period
    redis_conn.delete(keys.recovery_due())
    first.run_pass()  # a clean pass before: it reconciles again in the next period it has
    assert len(first.reconcile_calls) == 2
    second.run_pass()  # this period is first's, and second's own start was clean
    assert len(second.reconcile_calls) == 1
    redis_conn.delete(keys.recovery_due())
    second.run_pass()
    assert second.reconcile_calls == ["its check at startup", "its periodic check"]
