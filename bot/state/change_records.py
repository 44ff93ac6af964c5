"""Change records in Redis: groups and their issues, seen events, message counts, pollers, the state index.

Several `tfbot serve` hosts may poll one queue: SQS hands each message to one receiver, and what two receivers
could both touch, a group's issue, is written under the group's lock (SET NX EX with an owner token, released by
a Lua compare-and-delete). A poller that cannot take the lock leaves the message for SQS to deliver again.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from bot.models import Project
from bot.state import keys
from bot.state.records import project_from_dict, project_to_dict

MAX_CALLS = 500  # calls kept per group; the issue lists at most 100 anyway
SEEN_TTL_SECONDS = 14 * 24 * 3600  # SQS keeps a message at most 14 days: a redelivery is never older
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Group:
    """The issue a group's calls are recorded in, and when its first call was made (unix time)."""

    issue: int
    url: str
    first_at: float


class ChangeStore:
    """Every change-record key, on one connection."""

    def __init__(self, conn: redis.Redis):
        self.conn = conn
        self._release = conn.register_script(_RELEASE)

    # -- groups ----------------------------------------------------------------------------------------------

    @contextmanager
    def group_lock(self, key: str, owner: str, ttl: int) -> Iterator[bool]:
        """Hold the group's lock for up to `ttl` seconds; yields False (and holds nothing) when another has it.
        KEYS[1] the lock, ARGV[1] the owner token: released only by its owner."""
        token = f"{owner}:{time.time_ns()}"
        held = bool(self.conn.set(keys.change_group_lock(key), token, nx=True, ex=ttl))
        try:
            yield held
        finally:
            if held:
                self._release(keys=[keys.change_group_lock(key)], args=[token])

    def group(self, key: str) -> Group | None:
        raw = self.conn.hgetall(keys.change_group(key))
        if not raw:
            return None
        data = {keys.text(k): keys.text(v) for k, v in raw.items()}
        try:
            return Group(issue=int(data["issue"]), url=data.get("url", ""), first_at=float(data["first_at"]))
        except (KeyError, ValueError):
            return None

    def calls(self, key: str) -> list[dict[str, Any]]:
        """The group's calls, oldest first."""
        return [json.loads(raw) for raw in self.conn.lrange(keys.change_group_calls(key), 0, -1)]

    def start_group(self, key: str, group: Group, call: dict[str, Any], ttl: int) -> None:
        """Record a new group (replacing one whose window passed) with its first call."""
        pipe = self.conn.pipeline()
        pipe.delete(keys.change_group(key), keys.change_group_calls(key))
        pipe.hset(keys.change_group(key), mapping={"issue": group.issue, "url": group.url,
                                                   "first_at": group.first_at})
        pipe.rpush(keys.change_group_calls(key), json.dumps(call))
        pipe.expire(keys.change_group(key), ttl)
        pipe.expire(keys.change_group_calls(key), ttl)
        pipe.execute()

    def add_call(self, key: str, call: dict[str, Any], ttl: int) -> None:
        pipe = self.conn.pipeline()
        pipe.rpush(keys.change_group_calls(key), json.dumps(call))
        pipe.ltrim(keys.change_group_calls(key), 0, MAX_CALLS - 1)
        pipe.expire(keys.change_group(key), ttl)
        pipe.expire(keys.change_group_calls(key), ttl)
        pipe.execute()

    # -- events already recorded -----------------------------------------------------------------------------

    def seen(self, event_id: str) -> int | None:
        """The issue an event was recorded in, if it was."""
        raw = self.conn.get(keys.change_seen(event_id))
        return int(raw) if raw else None

    def mark_seen(self, event_id: str, issue: int) -> None:
        self.conn.set(keys.change_seen(event_id), issue, ex=SEEN_TTL_SECONDS)

    # -- counts and pollers ----------------------------------------------------------------------------------

    def count(self, outcome: str, by: int = 1) -> None:
        self.conn.hincrby(keys.change_counts(), outcome, by)

    def counts(self) -> dict[str, int]:
        return {keys.text(k): int(v) for k, v in self.conn.hgetall(keys.change_counts()).items()}

    def beat(self, owner: str, queue: str, error: str = "") -> None:
        """A poller says it is alive: its queue, when it last polled, and its last error ("" when none)."""
        self.conn.hset(keys.change_pollers(), owner, json.dumps({"queue": queue, "at": time.time(), "error": error}))

    def forget_poller(self, owner: str) -> None:
        self.conn.hdel(keys.change_pollers(), owner)

    def pollers(self) -> dict[str, dict[str, Any]]:
        """Every poller that ever beat and was not stopped cleanly: host:pid -> {queue, at, error}."""
        return {keys.text(k): json.loads(v) for k, v in self.conn.hgetall(keys.change_pollers()).items()}

    # -- the state index -------------------------------------------------------------------------------------

    def claim_index_period(self, owner: str, seconds: int) -> bool:
        """True for the one poller that reads the projects' states this period."""
        return bool(self.conn.set(keys.change_index_due(), owner, nx=True, ex=seconds))

    def put_project_ids(self, project: Project, ids: Iterable[str], ttl: int) -> None:
        """Replace what `project`'s state holds (at once: a lookup never sees half a set)."""
        target = keys.change_index_ids(project.id)
        staging = f"{target}:new"
        values = sorted(set(ids))
        pipe = self.conn.pipeline()
        pipe.delete(staging)
        for i in range(0, len(values), 1000):
            pipe.sadd(staging, *values[i:i + 1000])
        if values:
            pipe.rename(staging, target)
            pipe.expire(target, ttl)
        else:
            pipe.delete(target)
        pipe.hset(keys.change_index_projects(), project.id,
                  json.dumps({"project": project_to_dict(project), "at": time.time(), "ids": len(values)}))
        pipe.expire(keys.change_index_projects(), ttl)
        pipe.execute()

    def indexed(self) -> dict[str, dict[str, Any]]:
        """Project id -> {project, at, ids} of every project whose state was read."""
        return {keys.text(k): json.loads(v) for k, v in self.conn.hgetall(keys.change_index_projects()).items()}

    def projects_holding(self, ids: Iterable[str]) -> list[Project]:
        """The indexed projects whose state holds any of `ids`, by repository and name."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        projects = [project_from_dict(entry["project"]) for entry in self.indexed().values()]
        pipe = self.conn.pipeline(transaction=False)
        for project in projects:
            pipe.smismember(keys.change_index_ids(project.id), wanted)
        found = [p for p, hits in zip(projects, pipe.execute()) if any(hits)]
        return sorted(found, key=lambda p: (p.repo, p.name))
