"""Reconciliation: the pull requests that were closed or merged while tfbot was not listening.

For each PR holding a lock, GitHub is asked for the PR's state:
- open: nothing to do.
- closed without merging: handled exactly as the `pull_request.closed` event tfbot missed would have been
  (its handler releases the locks, hands each to the next PR in line, deletes plans and checkouts).
- merged, and its merge never handled (no replay fingerprint of its closing event), whatever its locks' states
  (a lock `apply failed` by an apply on the open PR never saw the merge either): the merge is handed to the
  router as that missed `pull_request.closed` event, so it is applied, or the PR told why not, the one way every
  merge is (the closed handler: every project the PR holds a lock of or changed, with a note that tfbot was
  down). A handled merge whose locks are past it (applying, apply failed, plan stale) waits for a person.

Merged PRs that hold no lock (opened and merged while tfbot was down, or whose closing event failed for good)
are found too: every repository the App is installed on and tfbot is configured for is asked for the PRs
merged in the last 6 days (never before the first pass of tfbot itself). That is one request per repository,
so periodic passes do it at most every MERGE_SCAN_SECONDS; a start and `tfbot reconcile` always do.

Either way a merge is handed over as a synthetic `closed` delivery on the events queue, exactly as if GitHub
had sent it, with a job id named after the merge: while that job is queued, retried or failed, later passes
leave it alone (`tfbot reconcile` by hand re-queues a failed one). The delivery claims the event's replay
fingerprint when a worker handles it (bot.jobs), so the missed event, redelivered by GitHub (see
bot.ops.redelivery), and this pass never both apply: whichever comes second does nothing.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from bot.state import keys
from bot.config import Config
from bot.adapters.github import PullInfo
from bot.lifecycle.handlers.pull_requests import closed
from bot.models import LockInfo, LockState
from bot.intake.replay import FINGERPRINT_TTL_SECONDS, closed_fingerprint
from bot.intake.webhooks import MISSED_EVENT_PREFIX, Delivery

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)

AT_STARTUP = "its check at startup"
PERIODIC = "its periodic check"
BY_COMMAND = "`tfbot reconcile`"
# A merged PR's locks in these states never saw their merge; the others already did, or wait for a person.
MERGE_NOT_ATTEMPTED = frozenset({LockState.PLANNING, LockState.PLANNED, LockState.PLAN_FAILED, LockState.APPLIED})
# How far back merges are looked for: inside the replay fingerprint's week, so a handled merge is still known.
MERGE_LOOKBACK_SECONDS = FINGERPRINT_TTL_SECONDS - 24 * 3600
# Periodic passes look for missed merges this often: with 1,000 repositories, 2,000 of the installation's
# 5,000 requests an hour.
MERGE_SCAN_SECONDS = 1800
# A synthetic delivery's job in these states is still on its way (or waits for its retry): leave it be.
_LIVE_JOB = frozenset({"queued", "started", "scheduled", "deferred"})


class Action(str, Enum):
    KEEP = "kept: the PR is open"
    RELEASE = "released: the PR was closed without merging"
    WAIT = "left for a person: the PR was merged and its locks are past the merge"
    HANDLED = "nothing: its closing event was already handled"
    QUEUED = "handed to tfbot: merged while tfbot was not listening"
    PENDING = "nothing: its merge was already handed to tfbot"
    ERROR = "not reconciled"


@dataclass(frozen=True)
class Reconciled:
    """What one pass did about one PR's locks."""

    repo: str
    pull: int
    action: Action
    projects: tuple[str, ...]
    detail: str = ""

    def line(self) -> str:
        what = f" ({', '.join(self.projects)})" if self.projects else ""
        where = f"{self.repo}#{self.pull}" if self.pull else self.repo  # 0: about the repository as a whole
        return f"{where}{what}: {self.action.value}" + (f" ({self.detail})" if self.detail else "")


def decide(pull: PullInfo, locks: Sequence[LockInfo]) -> Action:
    """What to do about a PR holding `locks`: KEEP, RELEASE, or QUEUED (hand its merge to the router, which says
    HANDLED if its merge was handled already: see hand_over_merge and _reconcile_pull)."""
    if pull.state == "open":
        return Action.KEEP
    if not pull.merged:
        return Action.RELEASE
    return Action.QUEUED


def closed_event(repo: str, installation: int, pull: PullInfo) -> dict[str, Any]:
    """The `pull_request.closed` payload tfbot missed, with the fields intake requires and handlers read."""
    return {
        "action": "closed",
        "number": pull.number,
        "installation": {"id": installation},
        "repository": {"full_name": repo, "clone_url": pull.clone_url},
        "pull_request": {
            "number": pull.number, "state": pull.state, "merged": pull.merged,
            "merge_commit_sha": pull.merge_commit_sha, "user": {"login": pull.author},
            "head": {"sha": pull.head_sha, "ref": pull.head_ref}, "base": {"sha": pull.base_sha, "ref": pull.base_ref},
        },
        "sender": {"login": pull.merged_by or pull.author},
    }


def reconcile(svc: WorkerServices, origin: str = AT_STARTUP) -> list[Reconciled]:
    """Act on the PRs holding a lock that closed, then on merges never handled; one result per PR acted on."""
    return reconcile_locks(svc, origin) + reconcile_merges(svc, origin)


def reconcile_locks(svc: WorkerServices, origin: str = AT_STARTUP) -> list[Reconciled]:
    """Ask GitHub about every PR holding a lock and act on the closed ones; one result per PR, by repo and number."""
    held: dict[tuple[str, int], list[LockInfo]] = {}
    for lock in svc.locks.list():
        if lock.kind == "drift":  # a drift issue's `apply` (bot/drift/apply.py) holds it while it runs: no PR to ask
            continue
        held.setdefault((lock.repo, lock.pull), []).append(lock)
    results = []
    for (repo, number), locks in sorted(held.items()):
        try:
            results.append(_reconcile_pull(svc, repo, number, locks, origin))
        except Exception as exc:  # noqa: BLE001 - one PR GitHub cannot tell us about must not stop the others
            log.error("reconcile: %s#%d: %s; its locks stay until the next pass", repo, number, exc)
            results.append(Reconciled(repo, number, Action.ERROR, _names(locks), str(exc)))
    return results


def _reconcile_pull(svc: WorkerServices, repo: str, number: int, locks: list[LockInfo], origin: str) -> Reconciled:
    installation = _installation(svc, repo, number)
    pull = svc.github.repo(installation, repo).pull(number)
    action = decide(pull, locks)
    if action is Action.RELEASE:
        # Releasing twice is harmless (the second finds nothing): act at once, even if the event is in flight.
        payload = closed_event(repo, installation, pull)
        closed(Delivery(id=f"{MISSED_EVENT_PREFIX}{uuid.uuid4().hex[:12]}", event="pull_request", payload=payload),
               svc)
    elif action is Action.QUEUED:
        action = hand_over_merge(svc, repo, installation, pull, origin)
        if action is Action.HANDLED and not any(lock.state in MERGE_NOT_ATTEMPTED for lock in locks):
            action = Action.WAIT  # its merge was handled, and its locks are past it: for a person
    if action in (Action.RELEASE, Action.QUEUED):
        log.info("reconcile: %s#%d (%s): %s", repo, number, ", ".join(_names(locks)), action.value)
    return Reconciled(repo, number, action, _names(locks))


def reconcile_merges(svc: WorkerServices, origin: str = AT_STARTUP, now: float | None = None) -> list[Reconciled]:
    """Hand every merge since the watch began whose closing event was never acted on to the router."""
    if origin == PERIODIC and not svc.redis.set(keys.merges_scan_due(), "1", nx=True, ex=MERGE_SCAN_SECONDS):
        return []  # looked recently
    now = time.time() if now is None else now
    # Whole seconds: GitHub's times have no fractions, so a merge in the second the watch began counts.
    svc.redis.set(keys.merges_watched_since(), str(int(now)), nx=True)
    since = max(float(svc.redis.get(keys.merges_watched_since()) or now), now - MERGE_LOOKBACK_SECONDS)
    results: list[Reconciled] = []
    try:
        repos = [(i, r) for i, r in svc.github.installed_repos() if svc.config.repo_config(r) is not None]
    except Exception as exc:  # noqa: BLE001 - the lock part of the pass has run; try again next period
        log.error("reconcile: cannot list the App's repositories: %s", exc)
        return [Reconciled("*", 0, Action.ERROR, (), f"listing repositories: {exc}")]
    for installation, repo in repos:
        try:
            results += _reconcile_repo_merges(svc, installation, repo, since, origin)
        except Exception as exc:  # noqa: BLE001 - one repository GitHub cannot tell us about must not stop the others
            log.error("reconcile: merges of %s: %s; trying again next pass", repo, exc)
            results.append(Reconciled(repo, 0, Action.ERROR, (), f"listing merged PRs: {exc}"))
    return results


def _reconcile_repo_merges(svc: WorkerServices, installation: int, repo: str, since: float, origin: str) -> list[Reconciled]:
    gh = svc.github.repo(installation, repo)
    results = []
    for number, merge_sha in gh.merged_since(since):
        mark = closed_fingerprint(repo, number, True, merge_sha)
        if svc.redis.exists(keys.event_fingerprint(mark)) or svc.locks.locks_of_pull(repo, number):
            continue  # acted on (or being acted on) already, or a PR with locks: reconcile_locks has it
        if _on_its_way(svc, _delivery_id(mark), origin):
            continue  # asked before GitHub is asked for the PR: one request less per merge already handed over
        if hand_over_merge(svc, repo, installation, gh.pull(number), origin) is Action.QUEUED:
            log.warning("reconcile: %s#%d was merged (%s) but its merge was never handled: handed to tfbot", repo,
                        number, merge_sha[:8])
            results.append(Reconciled(repo, number, Action.QUEUED, (), f"merge {merge_sha[:8]}"))
    return results


def hand_over_merge(svc: WorkerServices, repo: str, installation: int, pull: PullInfo, origin: str) -> Action:
    """Queue the `closed` event tfbot missed for the router (QUEUED), unless it was handled (HANDLED) or is on
    its way (PENDING). The one way a merge is applied: its handler plans and applies what the merge brought."""
    mark = closed_fingerprint(repo, pull.number, True, pull.merge_commit_sha)
    if svc.redis.exists(keys.event_fingerprint(mark)):
        return Action.HANDLED
    delivery_id = _delivery_id(mark)
    if _on_its_way(svc, delivery_id, origin):
        return Action.PENDING
    svc.jobs.handle_delivery(delivery_id, "pull_request", closed_event(repo, installation, pull))
    return Action.QUEUED


def _delivery_id(mark: str) -> str:
    """One id per merge, so every pass and host names the same job."""
    return MISSED_EVENT_PREFIX + hashlib.sha256(mark.encode()).hexdigest()[:24]


def _on_its_way(svc: WorkerServices, delivery_id: str, origin: str) -> bool:
    """Whether the hand-over job is queued, running or waiting for a retry, or failed for good: the PR was told,
    and only `tfbot reconcile` by hand tries again."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    try:
        status = Job.fetch(f"delivery-{delivery_id}", connection=svc.redis, serializer=JSONSerializer).get_status()
    except NoSuchJobError:
        return False
    return status is not None and (status in _LIVE_JOB or origin != BY_COMMAND)


def _installation(svc: WorkerServices, repo: str, number: int) -> int:
    """The installation recorded with the PR, else the App's installation on the repository."""
    recorded = svc.records.pull_field(repo, number, "installation")
    if recorded and recorded.isdigit():
        return int(recorded)
    return svc.github.repo_installation(repo)


def _names(locks: Sequence[LockInfo]) -> tuple[str, ...]:
    return tuple(lock.project or lock.dir for lock in locks)


def main(config: Config, out: TextIO | None = None) -> int:
    """`tfbot reconcile`: one pass against the server's Redis and the GitHub App; print one line per PR."""
    from bot.ops.admin_cli import AdminError, connect_store
    from bot.adapters.logs import setup_logging
    from bot.compose import worker_services

    out = out or sys.stdout
    setup_logging("WARNING", config.secrets(), "reconcile")
    try:
        conn = connect_store(config)
    except AdminError as exc:
        print(f"tfbot: {exc}", file=sys.stderr)
        return 2
    results = reconcile(worker_services(config, conn), origin=BY_COMMAND)
    if not results:
        out.write("No locks are held and no merge was missed: nothing to reconcile.\n")
        return 0
    for result in results:
        out.write(result.line() + "\n")
    if any(r.action is Action.QUEUED for r in results):
        out.write("A tfbot worker runs the applies (`tfbot serve` or `tfbot worker` must be running).\n")
    return 1 if any(r.action is Action.ERROR for r in results) else 0
