"""Workspace locks, their waiting lines, and the short per-project run guard, kept in Redis.

Contract of `LockStore` (the lock is the product's promise; every change below is one Lua script, so it is
atomic across threads, worker processes and hosts sharing one Redis):
- One lock per (repo, dir, workspace). Its value is one JSON string (every `LockInfo` field) so one GET or
  MGET reads it whole; its key is also in the lock index set so the page can list 10,000 locks in a few
  round trips. A lock has no TTL: it lives until released, handed over, or force-released.
- Acquiring is `SET NX` semantics: under concurrent attempts exactly one pull wins and gets a new fencing
  token (INCR on one counter, so tokens only grow). The holder acquiring again gets its lock back unchanged.
  Any other pull joins the lock's waiting line (at most once; joining again refreshes its entry in place)
  and is told its 1-based place. A held lock is a normal result, never an exception.
- Every state change and release names the pull and its token and is refused (False / released=False) when
  they no longer match: a job that lost the lock (released, unlocked, handed over) cannot touch it again.
- The release script itself refuses, in the same atomic step, what bot/lifecycle/decision.py refuses: a close or a
  writer's unlock of a lock whose apply is running or whose PR applied what the default branch lacks
  (`diverged`), an admin's unlock of a running apply, and any unlock (a writer's or an admin's) while a run
  holds the workspace's run guard, whatever the lock's state says. A check outside the script would race the run.
- Releasing hands the lock straight to the first waiter (new token, state "planning"), so nobody can slip in
  between; the caller gets that waiter's entry back and must plan it. The lock leaves the index only when
  nobody takes it. A waiter whose PR closed must `leave_queue` (or `forget_pull`), else it is handed a lock
  its planning job will find closed and release again.
- Every script that changes a lock, its waiting line or the index also increments the lock version and appends
  "<version> <lock key>" to the capped change log, in the same atomic step: a reader keeping a copy of the locks
  (bot/state/lock_cache.py) asks for the version on each read and re-reads only the locks named since its own. A
  new (or flushed) counter starts from the server's clock, so it never repeats a version a reader still holds.
  Anything that writes lock keys outside these scripts must delete the version key: readers then read everything.
- The run guard is separate and short: a key with a TTL renewed by a heartbeat thread while a Terraform run
  is under way, so two runs never share one project's state or checkout, and a crashed worker's guard
  expires by itself.
Not Redis Cluster safe: the scripts touch a lock, its line, the index and the counter in one call.
"""
from __future__ import annotations

import builtins
import json
import logging
import random
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator, Protocol

import redis
from redis.commands.core import Script

from bot.state import keys
from bot.models import LockInfo, LockState, Project

log = logging.getLogger(__name__)

# Lua helpers shared by the scripts that read a waiting line, hand a lock over or change a lock.
_LUA_HELPERS = """
-- Count a change of the lock at `lock_key` (its value, its waiting line or its place in the index) and name it in the
-- change log, so a reader holding a copy of the locks knows it is behind and which locks to read again.
local function changed(version_key, log_key, lock_key)
  local version = redis.call('INCR', version_key)
  if version == 1 then
    -- A new or flushed counter starts from the clock (microseconds), above any version a reader holds from before.
    -- TIME before a write is allowed: scripts are replicated by their effects (Redis >= 5, Valkey).
    local now = redis.call('TIME')
    version = tonumber(now[1]) * 1000000 + tonumber(now[2])
    redis.call('SET', version_key, string.format('%.0f', version))
  end
  redis.call('RPUSH', log_key, string.format('%.0f', version) .. ' ' .. lock_key)
  redis.call('LTRIM', log_key, -CHANGE_LOG_LENGTH, -1)
end

local function find_waiter(line_key, pull)
  local entries = redis.call('LRANGE', line_key, 0, -1)
  for i, entry in ipairs(entries) do
    if tonumber(cjson.decode(entry)['pull']) == pull then return i, entry end
  end
  return nil, nil
end

-- Give the lock to the first waiter (new token), or delete it and drop it from the index.
-- Returns the new lock value and the waiter's entry, or nil when nobody was waiting.
local function hand_over(lock_key, index_key, line_key, fence_key, lock, now, state)
  local entry = redis.call('LPOP', line_key)
  if not entry then
    redis.call('DEL', lock_key)
    redis.call('SREM', index_key, lock_key)
    return nil, nil
  end
  local waiter = cjson.decode(entry)
  lock['pull'] = waiter['pull']
  lock['user'] = waiter['user']
  lock['pull_title'] = waiter['pull_title'] or ''
  lock['pull_url'] = waiter['pull_url'] or ''
  lock['locked_at'] = now
  lock['state'] = state
  lock['summary'] = ''
  lock['extra_args'] = ''
  lock['run_id'] = ''
  lock['command_id'] = ''
  lock['diverged'] = false
  lock['kind'] = 'pull'  -- only PRs wait in a line
  lock['token'] = redis.call('INCR', fence_key)
  local value = cjson.encode(lock)
  redis.call('SET', lock_key, value)
  return value, entry
end
"""

# KEYS[1] lock key, KEYS[2] lock index (set), KEYS[3] waiting line (list), KEYS[4] fencing counter,
# KEYS[5] lock version (counter), KEYS[6] change log (list)
# ARGV[1] lock value (JSON) to store when free; its "token" is replaced by INCR KEYS[4]
# ARGV[2] pull number asking
# ARGV[3] waiting-line entry (JSON, has "pull") to add when another pull holds the lock
# ARGV[4] "wait" to join the line when another pull holds the lock, "" to stay out of it (a drift issue's apply)
# Returns {"acquired", lock} | {"held", lock} (this pull already holds it, untouched)
#       | {"queued", lock of the holder, 1-based place in line} | {"busy", lock of the holder} (ARGV[4] "")
_ACQUIRE = _LUA_HELPERS + """
local pull = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[1])
if not current then
  local lock = cjson.decode(ARGV[1])
  lock['token'] = redis.call('INCR', KEYS[4])
  local value = cjson.encode(lock)
  redis.call('SET', KEYS[1], value)
  redis.call('SADD', KEYS[2], KEYS[1])
  local _, mine = find_waiter(KEYS[3], pull)
  if mine then redis.call('LREM', KEYS[3], 1, mine) end
  changed(KEYS[5], KEYS[6], KEYS[1])
  return {'acquired', value}
end
if tonumber(cjson.decode(current)['pull']) == pull then
  return {'held', current}
end
if ARGV[4] ~= 'wait' then return {'busy', current} end
local place = find_waiter(KEYS[3], pull)
if place then
  redis.call('LSET', KEYS[3], place - 1, ARGV[3])
else
  place = redis.call('RPUSH', KEYS[3], ARGV[3])
end
changed(KEYS[5], KEYS[6], KEYS[1])
return {'queued', current, place}
"""

# KEYS[1] lock key, KEYS[2] lock index (set), KEYS[3] waiting line (list), KEYS[4] fencing counter,
# KEYS[5] the workspace's run guard, KEYS[6] lock version (counter), KEYS[7] change log (list)
# ARGV[1] pull that must hold the lock, or "" for whoever holds it (unlock by an admin)
# ARGV[2] token that must match, or "" for any token
# ARGV[3] now (unix seconds) for a handed-over lock; ARGV[4] the state a handed-over lock starts in
# ARGV[5] mode: "owner" (the holder's own run releases it: token checks only), "close" (a close, or tfbot letting
#         go of a lock the PR no longer needs: refused while applying or flagged; a run of the PR under way finds
#         the lock gone at its next fenced write), "unlock" (a writer's unlock: as "close", and refused while a
#         run holds the run guard), "admin" (refused while a run holds the run guard, while applying unless
#         ARGV[6] is "dead", and while flagged unless ARGV[8] is "reason": the admin gave one), "taken" (a plan job lets go of the lock it has just taken, before its run: only while
#         the lock is still exactly what it took - state ARGV[4] "planning" set by command ARGV[7] - and no run holds
#         the run guard; refused ("moved") once another command of the PR has moved it on: applying, plan stale,
#         flagged)
# ARGV[7] for "taken": the id of the command that took the lock
# ARGV[8] for "admin": "reason" when the admin gave a reason (needed to release a flagged lock), else ""
# Returns {"free"} | {"refused", lock, why} | {"released", old lock} | {"handed", old lock, new lock, waiter entry}
_RELEASE = _LUA_HELPERS + """
local current = redis.call('GET', KEYS[1])
if not current then return {'free'} end
local lock = cjson.decode(current)
if (ARGV[1] ~= '' and tonumber(lock['pull']) ~= tonumber(ARGV[1]))
   or (ARGV[2] ~= '' and tonumber(lock['token']) ~= tonumber(ARGV[2])) then
  return {'refused', current, 'owner'}
end
local applying = lock['state'] == 'applying'
local flagged = lock['diverged'] == true or applying or lock['state'] == 'applied, awaiting merge'
  or lock['state'] == 'apply failed'
local unlocking = ARGV[5] == 'unlock' or ARGV[5] == 'admin'
-- The guard, not the state, says whether a run is going: a state can be wrong, a live run renews its guard.
if unlocking and redis.call('EXISTS', KEYS[5]) == 1 then return {'refused', current, 'running'} end
if ARGV[5] == 'taken' then
  if applying then return {'refused', current, 'applying'} end
  if flagged or lock['state'] ~= ARGV[4] or ARGV[7] == '' or (lock['command_id'] or '') ~= ARGV[7] then
    return {'refused', current, 'moved'}
  end
  if redis.call('EXISTS', KEYS[5]) == 1 then return {'refused', current, 'running'} end
end
if (ARGV[5] == 'close' or ARGV[5] == 'unlock') and flagged then
  return {'refused', current, applying and 'applying' or 'flagged'}
end
if ARGV[5] == 'admin' and applying and ARGV[6] ~= 'dead' then return {'refused', current, 'applying'} end
if ARGV[5] == 'admin' and flagged and ARGV[8] ~= 'reason' then return {'refused', current, 'flagged'} end
local value, entry = hand_over(KEYS[1], KEYS[2], KEYS[3], KEYS[4], lock, tonumber(ARGV[3]), ARGV[4])
changed(KEYS[6], KEYS[7], KEYS[1])
if value then return {'handed', current, value, entry} end
return {'released', current}
"""

# KEYS[1] lock key, KEYS[2] lock version (counter), KEYS[3] change log (list)
# ARGV[1] pull, ARGV[2] token that must both match the lock; ARGV[3] JSON object of fields to overwrite
# ARGV[4] JSON object of fields that must still hold these values (e.g. the state and the run that set it)
# Returns 1 when changed, 0 when the lock is gone, held by someone else (or under another token), or has changed
_SET_STATE = _LUA_HELPERS + """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local lock = cjson.decode(current)
if tonumber(lock['pull']) ~= tonumber(ARGV[1]) or tonumber(lock['token']) ~= tonumber(ARGV[2]) then
  return 0
end
for k, v in pairs(cjson.decode(ARGV[4])) do
  if (lock[k] or '') ~= v then return 0 end
end
for k, v in pairs(cjson.decode(ARGV[3])) do lock[k] = v end
redis.call('SET', KEYS[1], cjson.encode(lock))
changed(KEYS[2], KEYS[3], KEYS[1])
return 1
"""

# KEYS[1] waiting line (list), KEYS[2] its lock's key, KEYS[3] lock version (counter), KEYS[4] change log (list)
# ARGV[1] pull
# Returns 1 when the pull was in line and left it, else 0
_LEAVE_QUEUE = _LUA_HELPERS + """
local _, entry = find_waiter(KEYS[1], tonumber(ARGV[1]))
if not entry then return 0 end
redis.call('LREM', KEYS[1], 1, entry)
changed(KEYS[3], KEYS[4], KEYS[2])
return 1
"""

# KEYS[1] run guard key; ARGV[1] the holder's unique value; ARGV[2] new TTL in milliseconds
# Returns 1 when renewed, 0 when the guard expired or belongs to someone else
_GUARD_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS[1] run guard key; ARGV[1] the holder's unique value
# Returns 1 when deleted, 0 when it had expired or belongs to someone else
_GUARD_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] lock version (counter), KEYS[2] change log (list of "<version> <lock key>", oldest first)
# ARGV[1] the version the reader's copy has, or "" for none
# Returns {} when there is no version (never counted, or deleted by an outside write); {version} when that is the
# reader's, or when the log cannot cover the changes since it (no copy, went backwards, further behind than the log
# keeps); else {version, entry, ...}: the last (version - ARGV[1]) entries, which the reader checks are the ones after
# its version (the log may have been trimmed, or restarted)
_CHANGES_SINCE = """
local now = redis.call('GET', KEYS[1])
if not now then return {} end
if ARGV[1] == '' or now == ARGV[1] then return {now} end
local behind = tonumber(now) - tonumber(ARGV[1])
if behind < 1 or behind > CHANGE_LOG_LENGTH then return {now} end
local out = redis.call('LRANGE', KEYS[2], -behind, -1)
table.insert(out, 1, now)
return out
"""

# Each waiting line's length in one call per chunk of locks, instead of one command per lock.
# KEYS: waiting-line keys; returns their lengths in order (0 for a line that does not exist).
_LENGTHS = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('LLEN', key) end
return out
"""

# Fields of the queue entry that tfbot itself writes; a caller's `waiter` data may not reuse them.
_ENTRY_FIELDS = frozenset({"pull", "user", "pull_title", "pull_url", "queued_at"})
# Fields a holder may change with `set_state`; the rest say who holds the lock and are fixed.
_MUTABLE_FIELDS = frozenset({"summary", "run_id", "pull_title", "pull_url", "diverged", "command_id", "extra_args"})
_LOCK_FIELDS = frozenset(f.name for f in fields(LockInfo))
_CHANGE_KEYS = (keys.lock_version(), keys.lock_changes())
_MGET_CHUNK = 1000
# Changes the log keeps: a reader further behind reads every lock again, which costs about as much as this many.
CHANGE_LOG_LENGTH = 1000


class LockTarget(Protocol):
    """Anything naming a workspace: a `Project`, or a `LockInfo` read back from the store."""

    @property
    def repo(self) -> str: ...

    @property
    def dir(self) -> str: ...

    @property
    def workspace(self) -> str: ...


@dataclass(frozen=True)
class AcquireResult:
    """What `try_acquire` did: took the lock, found it already ours, or joined the line behind `lock`."""

    acquired: bool  # this pull holds the lock now (newly or already)
    lock: LockInfo  # the lock as it stands: ours, or the other pull's
    already_held: bool = False
    queue_position: int | None = None  # 1-based place in the waiting line when blocked


@dataclass(frozen=True)
class ReleaseResult:
    """What a release did. `lock` is who holds the lock afterwards (the next waiter, the refusing holder, or None)."""

    released: bool
    next_waiter: dict[str, Any] | None = None  # the entry of the pull the lock was handed to: plan it
    lock: LockInfo | None = None
    previous: LockInfo | None = None  # the lock that was released, for the audit trail and the PR comment
    # why not: "owner" (not this pull's / token), "applying", "flagged" (an unmerged apply), "running" (a run holds
    # the workspace's run guard)
    refused: str = ""


class GuardTimeout(Exception):
    """Another run held the project's run guard for longer than we were willing to wait."""


class LockStore:
    """Workspace locks and run guards in one Redis; see the module docstring for the contract."""

    # Annotations below say `builtins.list` because the method `list` shadows the type inside this class.

    def __init__(self, redis: redis.Redis):
        self._redis = redis
        self._acquire = redis.register_script(_lua(_ACQUIRE))
        self._release = redis.register_script(_lua(_RELEASE))
        self._set_state = redis.register_script(_lua(_SET_STATE))
        self._leave_queue = redis.register_script(_lua(_LEAVE_QUEUE))
        self._changes_since = redis.register_script(_lua(_CHANGES_SINCE))
        self._lengths = redis.register_script(_LENGTHS)
        self._guard_renew = redis.register_script(_GUARD_RENEW)
        self._guard_release = redis.register_script(_GUARD_RELEASE)

    # --- workspace locks -------------------------------------------------------------------------

    def try_acquire(
        self,
        project: Project,
        pull: int,
        user: str,
        *,
        pull_title: str = "",
        pull_url: str = "",
        waiter: dict[str, Any] | None = None,
        command_id: str = "",
        kind: str = "pull",
        wait: bool = True,
    ) -> AcquireResult:
        """Take the lock if free, return it if this pull holds it, else put the pull in line.

        `waiter` is extra JSON-able data kept in the line entry (e.g. the installation id) and handed back
        by `release` when this pull's turn comes; it may not use the keys pull, user, pull_title, pull_url,
        queued_at. `command_id` names the command whose run takes a free lock (LockInfo.command_id), `kind` who
        `pull` is (LockInfo.kind). With `wait` False a pull that finds the lock held is not put in line: the result
        is not acquired, with the holder's lock and no place.
        """
        extra = dict(waiter or {})
        clash = _ENTRY_FIELDS & extra.keys()
        if clash:
            raise ValueError(f"waiter data may not set {sorted(clash)}")
        now = time.time()
        lock = LockInfo(
            repo=project.repo, dir=project.dir, workspace=project.workspace, project=project.name,
            pull=pull, user=user, locked_at=now, token=0, pull_title=pull_title, pull_url=pull_url,
            command_id=command_id, kind=kind,
        )
        entry = {**extra, "pull": pull, "user": user, "pull_title": pull_title, "pull_url": pull_url, "queued_at": now}
        reply = self._acquire(
            keys=[*self._lock_keys(project), keys.fence(), *_CHANGE_KEYS],
            args=[_dump(lock), pull, json.dumps(entry), "wait" if wait else ""],
        )
        status, value = _text(reply[0]), _load(reply[1])
        if status == "acquired":
            log.info("lock %s taken by #%d (token %d)", _name(project), pull, value.token)
            return AcquireResult(acquired=True, lock=value)
        if status == "held":
            return AcquireResult(acquired=True, lock=value, already_held=True)
        if status == "busy":
            return AcquireResult(acquired=False, lock=value)
        return AcquireResult(acquired=False, lock=value, queue_position=int(reply[2]))

    def get(self, project: LockTarget) -> LockInfo | None:
        """The lock of this workspace, or None when free."""
        raw = self._redis.get(keys.lock(project.repo, project.dir, project.workspace))
        return _load(raw) if raw is not None else None

    def holds(self, project: LockTarget, pull: int, token: int) -> bool:
        """Whether `pull` still holds the lock under `token` (check before an apply; set_state is the atomic way)."""
        lock = self.get(project)
        return lock is not None and lock.pull == pull and lock.token == token

    def list(self, repo: str | None = None) -> builtins.list[LockInfo]:
        """Every lock (of `repo` when given), ordered by repo, dir, workspace."""
        names = sorted(_text(k) for k in self._redis.smembers(keys.lock_index()))
        if repo is not None:
            prefix = keys.lock_prefix(repo)
            names = [n for n in names if n.startswith(prefix)]
        locks: builtins.list[LockInfo] = []
        for start in range(0, len(names), _MGET_CHUNK):
            for raw in self._redis.mget(names[start : start + _MGET_CHUNK]):
                if raw is not None:  # released between SMEMBERS and MGET
                    locks.append(_load(raw))
        return sorted(locks, key=lambda lock: (lock.repo, lock.dir, lock.workspace))

    # --- reads for a copy of every lock (bot/state/lock_cache.py) ------------------------------------------------

    def changes_since(self, version: int | None) -> tuple[int | None, builtins.list[tuple[int, str]]]:
        """(the lock version now, the changes logged since `version`: (version, lock key), oldest first).

        The version is None when nothing counts changes (no lock script ran since Redis was new, or an outside write
        deleted the counter). The changes are empty when the version is unchanged, and also when the log cannot say
        what changed since `version` (None, or further behind than CHANGE_LOG_LENGTH, or a counter that went
        backwards); the caller tells these apart by comparing versions, and checks the changes are the contiguous
        run `version + 1 .. now`: anything else means "read everything"."""
        reply = self._changes_since(keys=list(_CHANGE_KEYS), args=["" if version is None else str(version)])
        if not reply:
            return None, []
        changes = []
        for entry in reply[1:]:
            number, _, lock_key = _text(entry).partition(" ")
            changes.append((int(number), lock_key))
        return int(reply[0]), changes

    def read_all(self) -> dict[str, tuple[LockInfo, int]]:
        """Every lock and how many PRs wait for it, by lock key: the index, then one round trip per 1,000 locks."""
        names = [_text(k) for k in self._redis.smembers(keys.lock_index())]
        found: dict[str, tuple[LockInfo, int]] = {}
        for start in range(0, len(names), _MGET_CHUNK):
            for name, entry in self.read(names[start:start + _MGET_CHUNK]).items():
                if entry is not None:  # released between SMEMBERS and MGET
                    found[name] = entry
        return found

    def read(self, lock_keys: builtins.list[str]) -> dict[str, tuple[LockInfo, int] | None]:
        """The locks at `lock_keys` (as `changes_since` and `read_all` name them) and how many PRs wait for each, in
        one round trip; None for a key whose lock is gone."""
        if not lock_keys:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        pipe.mget(lock_keys)
        self._lengths(keys=[keys.lock_queue_of(k) for k in lock_keys], client=pipe)
        values, lengths = pipe.execute()
        return {name: None if raw is None else (_load(raw), int(length))
                for name, raw, length in zip(lock_keys, values, lengths)}

    def locks_of_pull(self, repo: str, pull: int) -> builtins.list[LockInfo]:
        """The locks `pull` holds in `repo`."""
        return [lock for lock in self.list(repo) if lock.pull == pull]

    def queued_for(self, repo: str, pull: int) -> builtins.list[LockInfo]:
        """The locks in `repo` that `pull` is waiting for."""
        # A line only exists behind a held lock (a release hands over or empties it), so the index finds them all.
        locks = self.list(repo)
        pipe = self._redis.pipeline(transaction=False)
        for lock in locks:
            pipe.lrange(keys.lock_queue(lock.repo, lock.dir, lock.workspace), 0, -1)
        lines = pipe.execute()
        return [lock for lock, line in zip(locks, lines) if any(json.loads(e)["pull"] == pull for e in line)]

    def set_state(self, project: LockTarget, pull: int, token: int, state: LockState, *,
                  expect: dict[str, str] | None = None, **changes: str | bool) -> bool:
        """Record a new state (and summary, extra_args, run_id, pull_title, pull_url, diverged, command_id) if `pull`
        still holds the lock under `token` and, with `expect`, the lock's fields still hold those values (`state`,
        `run_id`, `command_id`: compare-and-set, for a run that changes only what it set itself)."""
        unknown = (changes.keys() - _MUTABLE_FIELDS) | ((expect or {}).keys() - _MUTABLE_FIELDS - {"state"})
        if unknown:
            raise ValueError(f"set_state cannot change or expect {sorted(unknown)}")
        update = {**changes, "state": LockState(state).value}
        lock_key = keys.lock(project.repo, project.dir, project.workspace)
        return bool(self._set_state(keys=[lock_key, *_CHANGE_KEYS], args=[pull, token, json.dumps(update),
                                                                          json.dumps(expect or {})]))

    def release(self, project: LockTarget, pull: int, token: int | None, *, mode: str = "owner",
                command_id: str = "") -> ReleaseResult:
        """Release the lock if `pull` holds it (under `token`, or any token when None) and hand it to the next in line.

        `mode` "owner": the holder's own run (after the merge's apply); "close": a close, or tfbot letting go of a lock
        the PR no longer needs, refused (`refused="applying"` / `"flagged"`) while an apply runs or after an apply
        the default branch lacks; "unlock": a writer's unlock, refused as "close" and (`refused="running"`) while a
        run holds the workspace's run guard; "taken": a plan job letting go of the lock it has just taken (its PR is
        no longer open), only while the lock is still `planning` by `command_id` and no run holds the run guard, else
        refused (`"moved"`, `"applying"` or `"running"`).
        """
        return self._run_release(project, str(pull), "" if token is None else str(token), mode, command_id=command_id)

    def force_release(self, project: LockTarget, by: str, *, token: int | None = None,
                      run_dead: bool = False, with_reason: bool = False) -> ReleaseResult:
        """Release whoever holds the lock (an admin's unlock with a reason) and hand it on.

        With `token`, only the lock the unlocking user saw is released: if it changed hands since, nothing happens.
        Refused (`refused="running"`) while a run holds the workspace's run guard, whatever the lock's state; a lock
        whose apply is running is refused (`refused="applying"`) unless `run_dead`: its run is confirmed dead. A
        flagged lock (applying, applied or failed unmerged, diverged) is refused (`refused="flagged"`) unless
        `with_reason`: the admin gave a reason. The script decides on the lock as it is then, not on a read before.
        """
        result = self._run_release(project, "", "" if token is None else str(token), "admin",
                                   "dead" if run_dead else "", with_reason=with_reason)
        if result.released and result.previous is not None:
            log.info("lock %s of #%d unlocked by %s", _name(project), result.previous.pull, by)
        return result

    def forget_pull(self, repo: str, pull: int) -> builtins.list[ReleaseResult]:
        """A closed PR: leave every line it waits in, then release (and hand over) every lock it holds in `repo`,
        except those the release script keeps (applying, or flagged by an unmerged apply: `refused` says which)."""
        # Leave the lines first: once out of every line no release can hand this pull a lock we would miss.
        for lock in self.queued_for(repo, pull):
            self.leave_queue(lock, pull)
        return [self.release(lock, pull, None, mode="close") for lock in self.locks_of_pull(repo, pull)]

    def leave_queue(self, project: LockTarget, pull: int) -> bool:
        """Take `pull` out of the waiting line; False when it was not in it."""
        where = (project.repo, project.dir, project.workspace)
        return bool(self._leave_queue(keys=[keys.lock_queue(*where), keys.lock(*where), *_CHANGE_KEYS], args=[pull]))

    def queue(self, project: LockTarget) -> builtins.list[dict[str, Any]]:
        """The waiting line's entries, first in line first."""
        line = keys.lock_queue(project.repo, project.dir, project.workspace)
        return [json.loads(entry) for entry in self._redis.lrange(line, 0, -1)]

    def position(self, project: LockTarget, pull: int) -> int | None:
        """The 1-based place of `pull` in the waiting line, or None when not in it."""
        for place, entry in enumerate(self.queue(project), start=1):
            if entry["pull"] == pull:
                return place
        return None

    def _lock_keys(self, project: LockTarget) -> builtins.list[str]:
        where = (project.repo, project.dir, project.workspace)
        return [keys.lock(*where), keys.lock_index(), keys.lock_queue(*where)]

    def _run_release(self, project: LockTarget, pull: str, token: str, mode: str, dead: str = "",
                     command_id: str = "", with_reason: bool = False) -> ReleaseResult:
        if mode not in ("owner", "close", "unlock", "admin", "taken"):
            raise ValueError(f"unknown release mode {mode!r}")
        reply = self._release(
            keys=[*self._lock_keys(project), keys.fence(),
                  keys.run_guard(project.repo, project.dir, project.workspace), *_CHANGE_KEYS],
            args=[pull, token, time.time(), LockState.PLANNING.value, mode, dead, command_id,
                  "reason" if with_reason else ""],
        )
        status = _text(reply[0])
        if status == "free":
            return ReleaseResult(released=False)
        if status == "refused":
            return ReleaseResult(released=False, lock=_load(reply[1]), refused=_text(reply[2]))
        previous = _load(reply[1])
        if status == "released":
            return ReleaseResult(released=True, previous=previous)
        lock, waiter = _load(reply[2]), json.loads(reply[3])
        log.info("lock %s handed from #%d to #%d (token %d)", _name(project), previous.pull, lock.pull, lock.token)
        return ReleaseResult(released=True, next_waiter=waiter, lock=lock, previous=previous)

    # --- run guard ---------------------------------------------------------------------------------

    @contextmanager
    def run_guard(
        self, project: LockTarget, holder: str, ttl: float = 60.0, wait: float = 900.0
    ) -> Iterator["RunGuard"]:
        """Hold the project's run guard for the with-block, waiting up to `wait` seconds for it.

        The guard expires `ttl` seconds after its holder stops renewing it (a crash); while held, a daemon
        thread renews it every ttl/3. Raises GuardTimeout when another run keeps it for `wait` seconds.
        If the guard is lost anyway (Redis lost it, or the process stalled past ttl) `RunGuard.lost` turns True.
        """
        key = keys.run_guard(project.repo, project.dir, project.workspace)
        value = f"{holder} {uuid.uuid4().hex}"  # unique, so a late release never frees another run's guard
        ttl_ms = max(1, int(ttl * 1000))
        deadline = time.monotonic() + wait
        pause = 0.01
        while not self._redis.set(key, value, nx=True, px=ttl_ms):
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuardTimeout(f"{_name(project)} is busy with a run by {self.guard_holder(project)!r}")
            # Jitter keeps many waiting workers from polling in lockstep.
            time.sleep(min(left, pause * random.uniform(0.5, 1.0)))
            pause = min(pause * 2, 0.25)
        guard = RunGuard(self._guard_renew, key, value, ttl_ms)
        try:
            yield guard
        finally:
            guard.stop()
            self._guard_release(keys=[key], args=[value])

    def guard_holder(self, project: LockTarget) -> str | None:
        """Who holds the project's run guard now (the `holder` given to run_guard), or None."""
        raw = self._redis.get(keys.run_guard(project.repo, project.dir, project.workspace))
        return None if raw is None else _text(raw).rsplit(" ", 1)[0]


class RunGuard:
    """A held run guard, renewed by a daemon thread until `stop`."""

    def __init__(self, renew: Script, key: str, value: str, ttl_ms: int):
        self.key = key
        self.lost = False
        self._renew = renew
        self._value = value
        self._ttl_ms = ttl_ms
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name=f"guard {key}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the caller releases the key)."""
        self._stopped.set()
        self._thread.join()

    def _heartbeat(self) -> None:
        while not self._stopped.wait(self._ttl_ms / 3000):
            try:
                if not self._renew(keys=[self.key], args=[self._value, self._ttl_ms]):
                    self.lost = True
                    log.warning("run guard %s expired while held: another run may start", self.key)
                    return
            except redis.RedisError as exc:  # a blip: the next beat, still before expiry, tries again
                log.warning("could not renew run guard %s: %s", self.key, exc)


def _lua(script: str) -> str:
    return script.replace("CHANGE_LOG_LENGTH", str(CHANGE_LOG_LENGTH))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dump(lock: LockInfo) -> str:
    return json.dumps({**asdict(lock), "state": lock.state.value})


def _load(raw: bytes | str) -> LockInfo:
    data = json.loads(raw)
    known = {k: v for k, v in data.items() if k in _LOCK_FIELDS}
    known.update(pull=int(known["pull"]), token=int(known["token"]), state=LockState(known["state"]),
                 diverged=bool(known.get("diverged", False)))
    return LockInfo(**known)


def _name(project: LockTarget) -> str:
    return keys.project_id(project.repo, project.dir, project.workspace)
