"""What tfbot makes of one change event (pure): whether it is recorded, which resource it changed, and which
issue it belongs to.

Grouping: calls of one principal on one resource of one service within `group_window` seconds of the group's
first call are one issue, with one entry per call (someone editing a bucket policy five times in the console
is one change to explain, not five).
"""
from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from bot.changes.events import ChangeEvent

if TYPE_CHECKING:
    from bot.config.models import ChangeRecordsConfig

# Request parameters that name the resource a call changes, for calls whose record lists no `resources` ARN.
# A small table of common services' keys, read in this order; anything else is named by its ARNs only.
RESOURCE_PARAMETERS: tuple[str, ...] = (
    "bucketName",                                   # S3
    "instanceId", "groupId", "vpcId", "subnetId",   # EC2 (security groups, VPCs, subnets)
    "roleName", "userName", "policyArn",            # IAM
    "functionName",                                 # Lambda
    "dBInstanceIdentifier", "dBClusterIdentifier",  # RDS
    "tableName",                                    # DynamoDB
    "queueUrl", "topicArn",                         # SQS, SNS
    "keyId",                                        # KMS
    "clusterName",                                  # ECS, EKS
    "loadBalancerArn", "targetGroupArn",            # ELB
    "hostedZoneId",                                 # Route 53
    "secretId",                                     # Secrets Manager
)
# EC2 names instances in a list: {"instancesSet": {"items": [{"instanceId": "i-..."}]}}.
_EC2_INSTANCE_LISTS = ("instancesSet", "resourcesSet")
MAX_ID_LENGTH = 512


def skip_reason(event: ChangeEvent, config: ChangeRecordsConfig) -> str | None:
    """Why `event` is not recorded (one line for the log), or None when it is."""
    if event.read_only and not config.include_read_only:
        return "a read-only call"
    if event.error_code and not config.include_failed:
        return f"a call AWS refused ({event.error_code})"
    if config.event_sources and not _any_match(event.source, config.event_sources):
        return f"{event.source} is not among event_sources"
    if config.event_names and not _any_match(event.name, config.event_names):
        return f"{event.name} is not among event_names"
    if event.account and _any_match(event.account, config.ignore.accounts):
        return f"account {event.account} is ignored"
    for name in event.principal.names:
        if _any_match(name, config.ignore.principals):
            return f"principal {name} is ignored"
    return None


def resource_ids(event: ChangeEvent) -> tuple[str, ...]:
    """What names the resource the call changed: the ARNs the record lists, then the values of the request
    parameters of RESOURCE_PARAMETERS (and EC2's instance lists), without repeats."""
    found: list[object] = list(event.resources)
    params = event.request_parameters if isinstance(event.request_parameters, dict) else {}
    found += [params[k] for k in RESOURCE_PARAMETERS if k in params]
    for key in _EC2_INSTANCE_LISTS:
        items = params[key].get("items") if isinstance(params.get(key), dict) else None
        found += [i.get("instanceId") or i.get("resourceId") for i in items or () if isinstance(i, dict)]
    return tuple(dict.fromkeys(v for v in found if isinstance(v, str) and 0 < len(v) <= MAX_ID_LENGTH))


def resource_of(event: ChangeEvent) -> str:
    """The one identifier a change is titled and grouped by: the first request parameter of the table (a name
    people know, `acme-logs`), else the first ARN, else "" (the service itself)."""
    params = event.request_parameters if isinstance(event.request_parameters, dict) else {}
    named = next((params[k] for k in RESOURCE_PARAMETERS if isinstance(params.get(k), str) and params[k]), None)
    if named and len(named) <= MAX_ID_LENGTH:
        return str(named)
    ids = resource_ids(event)
    return ids[0] if ids else ""


def group_key(event: ChangeEvent) -> str:
    """The key of the group `event` belongs to: principal, service and resource, hashed (a fixed-size Redis key
    and issue marker, whatever the ARNs hold)."""
    parts = (event.principal.who, event.source, resource_of(event))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def in_window(first: datetime, at: datetime, window: float) -> bool:
    """Whether a call at `at` joins a group whose first call was at `first`: within `window` seconds either way
    (CloudTrail delivers events out of order)."""
    return abs((at - first).total_seconds()) <= window


def _any_match(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)

