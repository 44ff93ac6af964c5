"""Pull request events: autoplan on push, apply on merge, release on close."""
from __future__ import annotations

import logging
from typing import Any

from bot.config import RepoConfig
from bot.github_api import PullInfo, RepoAPI
from bot.handover import plan_next, release_and_hand_over
from bot.models import Project
from bot.planning import start_command
from bot.projects import affected_projects
from bot.records import project_from_dict
from bot.routing import Router
from bot.webhooks import Delivery

log = logging.getLogger(__name__)
router = Router()

FORK_REFUSAL = (
    "tfbot does not plan pull requests from forks: a plan runs code from the PR (providers, `external` data "
    "sources) on tfbot's host with its credentials. An admin can allow it with `allow_fork_prs: true`."
)
FORK_NEEDS_WRITER = (
    "This PR comes from a fork: tfbot does not plan it on every push, because a plan runs the PR's code on "
    "tfbot's host. Someone with write access can review the code and comment `plan`."
)


@router.register("pull_request", "opened")
@router.register("pull_request", "reopened")
@router.register("pull_request", "synchronize")
@router.register("pull_request", "ready_for_review")
def autoplan(delivery: Delivery, svc: Any) -> None:
    payload = delivery.payload
    repo = delivery.repo
    repo_cfg = svc.config.repo_config(repo)
    number = int(payload["number"])
    pr = payload["pull_request"]
    if pr.get("draft") and not repo_cfg.plan_drafts:
        log.info("%s: draft PR, not planned (plan_drafts is off)", delivery.describe())
        return
    gh = svc.github.repo(delivery.installation_id, repo)
    pull = gh.pull(number)
    if pull.state != "open":
        log.info("%s: PR is %s now; not planned", delivery.describe(), pull.state)
        return
    if pull.head_sha != pr["head"]["sha"]:
        log.info("%s: head moved to %s since this event; its own event plans it", delivery.describe(),
                 pull.head_sha[:8])
        return
    if pull.is_fork:
        # Even where forks are allowed, their code runs on our host only after a person with write access asks.
        refuse_fork(svc, gh, repo, pull, FORK_REFUSAL if not repo_cfg.allow_fork_prs else FORK_NEEDS_WRITER)
        return
    svc.records.set_head(repo, number, pull.head_sha)
    svc.records.set_pull_field(repo, number, "installation", str(delivery.installation_id))  # for unlocks from the page
    projects = [p for p in projects_of_pull(svc, gh, repo, repo_cfg, pull) if p.autoplan]
    if not projects:
        gh.set_status(pull.head_sha, "tfbot/plan", "success", "No Terraform project changed")
        log.info("%s: no Terraform project changed", delivery.describe())
        return
    if too_many(svc, gh, pull, projects):
        return
    start_command(svc, "plan", repo, pull, delivery.installation_id, str(payload["sender"]["login"]), projects)


@router.register("pull_request", "closed")
def closed(delivery: Delivery, svc: Any) -> None:
    repo = delivery.repo
    number = int(delivery.payload["number"])
    pr = delivery.payload["pull_request"]
    locks = svc.locks.locks_of_pull(repo, number)
    if pr.get("merged"):
        if not locks:
            waiting = svc.locks.queued_for(repo, number)
            if waiting:
                names = ", ".join(f"`{lock.project}` (held by #{lock.pull})" for lock in waiting)
                gh = svc.github.repo(delivery.installation_id, repo)
                gh.create_comment(number, svc.render_notice("notice", number, pr["head"]["sha"], (
                    f"This PR was merged while waiting for the lock of {names}: nothing was applied yet. It stays "
                    "in line; when the lock comes to it, tfbot plans its merge commit and asks for `apply` here.")))
            log.info("%s: merged, holds no lock: nothing to apply now", delivery.describe())
            return
        gh = svc.github.repo(delivery.installation_id, repo)
        pull = gh.pull(number)
        projects = [svc.project_of_lock(lock) for lock in locks]
        start_command(svc, "merge", repo, pull, delivery.installation_id, str(delivery.payload["sender"]["login"]),
                      projects, head_sha=pr["head"]["sha"])
        return
    for lock in locks:
        project = svc.project_of_lock(lock)
        plan = svc.records.plan(project, number)
        if plan:
            svc.plans.delete(plan.key)
            svc.records.delete_plan(project, number)
    for released in svc.locks.forget_pull(repo, number):
        if released.released and released.previous is not None:
            plan_next(svc, svc.project_of_lock(released.previous), released.next_waiter,
                      reason=f"#{number} was closed without merging")
    if any(svc.locks.guard_holder(svc.project_of_lock(lock)) for lock in locks):
        # A run of this PR is still going in its working copy: leave the copy rather than pull it from under it.
        log.info("%s: a run is under way; its working copies are kept", delivery.describe())
    else:
        svc.checkouts.remove_pull(repo, number)
    svc.records.forget_pull(repo, number)
    log.info("%s: closed unmerged; released %d lock(s)", delivery.describe(), len(locks))


def projects_of_pull(svc: Any, gh: RepoAPI, repo: str, repo_cfg: RepoConfig, pull: PullInfo) -> list[Project]:
    """The projects the PR's changes touch, from `git diff` on our own mirror (no 3,000-file API cap)."""
    clone_url = gh.authenticated_clone_url(pull.clone_url)
    svc.checkouts.fetch(repo, clone_url, pull_refs(pull))
    changed = svc.checkouts.changed_files(repo, pull.base_sha, pull.head_sha)
    tf_dirs = svc.checkouts.tf_dirs(repo, pull.head_sha)
    return affected_projects(repo, repo_cfg, changed, tf_dirs)


def pull_refs(pull: PullInfo) -> list[str]:
    return [
        f"+refs/pull/{pull.number}/head:refs/tfbot/pull/{pull.number}/head",
        f"+refs/heads/{pull.base_ref}:refs/tfbot/heads/{pull.base_ref}",
    ]


def too_many(svc: Any, gh: RepoAPI, pull: PullInfo, projects: list[Project]) -> bool:
    limit = svc.config.max_projects_per_pr
    if len(projects) <= limit:
        return False
    gh.create_comment(pull.number, svc.render_notice(
        "too-many", pull.number, pull.head_sha,
        f"This PR changes {len(projects)} Terraform projects, more than `max_projects_per_pr` ({limit}). "
        "tfbot does not plan it, to keep the queue usable for everyone. Split the PR, or ask an admin to raise the limit."))
    gh.set_status(pull.head_sha, "tfbot/plan", "failure", f"{len(projects)} projects: over the limit of {limit}")
    return True


def refuse_fork(svc: Any, gh: RepoAPI, repo: str, pull: PullInfo, text: str) -> None:
    """Say once per PR why its pushes are not planned."""
    if svc.records.pull_field(repo, pull.number, "fork_refused"):
        return
    gh.create_comment(pull.number, svc.render_notice("fork", pull.number, pull.head_sha, text))
    svc.records.set_pull_field(repo, pull.number, "fork_refused", "1")
    log.info("%s#%d: fork PR refused", repo, pull.number)


def plan_handed_over(svc: Any, project_data: dict[str, Any], number: int, installation: int, reason: str) -> None:
    """The lock was handed to PR `number`: plan it on its current head, or pass the lock on if it was closed."""
    project = project_from_dict(project_data)
    gh = svc.github.repo(installation, project.repo)
    pull = gh.pull(number)
    if pull.merged:
        # Merged while waiting: its change is on main but was never planned. Plan the merge commit, keep the lock,
        # and let a person review that plan and comment `apply` (never apply an unreviewed plan).
        start_command(svc, "merge", project.repo, pull, installation, "tfbot", [project], head_sha=pull.head_sha,
                      note=f"#{number} was merged while it waited for the lock of `{project.name}`, so nothing was "
                           f"applied then. The lock came to it because {reason}.")
        return
    if pull.state != "open":
        release_and_hand_over(svc, project, number, None, reason=f"#{number} was closed while waiting")
        return
    plan_again(svc, project_data, number, installation, pull=pull,
               note=f"The lock of `{project.name}` was handed to this PR because {reason}; "
                    "tfbot planned it automatically on its current head.")


def plan_again(svc: Any, project_data: dict[str, Any], number: int, installation: int, note: str,
               pull: PullInfo | None = None) -> None:
    """Plan one project of an open PR on its current head, with `note` on the comment."""
    project = project_from_dict(project_data)
    pull = pull or svc.github.repo(installation, project.repo).pull(number)
    if pull.state != "open":
        return
    svc.records.set_head(project.repo, number, pull.head_sha)
    start_command(svc, "plan", project.repo, pull, installation, "tfbot", [project], note=note)
