"""Change records against real parts, without a tfbot process: messages recorded into issues of the fake GitHub
through PyGithub, groups and the state index in a real Redis, queues in moto's SQS server (its redrive policy
and receive counts are SQS's own)."""
from __future__ import annotations

import threading

import pytest

from bot.changes.recorder import ChangeRecorder, Outcome
from bot.models import Project
from bot.ops.change_poller import ChangePoller
from bot.state import audit
from bot.state.change_records import ChangeStore
from tests.support.change_fixtures import ISSUES_REPO, ROLE, SERVICE, USER, cloudtrail

STORAGE = Project(repo="acme/infra", name="storage", dir="storage")


def issues(fake) -> list[dict]:
    return fake.issues(ISSUES_REPO)


def read(conn, key) -> object:
    """A key's value whatever its type (DUMP would compress it)."""
    kind = conn.type(key).decode()
    return {"string": conn.get, "hash": conn.hgetall, "list": lambda k: conn.lrange(k, 0, -1),
            "set": conn.smembers}.get(kind, lambda k: b"")(key)


def recorder(svc) -> ChangeRecorder:
    return ChangeRecorder(svc, "test-host:1")


def test_a_call_becomes_an_issue_and_a_second_call_within_the_window_joins_it(fake_github, make_change_services):
    svc, _ = make_change_services()
    first = recorder(svc).handle(cloudtrail(USER))
    later = recorder(svc).handle(cloudtrail(USER, eventID="second", eventName="DeleteBucketPolicy",
                                            eventTime="2026-11-03T14:09:30Z"))
    assert (first.outcome, later.outcome, first.issue) == (Outcome.RECORDED, Outcome.ADDED, later.issue)
    [issue] = issues(fake_github)
    assert [label["name"] for label in issue["labels"]] == ["change-record"]
    assert issue["title"] == ("AWS change: 2 calls (PutBucketPolicy, DeleteBucketPolicy) on acme-logs "
                              "(s3.amazonaws.com)")
    assert "## 2 calls within the group's window" in issue["body"]
    assert issue["body"].index("`PutBucketPolicy` at 2026-11-03 14:02:11") < issue["body"].index(
        "`DeleteBucketPolicy` at 2026-11-03 14:09:30")
    assert [(e.action, e.pull, e.outcome) for e in audit.entries(svc.redis)] == [
        ("change-record", issue["number"], "added"), ("change-record", issue["number"], "recorded")]


def test_a_call_after_the_window_or_by_someone_else_opens_its_own_issue(fake_github, make_change_services):
    svc, _ = make_change_services()
    rec = recorder(svc)
    rec.handle(cloudtrail(USER))
    assert rec.handle(cloudtrail(USER, eventID="late", eventTime="2026-11-03T14:12:12Z")).outcome is Outcome.RECORDED
    other = cloudtrail(USER, eventID="bob", userIdentity={"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/Bob"})
    assert rec.handle(other).outcome is Outcome.RECORDED
    assert len(issues(fake_github)) == 3


def test_a_call_delivered_again_adds_nothing(fake_github, make_change_services):
    svc, _ = make_change_services()
    assert recorder(svc).handle(cloudtrail(ROLE)).outcome is Outcome.RECORDED
    again = recorder(svc).handle(cloudtrail(ROLE))
    assert again.outcome is Outcome.DUPLICATE and again.issue == issues(fake_github)[0]["number"]
    assert "1." not in issues(fake_github)[0]["body"].split("\n")[2]  # still the one call, not a list


def test_a_calls_secrets_reach_neither_its_issue_nor_redis(fake_github, make_change_services, redis_conn):
    svc, _ = make_change_services()
    recorder(svc).handle(cloudtrail(ROLE, requestParameters={"dBInstanceIdentifier": "orders-db",
                                                              "masterUserPassword": "Orders-db-p4ssw0rd!",
                                                              "note": "ASIAIOSFODNN7EXAMPLE"}))
    body = issues(fake_github)[0]["body"]
    assert '"masterUserPassword": "***"' in body and '"note": "***"' in body
    stored = "".join(str(read(redis_conn, key)) for key in redis_conn.scan_iter("tfbot:*"))
    for secret in ("Orders-db-p4ssw0rd!", "ASIAIOSFODNN7EXAMPLE"):
        assert secret not in body and secret not in stored


def test_github_failing_leaves_the_call_unrecorded_and_the_next_try_records_it_once(fake_github, make_change_services):
    svc, _ = make_change_services()
    fake_github.fail_next(1, status=502, path_contains="/issues")
    failed = recorder(svc).handle(cloudtrail(SERVICE))
    assert failed.outcome is Outcome.FAILED and "502" in failed.detail
    assert issues(fake_github) == [] and ChangeStore(svc.redis).seen("3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b") is None
    assert recorder(svc).handle(cloudtrail(SERVICE)).outcome is Outcome.RECORDED
    assert len(issues(fake_github)) == 1


def test_a_group_whose_issue_another_poller_is_writing_is_left_for_later(fake_github, make_change_services):
    from bot.changes.events import parse_message
    from bot.changes.rules import group_key

    svc, _ = make_change_services()
    key = group_key(parse_message(cloudtrail(USER)))
    with ChangeStore(svc.redis).group_lock(key, "other-host:2", 60) as held:
        assert held
        busy = recorder(svc).handle(cloudtrail(USER))
    assert busy.outcome is Outcome.BUSY and issues(fake_github) == []
    assert recorder(svc).handle(cloudtrail(USER)).outcome is Outcome.RECORDED  # the lock was released


def test_a_resource_in_a_projects_state_names_the_project_and_queues_its_drift_check(fake_github, make_change_services):
    svc, _ = make_change_services()
    ChangeStore(svc.redis).put_project_ids(STORAGE, {"arn:aws:s3:::acme-logs", "acme-logs"}, 600)
    ChangeStore(svc.redis).put_project_ids(Project(repo="acme/infra", name="dns", dir="dns"), {"zone-1"}, 600)
    result = recorder(svc).handle(cloudtrail(USER))
    [issue] = issues(fake_github)
    assert "**This change was made outside Terraform.** `acme-logs` is in the Terraform state of project `storage` " \
           "of `acme/infra`" in issue["body"]
    [job] = svc.runs_queue.jobs
    assert job.func_name == "bot.jobs.check_drift"
    assert (job.args[0]["repo"], job.args[0]["name"], job.args[2]) == ("acme/infra", "storage", issue["html_url"])
    assert f"change record {ISSUES_REPO}#{result.issue}" in job.args[1]
    assert recorder(svc).handle(cloudtrail(ROLE)).outcome is Outcome.RECORDED  # orders-db: in no state
    assert len(svc.runs_queue.jobs) == 1


def test_a_repository_with_change_records_off_is_never_named(fake_github, make_change_services):
    svc, _ = make_change_services(repos=[{"name": "acme/infra", "change_records": False}, {"name": "acme/*"}])
    ChangeStore(svc.redis).put_project_ids(STORAGE, {"acme-logs"}, 600)
    recorder(svc).handle(cloudtrail(USER))
    assert "No tfbot project's Terraform state holds this resource" in issues(fake_github)[0]["body"]
    assert svc.runs_queue.jobs == []


def test_drift_checks_off_names_the_project_and_queues_nothing(fake_github, make_change_services):
    svc, _ = make_change_services(drift_checks=False)
    ChangeStore(svc.redis).put_project_ids(STORAGE, {"acme-logs"}, 600)
    recorder(svc).handle(cloudtrail(USER))
    body = issues(fake_github)[0]["body"]
    assert "project `storage`" in body and "drift check" not in body and svc.runs_queue.jobs == []


def test_the_app_missing_from_the_issues_repository_fails_with_githubs_answer(fake_github, make_change_services):
    svc, _ = make_change_services(repo="acme/elsewhere")
    failed = recorder(svc).handle(cloudtrail(USER))
    assert failed.outcome is Outcome.FAILED and "acme/elsewhere" in failed.detail and "404" in failed.detail


def test_ignored_and_unreadable_messages_write_nothing(fake_github, make_change_services):
    svc, _ = make_change_services(ignore={"accounts": ["123456789012"]})
    assert recorder(svc).handle(cloudtrail(USER)).outcome is Outcome.IGNORED
    assert recorder(svc).handle("{").outcome is Outcome.MALFORMED
    assert recorder(svc).handle(cloudtrail(SERVICE)).outcome is Outcome.RECORDED  # another account
    assert len(issues(fake_github)) == 1


# ---- the poller, on moto's SQS ------------------------------------------------------------------------------

def poller(svc) -> ChangePoller:
    return ChangePoller(svc.config, svc.redis, services=lambda: svc)


def test_the_poller_deletes_what_it_recorded_and_sets_aside_what_it_cannot_read(fake_github, make_change_services):
    svc, queues = make_change_services(ignore={"accounts": ["210987654321"]})
    for body in (cloudtrail(USER), cloudtrail(SERVICE), "not a CloudTrail event"):
        queues.send(body)
    p = poller(svc)
    assert p.ready() is None
    stop = threading.Event()
    handled = 0
    while handled < 3:
        handled += p.poll_once(stop)
    assert queues.waiting() == 0
    [dead] = queues.dead()
    assert dead["Body"] == "not a CloudTrail event"
    assert dead["MessageAttributes"]["tfbot-reason"]["StringValue"].startswith("malformed: not JSON")
    counts = ChangeStore(svc.redis).counts()
    assert {k: counts.get(k) for k in ("received", "recorded", "ignored", "malformed", "set_aside")} == {
        "received": 3, "recorded": 1, "ignored": 1, "malformed": 1, "set_aside": 1}
    assert len(issues(fake_github)) == 1


def test_a_message_tfbot_keeps_failing_is_set_aside_after_max_receive_count(fake_github, make_change_services,
                                                                          make_queues):
    """The queue has no redrive policy: tfbot's own rule moves it to the configured dead-letter queue."""
    queues = make_queues(redrive=None)
    svc, _ = make_change_services(queues=queues, dead_letter_queue_url=queues.dead_letters, max_receive_count=2,
                                  visibility_timeout=10)
    queues.send(cloudtrail(USER))
    fake_github.fail_next(10, status=502, path_contains="/issues")
    p = poller(svc)
    assert p.ready() is None
    tries = []
    for _ in range(2):
        [message] = p.queue.receive(1, 0)  # visible again at once: the test need not wait out a timeout
        tries.append(p.handle(message).outcome)
    assert tries == [Outcome.FAILED, Outcome.FAILED]
    assert queues.waiting() == 0 and len(queues.dead()) == 1
    assert ChangeStore(svc.redis).counts().get("gave_up") == 1 and issues(fake_github) == []


def test_a_queue_without_a_dead_letter_queue_is_not_polled(make_change_services, make_queues):
    svc, _ = make_change_services(queues=make_queues(redrive=None))
    problem = poller(svc).ready()
    assert problem is not None and "has no redrive policy and change_records.dead_letter_queue_url is empty" in problem


def test_the_issues_repository_without_the_app_is_not_polled(make_change_services):
    svc, _ = make_change_services(repo="acme/elsewhere")
    problem = poller(svc).ready()
    assert problem is not None and "change_records.repo acme/elsewhere: the GitHub App is not installed" in problem


def test_a_stopping_poller_gives_back_what_it_did_not_handle(fake_github, make_change_services):
    """Received with a 600 s visibility timeout, then stopped: the messages are visible again at once."""
    svc, queues = make_change_services(visibility_timeout=600)
    queues.send(cloudtrail(USER))
    stop = threading.Event()
    stop.set()
    assert poller(svc).poll_once(stop) == 0
    again = queues.client.receive_message(QueueUrl=queues.url, WaitTimeSeconds=1).get("Messages", [])
    assert len(again) == 1 and issues(fake_github) == []


def test_the_states_are_read_once_per_period_whichever_poller_polls(make_change_services):
    svc, _ = make_change_services(state_refresh=3600)
    first, second = poller(svc), poller(svc)
    second.owner = "other-host:2"
    stop = threading.Event()
    first.poll_once(stop)
    second.poll_once(stop)
    assert [j.func_name for j in svc.runs_queue.jobs] == ["bot.jobs.index_states"]


def test_a_fault_on_one_message_leaves_it_in_the_queue_and_the_poller_going(fake_github, make_change_services):
    """A group whose stored calls are not JSON (written by hand, or half a write): recording fails inside tfbot."""
    from bot.changes.events import parse_message
    from bot.changes.rules import group_key
    from bot.state import keys
    from bot.state.change_records import Group

    svc, queues = make_change_services()
    first = parse_message(cloudtrail(USER))
    key = group_key(first)
    store = ChangeStore(svc.redis)
    store.start_group(key, Group(7, "https://example/7", first.at.timestamp()), {"ok": 1}, 600)
    svc.redis.rpush(keys.change_group_calls(key), "{not json")
    queues.send(cloudtrail(USER))
    p = poller(svc)
    [message] = p.queue.receive(1, 0)
    assert p.handle(message).outcome is Outcome.FAILED
    assert queues.waiting() == 1 and issues(fake_github) == []
    svc.redis.delete(keys.change_group(key), keys.change_group_calls(key))
    [message] = p.queue.receive(1, 10)
    assert p.handle(message).outcome is Outcome.RECORDED  # the same poller goes on


def test_a_stored_call_this_version_cannot_read_is_left_out_of_its_issue(fake_github, make_change_services):
    from bot.changes.events import parse_message
    from bot.changes.rules import group_key
    from bot.state import keys

    svc, _ = make_change_services()
    recorder(svc).handle(cloudtrail(USER))
    key = group_key(parse_message(cloudtrail(USER)))
    svc.redis.lset(keys.change_group_calls(key), 0, '{"shape": "of another version"}')
    later = recorder(svc).handle(cloudtrail(USER, eventID="later", eventTime="2026-11-03T14:03:00Z"))
    assert later.outcome is Outcome.ADDED
    body = issues(fake_github)[0]["body"]
    assert "at 2026-11-03 14:03:00 UTC" in body and "14:02:11" not in body
