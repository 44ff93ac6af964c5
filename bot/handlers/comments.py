"""PR comments: `plan`, `apply`, `unlock`, `help`. Parsing is pure (bot.commands); this module acts on it."""
from __future__ import annotations

import logging
from typing import Any

from bot.commands import Command as CommentCommand
from bot.commands import Ignore, Reply, describe_flags, parse_comment
from bot.github_api import PullInfo, RepoAPI
from bot.handlers.pull_requests import FORK_REFUSAL, projects_of_pull, pull_refs, too_many
from bot.handover import force_release_and_hand_over
from bot.models import LockState, Outcome, Project, ProjectResult
from bot.permissions import WRITE_PERMISSIONS, apply_refusals, may_write
from bot.planning import start_command
from bot.projects import select
from bot.routing import Router
from bot.webhooks import Delivery

log = logging.getLogger(__name__)
router = Router()


@router.register("issue_comment", "created")
def on_comment(delivery: Delivery, svc: Any) -> None:
    payload = delivery.payload
    if not payload["issue"].get("pull_request"):
        return  # a comment on an issue, not a PR
    comment = payload["comment"]
    author = str(comment["user"]["login"])
    parsed = parse_comment(str(comment["body"]), author, bot_login=svc.bot_login)
    if isinstance(parsed, Ignore):
        return
    number = int(payload["issue"]["number"])
    svc.records.set_pull_field(delivery.repo, number, "installation", str(delivery.installation_id))  # for unlocks
    gh = svc.github.repo(delivery.installation_id, delivery.repo)
    if isinstance(parsed, Reply):
        gh.create_comment(number, svc.render_notice("help", number, "", parsed.text))
        return
    gh.react(number, int(comment["id"]), "eyes")
    log.info("%s: %s by %s", delivery.describe(), parsed.name, author)
    handler = {"plan": _plan, "apply": _apply, "unlock": _unlock}[parsed.name]
    handler(svc, gh, delivery, number, author, parsed)


def _plan(svc: Any, gh: RepoAPI, delivery: Delivery, number: int, author: str, cmd: CommentCommand) -> None:
    repo_cfg = svc.config.repo_config(delivery.repo)
    pull = gh.pull(number)
    if pull.state != "open":
        _say(svc, gh, pull, f"@{author}: #{number} is {'merged' if pull.merged else 'closed'}; there is nothing to plan.")
        return
    if pull.is_fork and not repo_cfg.allow_fork_prs:
        _say(svc, gh, pull, FORK_REFUSAL)
        return
    if pull.is_fork and not may_write(gh, author):
        _say(svc, gh, pull, f"@{author}: plans of fork PRs run only when someone with write access comments `plan`.")
        return
    svc.records.set_head(delivery.repo, number, pull.head_sha)
    projects = select(projects_of_pull(svc, gh, delivery.repo, repo_cfg, pull), cmd.project, cmd.dir, cmd.workspace)
    if not projects:
        _say(svc, gh, pull, f"@{author}: no Terraform project of this PR matches {_flags(cmd)}: nothing to plan.")
        return
    if too_many(svc, gh, pull, projects):
        return
    start_command(svc, "plan", delivery.repo, pull, delivery.installation_id, author, projects)


def _apply(svc: Any, gh: RepoAPI, delivery: Delivery, number: int, author: str, cmd: CommentCommand) -> None:
    pull = gh.pull(number)
    if not _may(svc, gh, pull, "apply", author):
        return
    if pull.state != "open" and not pull.merged:
        _say(svc, gh, pull, f"@{author}: #{number} was closed without merging; its locks are released.")
        return
    locks = svc.locks.locks_of_pull(delivery.repo, number)
    projects = select([svc.project_of_lock(lock) for lock in locks], cmd.project, cmd.dir, cmd.workspace)
    if not projects:
        _say(svc, gh, pull, f"@{author}: this PR holds no lock matching {_flags(cmd)}; comment `plan` first.")
        return
    extra: dict[str, Any] = {}
    if pull.merged:
        clone_url = gh.authenticated_clone_url(pull.clone_url)
        svc.checkouts.fetch(delivery.repo, clone_url, pull_refs(pull))
        extra["base_head_sha"] = svc.checkouts.resolve(delivery.repo, f"refs/tfbot/heads/{pull.base_ref}")
    refusals = {} if pull.merged else apply_refusals(
        gh, pull, projects, allow_draft=svc.config.repo_config(delivery.repo).allow_draft_apply)
    prefilled = [ProjectResult(p, Outcome.REFUSED, head_sha=pull.head_sha, message=refusals[p.id])
                 for p in projects if p.id in refusals]
    stale = [] if pull.merged else [p for p in projects if p.id not in refusals and _plan_is_stale(svc, p, pull)]
    prefilled += [ProjectResult(p, Outcome.STALE, head_sha=pull.head_sha, message=(
        f"The saved plan of `{p.name}` was not made on the PR's head {pull.head_sha[:8]}: nothing was applied. "
        "tfbot is planning the head now; review that plan, then comment `apply` again.")) for p in stale]
    runnable = [p for p in projects if p.id not in refusals and p not in stale]
    start_command(svc, "apply", delivery.repo, pull, delivery.installation_id, author, runnable, prefilled=prefilled,
                  extra_info=extra)
    if stale:
        svc.records.set_head(delivery.repo, number, pull.head_sha)
        start_command(svc, "plan", delivery.repo, pull, delivery.installation_id, author, stale)


def _may(svc: Any, gh: RepoAPI, pull: PullInfo, verb: str, author: str) -> bool:
    """Asked of GitHub on every command: write, maintain or admin may apply and unlock; others are told why not."""
    permission = gh.permission(author)
    if permission in WRITE_PERMISSIONS:
        return True
    _refuse(svc, gh, pull, verb, author, f"@{author} has `{permission}` permission on this repository; "
            f"`{verb}` needs write, maintain or admin.")
    return False


def _plan_is_stale(svc: Any, project: Project, pull: PullInfo) -> bool:
    plan = svc.records.plan(project, pull.number)
    return plan is not None and plan.head_sha != pull.head_sha


def _unlock(svc: Any, gh: RepoAPI, delivery: Delivery, number: int, author: str, cmd: CommentCommand) -> None:
    pull = gh.pull(number)
    if not _may(svc, gh, pull, "unlock", author):
        return
    locks = {svc.project_of_lock(lock).id: lock for lock in svc.locks.locks_of_pull(delivery.repo, number)}
    projects = select([svc.project_of_lock(lock) for lock in locks.values()], cmd.project, cmd.dir, cmd.workspace)
    released = []
    busy = [p for p in projects if locks[p.id].state == LockState.APPLYING]
    if busy:
        _say(svc, gh, pull, f"@{author}: an apply of {', '.join(f'`{p.name}`' for p in busy)} is running; its lock "
             "cannot be released until it ends. Comment `unlock` again afterwards if you still need to.")
    for project in projects:
        if project in busy:
            continue
        plan = svc.records.plan(project, number)
        # Only the lock this PR holds now (its token): never one handed to another PR meanwhile.
        if force_release_and_hand_over(svc, project, author, reason=f"@{author} unlocked it on #{number}",
                                       token=locks[project.id].token):
            released.append(project)
            if plan:
                svc.plans.delete(plan.key)
                svc.records.delete_plan(project, number)
    if released:
        names = ", ".join(f"`{p.name}`" for p in released)
        _say(svc, gh, pull, f"@{author} unlocked {names}. Saved plans of this PR for them are discarded; "
             "the next PR in line, if any, is planned now. Comment `plan` to take the lock again.")
    elif not busy:
        _say(svc, gh, pull, f"@{author}: this PR holds no lock matching {_flags(cmd)}.")


def _say(svc: Any, gh: RepoAPI, pull: PullInfo, text: str) -> None:
    gh.create_comment(pull.number, svc.render_notice("notice", pull.number, pull.head_sha, text))


def _refuse(svc: Any, gh: RepoAPI, pull: PullInfo, what: str, author: str, why: str) -> None:
    log.warning("%s#%d: %s by %s refused: %s", gh.full_name, pull.number, what, author, why)
    gh.create_comment(pull.number, svc.render_notice("refused", pull.number, pull.head_sha,
                                                     f"**{what} refused.** {why}"))


def _flags(cmd: CommentCommand) -> str:
    return describe_flags(cmd)
