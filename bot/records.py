"""Per-PR records in Redis: the latest head, saved plans, commands in flight, and run logs.

A command is what one event or comment asked for (plan all affected projects, apply, apply on merge).
Its projects run as separate jobs, possibly on different hosts; each adds its result here, and the job
that adds the last one renders the PR comment for all of them (`add_result` tells it so, atomically).
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from bot import keys
from bot.models import Outcome, Project, ProjectResult, ResourceChange

# Records of finished commands and runs are kept this long for the status page, then expire.
RETENTION_SECONDS = 30 * 24 * 3600
RECENT_RUNS = 5000


@dataclass
class PlanRecord:
    """A saved plan: which commit it was made on and what it changes."""

    project: dict[str, Any]
    pull: int
    head_sha: str
    base_sha: str
    key: str
    sha256: str
    summary: str
    changes: list[list[str]]
    run_id: str
    user: str
    created_at: float = field(default_factory=time.time)
    plan_sha: str = ""  # the commit planned: the head merged into base_sha, or the head itself
    digest: str = ""  # hash of the planned changes with their values (see runner.changes_digest)
    posted: bool = False  # shown on the PR: only a plan people could see is ever applied

    def change_set(self) -> set[tuple[str, str]]:
        return {(a, b) for a, b in self.changes}


@dataclass
class Command:
    id: str
    kind: str  # plan, apply, merge
    repo: str
    pull: int
    head_sha: str
    installation: int
    user: str
    total: int
    note: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # PR facts the runner needs: clone_url, title, merge sha...
    created_at: float = field(default_factory=time.time)


def project_to_dict(project: Project) -> dict[str, Any]:
    data = asdict(project)
    data["apply_requirements"] = list(project.apply_requirements)
    return data


def project_from_dict(data: dict[str, Any]) -> Project:
    return Project(**{**data, "apply_requirements": tuple(data.get("apply_requirements", ()))})


def result_to_json(result: ProjectResult) -> str:
    data = asdict(result)
    data["project"] = project_to_dict(result.project)
    data["outcome"] = result.outcome.value
    return json.dumps(data)


def result_from_json(raw: str | bytes) -> ProjectResult:
    data = json.loads(raw)
    data["project"] = project_from_dict(data["project"])
    data["outcome"] = Outcome(data["outcome"])
    data["changes"] = [ResourceChange(**c) for c in data["changes"]]
    return ProjectResult(**data)


# KEYS[1] the command's results hash, KEYS[2] the command hash; ARGV[1] project id, ARGV[2] result JSON,
# ARGV[3] TTL seconds. Returns the new count of done projects, or -1 when this project already had a result.
_ADD_RESULT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return -1
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return redis.call('HINCRBY', KEYS[2], 'done', 1)
"""

# Interrupted-run reports, and the real result that may arrive after one (the run was stalled, not dead).
# _ADD_INTERRUPTED: as _ADD_RESULT, and KEYS[3] (the command's interrupted set) remembers ARGV[1].
_ADD_INTERRUPTED = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return -1
end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return redis.call('HINCRBY', KEYS[2], 'done', 1)
"""
# _REPLACE_INTERRUPTED: only a result in KEYS[3] is replaced (once); the command's posted comment ids are
# dropped so its next report is a new comment. Returns the count of done projects, or -1 when nothing replaced.
_REPLACE_INTERRUPTED = """
if redis.call('SREM', KEYS[3], ARGV[1]) == 0 then
  return -1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], 'comments')
return tonumber(redis.call('HGET', KEYS[2], 'done') or '0')
"""


class Records:
    """Reads and writes the per-PR records; the connection is passed in."""

    def __init__(self, conn: redis.Redis):
        self.r = conn
        self._add_result = conn.register_script(_ADD_RESULT)
        self._add_interrupted = conn.register_script(_ADD_INTERRUPTED)
        self._replace_interrupted = conn.register_script(_REPLACE_INTERRUPTED)

    # --- head of each PR, for superseding older queued plans ---
    def set_head(self, repo: str, pull: int, sha: str) -> None:
        self.r.hset(keys.pull(repo, pull), "head_sha", sha)

    def head(self, repo: str, pull: int) -> str | None:
        raw = self.r.hget(keys.pull(repo, pull), "head_sha")
        return raw.decode() if raw else None

    def pull_field(self, repo: str, pull: int, name: str) -> str | None:
        raw = self.r.hget(keys.pull(repo, pull), name)
        return raw.decode() if raw else None

    def set_pull_field(self, repo: str, pull: int, name: str, value: str) -> None:
        self.r.hset(keys.pull(repo, pull), name, value)

    def forget_pull(self, repo: str, pull: int) -> None:
        self.r.expire(keys.pull(repo, pull), RETENTION_SECONDS)

    # --- saved plans ---
    def save_plan(self, record: PlanRecord) -> None:
        project = project_from_dict(record.project)
        self.r.set(keys.plan_record(project.repo, record.pull, project.id), json.dumps(asdict(record)))

    def plan(self, project: Project, pull: int) -> PlanRecord | None:
        raw = self.r.get(keys.plan_record(project.repo, pull, project.id))
        return PlanRecord(**json.loads(raw)) if raw else None

    def mark_plan_posted(self, project: Project, pull: int, run_id: str) -> None:
        """The plan made by run `run_id` is now on the PR (a newer plan of the same project is left alone)."""
        plan = self.plan(project, pull)
        if plan is not None and plan.run_id == run_id and not plan.posted:
            plan.posted = True
            self.save_plan(plan)

    def delete_plan(self, project: Project, pull: int) -> None:
        self.r.delete(keys.plan_record(project.repo, pull, project.id))

    # --- commands and their results ---
    def new_command(self, kind: str, repo: str, pull: int, head_sha: str, installation: int, user: str, total: int,
                    note: str = "", info: dict[str, Any] | None = None) -> Command:
        cmd = Command(id=uuid.uuid4().hex[:16], kind=kind, repo=repo, pull=pull, head_sha=head_sha,
                      installation=installation, user=user, total=total, note=note, info=dict(info or {}))
        key = keys.command(cmd.id)
        pipe = self.r.pipeline()
        pipe.hset(key, mapping={"data": json.dumps(asdict(cmd)), "done": 0})
        pipe.expire(key, RETENTION_SECONDS)
        pipe.execute()
        return cmd

    def command(self, command_id: str) -> Command:
        raw = self.r.hget(keys.command(command_id), "data")
        if raw is None:
            raise KeyError(f"unknown command {command_id}")
        return Command(**json.loads(raw))

    def add_result(self, command_id: str, result: ProjectResult) -> bool:
        """Record one project's first result; True for exactly one caller: the one that completed the command.

        A second result for the same project (an interrupted-run report racing the run itself) is dropped.
        """
        done = self._add_result(keys=[keys.command_results(command_id), keys.command(command_id)],
                                args=[result.project.id, result_to_json(result), RETENTION_SECONDS])
        return int(done) == self.command(command_id).total

    def add_interrupted_result(self, command_id: str, result: ProjectResult) -> bool:
        """`add_result` for an interrupted-run report, which a real result of the same run may replace later."""
        done = self._add_interrupted(
            keys=[keys.command_results(command_id), keys.command(command_id), keys.command_interrupted(command_id)],
            args=[result.project.id, result_to_json(result), RETENTION_SECONDS])
        return int(done) == self.command(command_id).total

    def replace_interrupted_result(self, command_id: str, result: ProjectResult) -> bool:
        """Put a real result in place of the project's interrupted report; True when the command is complete and
        must be reported again (in a new comment). False, changing nothing, when there is no such report."""
        done = self._replace_interrupted(
            keys=[keys.command_results(command_id), keys.command(command_id), keys.command_interrupted(command_id)],
            args=[result.project.id, result_to_json(result)])
        return int(done) == self.command(command_id).total

    def posted_comments(self, command_id: str) -> list[int]:
        raw = self.r.hget(keys.command(command_id), "comments")
        return list(json.loads(raw)) if raw else []

    def set_posted_comments(self, command_id: str, ids: list[int]) -> None:
        self.r.hset(keys.command(command_id), "comments", json.dumps(ids))

    def has_result(self, command_id: str, project: Project) -> bool:
        return bool(self.r.hexists(keys.command_results(command_id), project.id))

    def results(self, command_id: str) -> list[ProjectResult]:
        raw = self.r.hgetall(keys.command_results(command_id))
        return sorted((result_from_json(v) for v in raw.values()), key=lambda r: (r.project.dir, r.project.workspace))

    # --- run logs ---
    def save_run(self, run_id: str, meta: dict[str, Any], output: str) -> None:
        pipe = self.r.pipeline()
        pipe.hset(keys.run(run_id), mapping={"meta": json.dumps(meta)})
        pipe.expire(keys.run(run_id), RETENTION_SECONDS)
        pipe.set(keys.run_log(run_id), output, ex=RETENTION_SECONDS)
        pipe.lpush(keys.runs(), run_id)
        pipe.ltrim(keys.runs(), 0, RECENT_RUNS - 1)
        pipe.execute()

    def run(self, run_id: str) -> tuple[dict[str, Any], str] | None:
        meta = self.r.hget(keys.run(run_id), "meta")
        if meta is None:
            return None
        output = self.r.get(keys.run_log(run_id)) or b""
        return json.loads(meta), output.decode(errors="replace")
