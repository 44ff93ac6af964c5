"""The check runs tfbot made, in Redis: one per command and project, and what each one is of.

A retried report finds the check run its command already made and updates it instead of making another; an Apply
button's event names only GitHub's check run id, and this store says which PR, head and project that check run is
of. A check run id GitHub sends that is not here is not tfbot's (or older than the records): it is not acted on.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis

from bot.models import Project
from bot.state import keys
from bot.state.records import RETENTION_SECONDS, project_from_dict


@dataclass(frozen=True)
class CheckRunRecord:
    """A check run tfbot made: GitHub's `id` (and GraphQL `node_id`, "" in a record older than it), in `repo`, for
    `project` of command `command_id` (`kind`: plan, apply, merge or handover) on PR `pull` at `head_sha`."""

    id: int
    repo: str
    kind: str
    command_id: str
    pull: int
    head_sha: str
    project: dict[str, Any]
    node_id: str = ""

    @property
    def of_project(self) -> Project:
        return project_from_dict(self.project)


class CheckRuns:
    """Reads and writes the check run records; the connection is passed in."""

    def __init__(self, conn: redis.Redis):
        self.r = conn

    def id_of(self, command_id: str, project: Project) -> int | None:
        """GitHub's id of the check run command `command_id` made for `project`, None before it made one."""
        raw = self.r.hget(keys.check_run(command_id, project.id), "id")
        return int(raw) if raw else None

    def node_id_of(self, command_id: str, project: Project) -> str:
        """GitHub's GraphQL node id of that check run; "" before one was made, or when it was made before tfbot kept
        node ids (then the report writes it over REST)."""
        raw = self.r.hget(keys.check_run(command_id, project.id), "node_id")
        return keys.text(raw) if raw else ""

    def remember(self, record: CheckRunRecord) -> None:
        """Record a check run just made, under its command and project and under its id."""
        own = keys.check_run(record.command_id, record.of_project.id)
        pipe = self.r.pipeline()
        pipe.hset(own, mapping={"id": str(record.id), "node_id": record.node_id})
        pipe.expire(own, RETENTION_SECONDS)
        pipe.set(keys.check_run_of(record.repo, record.id), json.dumps(asdict(record)), ex=RETENTION_SECONDS)
        pipe.execute()

    def record(self, repo: str, check_run_id: int) -> CheckRunRecord | None:
        """The record of check run `check_run_id` of `repo`, None when tfbot made no such check run (or forgot it)."""
        raw = self.r.get(keys.check_run_of(repo, check_run_id))
        if raw is None:
            return None
        return CheckRunRecord(**json.loads(raw))

    def sent(self, command_id: str, project: Project) -> str:
        """The digest `mark_sent` last recorded for the check run, "" when its result was never written."""
        raw = self.r.hget(keys.check_run(command_id, project.id), "sent")
        return keys.text(raw) if raw else ""

    def mark_sent(self, command_id: str, project: Project, digest: str) -> None:
        """Remember that the result with `digest` was written, so a retried report does not write it again (GitHub
        appends the annotations of every update)."""
        own = keys.check_run(command_id, project.id)
        pipe = self.r.pipeline()
        pipe.hset(own, "sent", digest)
        pipe.expire(own, RETENTION_SECONDS)
        pipe.execute()
