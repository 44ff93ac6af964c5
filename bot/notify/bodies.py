"""The HTTP requests receivers get (pure): Slack's incoming-webhook message, or tfbot's JSON signed like GitHub's
webhooks.

Every request carries `X-Tfbot-Event` (the event) and `X-Tfbot-Delivery` (a UUID, the same on every retry of one
notification). A webhook's also carries `X-Tfbot-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the exact body
bytes under the receiver's `secret`: a receiver recomputes it over the body it read and compares in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from bot.notify.notices import (APPLY_FAILED, APPLY_SUCCEEDED, DRIFT_FOUND, DRIFT_RESOLVED, LOCK_WAITING_LONG,
                                Notice)

SIGNATURE_HEADER = "X-Tfbot-Signature-256"
EVENT_HEADER = "X-Tfbot-Event"
DELIVERY_HEADER = "X-Tfbot-Delivery"
USER_AGENT = "tfbot-notifications"
# Text from PRs and Terraform is cut to this many characters: a notification is a line, the PR has the rest.
MAX_TEXT = 300
_VERBS = {APPLY_SUCCEEDED: "Applied", APPLY_FAILED: "Apply failed", LOCK_WAITING_LONG: "Waiting long for a lock",
          DRIFT_FOUND: "Drift found", DRIFT_RESOLVED: "Drift resolved"}


@dataclass(frozen=True)
class Request:
    """What one POST to a receiver sends: the body bytes and the headers."""

    body: bytes
    headers: dict[str, str]


def request_for(kind: str, secret: str, notice: Notice, delivery: str) -> Request:
    """The request of `notice` to a receiver of `kind` (`slack` or `webhook`, signed with `secret`)."""
    message = slack_message(notice) if kind == "slack" else webhook_payload(notice)
    body = encode(message)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: notice.event,
               DELIVERY_HEADER: delivery}
    if kind == "webhook":
        headers[SIGNATURE_HEADER] = signature(secret, body)
    return Request(body=body, headers=headers)


def encode(message: dict[str, Any]) -> bytes:
    """The body bytes: compact JSON, UTF-8. The signature covers exactly these bytes."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of body under secret>`, as GitHub's X-Hub-Signature-256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_payload(notice: Notice) -> dict[str, Any]:
    """tfbot's JSON: stable field names (docs/configuration.md#notifications); text as it came, cut to MAX_TEXT."""
    return {
        "event": notice.event, "repo": notice.repo, "project": notice.project, "pull": notice.pull,
        "pull_title": one_line(notice.pull_title), "pull_url": notice.pull_url, "user": notice.user,
        "summary": one_line(notice.summary), "run_url": notice.run_url, "waited_seconds": int(notice.waited_seconds),
        "at": iso_time(notice.at),
    }


def slack_message(notice: Notice) -> dict[str, Any]:
    """Slack's incoming-webhook message: `text` (the notification's fallback) and mrkdwn `blocks`."""
    verb = _VERBS.get(notice.event, notice.event)
    where = f"{notice.repo}#{notice.pull}" if notice.pull else notice.repo
    project = f" `{notice.project.replace('`', '')}`" if notice.project else ""
    title = f": {one_line(notice.pull_title)}" if notice.pull_title else ""
    headline = f"*{verb}*{slack_escape(project)} in {slack_link(notice.pull_url, where)}{slack_escape(title)}"
    details = [f"by {slack_escape(notice.user)}"] if notice.user else []
    if notice.run_url:
        details.append(slack_link(notice.run_url, "run log"))
    details.append(iso_time(notice.at))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": headline}}]
    if notice.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "> " + slack_escape(one_line(notice.summary))}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(details)}]})
    fallback = f"{verb}{project.replace('`', '')} in {where}{title}"
    return {"text": slack_escape(fallback), "blocks": blocks}


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities, so text cannot make links or mentions (`<!channel>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str, label: str) -> str:
    """`<url|label>` for an http(s) URL; the label alone for anything else."""
    if not re.match(r"^https?://", url):
        return slack_escape(label)
    return f"<{slack_escape(url).replace('|', '%7C')}|{slack_escape(label)}>"


def one_line(text: str) -> str:
    """Whitespace runs (newlines included) as one space, cut to MAX_TEXT characters: no forged extra lines."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_TEXT else line[:MAX_TEXT - 1] + "…"


def iso_time(at: float) -> str:
    """Unix seconds as ISO 8601 UTC: 2026-05-04T12:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
