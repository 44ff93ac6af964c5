"""PR comments: `plan`, `apply`, `unlock`, `help`. Parsing is pure (bot.lifecycle.commands); this module acts on it."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.lifecycle.commands import Command as CommentCommand
from bot.lifecycle.commands import Ignore, Reply, describe_flags, parse_comment
from bot.adapters.github import PullInfo, RepoAPI
from bot.state import audit
from bot.lifecycle.decision import Action, Event, Facts, LockView, decide
from bot.lifecycle.handlers.pull_requests import (FORK_APPROVED, FORK_REFUSAL, base_head, detect_pull, join_notes,
                                                  settings_of_pull, tell_problems, too_many)
from bot.lifecycle.repo_settings import changed_note, resolved
from bot.lifecycle.handover import release_and_hand_over
from bot.lifecycle import ordering
from bot.models import LockState, Outcome, Project, ProjectResult
from bot.lifecycle.extra_args import ExtraArgsRefused, allowed_args, var_file_problem
from bot.lifecycle.permissions import WRITE_PERMISSIONS, apply_refusals, may_write
from bot.lifecycle.planning import base_applies, pull_state, start_command
from bot.projects.detection import select
from bot.lifecycle.routing import Router
from bot.intake.webhooks import Delivery

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)
router = Router()


@router.register("issue_comment", "created")
def on_comment(delivery: Delivery, svc: WorkerServices) -> None:
    payload = delivery.payload
    if not payload["issue"].get("pull_request"):
        return  # a comment on an issue, not a PR
    comment = payload["comment"]
    author = str(comment["user"]["login"])
    number = int(payload["issue"]["number"])
    if comment["user"].get("type") != "Bot" and author.lower() != svc.bot_login.lower():
        svc.records.touch(delivery.repo, number)  # people talking on the PR: its locks are not idle
    parsed = parse_comment(str(comment["body"]), author, bot_login=svc.bot_login)
    if isinstance(parsed, Ignore):
        return
    svc.records.set_pull_field(delivery.repo, number, "installation", str(delivery.installation_id))  # for unlocks
    gh = svc.github.repo(delivery.installation_id, delivery.repo)
    if isinstance(parsed, Reply):
        gh.create_comment(number, svc.render_notice("help", number, "", parsed.text))
        return
    gh.react(number, int(comment["id"]), "eyes")
    log.info("%s: %s by %s", delivery.describe(), parsed.name, author)
    handler = {"plan": _plan, "apply": run_apply, "unlock": _unlock}[parsed.name]
    handler(svc, gh, delivery, number, author, parsed)


def _plan(svc: WorkerServices, gh: RepoAPI, delivery: Delivery, number: int, author: str, cmd: CommentCommand) -> None:
    repo_cfg = svc.config.repo_config(delivery.repo)
    if repo_cfg is None:  # taken off config.repos after the comment was queued: ignored, as the web process does
        log.info("ignored %s: repository not in config.repos", delivery.describe())
        return
    pull = gh.pull(number)
    if pull.state != "open":
        _say(svc, gh, pull, f"@{author}: #{number} is {'merged' if pull.merged else 'closed'}; there is nothing to plan.")
        return
    try:  # before anything is recorded: a refused command approves no fork head and takes no lock
        extra = allowed_args(cmd.extra_args, repo_cfg.extra_args) if cmd.extra_args else ()
    except ExtraArgsRefused as exc:
        _refuse(svc, gh, pull, "plan", author, f"@{author}: nothing was planned: {exc}")
        return
    if extra and not may_write(gh, author):
        # A plan made with extra arguments becomes the reviewed plan a writer's `apply` applies: only someone who
        # may apply may choose what it is (`-destroy`, `-var`), checked now, as GitHub says it is.
        _refuse(svc, gh, pull, "plan", author, f"@{author}: nothing was planned: a plan with extra arguments needs "
                "write access to this repository (it becomes the plan `apply` applies); comment `plan` without them.")
        return
    if pull.is_fork and not repo_cfg.allow_fork_prs:
        _say(svc, gh, pull, FORK_REFUSAL)
        return
    if pull.is_fork and not may_write(gh, author):
        _say(svc, gh, pull, f"@{author}: plans of fork PRs run only when someone with write access comments `plan`.")
        return
    if pull.is_fork and not _head_predates(svc, delivery, pull):
        _say(svc, gh, pull, f"@{author}: the head of this fork PR, {pull.head_sha[:8]}, was pushed after your comment "
             "(or tfbot has not seen its push yet), so it is not the code you reviewed. Review it and comment `plan` "
             "again.")
        return
    if pull.is_fork:
        svc.records.set_pull_field(delivery.repo, number, FORK_APPROVED, pull.head_sha)
    svc.records.set_head(delivery.repo, number, pull.head_sha)
    detected = detect_pull(svc, gh, delivery.repo, repo_cfg, pull)
    if detected.settings.problems:
        tell_problems(svc, gh, pull, detected.settings)
        return
    projects = select(detected.projects, cmd.project, cmd.dir, cmd.workspace)
    if not projects:
        _say(svc, gh, pull, f"@{author}: no Terraform project of this PR matches {_flags(cmd)}: nothing to plan.")
        return
    if too_many(svc, gh, pull, projects):
        return
    problems = [f"`{p.name}`: {why}" for p in projects if (why := _extra_args_problem(svc, p, extra))]
    if problems:
        _refuse(svc, gh, pull, "plan", author, f"@{author}: nothing was planned: " + " ".join(problems))
        return
    start_command(svc, "plan", delivery.repo, pull, delivery.installation_id, author, projects,
                  note=join_notes(changed_note(detected.settings), detected.note),
                  extra_info={"extra_args": list(extra)} if extra else None,
                  parallel=detected.settings.config.parallel_plan)


def _extra_args_problem(svc: WorkerServices, project: Project, extra: tuple[str, ...]) -> str | None:
    """Why `project` cannot be planned with the extra arguments `extra`, or None."""
    if not extra:
        return None
    workflow = svc.workflows.get(project.workflow)
    if workflow is not None and not any(step.name == "plan" for step in workflow.plan_steps):
        # Its own `run` steps plan it: they would never see the arguments, and the plan would not be what was asked.
        return (f"its workflow `{project.workflow}` has no built-in `plan` step to pass extra arguments to; "
                "comment `plan` without them.")
    return var_file_problem(extra, project.dir)


def run_apply(svc: WorkerServices, gh: RepoAPI, delivery: Delivery, number: int, author: str,
              cmd: CommentCommand, note: str = "") -> None:
    """`author`'s `apply` of PR `number`: permission now, apply requirements, then a command over the projects that
    pass; everything else (stale plans, order) under the run guard. Also what an Apply button runs. `note` (plain
    text) heads the command's comment."""
    repo_cfg = svc.config.repo_config(delivery.repo)
    if repo_cfg is None:  # taken off config.repos after the comment was queued: ignored, as the web process does
        log.info("ignored %s: repository not in config.repos", delivery.describe())
        return
    pull = gh.pull(number)
    if not _may(svc, gh, pull, "apply", author):
        return
    if pull.state != "open" and not pull.merged:
        _say(svc, gh, pull, f"@{author}: #{number} was closed without merging; its locks are released.")
        return
    locks = svc.locks.locks_of_pull(delivery.repo, number)
    held = [svc.project_of_lock(lock) for lock in locks]
    projects = select(held, cmd.project, cmd.dir, cmd.workspace)
    if not projects:
        _say(svc, gh, pull, f"@{author}: this PR holds no lock matching {_flags(cmd)}; comment `plan` first.")
        return
    found = settings_of_pull(svc, gh, delivery.repo, repo_cfg, pull)
    if found.problems:
        tell_problems(svc, gh, pull, found, advice="Nothing was applied: fix the file, push, and `apply` the new plan.")
        return
    projects = resolved(projects, found.config)  # the PR's workflow and requirements
    held = resolved(held, found.config)
    extra: dict[str, Any] = {}
    if pull.merged:
        extra["base_head_sha"] = base_head(svc, gh, delivery.repo, pull)
    refusals = {} if pull.merged else apply_refusals(
        gh, pull, projects, allow_draft=repo_cfg.allow_draft_apply)
    # `apply -p dns` must not apply dns before this PR's plan of what it depends on.
    applied = {p.id for p, lock in zip(held, locks) if lock.state is LockState.APPLIED}
    refusals = {**ordering.held_back(projects, held, applied), **refusals}
    prefilled = [ProjectResult(p, Outcome.REFUSED, head_sha=pull.head_sha, message=refusals[p.id])
                 for p in projects if p.id in refusals]
    # Everything else (head moved, base changed the project, already applied) is decided under the run guard.
    runnable = [p for p in projects if p.id not in refusals]
    start_command(svc, "apply", delivery.repo, pull, delivery.installation_id, author, runnable, prefilled=prefilled,
                  extra_info=extra, parallel=found.config.parallel_apply, note=note)


def _head_predates(svc: WorkerServices, delivery: Delivery, pull: PullInfo) -> bool:
    """Whether the PR's head is the latest head tfbot heard of and arrived strictly before the comment was written
    (GitHub's clock, both ISO 8601 UTC).

    A writer's `plan` on a fork approves the code they saw. A head pushed in the same second or later is not it, nor
    is a head whose newest push tfbot has not heard of yet: a commit pushed once, replaced for review and pushed
    again after the comment would otherwise pass with the time of its first push.
    """
    seen = svc.records.latest_head(delivery.repo, pull.number)
    written = str(delivery.payload["comment"].get("created_at") or "")
    return bool(seen and written and seen.sha == pull.head_sha and seen.at < written)


def _may(svc: WorkerServices, gh: RepoAPI, pull: PullInfo, verb: str, author: str) -> bool:
    """Asked of GitHub on every command: write, maintain or admin may apply and unlock; others are told why not."""
    permission = gh.permission(author)
    if permission in WRITE_PERMISSIONS:
        return True
    _refuse(svc, gh, pull, verb, author, f"@{author} has `{permission}` permission on this repository; "
            f"`{verb}` needs write, maintain or admin.")
    return False


def _unlock(svc: WorkerServices, gh: RepoAPI, delivery: Delivery, number: int, author: str,
            cmd: CommentCommand) -> None:
    pull = gh.pull(number)
    if not _may(svc, gh, pull, "unlock", author):
        return
    locks = {svc.project_of_lock(lock).id: lock for lock in svc.locks.locks_of_pull(delivery.repo, number)}
    projects = select([svc.project_of_lock(lock) for lock in locks.values()], cmd.project, cmd.dir, cmd.workspace)
    applies = base_applies(svc, delivery.repo, pull)
    released, refused = [], []
    for project in projects:
        lock = locks[project.id]
        decision = decide(Event.UNLOCK, Facts(
            pull=number, pr_state=pull_state(pull), applies=applies, head_sha=pull.head_sha, lock=LockView.of(lock),
            run_alive=svc.locks.guard_holder(project) is not None))
        # Only the lock this PR holds now (its token), never one handed on meanwhile; the release script refuses
        # again, atomically, what the decision refused (a run may have started since the read).
        if decision.action is Action.RELEASE and release_and_hand_over(
                svc, project, number, lock.token, reason=f"@{author} unlocked it on #{number}", mode="unlock"):
            audit.record(svc.redis, audit.AuditEntry(action="unlock", repo=delivery.repo, pull=number,
                                                     project=project.name, user=author, detail="unlock comment"))
            released.append(project)
        else:
            why = decision.reason if decision.action is not Action.RELEASE else "a run of it started meanwhile"
            refused.append(f"`{project.name}`: {why}")
    if released:
        names = ", ".join(f"`{p.name}`" for p in released)
        _say(svc, gh, pull, f"@{author} unlocked {names}. Saved plans of this PR for them are discarded; "
             "the next PR in line, if any, is planned now. Comment `plan` to take the lock again.")
    if refused:
        _say(svc, gh, pull, f"@{author}: not unlocked: " + "; ".join(refused) + ".")
    if not released and not refused:
        _say(svc, gh, pull, f"@{author}: this PR holds no lock matching {_flags(cmd)}.")


def _say(svc: WorkerServices, gh: RepoAPI, pull: PullInfo, text: str) -> None:
    gh.create_comment(pull.number, svc.render_notice("notice", pull.number, pull.head_sha, text))


def _refuse(svc: WorkerServices, gh: RepoAPI, pull: PullInfo, what: str, author: str, why: str) -> None:
    log.warning("%s#%d: %s by %s refused: %s", gh.full_name, pull.number, what, author, why)
    gh.create_comment(pull.number, svc.render_notice("refused", pull.number, pull.head_sha,
                                                     f"**{what} refused.** {why}"))


def _flags(cmd: CommentCommand) -> str:
    return describe_flags(cmd)
