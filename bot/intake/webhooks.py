"""Webhook deliveries from GitHub: signature check, header and payload validation. Pure: no I/O here.

`parse_delivery` turns an HTTP request's parts into a `Delivery` or raises `WebhookRejected` with the
status code to answer, so the HTTP layer stays a thin translation.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

# Events a worker acts on. Anything else is acknowledged (202) and dropped.
HANDLED_EVENTS = frozenset({"pull_request", "issue_comment", "pull_request_review", "push", "installation",
                            "check_run"})
# Of these events, only these actions: the rest are acknowledged (202) and dropped without a job. GitHub tells the
# App of every check run it writes (`created`, `completed`); only a press of its button asks for something.
HANDLED_ACTIONS = {"check_run": frozenset({"requested_action"})}
_DELIVERY_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_EVENT_RE = re.compile(r"^[a-z_]{1,64}$")
# The id of a delivery tfbot makes itself for an event it missed while down (bot.ops.reconcile) starts with this;
# GitHub's ids are GUIDs, so the two never meet.
MISSED_EVENT_PREFIX = "reconcile-"


class HeaderLookup(Protocol):
    """The request headers as parse_delivery reads them: a dict, or Flask's case-insensitive Headers."""

    def get(self, key: str, default: str, /) -> str: ...


class WebhookRejected(Exception):
    """The delivery is refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


@dataclass(frozen=True)
class Delivery:
    """A verified, parsed webhook delivery."""

    id: str
    event: str
    payload: dict[str, Any]

    @property
    def action(self) -> str:
        return str(self.payload.get("action") or "")

    @property
    def repo(self) -> str:
        return str((self.payload.get("repository") or {}).get("full_name") or "")

    @property
    def missed(self) -> bool:
        """Made by reconciliation for an event GitHub sent while tfbot was not listening."""
        return self.id.startswith(MISSED_EVENT_PREFIX)

    @property
    def installation_id(self) -> int:
        """The GitHub App installation; every handled event carries it (`parse_delivery` checks)."""
        value = (self.payload.get("installation") or {}).get("id")
        if not isinstance(value, int):
            raise ValueError(f"{self.describe()} carries no installation id")
        return value

    def describe(self) -> str:
        """A short log label such as `pull_request.opened acme/infra#12 (delivery 72d3...)`."""
        number = _number(self.payload)
        where = f" {self.repo}#{number}" if number else (f" {self.repo}" if self.repo else "")
        action = f".{self.action}" if self.action else ""
        return f"{self.event}{action}{where} (delivery {self.id})"


class RawJSON:
    """JSON text already in hand, such as a webhook's body that intake parsed: a job argument written into the job as
    these bytes, not encoded again from the parsed value. The worker reads it back as the parsed value.

    Only UTF-8 text without a byte order mark qualifies (`of`): json.loads also reads UTF-16 and a BOM, which spliced
    into the job's UTF-8 JSON would not parse."""

    __slots__ = ("text",)

    def __init__(self, text: bytes):
        self.text = text

    @classmethod
    def of(cls, body: bytes, parsed: dict[str, Any]) -> "RawJSON | dict[str, Any]":
        """`body` as RawJSON when it can be spliced into a UTF-8 document as it is; else `parsed`, encoded as usual."""
        if body.startswith(b"\xef\xbb\xbf"):
            return parsed
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return parsed
        return cls(body)


def signature_for(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_handled(delivery: Delivery) -> bool:
    """Whether a worker acts on this delivery's event and action."""
    actions = HANDLED_ACTIONS.get(delivery.event)
    return delivery.event in HANDLED_EVENTS and (actions is None or delivery.action in actions)


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of `X-Hub-Signature-256` against the HMAC of the raw body."""
    if not header or not secret:
        return False
    return hmac.compare_digest(signature_for(secret, body).encode(), header.strip().encode())


def parse_delivery(headers: HeaderLookup, body: bytes, secret: str) -> Delivery:
    """Verify and parse one delivery; raise WebhookRejected(401|400) when it must not be processed."""
    if not verify_signature(secret, body, headers.get("X-Hub-Signature-256", "")):
        raise WebhookRejected(401, "missing or invalid X-Hub-Signature-256")
    event = headers.get("X-GitHub-Event", "")
    delivery_id = headers.get("X-GitHub-Delivery", "")
    if not _EVENT_RE.match(event):
        raise WebhookRejected(400, "missing or malformed X-GitHub-Event header")
    if not _DELIVERY_RE.match(delivery_id):
        raise WebhookRejected(400, "missing or malformed X-GitHub-Delivery header")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookRejected(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body must be a JSON object")
    delivery = Delivery(id=delivery_id, event=event, payload=payload)
    if event in HANDLED_EVENTS:
        problems = validate_payload(event, payload)
        if problems:
            raise WebhookRejected(400, "payload is missing fields we use: " + "; ".join(problems))
    return delivery


# Fields each handled event must carry, with their JSON types. Checked before anything is enqueued so a
# worker never meets a payload it cannot read.
_REQUIRED: dict[str, list[tuple[str, type | tuple[type, ...]]]] = {
    "pull_request": [
        ("action", str),
        ("number", int),
        ("installation.id", int),
        ("repository.full_name", str),
        ("repository.clone_url", str),
        ("pull_request.number", int),
        ("pull_request.state", str),
        ("pull_request.head.sha", str),
        ("pull_request.head.ref", str),
        ("pull_request.base.sha", str),
        ("pull_request.base.ref", str),
        ("pull_request.user.login", str),
        ("sender.login", str),
    ],
    "issue_comment": [
        ("action", str),
        ("installation.id", int),
        ("repository.full_name", str),
        ("issue.number", int),
        ("comment.id", int),
        ("comment.body", str),
        ("comment.user.login", str),
        ("sender.login", str),
    ],
    "pull_request_review": [
        ("action", str),
        ("installation.id", int),
        ("repository.full_name", str),
        ("pull_request.number", int),
    ],
    "push": [("installation.id", int), ("repository.full_name", str), ("ref", str)],
    "installation": [("action", str), ("installation.id", int)],
    "check_run": [
        ("action", str),
        ("installation.id", int),
        ("repository.full_name", str),
        ("check_run.id", int),
        ("check_run.head_sha", str),
        ("sender.login", str),
    ],
}
# Fields one action of an event must carry besides its event's.
_REQUIRED_BY_ACTION: dict[tuple[str, str], list[tuple[str, type | tuple[type, ...]]]] = {
    ("check_run", "requested_action"): [("requested_action.identifier", str), ("sender.id", int)],
}


_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")


def validate_payload(event: str, payload: Mapping[str, Any]) -> list[str]:
    """Return one line per missing or wrongly typed field this event must carry."""
    problems = []
    repo = (payload.get("repository") or {}).get("full_name") if isinstance(payload.get("repository"), Mapping) else None
    # The name becomes part of paths and keys: GitHub's own naming rules, and never '..'.
    if isinstance(repo, str) and (not _REPO_NAME_RE.match(repo) or ".." in repo.split("/")):
        problems.append("repository.full_name is not an OWNER/NAME GitHub would send")
    action = payload.get("action")
    for dotted, kind in [*_REQUIRED.get(event, []), *_REQUIRED_BY_ACTION.get((event, str(action)), [])]:
        value: Any = payload
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            problems.append(f"{dotted} is missing")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problems.append(f"{dotted} must be {_type_name(kind)}")
    return problems


def _type_name(kind: type | tuple[type, ...]) -> str:
    names: dict[type | tuple[type, ...], str] = {int: "an integer", str: "a string"}
    return names.get(kind, "of another type")


def _number(payload: Mapping[str, Any]) -> int | None:
    for key in ("number",):
        value = payload.get(key)
        if isinstance(value, int):
            return value
    for parent in ("pull_request", "issue"):
        node = payload.get(parent)
        number = node.get("number") if isinstance(node, Mapping) else None
        if isinstance(number, int):
            return number
    return None
