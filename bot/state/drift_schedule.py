"""The drift scheduler's Redis keys: the lease that elects one scheduler among the tfbot hosts, each repository's
last slot, the once-per-(project, slot) markers, and the projects of a default branch head.

The lease is a string holding its holder's owner token with a PX expiry. A host takes it with `SET NX PX`; its
holder renews it with a compare-and-extend script and gives it up with a compare-and-delete script, so a host
whose lease lapsed (it stalled, or Redis failed over) can neither extend nor delete the lease another host took
since. A holder that dies stops renewing: the lease expires and the next host to ask gets it.

A lease alone cannot make a check queued exactly once: a holder may stall between queueing and recording, and its
successor would queue again. So every (project, slot) is claimed with `SET NX` just before its check is queued;
whoever loses the claim skips it.
"""
from __future__ import annotations

import json
from typing import Any

import redis

from bot.models import Project
from bot.state import keys
from bot.state.records import project_from_dict, project_to_dict

DUE_MARK_SECONDS = 2 * 24 * 3600  # outlives any slot that is still being handled
PROJECTS_SECONDS = 24 * 3600  # a head's projects; a new head is a new key

# KEYS[1] the lease; ARGV[1] owner token, ARGV[2] lease in ms. 1 when extended, 0 when the lease is not ours.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] the lease; ARGV[1] owner token. 1 when deleted, 0 when the lease is not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class SchedulerLease:
    """One host's hold on the drift scheduler's lease. `owner` must be unique per scheduler (host, pid, random)."""

    def __init__(self, conn: redis.Redis, owner: str, lease_ms: int):
        if lease_ms < 1:
            raise ValueError(f"the lease must last at least 1 ms, got {lease_ms}")
        self.conn = conn
        self.owner = owner
        self.lease_ms = int(lease_ms)
        self._extend = conn.register_script(_EXTEND)
        self._release = conn.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it (`SET NX PX`); True when taken."""
        return bool(self.conn.set(keys.drift_scheduler(), self.owner, nx=True, px=self.lease_ms))

    def renew(self) -> bool:
        """Extend the lease by `lease_ms` from now if this owner still holds it; False when it does not."""
        return bool(self._extend(keys=[keys.drift_scheduler()], args=[self.owner, self.lease_ms]))

    def hold(self) -> bool:
        """Renew the lease, or take it if it is free: True while this owner is the scheduler."""
        return self.renew() or self.acquire()

    def release(self) -> bool:
        """Give the lease up if this owner holds it, so another host takes over at its next tick."""
        return bool(self._release(keys=[keys.drift_scheduler()], args=[self.owner]))

    def holder(self) -> str | None:
        """The owner token of whoever holds the lease now, or None."""
        raw = self.conn.get(keys.drift_scheduler())
        return keys.text(raw) if raw is not None else None


class DriftSlots:
    """Slots handled per repository, and the once-per-(project, slot) claims."""

    def __init__(self, conn: redis.Redis):
        self.conn = conn

    def last(self, repo: str) -> float | None:
        """The last slot handled for `repo` (unix seconds), or None when never."""
        raw = self.conn.hget(keys.drift_slots(), repo)
        return float(raw) if raw is not None else None

    def handled(self, repo: str, slot: float) -> None:
        """Record `slot` as `repo`'s last handled: every selected project's check of it was queued or claimed."""
        self.conn.hset(keys.drift_slots(), repo, repr(float(slot)))

    def claim(self, project: Project, slot: float) -> bool:
        """True for the one caller that may queue `project`'s check of `slot` (`SET NX`); False for any other."""
        return bool(self.conn.set(keys.drift_due(slot, project.id), "1", nx=True, ex=DUE_MARK_SECONDS))

    def projects(self, repo: str, config: str, sha: str) -> list[Project] | None:
        """The projects kept for `repo` at `sha` under the repos[] entry fingerprinted `config`; None when not kept."""
        raw = self.conn.get(keys.drift_projects(repo, config, sha))
        if raw is None:
            return None
        data: list[dict[str, Any]] = json.loads(raw)
        return [project_from_dict(p) for p in data]

    def keep_projects(self, repo: str, config: str, sha: str, projects: list[Project]) -> None:
        """Keep the projects found at `sha` (a day: a new head is a new key, and an old one is never asked again)."""
        self.conn.set(keys.drift_projects(repo, config, sha), json.dumps([project_to_dict(p) for p in projects]),
                      ex=PROJECTS_SECONDS)
