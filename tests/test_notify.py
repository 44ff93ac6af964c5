"""Notifications as values: the `notifications` config and its problems, who wants which notice, the notices of
applies and of long waits, Slack's message (hostile text escaped), tfbot's JSON and its signature."""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
import yaml

from bot.adapters.logs import SecretMasker
from bot.config import ConfigError, load_config, parse_config
from bot.config.models import NOTIFY_EVENTS, NotificationConfig, parse_duration
from bot.models import LockInfo, LockState, Outcome, Project, ProjectResult
from bot.notify.bodies import (DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, encode, request_for, slack_message,
                               webhook_payload)
from bot.notify.notices import (Notice, apply_notices, human_duration, lock_wait_threshold, receiver_id,
                                receivers_for, waiting_notices, watch_interval)
from bot.state.records import Command

REPO_ROOT = Path(__file__).resolve().parent.parent
SLACK_URL = "https://hooks.slack.com/services/T000/B000/SLACKTOKEN1234567890"
HOOK_URL = "https://receiver.example.com/tfbot?token=HOOKTOKEN1234567890"
HOOK_SECRET = "webhook-secret-0123456789"
NETWORK = Project(repo="acme/infra", name="network", dir="network")


def receivers(*entries: dict) -> tuple[NotificationConfig, ...]:
    return parse_config({"notifications": list(entries)}, base_dir=Path("."), github_app=False).notifications


def problems(entries: list) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"notifications": entries}, base_dir=Path("."), github_app=False)
    return caught.value.problems


# --- the config ---------------------------------------------------------------------------------------------------


def test_a_receiver_gets_every_event_of_every_repository_by_default():
    slack, hook = receivers({"kind": "slack", "url": SLACK_URL},
                            {"kind": "webhook", "url": HOOK_URL, "secret": HOOK_SECRET, "events": "apply_failed",
                             "repos": ["acme/*"], "lock_waiting_after": "1h30m"})
    assert slack.events == NOTIFY_EVENTS and slack.repos == ("*",) and slack.lock_waiting_after == 3600
    assert hook.events == ("apply_failed",) and hook.lock_waiting_after == 5400


@pytest.mark.parametrize("entry, key, reason", [
    ({"kind": "webhook", "url": "http://receiver.example.com/x", "secret": HOOK_SECRET}, "notifications[1].url",
     "http:// is allowed only to this host"),
    ({"kind": "webhook", "url": "ftp://receiver.example.com/x", "secret": HOOK_SECRET}, "notifications[1].url",
     "must be an https:// URL"),
    ({"kind": "webhook", "url": "https://user:pw@receiver.example.com/x", "secret": HOOK_SECRET},
     "notifications[1].url", "must not carry a user or password"),
    ({"kind": "webhook", "url": HOOK_URL}, "notifications[1].secret", "required for a webhook"),
    ({"kind": "webhook", "url": HOOK_URL, "secret": "short"}, "notifications[1].secret", "too short"),
    ({"kind": "slack", "url": SLACK_URL, "secret": HOOK_SECRET}, "notifications[1].secret", "not used by slack"),
    ({"kind": "slack", "url": SLACK_URL, "events": ["apply_done"]}, "notifications[1].events[0]", "must be 'apply_"),
    ({"kind": "slack", "url": SLACK_URL, "events": []}, "notifications[1].events", "an empty list sends nothing"),
    ({"kind": "slack", "url": SLACK_URL, "repos": []}, "notifications[1].repos", "must not be empty"),
    ({"kind": "slack", "url": SLACK_URL, "lock_waiting_after": "soon"}, "notifications[1].lock_waiting_after",
     "must be a duration such as 90s"),
    ({"kind": "slack", "url": SLACK_URL, "lock_waiting_after": "0s"}, "notifications[1].lock_waiting_after",
     "must be at least 1"),
    ({"kind": "teams", "url": SLACK_URL}, "notifications[1].kind", "must be 'slack' or 'webhook'"),
    ({"kind": "slack"}, "notifications[1].url", "missing"),
    ({"kind": "slack", "url": SLACK_URL, "channel": "#ops"}, "notifications[1].channel", "unknown key"),
])
def test_a_bad_entry_names_its_key_and_the_reason_and_never_the_url(entry, key, reason):
    [line] = problems([{"kind": "slack", "url": SLACK_URL}, entry])
    assert line.startswith(f"{key}: ") and reason in line, line
    assert "TOKEN" not in line and "receiver.example.com" not in line and HOOK_SECRET not in line


def test_loopback_http_is_allowed_for_testing():
    for url in ("http://127.0.0.1:8000/hook", "http://localhost/hook", "http://[::1]:9/hook"):
        assert receivers({"kind": "slack", "url": url})[0].url == url


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400),
                                           ("1h30m", 5400), (" 2H ", 7200), ("45", 45), (30, 30), (1.5, 1.5),
                                           ("2 hours", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1m2h", "-5m", True, None])
def test_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(text)


def test_receiver_urls_and_secrets_are_secrets_masked_in_logs():
    config = parse_config({"notifications": [{"kind": "slack", "url": SLACK_URL},
                                             {"kind": "webhook", "url": HOOK_URL, "secret": HOOK_SECRET}]},
                          base_dir=Path("."), github_app=False)
    assert {SLACK_URL, HOOK_URL, HOOK_SECRET} <= set(config.secrets())
    masked = SecretMasker(config.secrets()).mask(f"posting to {SLACK_URL} and {HOOK_URL} with {HOOK_SECRET}")
    assert "TOKEN" not in masked and HOOK_SECRET not in masked
    assert "SLACKTOKEN" not in repr(config) and HOOK_SECRET not in repr(config)


def test_check_config_names_receivers_by_kind_and_host_only():
    from bot.cli import _receivers_line

    config = parse_config({"notifications": [{"kind": "slack", "url": SLACK_URL}]}, base_dir=Path("."),
                          github_app=False)
    assert _receivers_line(config) == "notifications[0] slack to hooks.slack.com"
    assert _receivers_line(parse_config({}, base_dir=Path("."), github_app=False)) == "none"


def test_urls_and_secrets_may_come_from_ssm(tmp_path, app_private_key, moto_server_url, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=moto_server_url)
    ssm.put_parameter(Name="/tfbot/hook-url", Value=HOOK_URL, Type="SecureString", Overwrite=True)
    ssm.put_parameter(Name="/tfbot/hook-secret", Value=HOOK_SECRET, Type="SecureString", Overwrite=True)
    data = {"github": {"app_id": 7, "private_key": app_private_key, "webhook_secret": "s3cr3t-value"},
            "aws": {"region": "us-east-1", "endpoint_url": moto_server_url},
            "notifications": [{"kind": "webhook", "url": "ssm:/tfbot/hook-url", "secret": "ssm:/tfbot/hook-secret"}]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    [hook] = load_config(path, environ={}).notifications
    assert (hook.url, hook.secret) == (HOOK_URL, HOOK_SECRET)

    data["notifications"][0]["secret"] = "ssm:/tfbot/missing"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == ["notifications[0].secret: cannot read ssm:/tfbot/missing: SSM answered "
                                     "ParameterNotFound for parameter /tfbot/missing"]
    # A command that only reads Redis sends nothing and reads nothing from SSM.
    data["notifications"][0]["url"] = "ssm:/tfbot/nowhere"
    path.write_text(yaml.safe_dump(data))
    assert load_config(path, environ={}, github_app=False).notifications[0].url == "ssm:/tfbot/nowhere"


def test_the_configuration_reference_documents_every_notification_key():
    page = (REPO_ROOT / "docs" / "configuration.md").read_text()
    section = page.split("## `notifications[]`", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")}
    assert set(NotificationConfig.model_fields) <= rows
    for event in NOTIFY_EVENTS:
        assert f"`{event}`" in section


# --- who gets what ------------------------------------------------------------------------------------------------


def test_receivers_are_chosen_by_event_repository_and_wait():
    chosen = receivers({"kind": "slack", "url": SLACK_URL},
                       {"kind": "slack", "url": SLACK_URL + "2", "events": ["apply_failed"]},
                       {"kind": "slack", "url": SLACK_URL + "3", "repos": ["ACME/net-*", "other/*"]},
                       {"kind": "slack", "url": SLACK_URL + "4", "lock_waiting_after": "2h"})
    assert receivers_for(Notice("apply_succeeded", "acme/infra"), chosen) == [0, 3]
    assert receivers_for(Notice("apply_failed", "acme/infra"), chosen) == [0, 1, 3]
    assert receivers_for(Notice("apply_failed", "acme/net-core"), chosen) == [0, 1, 2, 3]
    assert receivers_for(Notice("lock_waiting_long", "acme/infra", waited_seconds=3600), chosen) == [0]
    assert receivers_for(Notice("lock_waiting_long", "acme/infra", waited_seconds=7200), chosen) == [0, 3]
    assert lock_wait_threshold(chosen) == 3600
    assert lock_wait_threshold(chosen[1:2]) is None


def test_a_receiver_is_known_by_kind_and_url_without_revealing_them():
    slack, other = receivers({"kind": "slack", "url": SLACK_URL}, {"kind": "slack", "url": SLACK_URL + "x"})
    assert receiver_id(slack) != receiver_id(other) and receiver_id(slack) == receiver_id(slack.model_copy())
    assert "TOKEN" not in receiver_id(slack) and len(receiver_id(slack)) == 16


def command(kind: str) -> Command:
    return Command(id="cmd1", kind=kind, repo="acme/infra", pull=12, head_sha="a" * 40, installation=1, user="mo",
                   total=5, info={"title": "Bigger VPC", "html_url": "https://github.com/acme/infra/pull/12"})


def test_an_apply_notifies_each_project_applied_or_failed():
    dns = Project(repo="acme/infra", name="dns", dir="dns")
    results = [ProjectResult(NETWORK, Outcome.APPLIED, summary="Apply complete! Resources: 1 added.", run_id="r1"),
               ProjectResult(dns, Outcome.APPLY_FAILED, summary="Error: boom"),
               ProjectResult(Project(repo="acme/infra", name="a", dir="a"), Outcome.ERROR),
               ProjectResult(Project(repo="acme/infra", name="b", dir="b"), Outcome.REFUSED),
               ProjectResult(Project(repo="acme/infra", name="c", dir="c"), Outcome.NOTHING_TO_APPLY)]
    notices = apply_notices(command("merge"), results, lambda run_id: f"https://tfbot/runs/{run_id}", 100.0)
    assert [(n.event, n.project) for n in notices] == [("apply_succeeded", "network"), ("apply_failed", "dns"),
                                                       ("apply_failed", "a")]
    first = notices[0]
    assert (first.repo, first.pull, first.pull_title, first.user, first.run_url, first.at) == (
        "acme/infra", 12, "Bigger VPC", "mo", "https://tfbot/runs/r1", 100.0)
    assert first.summary == "Apply complete! Resources: 1 added." and notices[2].summary == "apply failed"
    assert first.key == f"cmd1:{NETWORK.id}" and notices[1].run_url == ""
    assert apply_notices(command("plan"), results, str, 0.0) == []


def test_prs_that_waited_long_in_a_line_are_noticed_once_per_lock():
    lock = LockInfo(repo="acme/infra", dir="network", workspace="default", project="network", pull=1, user="alice",
                    locked_at=0, token=1, state=LockState.PLANNED)
    line = [{"pull": 2, "user": "bob", "pull_title": "Second", "pull_url": "https://github.com/acme/infra/pull/2",
             "queued_at": 1000.0},
            {"pull": 3, "user": "carol", "pull_title": "Third", "pull_url": "", "queued_at": 4000.0}]
    [notice] = waiting_notices([(lock, line)], now=1000.0 + 3700, after=3600)
    assert (notice.event, notice.pull, notice.user, notice.waited_seconds) == ("lock_waiting_long", 2, "bob", 3700)
    assert notice.summary == "#2 has waited 1h 1m for the lock of network, held by #1 (planned)"
    assert notice.key == "acme/infra:default:network:2"
    assert len(waiting_notices([(lock, line)], now=4000.0 + 3600, after=3600)) == 2
    assert waiting_notices([(lock, line)], now=1000.0 + 3599, after=3600) == []


@pytest.mark.parametrize("threshold, interval", [(2, 1.0), (40, 10.0), (3600, 60.0)])
def test_the_waiting_lines_are_read_often_enough_for_the_shortest_threshold(threshold, interval):
    assert watch_interval(threshold) == interval


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (190, "3m 10s"), (3600, "1h"), (7500, "2h 5m"),
                                           (90000, "1d 1h")])
def test_human_durations(seconds, text):
    assert human_duration(seconds) == text


# --- the bodies ---------------------------------------------------------------------------------------------------

HOSTILE = Notice(
    event="apply_succeeded", repo="acme/infra", project="network", pull=12,
    pull_title="<!channel> Fix & <https://evil.example|click>\n*forged line*",
    pull_url="https://github.com/acme/infra/pull/12", user="<@U0ADMIN>",
    summary="Apply complete!\n<!here> > quoted", run_url="https://tfbot.example.com/runs/r1", at=1767225600.0)


def slack_texts(message: dict) -> list[str]:
    texts = [message["text"]]
    for block in message["blocks"]:
        texts += [block["text"]["text"]] if "text" in block else [e["text"] for e in block["elements"]]
    return texts


def test_slack_gets_its_own_format_naming_repo_pr_and_project():
    message = slack_message(HOSTILE)
    headline = message["blocks"][0]["text"]["text"]
    assert message["blocks"][0]["text"]["type"] == "mrkdwn"
    assert headline.startswith("*Applied* `network` in <https://github.com/acme/infra/pull/12|acme/infra#12>: ")
    assert "<https://tfbot.example.com/runs/r1|run log>" in message["blocks"][2]["elements"][0]["text"]
    assert "2026-01-01T00:00:00Z" in message["blocks"][2]["elements"][0]["text"]
    assert message["text"].startswith("Applied network in acme/infra#12: ")


def test_hostile_text_cannot_mention_link_or_add_lines_in_slack():
    for text in slack_texts(slack_message(HOSTILE)):
        # Only tfbot's own two links open with '<'; the PR's text arrives as entities, on one line.
        assert "<!" not in text and "<@" not in text and "<https://evil" not in text and "\n" not in text, text
    assert "&lt;!channel&gt; Fix &amp; &lt;https://evil.example|click&gt; *forged line*" in \
        slack_message(HOSTILE)["blocks"][0]["text"]["text"]
    assert "&lt;@U0ADMIN&gt;" in slack_message(HOSTILE)["blocks"][2]["elements"][0]["text"]
    sneaky = Notice(event="drift_found", repo="acme/infra", project="dns`*", pull_url="javascript:alert(1)")
    headline = slack_message(sneaky)["blocks"][0]["text"]["text"]
    assert headline == "*Drift found* `dns*` in acme/infra"


def test_long_text_is_cut():
    message = slack_message(Notice(event="apply_failed", repo="acme/infra", summary="x" * 5000))
    assert len(message["blocks"][1]["text"]["text"]) < 400
    assert len(webhook_payload(Notice(event="apply_failed", repo="acme/infra", pull_title="y" * 5000))["pull_title"]) \
        == 300


def test_the_webhook_json_has_stable_fields():
    payload = webhook_payload(HOSTILE)
    assert payload == {
        "event": "apply_succeeded", "repo": "acme/infra", "project": "network", "pull": 12,
        "pull_title": "<!channel> Fix & <https://evil.example|click> *forged line*",
        "pull_url": "https://github.com/acme/infra/pull/12", "user": "<@U0ADMIN>",
        "summary": "Apply complete! <!here> > quoted", "run_url": "https://tfbot.example.com/runs/r1",
        "waited_seconds": 0, "at": "2026-01-01T00:00:00Z"}


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (docs/security.md): recompute over the body as read, compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_a_webhook_request_is_signed_over_its_exact_body():
    request = request_for("webhook", HOOK_SECRET, HOSTILE, "delivery-1")
    assert json.loads(request.body) == webhook_payload(HOSTILE) and request.body == encode(webhook_payload(HOSTILE))
    assert request.headers[EVENT_HEADER] == "apply_succeeded" and request.headers[DELIVERY_HEADER] == "delivery-1"
    assert request.headers["Content-Type"] == "application/json"
    assert verify(HOOK_SECRET, request.body, request.headers[SIGNATURE_HEADER])
    assert not verify("another-secret-0123", request.body, request.headers[SIGNATURE_HEADER])
    assert not verify(HOOK_SECRET, request.body.replace(b"network", b"netw0rk"), request.headers[SIGNATURE_HEADER])


def test_a_slack_request_is_slack_json_and_unsigned():
    request = request_for("slack", "", HOSTILE, "delivery-2")
    assert json.loads(request.body) == slack_message(HOSTILE)
    assert SIGNATURE_HEADER not in request.headers and request.headers[DELIVERY_HEADER] == "delivery-2"
