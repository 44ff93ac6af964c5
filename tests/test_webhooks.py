"""Signature checks and payload validation (pure), then the intake endpoint against a real Redis."""
from __future__ import annotations

import json

import pytest

from bot.intake.webhooks import WebhookRejected, parse_delivery, signature_for, verify_signature, validate_payload

SECRET = "It's a Secret to Everybody"


def test_signature_matches_githubs_documented_example():
    assert signature_for(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    assert verify_signature(SECRET, b"Hello, World!", signature_for(SECRET, b"Hello, World!"))
    assert not verify_signature(SECRET, b"Hello, World!!", signature_for(SECRET, b"Hello, World!"))
    assert not verify_signature(SECRET, b"x", None)
    assert not verify_signature("", b"x", signature_for("", b"x"))


def headers(body: bytes, event="ping", delivery="abc-123", secret=SECRET):
    h = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if secret is not None:
        h["X-Hub-Signature-256"] = signature_for(secret, body)
    return h


@pytest.mark.parametrize(
    "body,hdrs,status",
    [
        (b"{}", {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d"}, 401),
        (b"{}", headers(b"{}", secret="wrong"), 401),
        (b"{not json", headers(b"{not json"), 400),
        (b"[1, 2]", headers(b"[1, 2]"), 400),
        (b"{}", {**headers(b"{}"), "X-GitHub-Event": ""}, 400),
        (b"{}", {**headers(b"{}"), "X-GitHub-Delivery": "../../x"}, 400),
        (b"{}", headers(b"{}", event="pull_request"), 400),
    ],
)
def test_rejections(body, hdrs, status):
    with pytest.raises(WebhookRejected) as err:
        parse_delivery(hdrs, body, SECRET)
    assert err.value.status == status


def test_signature_is_checked_before_anything_else():
    # An unsigned malformed body is a 401, not a 400: nothing about it is trusted enough to inspect.
    with pytest.raises(WebhookRejected) as err:
        parse_delivery({"X-GitHub-Event": "ping"}, b"{oops", SECRET)
    assert err.value.status == 401


def test_validate_payload_names_missing_and_mistyped_fields():
    problems = validate_payload("issue_comment", {"action": "created", "installation": {"id": "7"}, "issue": {}})
    assert "installation.id must be an integer" in problems
    assert "issue.number is missing" in problems
    assert "comment.body is missing" in problems


def test_valid_delivery_parses():
    body = json.dumps({"zen": "Keep it simple.", "hook_id": 1}).encode()
    d = parse_delivery(headers(body), body, SECRET)
    assert (d.event, d.id, d.payload["hook_id"]) == ("ping", "abc-123", 1)
