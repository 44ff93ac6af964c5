"""Change records, the pure part: CloudTrail events as EventBridge sends them (fixtures in tests/cloudtrail_events/,
written from AWS's documentation) parsed into values, filtered, masked, grouped and written as issue text; and a
project's backend block and state read for the identifiers they hold."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from bot.changes.events import MalformedMessage, event_from_dict, event_to_dict, parse_message
from bot.changes.issue import SHOWN_IN_FULL, Placement, issue_body, issue_title, marker
from bot.changes.masking import MASK, mask_parameters, mask_text
from bot.changes.rules import group_key, in_window, resource_ids, resource_of, skip_reason
from bot.changes.state_ids import NoReadableBackend, backend_of, state_ids
from bot.config.models import ChangeRecordsConfig
from bot.models import Project

EVENTS = Path(__file__).parent / "cloudtrail_events"
USER, ROLE, SERVICE = "iam_user_put_bucket_policy", "assumed_role_modify_db_instance", "aws_service_terminate_instances"


def raw(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def event(name: str, **detail: object):
    data = raw(name)
    data["detail"].update(detail)
    return parse_message(json.dumps(data))


def settings(**values: object) -> ChangeRecordsConfig:
    return ChangeRecordsConfig.model_validate({"sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q",
                                               "repo": "acme/infra-changes", **values})


def html(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


# ---- parsing ----------------------------------------------------------------------------------------------

def test_an_iam_user_call_is_read_with_who_when_where_and_what():
    e = event(USER)
    assert (e.principal.type, e.principal.arn, e.principal.user_name) == (
        "IAMUser", "arn:aws:iam::123456789012:user/Alice", "Alice")
    assert e.at == datetime(2026, 11, 3, 14, 2, 11, tzinfo=timezone.utc)
    assert (e.account, e.region, e.source_ip) == ("123456789012", "eu-west-1", "203.0.113.7")
    assert e.user_agent.startswith("[aws-cli/2.15.30")
    assert (e.source, e.name, e.event_id, e.read_only) == (
        "s3.amazonaws.com", "PutBucketPolicy", "2b6c8e0a-1f3d-4a5b-9c7d-8e9f0a1b2c3d", False)
    assert e.resources == ("arn:aws:s3:::acme-logs",)
    assert e.request_parameters["bucketName"] == "acme-logs"


def test_an_assumed_role_names_its_role_and_session():
    who = event(ROLE).principal
    assert (who.type, who.who) == ("AssumedRole", "arn:aws:sts::123456789012:assumed-role/Admin/bob@example.com")
    assert (who.issuer_arn, who.issuer_name, who.session_name) == (
        "arn:aws:iam::123456789012:role/Admin", "Admin", "bob@example.com")
    assert who.names == (who.arn, who.issuer_arn)


def test_a_service_principal_is_named_by_the_service_that_invoked_the_call():
    who = event(SERVICE).principal
    assert (who.type, who.arn, who.invoked_by, who.who) == (
        "AWSService", "", "autoscaling.amazonaws.com", "autoscaling.amazonaws.com")
    assert event(SERVICE).account == "210987654321"


@pytest.mark.parametrize("body, why", [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({**raw(USER), "detail-type": "EC2 Instance State-change Notification"}), "detail-type"),
    (json.dumps({**raw(USER), "detail": "text"}), "no `detail` object"),
    (json.dumps({**raw(USER), "detail": {**raw(USER)["detail"], "eventID": None}}), "no `eventID`"),
    (json.dumps({**raw(USER), "detail": {**raw(USER)["detail"], "eventTime": "yesterday"}}), "not an ISO 8601"),
    (json.dumps({**raw(USER), "detail": {**raw(USER)["detail"], "userIdentity": []}}), "no `userIdentity`"),
    (json.dumps({**raw(USER), "detail": {**raw(USER)["detail"], "eventName": {"a": 1}}}), "not a string"),
    ("x" * (256 * 1024 + 1), "larger than"),
])
def test_a_message_that_is_not_a_cloudtrail_api_call_is_malformed_with_the_reason(body, why):
    with pytest.raises(MalformedMessage, match=re.escape(why)):
        parse_message(body)


def test_a_stored_event_reads_back_the_same():
    for name in (USER, ROLE, SERVICE):
        assert event_from_dict(json.loads(json.dumps(event_to_dict(event(name))))) == event(name)


# ---- what is recorded ---------------------------------------------------------------------------------------

def test_read_only_and_refused_calls_are_skipped_unless_asked_for():
    assert skip_reason(event(USER, readOnly=True), settings()) == "a read-only call"
    assert skip_reason(event(USER, readOnly=True), settings(include_read_only=True)) is None
    assert skip_reason(event(USER, errorCode="AccessDenied"), settings()) == "a call AWS refused (AccessDenied)"
    assert skip_reason(event(USER, errorCode="AccessDenied"), settings(include_failed=True)) is None
    assert skip_reason(event(USER), settings()) is None


def test_sources_names_accounts_and_principals_filter_with_globs():
    assert skip_reason(event(USER), settings(event_sources=["ec2.amazonaws.com"])) == \
        "s3.amazonaws.com is not among event_sources"
    assert skip_reason(event(USER), settings(event_sources="s3.*", event_names=["Put*"])) is None
    assert skip_reason(event(USER), settings(event_names=["Delete*"])) == "PutBucketPolicy is not among event_names"
    assert skip_reason(event(USER), settings(ignore={"accounts": ["1234567890*"]})) == \
        "account 123456789012 is ignored"
    assert skip_reason(event(SERVICE), settings(ignore={"accounts": ["123456789012"]})) is None
    # A role is ignored whatever its session: its ARN is the session issuer's.
    assert skip_reason(event(ROLE), settings(ignore={"principals": ["arn:aws:iam::*:role/Admin"]})) == \
        "principal arn:aws:iam::123456789012:role/Admin is ignored"
    assert skip_reason(event(SERVICE), settings(ignore={"principals": ["autoscaling.*"]})) == \
        "principal autoscaling.amazonaws.com is ignored"


def test_an_ignored_account_must_be_an_account_id_or_a_glob_of_one():
    with pytest.raises(ValueError, match="not an AWS account id"):
        settings(ignore={"accounts": ["acme-prod"]})


def test_the_resource_comes_from_the_arns_then_the_documented_request_parameters():
    assert resource_ids(event(USER)) == ("arn:aws:s3:::acme-logs", "acme-logs")
    assert resource_of(event(USER)) == "acme-logs"  # the name people know, not the ARN
    assert resource_ids(event(ROLE)) == ("orders-db",)
    assert resource_ids(event(SERVICE)) == ("i-0a1b2c3d4e5f60718",)
    assert resource_of(event(USER, requestParameters={"somethingElse": "x"}, resources=[])) == ""


def test_calls_of_one_principal_on_one_resource_share_a_group_within_the_window():
    first = event(USER)
    later = event(USER, eventName="DeleteBucketPolicy", eventID="other", eventTime="2026-11-03T14:09:00Z")
    assert group_key(first) == group_key(later)
    assert group_key(first) != group_key(event(USER, requestParameters={"bucketName": "acme-other"}, resources=[]))
    assert group_key(first) != group_key(replace(first, principal=event(ROLE).principal))
    assert in_window(first.at, later.at, 600) and in_window(later.at, first.at, 600)
    assert not in_window(first.at, first.at + timedelta(seconds=601), 600)


# ---- masking ------------------------------------------------------------------------------------------------

def test_secrets_are_masked_by_their_key_and_by_their_look():
    params = {"dBInstanceIdentifier": "orders-db", "masterUserPassword": "hunter2", "kmsKeyId": "alias/orders",
              "nested": [{"SecretString": "s3cr3t", "Tags": [{"Key": "owner", "Value": "AKIAIOSFODNN7EXAMPLE"}]}],
              "note": "key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "token": "",
              "session": "FwoGZXIvYXdzE" + "A" * 120}
    masked = mask_parameters(params)
    text = json.dumps(masked)
    for secret in ("hunter2", "s3cr3t", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "FwoGZXIvYXdzE"):
        assert secret not in text
    assert masked["masterUserPassword"] == MASK and masked["note"] == f"key {MASK} here"
    assert (masked["dBInstanceIdentifier"], masked["kmsKeyId"], masked["token"]) == ("orders-db", "alias/orders", "")
    assert mask_text("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- after") == f"{MASK} after"
    assert mask_text("arn:aws:iam::123456789012:role/Admin") == "arn:aws:iam::123456789012:role/Admin"


# ---- the issue ----------------------------------------------------------------------------------------------

def test_an_issue_says_who_when_where_and_what():
    e = event(USER)
    body = issue_body(group_key(e), [e], Placement())
    assert issue_title([e]) == "AWS change: PutBucketPolicy on acme-logs (s3.amazonaws.com)"
    assert body.startswith(marker(group_key(e)) + "\n")
    for shown in ("**Who:** `arn:aws:iam::123456789012:user/Alice` (`IAMUser`)",
                  "**When:** 2026-11-03 14:02:11 UTC",
                  "**Where:** account `123456789012`, region `eu-west-1`, source IP `203.0.113.7`, user agent "
                  "`[aws-cli/2.15.30",
                  "**What:** `s3.amazonaws.com` `PutBucketPolicy`, event id `2b6c8e0a-1f3d-4a5b-9c7d-8e9f0a1b2c3d`",
                  '"bucketName": "acme-logs"', "Comment why this change was made, then close this issue.",
                  "No tfbot project's Terraform state holds this resource"):
        assert shown in body
    role = issue_body("ab" * 16, [event(ROLE)], Placement())
    assert "**Assumed role:** `arn:aws:iam::123456789012:role/Admin`, session `bob@example.com`" in role
    assert "**Invoked by:** `autoscaling.amazonaws.com`" in issue_body("cd" * 16, [event(SERVICE)], Placement())


def test_an_issue_names_the_projects_whose_state_holds_the_resource_and_their_drift_check():
    e = event(USER)
    storage = Project(repo="acme/infra", name="storage", dir="storage")
    body = issue_body(group_key(e), [e], Placement((storage,), drift_checks=True))
    assert ("**This change was made outside Terraform.** `acme-logs` is in the Terraform state of project "
            "`storage` of `acme/infra` (dir `storage`, workspace `default`). tfbot queued its drift check.") in body
    assert "drift check" not in issue_body(group_key(e), [e], Placement((storage,), drift_checks=False))


def test_hostile_event_text_stays_text_and_secrets_never_reach_the_issue():
    from bot.changes.recorder import _masked

    e = _masked(event(ROLE))
    body = issue_body(group_key(e), [e], Placement())
    rendered = html(body)
    assert "<img" not in rendered and "&lt;img src=x onerror=alert(1)&gt;" in rendered
    assert rendered.count("<!--") == 1  # the marker, and nothing the event wrote
    assert "Orders-db-p4ssw0rd!" not in body and '"masterUserPassword": "***"' in body
    # A user agent holding a fence cannot close the code block around the request parameters.
    fenced = event(ROLE, requestParameters={"dBInstanceIdentifier": "x", "note": "```\n# heading\n```"})
    assert "<h1>" not in html(issue_body("ef" * 16, [fenced], Placement()))


def test_a_group_lists_every_call_and_the_title_says_how_many():
    calls = [event(USER, eventID=f"id-{i}", eventName="PutBucketPolicy" if i % 2 else "DeleteBucketPolicy",
                   eventTime=f"2026-11-03T14:{i % 60:02d}:00Z") for i in range(SHOWN_IN_FULL + 3)]
    body = issue_body(group_key(calls[0]), calls, Placement())
    assert issue_title(calls[:2]) == ("AWS change: 2 calls (DeleteBucketPolicy, PutBucketPolicy) on acme-logs "
                                      "(s3.amazonaws.com)")
    assert f"## {len(calls)} calls within the group's window" in body
    assert body.count("**Who:**") == SHOWN_IN_FULL and "### Later calls" in body
    assert body.count("- 2026-11-03 14:") == 3
    many = [replace(calls[0], event_id=str(i)) for i in range(150)]
    assert "… and 50 more calls." in issue_body("aa" * 16, many, Placement())
    assert len(issue_body("aa" * 16, many, Placement())) < 65536


def test_a_title_is_one_line_within_githubs_limit():
    e = event(USER, requestParameters={"bucketName": "a\nb" + "x" * 400}, resources=[])
    title = issue_title([e])
    assert "\n" not in title and len(title) == 256 and title.endswith("…")


# ---- reading a project's state -----------------------------------------------------------------------------

LOCAL = 'terraform {\n  backend "local" {\n    path = "/srv/state/terraform.tfstate"\n  }\n}\n'


def test_the_backend_block_is_copied_with_literal_values_only():
    s3 = ('terraform {\n  required_version = ">= 1.4"\n  backend "s3" {\n    bucket = "acme-state"\n'
          '    key = "net/terraform.tfstate"\n    encrypt = true\n  }\n}\nresource "aws_s3_bucket" "b" {}\n')
    backend = backend_of({"net/versions.tf": s3, "net/main.tf": 'resource "x" "y" {}\n'})
    assert (backend.type, backend.settings) == ("s3", {"bucket": "acme-state", "key": "net/terraform.tfstate",
                                                       "encrypt": True})
    assert json.loads(backend.tf_json()) == {"terraform": {"backend": {"s3": backend.settings}}}
    assert backend_of({"a/main.tf": LOCAL}).settings == {"path": "/srv/state/terraform.tfstate"}
    as_json = json.dumps({"terraform": [{"backend": [{"gcs": {"bucket": "b"}}]}]})
    assert backend_of({"a/backend.tf.json": as_json}).type == "gcs"


@pytest.mark.parametrize("text, why", [
    ('resource "x" "y" {}\n', "no backend block"),
    ('terraform {\n  backend "local" {\n    path = "../state/terraform.tfstate"\n  }\n}\n', "relative to one checkout"),
    ('terraform {\n  backend "local" {}\n}\n', "in the working directory"),
    ('terraform {\n  backend "s3" {\n    bucket = var.bucket\n  }\n}\n', "not a literal value"),
    ('terraform {\n  cloud {\n    organization = "acme"\n  }\n}\n', "HCP Terraform"),
    ('terraform {\n  backend "s3" {\n', "line"),
])
def test_a_state_tfbot_cannot_read_is_said_why(text, why):
    with pytest.raises(NoReadableBackend, match=re.escape(why)):
        backend_of({"a/main.tf": text})


def test_the_identifiers_of_managed_resources_are_taken_from_the_state():
    state = {"version": 4, "resources": [
        {"mode": "managed", "type": "aws_s3_bucket", "name": "logs", "instances": [
            {"attributes": {"id": "acme-logs", "arn": "arn:aws:s3:::acme-logs", "bucket": "acme-logs",
                            "tags": {"name": "not an identifier"}}}]},
        {"mode": "managed", "type": "aws_iam_role", "name": "r", "instances": [
            {"attributes": {"id": "deploy", "name": "deploy", "arn": "arn:aws:iam::1:role/deploy", "path": "/"}}]},
        {"mode": "data", "type": "aws_vpc", "name": "main", "instances": [{"attributes": {"id": "vpc-123"}}]},
    ]}
    assert state_ids(state) == {"acme-logs", "arn:aws:s3:::acme-logs", "deploy", "arn:aws:iam::1:role/deploy"}
    assert state_ids({}) == set()


# ---- the configuration ---------------------------------------------------------------------------------------

def test_every_change_records_key_is_documented():
    rows = {line.split("|")[1].strip().strip("`") for line in
            (Path(__file__).parents[1] / "docs" / "configuration.md").read_text().splitlines() if line.startswith("| `")}
    missing = [k for k in ChangeRecordsConfig.model_fields if f"change_records.{k}" not in rows]
    assert not missing and "change_records" in rows


def test_a_bad_change_records_section_is_refused_naming_each_key(tmp_path):
    from bot.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config({"github": {"app_id": 1, "webhook_secret": "s"}, "change_records": {
            "sqs_queue_url": "sqs://nope", "repo": "acme/*", "wait_seconds": 30, "ignore": {"accounts": ["prod"]},
            "group_windw": 600}}, base_dir=tmp_path, github_app=False)
    text = "\n".join(refused.value.problems)
    for key, why in (("change_records.sqs_queue_url", "must be an http(s) URL"),
                     ("change_records.repo", "must be OWNER/NAME of one repository"),
                     ("change_records.wait_seconds", "20"), ("change_records.ignore.accounts", "not an AWS account"),
                     ("change_records.group_windw", "group_window")):
        assert re.search(rf"^{re.escape(key)}: .*{re.escape(why)}", text, re.MULTILINE), text
    with pytest.raises(ConfigError, match="change_records.repo: .*missing"):
        parse_config({"change_records": {"sqs_queue_url": "https://sqs.x/1/q"}}, base_dir=tmp_path, github_app=False)
