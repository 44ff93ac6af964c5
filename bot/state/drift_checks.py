"""The last drift check of every project, and the drift issue each drifted project has open.

One hash field per project (its `keys.project_id`), so the page and `/api/drift` read every project in one
round trip and a check overwrites only its own field. The issue numbers are a cache of what GitHub holds: the
issue's hidden marker stays the truth when the two disagree (bot/drift/issues.py looks there first).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import Enum

import redis

from bot.state import keys


class DriftState(str, Enum):
    """What a project's last drift check found."""

    CLEAN = "clean"  # the plan on the default branch's head has no changes
    DRIFTED = "drifted"  # it has changes: the infrastructure differs from the default branch
    FAILED = "failed"  # the check could not tell (Terraform or tfbot failed; `detail` says how)
    SKIPPED = "skipped"  # not run this round: a PR holds the project's lock (`detail` names it)


@dataclass(frozen=True)
class DriftCheck:
    """One drift check of one project. Times are unix seconds; URLs are "" when there is none."""

    repo: str
    project: str  # the project's name
    dir: str
    workspace: str
    state: DriftState
    checked_at: float = field(default_factory=time.time)
    sha: str = ""  # the default branch's head that was planned
    summary: str = ""  # Terraform's summary line ("Plan: 0 to add, 1 to change, 0 to destroy.") or the reason
    detail: str = ""  # for skipped and failed: why, in one sentence
    resources: tuple[str, ...] = ()  # drifted resource addresses with their action ("update aws_s3_bucket.logs")
    digest: str = ""  # of the drifted plan's resource changes (bot.lifecycle.runner.changes_digest): what an `apply`
    # on the issue may apply, since it is what the issue showed
    run_id: str = ""
    run_url: str = ""
    issue: int = 0  # the drift issue's number, 0 when none is open
    issue_url: str = ""
    issue_resources: tuple[str, ...] = ()  # what the open issue shows as drifted (a failed or skipped check keeps it)
    drifted_since: float = 0.0  # when the open issue's drift was first seen; 0 when none is open
    links: tuple[str, ...] = ()  # change records that asked for checks while the issue is open (it links them)

    @property
    def project_id(self) -> str:
        return keys.project_id(self.repo, self.dir, self.workspace)

    def to_json(self) -> str:
        data = asdict(self)
        data["state"] = self.state.value
        for name in _TUPLES:
            data[name] = list(getattr(self, name))
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DriftCheck:
        data = json.loads(raw)
        known = {f for f in cls.__dataclass_fields__}
        data = {k: v for k, v in data.items() if k in known}  # fields a newer tfbot wrote are ignored
        data["state"] = DriftState(data["state"])
        for name in _TUPLES:
            data[name] = tuple(data.get(name, ()))
        return cls(**data)


_TUPLES = ("resources", "issue_resources", "links")


class DriftChecks:
    """The drift keys of one Redis connection."""

    def __init__(self, conn: redis.Redis):
        self.conn = conn

    def record(self, check: DriftCheck) -> None:
        """Keep `check` as its project's last, and its open issue number (removed when `check.issue` is 0)."""
        pipe = self.conn.pipeline()
        pipe.hset(keys.drift_checks(), check.project_id, check.to_json())
        if check.issue:
            pipe.hset(keys.drift_issues(), check.project_id, check.issue)
        elif check.state is not DriftState.SKIPPED:  # a skipped round leaves an open issue open
            pipe.hdel(keys.drift_issues(), check.project_id)
        pipe.execute()

    def last(self, repo: str, dir: str, workspace: str) -> DriftCheck | None:
        """The project's last check, or None when it was never checked."""
        raw = self.conn.hget(keys.drift_checks(), keys.project_id(repo, dir, workspace))
        return DriftCheck.from_json(raw) if raw is not None else None

    def all(self) -> list[DriftCheck]:
        """Every project's last check, by repository then project name."""
        checks = [DriftCheck.from_json(raw) for raw in self.conn.hgetall(keys.drift_checks()).values()]
        return sorted(checks, key=lambda c: (c.repo, c.project, c.workspace))

    def open_issue(self, repo: str, dir: str, workspace: str) -> int:
        """The number of the project's open drift issue as tfbot last knew it; 0 when none."""
        raw = self.conn.hget(keys.drift_issues(), keys.project_id(repo, dir, workspace))
        return int(raw) if raw is not None else 0

    def forget(self, repo: str, dir: str, workspace: str) -> None:
        """Drop a project's records (it left the config)."""
        pid = keys.project_id(repo, dir, workspace)
        pipe = self.conn.pipeline()
        pipe.hdel(keys.drift_checks(), pid)
        pipe.hdel(keys.drift_issues(), pid)
        pipe.execute()

    def counts(self) -> dict[DriftState, int]:
        """How many projects' last check is in each state (every state present, 0 when none): the metric."""
        counts = {state: 0 for state in DriftState}
        for check in self.all():
            counts[check.state] += 1
        return counts
