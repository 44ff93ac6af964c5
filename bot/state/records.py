"""Per-PR records in Redis: the latest head, saved plans, commands in flight, and run logs.

A command is what one event or comment asked for (plan all affected projects, apply, apply on merge).
Its projects run as separate jobs, possibly on different hosts; each adds its result here, and the job
that adds the last one renders the PR comment for all of them (`add_result` tells it so, atomically).
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import redis

from bot.state import keys
from bot.models import Diagnostic, LockInfo, LockState, Outcome, Project, ProjectResult, ResourceChange

# Records of finished commands and runs are kept this long for the status page, then expire.
RETENTION_SECONDS = 30 * 24 * 3600
RECENT_RUNS = 5000
# Pull record field: set ("1") by the `closed` handler before it releases anything, cleared ("") by a reopen. A run
# that finds it unset may take a lock without asking GitHub whether the PR is still open (bot/lifecycle/runner.py).
PR_CLOSED = "closed"


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
    has_changes: bool = True  # resource or output changes (an outputs-only plan is a change too)
    # The binary the plan was made with: a plan file applies only with the same version. "": made before tfbot chose
    # binaries, with the default one.
    engine: str = ""
    engine_version: str = ""
    extra_args: list[str] = field(default_factory=list)  # argv items a `plan -- ...` comment added, as passed

    def change_set(self) -> set[tuple[str, str]]:
        return {(a, b) for a, b in self.changes}


def comment_refs(text: str) -> list[tuple[int, str]]:
    """Posted comments as stored: a JSON list of [id, node id] pairs, or of bare ids (before node ids were kept:
    their node id reads as "")."""
    return [(int(item[0]), str(item[1])) if isinstance(item, list) else (int(item), "") for item in json.loads(text)]


@dataclass(frozen=True)
class HeadSeen:
    """The newest head of a PR tfbot heard of, and when GitHub says it arrived (ISO 8601 UTC)."""

    sha: str
    at: str


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
    data["depends_on"] = list(project.depends_on)
    return data


def project_from_dict(data: dict[str, Any]) -> Project:
    return Project(**{**data, "apply_requirements": tuple(data.get("apply_requirements", ())),
                      "depends_on": tuple(data.get("depends_on", ()))})


def lock_to_dict(lock: LockInfo) -> dict[str, Any]:
    """A lock as job arguments (JSON)."""
    return {**asdict(lock), "state": lock.state.value}


def lock_from_dict(data: dict[str, Any]) -> LockInfo:
    """The lock `lock_to_dict` wrote; keys a newer tfbot added are ignored."""
    known = {f.name for f in fields(LockInfo)}
    values = {k: v for k, v in data.items() if k in known}
    return LockInfo(**{**values, "state": LockState(values["state"])})


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
    data["diagnostics"] = [Diagnostic(**d) for d in data.get("diagnostics") or []]
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


# KEYS[1] a PR's record (hash); ARGV[1] its head sha, ARGV[2] when GitHub says that head arrived (ISO 8601 UTC,
# so text order is time order). Overwrites the latest head unless the one recorded arrived later (an old event
# redelivered). Returns 1 when written, 0 when a later head is recorded.
_NOTE_HEAD = """
local seen = redis.call('HGET', KEYS[1], 'latest_head_at')
if seen and seen > ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'latest_head_sha', ARGV[1], 'latest_head_at', ARGV[2])
return 1
"""

# KEYS[1] a PR's record (hash); ARGV[1] unix seconds. Keeps the later of the two moments.
_TOUCH = """
local seen = tonumber(redis.call('HGET', KEYS[1], 'activity') or '0')
if seen < tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'activity', ARGV[1]) end
return 1
"""

# KEYS[1] a project's plans (hash); ARGV[1] run id of the plan now shown on the PR
# Returns 1 when it is the reviewed plan now, 0 when it is unknown or a newer plan was posted first.
_MARK_POSTED = """
local rec = redis.call('HGET', KEYS[1], 'run:' .. ARGV[1])
if not rec then return 0 end
local cur = redis.call('HGET', KEYS[1], 'posted')
if cur and cur ~= ARGV[1] then
  local old = redis.call('HGET', KEYS[1], 'run:' .. cur)
  if old and cjson.decode(old)['created_at'] > cjson.decode(rec)['created_at'] then return 0 end
end
redis.call('HSET', KEYS[1], 'posted', ARGV[1])
return 1
"""

# KEYS[1] a project's plans (hash); ARGV[1] run id. Drops the plan, and the reviewed pointer if it named it.
_FORGET_PLAN = """
redis.call('HDEL', KEYS[1], 'run:' .. ARGV[1])
if redis.call('HGET', KEYS[1], 'posted') == ARGV[1] then redis.call('HDEL', KEYS[1], 'posted') end
return 1
"""


class Records:
    """Reads and writes the per-PR records; the connection is passed in."""

    def __init__(self, conn: redis.Redis):
        self.r = conn
        self._add_result = conn.register_script(_ADD_RESULT)
        self._mark_posted = conn.register_script(_MARK_POSTED)
        self._note_head = conn.register_script(_NOTE_HEAD)
        self._touch = conn.register_script(_TOUCH)
        self._forget_plan = conn.register_script(_FORGET_PLAN)
        self._add_interrupted = conn.register_script(_ADD_INTERRUPTED)
        self._replace_interrupted = conn.register_script(_REPLACE_INTERRUPTED)

    # --- head of each PR, for superseding older queued plans ---
    def set_head(self, repo: str, pull: int, sha: str) -> None:
        self.r.hset(keys.pull(repo, pull), "head_sha", sha)

    def head(self, repo: str, pull: int) -> str | None:
        raw = self.r.hget(keys.pull(repo, pull), "head_sha")
        return keys.text(raw) if raw else None

    # --- the latest head and when it arrived, for approving a fork's head ---
    # One record per PR, overwritten by every push (never one per commit: a commit pushed again arrives again).
    def note_head(self, repo: str, pull: int, sha: str, at: str) -> bool:
        """Record `sha` as the PR's latest head, arrived at `at`, unless a head that arrived later is recorded."""
        return bool(self._note_head(keys=[keys.pull(repo, pull)], args=[sha, at]))

    def latest_head(self, repo: str, pull: int) -> HeadSeen | None:
        """The newest head recorded by `note_head`, or None."""
        sha, at = self.r.hmget(keys.pull(repo, pull), ["latest_head_sha", "latest_head_at"])
        return HeadSeen(keys.text(sha), keys.text(at)) if sha and at else None

    def pull_field(self, repo: str, pull: int, name: str) -> str | None:
        raw = self.r.hget(keys.pull(repo, pull), name)
        return keys.text(raw) if raw else None

    def set_pull_field(self, repo: str, pull: int, name: str, value: str) -> None:
        self.r.hset(keys.pull(repo, pull), name, value)

    def touch(self, repo: str, pull: int, at: float | None = None) -> None:
        """Something happened on the PR (a push, a comment, a run) at `at` (unix seconds, default now): an idle lock
        is measured from the latest such moment (bot/lifecycle/expiry.py). Never moves backwards."""
        self._touch(keys=[keys.pull(repo, pull)], args=[repr(time.time() if at is None else float(at))])

    def last_activity(self, repo: str, pull: int) -> float | None:
        """The latest moment `touch` recorded for the PR (unix seconds), or None."""
        raw = self.r.hget(keys.pull(repo, pull), "activity")
        return float(keys.text(raw)) if raw else None

    def forget_pull(self, repo: str, pull: int) -> None:
        self.r.expire(keys.pull(repo, pull), RETENTION_SECONDS)

    # --- saved plans ---
    # Every plan of a project of a PR is kept under its run id until a newer one is shown on the PR; `posted`
    # names the reviewed one. A plan still running or not yet posted never hides the reviewed one.
    def save_plan(self, record: PlanRecord) -> None:
        project = project_from_dict(record.project)
        key = keys.plan_records(project.repo, record.pull, project.id)
        pipe = self.r.pipeline()
        pipe.hset(key, f"run:{record.run_id}", json.dumps(asdict(record)))
        pipe.expire(key, RETENTION_SECONDS)
        pipe.execute()

    def plan(self, project: Project, pull: int) -> PlanRecord | None:
        """The reviewed plan: the newest plan of `project` shown on PR `pull`, or None."""
        key = keys.plan_records(project.repo, pull, project.id)
        posted = self.r.hget(key, "posted")
        if posted is None:
            return None
        raw = self.r.hget(key, f"run:{keys.text(posted)}")
        return PlanRecord(**json.loads(raw)) if raw else None

    def plans(self, project: Project, pull: int) -> list[PlanRecord]:
        """Every saved plan of `project` of PR `pull`, oldest first (posted or not)."""
        raw = self.r.hgetall(keys.plan_records(project.repo, pull, project.id))
        found = [PlanRecord(**json.loads(v)) for k, v in raw.items() if keys.text(k).startswith("run:")]
        return sorted(found, key=lambda p: p.created_at)

    def plan_of_run(self, project: Project, pull: int, run_id: str) -> PlanRecord | None:
        raw = self.r.hget(keys.plan_records(project.repo, pull, project.id), f"run:{run_id}")
        return PlanRecord(**json.loads(raw)) if raw else None

    def mark_plan_posted(self, project: Project, pull: int, run_id: str) -> list[PlanRecord]:
        """The plan of run `run_id` is now shown on the PR: it becomes the reviewed one unless a newer plan was
        posted first (compare-and-set, atomic). Returns the older plans it replaces, now forgotten: the caller
        deletes their plan files."""
        key = keys.plan_records(project.repo, pull, project.id)
        if not int(self._mark_posted(keys=[key], args=[run_id])):
            return []
        mine = self.plan_of_run(project, pull, run_id)
        older = [p for p in self.plans(project, pull) if mine is not None and p.created_at < mine.created_at]
        if older:
            self.r.hdel(key, *[f"run:{p.run_id}" for p in older])
        return older

    def delete_plan(self, project: Project, pull: int, run_id: str) -> None:
        """Forget one plan (applied, or refused); the reviewed pointer goes with it."""
        key = keys.plan_records(project.repo, pull, project.id)
        self._forget_plan(keys=[key], args=[run_id])

    def delete_plans(self, project: Project, pull: int) -> list[PlanRecord]:
        """Forget every plan of `project` of PR `pull`; returns them so the caller deletes their files."""
        found = self.plans(project, pull)
        self.r.delete(keys.plan_records(project.repo, pull, project.id))
        return found

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

    def mark_started(self, command_id: str, project_id: str) -> bool:
        """Claim the start of one project of an ordered command; True for exactly one caller."""
        key = keys.command_started(command_id)
        pipe = self.r.pipeline()
        pipe.sadd(key, project_id)
        pipe.expire(key, RETENTION_SECONDS)
        added, _ = pipe.execute()
        return bool(added)

    def started(self, command_id: str) -> set[str]:
        """The project ids `mark_started` claimed for the command."""
        return {keys.text(m) for m in self.r.smembers(keys.command_started(command_id))}

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

    def posted_comments(self, command_id: str) -> list[tuple[int, str]]:
        """(REST id, GraphQL node id) of each comment the command's report has posted so far, in order."""
        raw = self.r.hget(keys.command(command_id), "comments")
        return comment_refs(keys.text(raw)) if raw else []

    def set_posted_comments(self, command_id: str, refs: list[tuple[int, str]]) -> None:
        self.r.hset(keys.command(command_id), "comments", json.dumps(refs))

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

    def run_meta(self, run_id: str) -> dict[str, Any] | None:
        """A run's record without its output (the fields `save_run` was given); None once it has expired."""
        meta = self.r.hget(keys.run(run_id), "meta")
        return json.loads(meta) if meta is not None else None

    def run(self, run_id: str) -> tuple[dict[str, Any], str] | None:
        meta = self.run_meta(run_id)
        if meta is None:
            return None
        output = self.r.get(keys.run_log(run_id)) or b""
        return meta, output.decode(errors="replace") if isinstance(output, bytes) else output
