"""The drift scheduler of `tfbot serve`: a thread that queues each due project's drift check, on one host.

Every `tfbot serve` whose config switches drift on for some `repos[]` entry runs the thread; each tick (every
TICK_SECONDS) it asks for the scheduler's lease (bot/state/drift_schedule.py). The host holding it is the
scheduler; the others only ask again. A holder renews the lease at every tick and before every check it queues;
a host that dies stops renewing, its lease (LEASE_SECONDS) runs out, and the next host to tick takes over: within
LEASE_SECONDS + TICK_SECONDS, under a minute. A host that stops gives the lease up at once.

A tick of the scheduler, for each repository the App is installed on whose `repos[]` entry has `drift.enabled`:
1. the slot due (bot/drift/schedule.py): the latest fire time of `drift.schedule` after the repository's last
   slot handled; nothing due costs no GitHub call;
2. the default branch's head (one GitHub call and a fetch) and its projects, found as a PR's would be and kept in
   Redis per head and `repos[]` entry, so a head seen before is not read again;
3. for each project `drift.projects` selects: claim (project, slot) with `SET NX`, and queue its check
   (`JobQueue.check_drift`, reason "scheduled") only when the claim is this tick's. A scheduler that takes over in
   the middle of a slot finds the claims of the checks already queued and queues the rest;
4. the slot is recorded as handled.
A repository whose head or projects cannot be read is tried again after RETRY_SECONDS, its slot still due. The
App's installed repositories are listed at most every REPOS_SECONDS.

One gap is accepted: a holder that dies between a claim and its queueing leaves that project unchecked until the
next slot (queueing twice is what the claim exists to prevent).
"""
from __future__ import annotations

import hashlib
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from bot.adapters.git import CheckoutError
from bot.adapters.github import GitHubError
from bot.adapters.redis_server import connect
from bot.compose import worker_services
from bot.config import Config
from bot.config.models import RepoConfig
from bot.drift.schedule import due_slot, projects_to_check
from bot.lifecycle.default_branch import fetch_tip, projects_at
from bot.models import Project
from bot.services import WorkerServices
from bot.state.drift_schedule import DriftSlots, SchedulerLease

log = logging.getLogger("tfbot.drift")

TICK_SECONDS = 15.0
LEASE_SECONDS = 40.0  # LEASE_SECONDS + TICK_SECONDS (+ jitter) stays under a minute: the promised takeover
REPOS_SECONDS = 600.0  # between two listings of the App's installed repositories
RETRY_SECONDS = 60.0  # before a repository whose head could not be read is tried again
SCHEDULED = "scheduled"  # the reason a scheduled check is queued with


@dataclass
class Tick:
    """What one tick did: whether this host held the lease, and the checks it queued (`repo project`)."""

    leader: bool = False
    queued: list[str] = field(default_factory=list)
    slots: dict[str, float] = field(default_factory=dict)  # repo -> the slot whose checks this tick queued
    failed: list[str] = field(default_factory=list)  # repositories whose head or projects could not be read


def drift_enabled(config: Config) -> bool:
    """Whether any `repos[]` entry switches drift checks on: else serve starts no scheduler."""
    return any(r.drift.enabled for r in config.repos)


def config_fingerprint(server: RepoConfig) -> str:
    """Which `repos[]` entry found a head's projects: a changed entry (a restart with a new config) reads again."""
    return hashlib.sha256(server.model_dump_json().encode()).hexdigest()[:16]


class DriftScheduler:
    """The scheduler of one `tfbot serve` host against one Redis. `clock` gives unix seconds (tests move it)."""

    def __init__(self, config: Config, conn: redis.Redis, services: Callable[[], WorkerServices] | None = None,
                 lease_seconds: float = LEASE_SECONDS, clock: Callable[[], float] = time.time,
                 owner: str | None = None):
        self.config = config
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = SchedulerLease(conn, self.owner, int(lease_seconds * 1000))
        self.slots = DriftSlots(conn)
        self.clock = clock
        self._services_factory = services
        self._services: WorkerServices | None = None
        self._conn = conn
        self._repos: list[tuple[int, str]] = []
        self._repos_at: float | None = None
        self._retry_at: dict[str, float] = {}  # repo -> when its head may be read again after a failure

    def services(self) -> WorkerServices:
        """The worker's services (GitHub, git, the job queue), built at the first tick that needs them."""
        if self._services is None:
            self._services = self._services_factory() if self._services_factory else \
                worker_services(self.config, self._conn)
        return self._services

    def tick(self) -> Tick:
        """Hold the lease, then queue the checks due now. Raises Redis errors; GitHub and git failures of one
        repository are logged and counted in `Tick.failed`."""
        result = Tick()
        if not self.lease.hold():
            return result
        result.leader = True
        now = self.clock()
        for installation, repo in self._installed(now):
            server = self.config.repo_config(repo)
            if server is None or not server.drift.enabled:
                continue
            slot = due_slot(server.drift.schedule, now, self.slots.last(repo))
            if slot is None or self._retry_at.get(repo, 0.0) > now:
                continue
            try:
                projects = self._projects(installation, repo, server)
            except (GitHubError, CheckoutError, OSError) as exc:
                self._retry_at[repo] = now + RETRY_SECONDS
                result.failed.append(repo)
                log.error("drift: the projects of %s could not be read (%s); trying again in %.0f s", repo,
                          self.services().mask(str(exc)), RETRY_SECONDS)
                continue
            self._retry_at.pop(repo, None)
            queued = 0
            for project in projects_to_check(projects, server.drift.projects):
                if not self.lease.renew():  # lost it: the new holder goes on, and the claims keep each check once
                    log.warning("drift: the scheduler's lease passed to another host in the middle of %s", repo)
                    result.leader = False
                    return result
                if self.slots.claim(project, slot):
                    self.services().jobs.check_drift(project, SCHEDULED, "")
                    result.queued.append(f"{repo} {project.name}")
                    queued += 1
            self.slots.handled(repo, slot)
            if queued:
                result.slots[repo] = slot
                log.info("drift: queued the scheduled check of %d project(s) of %s for the slot of %s: %s", queued,
                         repo, _utc(slot), ", ".join(result.queued[-queued:]))
        return result

    def stop(self) -> None:
        """Give the lease up so another host takes over at its next tick."""
        try:
            if self.lease.release():
                log.info("drift: scheduler lease given up")
        except (redis.RedisError, OSError):
            pass  # Redis may be gone first; the lease then runs out by itself

    def _installed(self, now: float) -> list[tuple[int, str]]:
        """The App's installed repositories, listed again after REPOS_SECONDS (an error keeps the last list)."""
        if self._repos_at is None or now - self._repos_at >= REPOS_SECONDS:
            try:
                self._repos = self.services().github.installed_repos()
            except GitHubError as exc:
                log.error("drift: the App's repositories could not be listed (%s); trying again in %.0f s", exc,
                          RETRY_SECONDS)
                self._repos_at = now - REPOS_SECONDS + RETRY_SECONDS
                return self._repos
            self._repos_at = now
        return self._repos

    def _projects(self, installation: int, repo: str, server: RepoConfig) -> list[Project]:
        """The projects of `repo`'s default branch head: read from Redis when this head was read before."""
        svc = self.services()
        sha = fetch_tip(svc, repo, installation).sha
        fingerprint = config_fingerprint(server)
        kept = self.slots.projects(repo, fingerprint, sha)
        if kept is not None:
            return kept
        found = projects_at(svc, repo, server, sha)
        self.slots.keep_projects(repo, fingerprint, sha, found)
        return found


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def start_drift_scheduler(config: Config, redis_url: str, stop: threading.Event,
                          interval: float = TICK_SECONDS) -> threading.Thread | None:
    """Start the scheduler thread when some repository has drift on; it ends, giving up its lease, when `stop` is
    set. None when no `repos[]` entry has `drift.enabled`."""
    if not drift_enabled(config):
        return None
    thread = threading.Thread(target=_loop, args=(config, redis_url, stop, interval), name="tfbot drift scheduler",
                              daemon=True)
    thread.start()
    return thread


def _loop(config: Config, redis_url: str, stop: threading.Event, interval: float) -> None:
    scheduler = DriftScheduler(config, connect(redis_url))
    leader = False
    try:
        while not stop.is_set():
            try:
                tick = scheduler.tick()
                if tick.leader != leader:
                    log.info("drift: %s", "this host is the drift scheduler" if tick.leader
                             else "another host is the drift scheduler")
                    leader = tick.leader
            except (redis.RedisError, OSError) as exc:
                log.warning("drift: scheduler tick skipped: Redis unavailable (%s); trying again in %.0f s", exc,
                            interval)
            except Exception:  # noqa: BLE001 - a fault in tfbot: logged whole, and the next tick tries again
                log.exception("drift: scheduler tick failed; trying again in %.0f s", interval)
            # Jitter keeps hosts started together from asking for the lease at the same moment.
            if stop.wait(interval * random.uniform(0.9, 1.1)):
                break
    finally:
        scheduler.stop()
