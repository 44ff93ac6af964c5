"""Notifications end to end: `tfbot serve` with receivers (real HTTP servers in the test), the fake GitHub, real git,
Terraform and Redis. A merge's apply reaches a Slack receiver and a signed webhook receiver; a receiver answering
500 is tried again and changes nothing the PR shows; a PR waiting long for a lock is told once."""
from __future__ import annotations

import hashlib
import hmac
import re
import time

import pytest

from bot.queue import NOTIFY_RETRY_ENV
from tests.support.fake_github import FakeGitHub
from tests.support.github_fixtures import ACCOUNT, APP_ID, INSTALLATION_ID
from tests.support.scenario import REPO, Scenario
from tests.support.scenario_fixtures import network_files
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e

SECRET = "receiver-secret-0123456789"
BROKEN_SECRET = "broken-receiver-secret-0123"
TITLE = "Bigger VPC <!channel> & more"


def verify(secret: str, body: bytes, header: str) -> bool:
    """A receiver's check (docs/security.md): HMAC-SHA256 of the body as read, compared in constant time."""
    return hmac.compare_digest("sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), header)


def normalized(text: str) -> str:
    """What differs between two runs of one story: commit ids, Terraform's ids, durations, and the order in which
    Terraform creates independent resources (its progress lines)."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    text = re.sub(r"\b[0-9a-f]{7,40}\b", "<sha>", text)
    text = re.sub(r"\b\d+(\.\d+)?\s?(ms|s)\b", "<time>", text)
    lines = text.split("\n")
    progress = [i for i, line in enumerate(lines) if line.startswith("terraform_data.")]
    for i, line in zip(progress, sorted(lines[i] for i in progress)):
        lines[i] = line
    return "\n".join(lines)


def merge_story(sc: Scenario) -> dict:
    """A PR changing `network` is planned, then merged and applied; what its PR shows then."""
    sc.init_main(network_files(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("bigger", network_files(sc, subnet="10.0.1.0/24"), title=TITLE)
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b, what="the plan")
    sc.merge(pr)
    sc.wait_comment(pr, lambda b: "Apply complete!" in b, what="the apply")
    head = sc.head(pr)
    sc.wait_status(head, "tfbot/apply")
    sc.wait_idle()
    return {"pr": pr, "comments": [normalized(b) for b in sc.bot_comments(pr)],
            "statuses": [(s["context"], s["state"], normalized(s["description"])) for s in sc.fake.statuses(REPO, head)],
            "lock": sc.lock("network"), "state": sc.state_resources("network")}


def test_a_merge_is_told_to_slack_and_a_signed_webhook_and_a_failing_receiver_changes_nothing(
        tmp_path, app_keys, make_receiver, monkeypatch):
    monkeypatch.setenv(NOTIFY_RETRY_ENV, "1,1")  # two retries a second apart (by default: 5 over ~10 minutes)
    slack, hook, broken = make_receiver(), make_receiver(), make_receiver(status=500)
    broken_url = broken.url + "?token=BROKENTOKEN"
    receivers = [{"kind": "slack", "url": slack.url},
                 {"kind": "webhook", "url": hook.url, "secret": SECRET, "events": ["apply_succeeded", "apply_failed"]},
                 {"kind": "webhook", "url": broken_url, "secret": BROKEN_SECRET}]
    stories = {}
    for name, settings in (("plain", {}), ("notified", {"notifications": receivers})):
        fake = FakeGitHub(APP_ID, app_keys[1], private_key_pem=app_keys[0])
        fake.start()
        fake.add_installation(INSTALLATION_ID, ACCOUNT)
        (tmp_path / name).mkdir()
        sc = Scenario(tmp_path / name, fake, app_keys[0], extra_settings=settings)
        try:
            stories[name] = merge_story(sc)
            if name == "notified":
                broken.wait(3)  # the first try and two retries
                wait_for(lambda: "failed on its last try" in sc.logs(), timeout=30, message="the last try's log line")
                logs, redis = sc.logs(), sc.redis_texts()
        finally:
            sc.stop()
            fake.stop()
    plain, notified = stories["plain"], stories["notified"]

    # (a) Slack's format, naming the repository, the PR and the project; the PR's title escaped.
    [message] = slack.requests()
    headline = message.json()["blocks"][0]["text"]["text"]
    assert headline.startswith("*Applied* `network` in <")
    assert f"|{REPO}#{notified['pr']}>: Bigger VPC &lt;!channel&gt; &amp; more" in headline
    assert "Apply complete! Resources: 2 added, 0 changed, 0 destroyed." in message.json()["blocks"][1]["text"]["text"]
    assert message.headers["Content-Type"] == "application/json" and message.headers["X-Tfbot-Event"] == "apply_succeeded"

    # (b) tfbot's JSON, signed with the receiver's secret over the exact bytes.
    [delivery] = hook.requests()
    assert verify(SECRET, delivery.body, delivery.headers["X-Tfbot-Signature-256"])
    body = delivery.json()
    assert (body["event"], body["repo"], body["pull"], body["project"], body["pull_title"]) == (
        "apply_succeeded", REPO, notified["pr"], "network", TITLE)
    assert body["pull_url"].endswith(f"/pull/{notified['pr']}")
    assert body["summary"] == "Apply complete! Resources: 2 added, 0 changed, 0 destroyed."

    # (c) The receiver answering 500 was tried three times with the same delivery, then given up on, by name.
    tries = broken.requests()
    assert len(tries) == 3 and len({t.headers["X-Tfbot-Delivery"] for t in tries}) == 1
    assert verify(BROKEN_SECRET, tries[0].body, tries[0].headers["X-Tfbot-Signature-256"])
    assert "apply_succeeded notification" in logs and "to notifications[2] (webhook) failed on its last try: " \
        "answered HTTP 500" in logs
    # ... and the PR shows exactly what it shows without notifications: comments, statuses, lock, state.
    assert notified["comments"] == plain["comments"] and len(plain["comments"]) == 2
    assert notified["statuses"] == plain["statuses"] and ("tfbot/apply", "success") in \
        [s[:2] for s in notified["statuses"]]
    assert notified["lock"] is None and plain["lock"] is None
    assert notified["state"] == plain["state"] == {"vpc": "10.0.0.0/16", "subnet": "10.0.1.0/24"}
    # Receivers' URLs and secrets are in neither the logs nor Redis.
    for secret in ("BROKENTOKEN", SECRET, BROKEN_SECRET, slack.url, hook.url):
        assert secret not in logs, secret
        assert not [key for key, text in redis.items() if secret in text], secret


def test_a_pr_waiting_long_for_a_lock_is_told_once(make_scenario, make_receiver):
    receiver = make_receiver()
    sc = make_scenario(extra_settings={"notifications": [
        {"kind": "webhook", "url": receiver.url, "secret": SECRET, "events": ["lock_waiting_long"],
         "lock_waiting_after": "2s"}]})
    sc.init_main(network_files(sc))
    for user in ("alice", "bob"):
        sc.fake.set_permission(REPO, user, "write")
    sc.start()
    first = sc.open_pr("first", network_files(sc, subnet="10.0.1.0/24"), author="alice")
    sc.wait_comment(first, lambda b: "Plan: 2 to add" in b, what="the first plan")
    second = sc.open_pr("second", network_files(sc, peering="pcx-1"), author="bob", title="Peering")
    sc.wait_comment(second, lambda b: f"locked by #{first}" in b, what="the locked notice")
    [told] = receiver.wait(1, timeout=30)
    assert told.headers["X-Tfbot-Event"] == "lock_waiting_long"
    body = told.json()
    assert (body["pull"], body["user"], body["project"], body["pull_title"]) == (second, "bob", "network", "Peering")
    assert body["waited_seconds"] >= 2 and f"held by #{first}" in body["summary"]
    time.sleep(4)  # four more looks at the line (every second for a 2 s threshold): none tells it again
    assert len(receiver.requests()) == 1
    assert sc.lock("network").pull == first
