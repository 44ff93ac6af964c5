"""One message of the change-record queue, recorded: parsed, filtered, masked, grouped, written as a GitHub issue,
the projects whose state holds the resource named and their drift checks queued.

`ChangeRecorder.handle` never raises for what a message holds or for GitHub failing: it returns what happened
(`Handled`), and the poller (bot/ops/change_poller.py) deletes the message, sets it aside, or leaves it for SQS
to deliver again. Only a recorded call is marked seen, so a redelivery of one already written adds nothing.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING

import redis

from bot.adapters.github import GitHubError, RepoAPI
from bot.changes.events import ChangeEvent, MalformedMessage, event_from_dict, event_to_dict, parse_message
from bot.changes.issue import Placement, issue_body, issue_title
from bot.changes.masking import mask_parameters, mask_text
from bot.changes.rules import group_key, in_window, resource_ids, resource_of, skip_reason
from bot.models import Project
from bot.state import audit
from bot.state.change_records import ChangeStore, Group

if TYPE_CHECKING:
    from bot.config.models import ChangeRecordsConfig
    from bot.services import WorkerServices

log = logging.getLogger("tfbot.changes")

LOCK_SECONDS = 120  # a group's lock outlives any GitHub call with its retries
GROUP_TTL_SLACK = 24 * 3600  # CloudTrail delivers late; a group is kept this long past its window


class Outcome(str, Enum):
    RECORDED = "recorded"  # a new issue
    ADDED = "added"  # one more call in its group's issue
    IGNORED = "ignored"  # filtered out: nothing to record
    DUPLICATE = "duplicate"  # recorded already (SQS delivered it again)
    MALFORMED = "malformed"  # not a CloudTrail API call: set aside
    BUSY = "busy"  # another poller is writing the group's issue: delivered again later
    FAILED = "failed"  # GitHub or Redis failed: delivered again later

    @property
    def done(self) -> bool:
        """Whether the message is finished with and may be deleted."""
        return self in (Outcome.RECORDED, Outcome.ADDED, Outcome.IGNORED, Outcome.DUPLICATE)


@dataclass(frozen=True)
class Handled:
    outcome: Outcome
    detail: str = ""
    issue: int = 0


class ChangeRecorder:
    """Records messages into issues of `change_records.repo`, for one poller (`owner`: host:pid)."""

    def __init__(self, svc: WorkerServices, owner: str):
        if svc.config.change_records is None:
            raise ValueError("change_records is not configured")
        self.svc = svc
        self.settings: ChangeRecordsConfig = svc.config.change_records
        self.owner = owner
        self.store = ChangeStore(svc.redis)
        self._installation: int | None = None

    def issues(self) -> RepoAPI:
        """The repository the issues go to, as the App's installation on it sees it. Raises GitHubError (404: the
        App is not installed there)."""
        if self._installation is None:
            self._installation = self.svc.github.repo_installation(self.settings.repo)
        # Built each time: an installation token lasts an hour, and GitHubApp.repo renews it before it expires.
        return self.svc.github.repo(self._installation, self.settings.repo)

    def handle(self, body: str) -> Handled:
        """Record the call one message body holds; what happened, and the issue's number when one was written."""
        try:
            event = parse_message(body)
        except MalformedMessage as exc:
            return Handled(Outcome.MALFORMED, str(exc))
        why = skip_reason(event, self.settings)
        if why:
            return Handled(Outcome.IGNORED, f"{describe(event)}: {why}")
        try:
            seen = self.store.seen(event.event_id)
            if seen:
                return Handled(Outcome.DUPLICATE, f"{describe(event)}: already in issue #{seen}", seen)
            return self._record(_masked(event))
        except GitHubError as exc:
            self._installation = None  # an installation removed or changed: ask again next time
            return Handled(Outcome.FAILED, f"{describe(event)}: {exc}")
        except (redis.RedisError, OSError) as exc:
            return Handled(Outcome.FAILED, f"{describe(event)}: Redis: {exc}")

    def _record(self, event: ChangeEvent) -> Handled:
        key = group_key(event)
        ttl = self.settings.group_window + GROUP_TTL_SLACK
        with self.store.group_lock(key, self.owner, LOCK_SECONDS) as held:
            if not held:
                return Handled(Outcome.BUSY, f"{describe(event)}: its group's issue is being written")
            projects = self._projects(event)
            placement = Placement(tuple(projects), drift_checks=self.settings.drift_checks and bool(projects))
            group = self.store.group(key)
            first = datetime.fromtimestamp(group.first_at, timezone.utc) if group else None
            if group and first and in_window(first, event.at, self.settings.group_window):
                calls = [*self._stored_calls(key), event]
                self.issues().edit_issue(group.issue, issue_title(calls), issue_body(key, calls, placement))
                self.store.add_call(key, event_to_dict(event), ttl)
                outcome, number, url = Outcome.ADDED, group.issue, group.url
            else:
                number, url = self.issues().create_issue(issue_title([event]), issue_body(key, [event], placement),
                                                          [self.settings.label])
                self.store.start_group(key, Group(number, url, event.at.timestamp()), event_to_dict(event), ttl)
                outcome = Outcome.RECORDED
            self.store.mark_seen(event.event_id, number)
        self._after(event, outcome, number, url, placement)
        return Handled(outcome, f"{describe(event)}: issue #{number}", number)

    def _stored_calls(self, key: str) -> list[ChangeEvent]:
        """The group's calls so far; one stored in a shape this version cannot read is left out of the issue."""
        calls = []
        for data in self.store.calls(key):
            try:
                calls.append(event_from_dict(data))
            except MalformedMessage:
                log.warning("change records: a stored call of group %s cannot be read; left out of its issue", key)
        return calls

    def _projects(self, event: ChangeEvent) -> list[Project]:
        """The projects whose state holds the changed resource, among repositories change records may name."""
        found = self.store.projects_holding(resource_ids(event))
        return [p for p in found if (c := self.svc.config.repo_config(p.repo)) is not None and c.change_records]

    def _after(self, event: ChangeEvent, outcome: Outcome, number: int, url: str, placement: Placement) -> None:
        """Queue the drift checks and write the audit entry of a recorded call."""
        reason = f"{describe(event)} (change record {self.settings.repo}#{number})"
        if placement.drift_checks:
            for project in placement.projects:
                self.svc.jobs.check_drift(project, reason, url)
        audit.record(self.svc.redis, audit.AuditEntry(
            action="change-record", repo=self.settings.repo, pull=number,
            project=", ".join(f"{p.repo}:{p.name}" for p in placement.projects), user=event.principal.who,
            outcome=outcome.value, detail=f"{event.name} {resource_of(event)} ({event.source}, {event.account})",
            at=time.time()))


def describe(event: ChangeEvent) -> str:
    """`PutBucketPolicy on acme-logs by arn:...:user/alice` for a log line (masked: it may hold anything)."""
    resource = resource_of(event)
    return mask_text(f"{event.name}{f' on {resource}' if resource else ''} by {event.principal.who}")


def _masked(event: ChangeEvent) -> ChangeEvent:
    """The event as it may be shown and stored: secrets out of its parameters and free text."""
    return replace(event, request_parameters=mask_parameters(event.request_parameters),
                   user_agent=mask_text(event.user_agent), error_message=mask_text(event.error_message))
