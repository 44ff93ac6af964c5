"""One SQS message of the change-record queue as a value: an EventBridge event whose `detail` is a CloudTrail
record (pure).

The message body is the event exactly as EventBridge's SQS target sends it (`detail-type` "AWS API Call via
CloudTrail"; AWS documents the envelope in the EventBridge user guide, "AWS service events delivered via AWS
CloudTrail", and the record in the CloudTrail user guide, "CloudTrail record contents" and "CloudTrail
userIdentity element"). Everything in it came from whoever made the call (the user agent, the request
parameters) or from AWS: it is data to show, never markup to trust.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

DETAIL_TYPE = "AWS API Call via CloudTrail"
MAX_MESSAGE_BYTES = 256 * 1024  # SQS's own limit on a message


class MalformedMessage(ValueError):
    """The message is not an EventBridge event carrying a CloudTrail API call; the message says what is wrong."""


@dataclass(frozen=True)
class Principal:
    """Who made the call, as CloudTrail's `userIdentity` says.

    `type`: IAMUser, AssumedRole, AWSService, Root, FederatedUser, IdentityCenterUser, AWSAccount, ... ("" when
    CloudTrail gave none, as for some service events). For an assumed role, `issuer_arn` and `issuer_name` are the
    role (`sessionContext.sessionIssuer`) and `session_name` the name the session was started with.
    `invoked_by` is the AWS service that made the call on the principal's behalf (`invokedBy`).
    """

    type: str = ""
    arn: str = ""
    account: str = ""
    principal_id: str = ""
    user_name: str = ""
    issuer_arn: str = ""
    issuer_name: str = ""
    session_name: str = ""
    invoked_by: str = ""

    @property
    def who(self) -> str:
        """The caller in one string: its ARN, else the service that invoked the call, else its type and id."""
        return self.arn or self.invoked_by or " ".join(p for p in (self.type, self.principal_id) if p) or "unknown"

    @property
    def names(self) -> tuple[str, ...]:
        """What `ignore.principals` globs are matched against: the caller's ARN, its role's ARN, the service."""
        return tuple(n for n in (self.arn, self.issuer_arn, self.invoked_by) if n)


@dataclass(frozen=True)
class ChangeEvent:
    """One CloudTrail management event. `at` is `eventTime` (UTC); `account` the account the call was made in
    (`recipientAccountId`, else the event's `account`); `resources` the ARNs CloudTrail and EventBridge list;
    `request_parameters` the call's parameters exactly as CloudTrail recorded them (mask before showing them)."""

    event_id: str
    at: datetime
    source: str
    name: str
    region: str
    account: str
    principal: Principal
    source_ip: str = ""
    user_agent: str = ""
    request_parameters: Any = None
    resources: tuple[str, ...] = ()
    read_only: bool | None = None
    error_code: str = ""
    error_message: str = ""


def parse_message(body: str | bytes) -> ChangeEvent:
    """The ChangeEvent of one message body. Raises MalformedMessage: not JSON, not an object, another detail-type,
    or a CloudTrail record without its event id, source, name, time or userIdentity."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise MalformedMessage(f"not a JSON object but {type(event).__name__}")
    if event.get("detail-type") != DETAIL_TYPE:
        raise MalformedMessage(f"detail-type is {str(event.get('detail-type'))[:80]!r}, not {DETAIL_TYPE!r}: "
                               "the EventBridge rule must match only CloudTrail API calls")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedMessage("the event has no `detail` object (the CloudTrail record)")
    identity = detail.get("userIdentity")
    if not isinstance(identity, dict):
        raise MalformedMessage("the CloudTrail record has no `userIdentity` object")
    event_id, source, name = (_text(detail, k, required=True) for k in ("eventID", "eventSource", "eventName"))
    at = _time(detail.get("eventTime"))
    read_only = detail.get("readOnly")
    return ChangeEvent(
        event_id=event_id, at=at, source=source, name=name,
        region=_text(detail, "awsRegion") or _text(event, "region"),
        account=_text(detail, "recipientAccountId") or _text(event, "account") or _text(identity, "accountId"),
        principal=_principal(identity),
        source_ip=_text(detail, "sourceIPAddress"), user_agent=_text(detail, "userAgent"),
        request_parameters=detail.get("requestParameters"),
        resources=_resources(detail, event),
        read_only=read_only if isinstance(read_only, bool) else None,
        error_code=_text(detail, "errorCode"), error_message=_text(detail, "errorMessage"))


def _principal(identity: dict[str, Any]) -> Principal:
    context = identity.get("sessionContext")
    issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
    issuer = issuer if isinstance(issuer, dict) else {}
    arn = _text(identity, "arn")
    kind = _text(identity, "type")
    session = ""
    if kind == "AssumedRole" and ":assumed-role/" in arn:
        session = arn.rsplit("/", 1)[-1]  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    return Principal(type=kind, arn=arn, account=_text(identity, "accountId"),
                     principal_id=_text(identity, "principalId"), user_name=_text(identity, "userName"),
                     issuer_arn=_text(issuer, "arn"), issuer_name=_text(issuer, "userName"), session_name=session,
                     invoked_by=_text(identity, "invokedBy"))


def _resources(detail: dict[str, Any], event: dict[str, Any]) -> tuple[str, ...]:
    """ARNs of the record's `resources` (objects with `ARN`) and the envelope's `resources` (strings), in order."""
    found: list[str] = []
    for item in detail.get("resources") or ():
        if isinstance(item, dict) and isinstance(item.get("ARN"), str):
            found.append(item["ARN"])
    found += [r for r in event.get("resources") or () if isinstance(r, str)]
    return tuple(dict.fromkeys(r for r in found if r))


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise MalformedMessage(f"the CloudTrail record has no `{key}`")
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise MalformedMessage(f"`{key}` is a {type(value).__name__}, not a string")
    return str(value)[:2048]


def _time(value: Any) -> datetime:
    """`eventTime` (ISO 8601, `2026-11-03T14:02:11Z`) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise MalformedMessage("the CloudTrail record has no `eventTime`")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMessage(f"eventTime {value[:40]!r} is not an ISO 8601 time") from None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def event_to_dict(event: ChangeEvent) -> dict[str, Any]:
    """A JSON-safe shape of `event` (for Redis): `at` as ISO 8601."""
    from dataclasses import asdict

    data = asdict(event)
    data["at"] = event.at.isoformat()
    data["resources"] = list(event.resources)
    return data


def event_from_dict(data: dict[str, Any]) -> ChangeEvent:
    """The inverse of event_to_dict; raises MalformedMessage for a shape it did not write."""
    try:
        fields = dict(data)
        fields["principal"] = Principal(**fields["principal"])
        fields["at"] = datetime.fromisoformat(fields["at"])
        fields["resources"] = tuple(fields.get("resources") or ())
        return ChangeEvent(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"not a stored change event: {exc}") from None
