"""Pull request events: autoplan on push, apply on merge, release on close."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.config import RepoConfig
from bot.adapters.github import PullInfo, RepoAPI
from bot.state import keys
from bot.lifecycle.decision import Action, Event, Facts, LockView, decide
from bot.intake.replay import closed_fingerprint
from bot.lifecycle.handover import drop_plans, plan_next, release_and_hand_over
from bot.models import LockInfo, Project
from bot.lifecycle.module_graphs import module_graph
from bot.lifecycle.checks import set_status
from bot.lifecycle.planning import base_applies, pull_state, start_command
from bot.config.repo_file import RepoSettings
from bot.lifecycle.repo_settings import changed_note, problems_text, pull_settings, resolved
from bot.projects.detection import affected_projects, autodiscovered, deleted_roots
from bot.state.records import PR_CLOSED, project_from_dict
from bot.lifecycle.routing import Router
from bot.intake.webhooks import Delivery

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)
router = Router()

FORK_REFUSAL = (
    "tfbot does not plan pull requests from forks: a plan runs code from the PR (providers, `external` data "
    "sources) on tfbot's host with its credentials. An admin can allow it with `allow_fork_prs: true`."
)
FORK_APPROVED = "fork_approved_sha"  # pull record field: the fork head a writer's `plan` approved
MISSED_MERGE_NOTE = (
    "tfbot was down when this PR was merged (or its merge event was lost), so it missed the merge; its "
    "reconciliation found the PR merged and started what the merge calls for below."
)
FORK_NEEDS_WRITER = (
    "This PR comes from a fork: tfbot does not plan it on every push, because a plan runs the PR's code on "
    "tfbot's host. Someone with write access can review the code and comment `plan`."
)


@router.register("pull_request", "opened")
@router.register("pull_request", "reopened")
@router.register("pull_request", "synchronize")
@router.register("pull_request", "ready_for_review")
@router.register("pull_request", "edited")
def autoplan(delivery: Delivery, svc: WorkerServices) -> None:
    payload = delivery.payload
    if delivery.action == "edited" and "base" not in (payload.get("changes") or {}):
        return  # a new title or body: nothing to plan

    repo = delivery.repo
    repo_cfg = svc.config.repo_config(repo)
    if repo_cfg is None:  # taken off config.repos after the event was queued: ignored, as the web process does
        log.info("ignored %s: repository not in config.repos", delivery.describe())
        return
    number = int(payload["number"])
    pr = payload["pull_request"]
    note_head(svc, delivery)
    if pr.get("draft") and not repo_cfg.plan_drafts:
        log.info("%s: draft PR, not planned (plan_drafts is off)", delivery.describe())
        return
    gh = svc.github.repo(delivery.installation_id, repo)
    if delivery.action == "reopened":
        # Reopened: its next close is a new event, not a replay of the last one.
        svc.redis.delete(keys.event_fingerprint(closed_fingerprint(repo, number)))
        svc.records.set_pull_field(repo, number, PR_CLOSED, "")
    pull = pull_of_event(svc, gh, delivery)
    if pull.state != "open":
        log.info("%s: PR is %s now; not planned", delivery.describe(), pull.state)
        return
    if pull.head_sha != pr["head"]["sha"] or newer_head_seen(svc, delivery):
        log.info("%s: head moved since this event; its own event plans it", delivery.describe())
        return
    # A fork's push is not approved code: its projects (to let go of locks it no longer needs) are found under the
    # base branch's tfbot.yaml, never under a file the fork wrote.
    detected = detect_pull(svc, gh, repo, repo_cfg, pull, trust_head=not pull.is_fork)
    changed, found = detected.projects, detected.settings
    if found.problems:
        # Nothing is planned, locked or released on a config tfbot cannot read: the PR keeps what it holds.
        if pull.is_fork:
            refuse_fork(svc, gh, repo, pull, FORK_REFUSAL if not repo_cfg.allow_fork_prs else FORK_NEEDS_WRITER)
        else:
            tell_problems(svc, gh, pull, found)
        return
    applies = base_applies(svc, repo, pull)
    # Letting go of what the PR no longer changes (or of everything, off an applying base) runs none of its code:
    # done for forks too, before they are refused, so a fork PR does not keep locks and places it has no use for.
    note = release_untouched(svc, repo, number, {p.id for p in changed} if applies else set(),
                             "this PR no longer changes it" if applies else
                             f"this PR's base `{pull.base_ref}` is not a branch tfbot applies")
    if pull.is_fork:
        # Even where forks are allowed, their code runs on our host only after a person with write access asks,
        # and only the head that existed when they asked (see note_head).
        refuse_fork(svc, gh, repo, pull, FORK_REFUSAL if not repo_cfg.allow_fork_prs else FORK_NEEDS_WRITER)
        if note:
            gh.create_comment(number, svc.render_notice("notice", number, pull.head_sha, note))
        return
    svc.records.set_head(repo, number, pull.head_sha)
    svc.records.set_pull_field(repo, number, "installation", str(delivery.installation_id))  # for unlocks from the page
    tell_deleted_roots(svc, gh, repo, pull)
    if delivery.action == "edited":
        note = f"The base branch changed to `{pull.base_ref}`: planned again against it. {note}".strip()
    note = join_notes(note, detected.note)
    projects = [p for p in changed if p.autoplan]
    if not projects:
        set_status(svc, gh, pull.head_sha, "tfbot/plan", "success", "No Terraform project changed",
                   pull=pull.number)
        if note:
            gh.create_comment(number, svc.render_notice("notice", number, pull.head_sha, note))
        log.info("%s: no Terraform project changed", delivery.describe())
        return
    if too_many(svc, gh, pull, projects):
        return
    start_command(svc, "plan", repo, pull, delivery.installation_id, str(payload["sender"]["login"]), projects,
                  note=join_notes(changed_note(found), note), parallel=found.config.parallel_plan)


def pull_of_event(svc: WorkerServices, gh: RepoAPI, delivery: Delivery) -> PullInfo:
    """The PR as the event's payload describes it, without asking GitHub; asked when the payload lacks a field or the
    PR was marked closed since (its `closed` event was handled: only GitHub knows if a reopen came after)."""
    number = int(delivery.payload["number"])
    pull = PullInfo.from_payload(delivery.payload["pull_request"], delivery.repo)
    if pull is None or svc.records.pull_field(delivery.repo, number, PR_CLOSED):
        return gh.pull(number)
    return pull


def newer_head_seen(svc: WorkerServices, delivery: Delivery) -> bool:
    """Whether an event that GitHub says came later than this one brought another head (bot: note_head)."""
    pr = delivery.payload["pull_request"]
    latest = svc.records.latest_head(delivery.repo, int(delivery.payload["number"]))
    at = str(pr.get("updated_at") or "")
    return bool(latest and at and latest.sha != pr["head"]["sha"] and latest.at > at)


def tell_problems(svc: WorkerServices, gh: RepoAPI, pull: PullInfo, found: RepoSettings,
                  advice: str | None = None) -> None:
    """Comment every problem of the PR's tfbot.yaml and fail its plan status."""
    text = problems_text(found, advice) if advice else problems_text(found)
    gh.create_comment(pull.number, svc.render_notice("config", pull.number, pull.head_sha, text))
    set_status(svc, gh, pull.head_sha, "tfbot/plan", "failure", f"tfbot.yaml has {len(found.problems)} problem(s)",
               pull=pull.number)


def note_head(svc: WorkerServices, delivery: Delivery) -> None:
    """Record the head this event brought and when GitHub says it arrived, first thing, before any slow call.

    A writer's `plan` on a fork approves the head only if it is this record's head and arrived before the comment.
    Ordered by the event's time, so an old event redelivered late cannot pass an old head for the newest one.
    """
    pr = delivery.payload["pull_request"]
    if delivery.action not in ("opened", "synchronize", "reopened"):
        return
    svc.records.touch(delivery.repo, int(delivery.payload["number"]))  # a push: its locks are not idle
    if pr.get("updated_at"):
        svc.records.note_head(delivery.repo, int(delivery.payload["number"]), str(pr["head"]["sha"]),
                              str(pr["updated_at"]))


def release_untouched(svc: WorkerServices, repo: str, number: int, keep: set[str], why: str) -> str:
    """Let go of the projects not in `keep` (ids) that `number` locks or waits for; return a line for the PR ("" if
    none).

    Its place in a waiting line goes too: handed the lock later, the PR would hold a lock it may not take. A lock
    whose PR applied what the default branch lacks is kept (the release script refuses it) and said so.
    """
    released, kept = [], []
    for lock in svc.locks.locks_of_pull(repo, number):
        project = svc.project_of_lock(lock)
        if project.id in keep:
            continue
        if release_and_hand_over(svc, project, number, lock.token, reason=why, mode="close"):
            released.append(project.name)
        else:
            kept.append(project.name)
    left = []
    for lock in svc.locks.queued_for(repo, number):
        project = svc.project_of_lock(lock)
        if project.id not in keep and svc.locks.leave_queue(lock, number):
            left.append(project.name)
    text = ""
    if released:
        text += f"Released the lock of {_names(released)}: {why}."
    if left:
        text += f" Left the waiting line of {_names(left)}: {why}."
    if kept:
        text += (f" Kept the lock of {_names(kept)} although {why}: this PR applied changes there that the default "
                 "branch does not hold.")
    return text.strip()


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


@router.register("pull_request", "closed")
def closed(delivery: Delivery, svc: WorkerServices) -> None:
    repo = delivery.repo
    number = int(delivery.payload["number"])
    pr = delivery.payload["pull_request"]
    gh = svc.github.repo(delivery.installation_id, repo)
    # Marked before any lock is let go: a plan that takes a lock after this finds the mark (bot/lifecycle/runner.py).
    svc.records.set_pull_field(repo, number, PR_CLOSED, "1")
    locks = svc.locks.locks_of_pull(repo, number)
    if pr.get("merged"):
        merged(svc, gh, delivery, number, pr, locks)
        return
    if gh.pull(number).state == "open":
        # Reopened since: not acted on, so the next close must not pass for a replay of this one.
        svc.redis.delete(keys.event_fingerprint(closed_fingerprint(repo, number)))
        svc.records.set_pull_field(repo, number, PR_CLOSED, "")
        log.info("%s: reopened since; the close is not acted on", delivery.describe())
        return
    kept = []
    for released in svc.locks.forget_pull(repo, number):
        if released.released and released.previous is not None:
            project = svc.project_of_lock(released.previous)
            drop_plans(svc, project, number)
            plan_next(svc, project, released.next_waiter, reason=f"#{number} was closed without merging")
        elif released.refused in ("flagged", "applying") and released.lock is not None:
            kept.append(released.lock)
    if kept:
        tell_kept(svc, gh, number, kept)
    if any(svc.locks.guard_holder(svc.project_of_lock(lock)) for lock in locks):
        # A run of this PR is still going in its working copy: leave the copy rather than pull it from under it.
        log.info("%s: a run is under way; its working copies are kept", delivery.describe())
    elif not kept:
        svc.checkouts.remove_pull(repo, number)
    svc.records.forget_pull(repo, number)
    log.info("%s: closed unmerged; released %d lock(s), kept %d", delivery.describe(), len(locks) - len(kept),
             len(kept))


def merged(svc: WorkerServices, gh: RepoAPI, delivery: Delivery, number: int, pr: dict[str, Any],
           locks: list[LockInfo]) -> None:
    """Apply what the merge brought, for every project the PR holds a lock of or changed (bot/lifecycle/decision.py)."""
    repo = delivery.repo
    svc.records.touch(repo, number)  # its locks are about to be applied, not idle (bot/lifecycle/expiry.py)
    repo_cfg = svc.config.repo_config(repo)
    if repo_cfg is None:
        log.info("%s: merged, but the repository is not in config.repos: nothing is applied", delivery.describe())
        return
    # A merge is final: the payload's facts stay true (a missed merge's payload lacks fields: GitHub is asked).
    pull = PullInfo.from_payload(pr, repo) or gh.pull(number)
    held = [svc.project_of_lock(lock) for lock in locks]
    projects = {p.id: p for p in held}
    applies = base_applies(svc, repo, pull)
    warnings = ""
    settings = repo_cfg
    if applies:
        # Merged before its plan took a lock, or while in line: its changes are on the default branch all the same.
        detected = detect_pull(svc, gh, repo, repo_cfg, pull)
        warnings = detected.note
        if detected.settings.problems:
            tell_problems(svc, gh, pull, detected.settings, advice=(
                "tfbot applies only the projects this PR holds a lock of, under the server's settings; other "
                "projects this merge changed are not applied: fix the file in a new PR, and comment `plan` there "
                "for each of them (`plan -d DIR`)."))
        else:
            settings = detected.settings.config
            projects = {p.id: p for p in resolved(held, settings)}
        for project in detected.projects:
            projects.setdefault(project.id, project)
    if not projects:
        log.info("%s: merged; no Terraform project to apply", delivery.describe())
        return
    start_command(svc, "merge", repo, pull, delivery.installation_id, str(delivery.payload["sender"]["login"]),
                  list(projects.values()), head_sha=pr["head"]["sha"],
                  note=join_notes(MISSED_MERGE_NOTE if delivery.missed else "", warnings),
                  parallel=settings.parallel_apply)


def tell_kept(svc: WorkerServices, gh: RepoAPI, number: int, kept: list[LockInfo]) -> None:
    """A closed PR keeps the locks of projects it applied: say so on it, and on the PRs waiting for them."""
    names = ", ".join(f"`{lock.project}`" for lock in kept)
    gh.create_comment(number, svc.render_notice("notice", number, "", (
        f"This PR was closed without merging, but it applied changes to {names} that the default branch does not "
        "hold: the infrastructure now differs from the default branch. tfbot keeps the lock, so that no other PR "
        "plans against that state unaware. To resolve it: reopen and merge this PR, or merge a PR that reverts "
        "those changes and apply it; or an admin unlocks it with a reason (lock page, or `tfbot unlock --reason`), "
        "which goes to the audit trail.")))
    for lock in kept:
        for waiter in svc.locks.queue(lock):
            gh.create_comment(int(waiter["pull"]), svc.render_notice("notice", int(waiter["pull"]), "", (
                f"The lock of `{lock.project}` stays with #{number}, which was closed without merging after it "
                "applied changes the default branch does not hold. This PR stays in line; it is planned when that "
                "is resolved (see #{number}).").replace("#{number}", f"#{number}")))
    log.info("%s#%d: closed, kept flagged lock(s) %s", gh.full_name, number, names)


@dataclass(frozen=True)
class PullProjects:
    """The projects a PR touches, the settings they were found under (the server's entry and tfbot.yaml as
    merged; with problems, no projects), and what its comment should say about the module graph ("" for nothing)."""

    projects: list[Project]
    settings: RepoSettings
    note: str = ""


def detect_pull(svc: WorkerServices, gh: RepoAPI, repo: str, repo_cfg: RepoConfig, pull: PullInfo, *,
                trust_head: bool = True) -> PullProjects:
    """The projects the PR's changes touch, from `git diff` on our own mirror (no 3,000-file API cap), under the
    PR's settings (bot/lifecycle/repo_settings.py), and the module graphs of its head and its base's tip: a changed
    local module plans the roots that call it, never itself (bot/projects/modules.py). Unparsable files and module
    cycles that bear on the PR become its `note`. Without `trust_head` (a fork's push nobody approved), its
    tfbot.yaml is the base branch's."""
    clone_url = gh.authenticated_clone_url(pull.clone_url)
    refs = pull_refs(pull)
    base_tip = svc.checkouts.fetch(repo, clone_url, refs)[refs[1]]
    changed = svc.checkouts.changed_files(repo, pull.base_sha, pull.head_sha)
    found = pull_settings(svc, repo, repo_cfg, pull, changed, trust_head=trust_head)
    if found.problems:
        return PullProjects([], found)
    graph = module_graph(svc, repo, pull.head_sha)
    # The PR is planned and merged on top of its base's tip, which may hold callers its head does not know of.
    projects = autodiscovered(affected_projects(repo, found.config, changed, graph.tf_dirs, graph,
                                                module_graph(svc, repo, base_tip)), found.config)
    warnings = graph.warnings_for(changed, [p.dir for p in projects])
    if warnings:
        log.warning("%s#%d at %s: module graph: %s", repo, pull.number, pull.head_sha[:8], " | ".join(warnings))
    note = ("Which roots this PR touches may be incomplete:\n" + "\n".join(f"- {w}" for w in warnings)
            if warnings else "")
    return PullProjects(projects, found, note)


def settings_of_pull(svc: WorkerServices, gh: RepoAPI, repo: str, repo_cfg: RepoConfig,
                     pull: PullInfo) -> RepoSettings:
    """The PR's settings (the server's entry and tfbot.yaml as merged), its commits fetched first."""
    svc.checkouts.fetch(repo, gh.authenticated_clone_url(pull.clone_url), pull_refs(pull))
    return pull_settings(svc, repo, repo_cfg, pull, svc.checkouts.changed_files(repo, pull.base_sha, pull.head_sha))


def join_notes(*notes: str) -> str:
    """Paragraphs of a comment's note, the empty ones left out."""
    return "\n\n".join(n.strip() for n in notes if n.strip())


def tell_deleted_roots(svc: WorkerServices, gh: RepoAPI, repo: str, pull: PullInfo) -> None:
    """A PR that deletes a whole Terraform root is told, once per head, that this destroys nothing; a module it
    deletes is no root (its callers' plans show what that does)."""
    changed = svc.checkouts.changed_files(repo, pull.base_sha, pull.head_sha)
    gone = deleted_roots(changed, module_graph(svc, repo, pull.base_sha).roots,
                         module_graph(svc, repo, pull.head_sha).tf_dirs)
    if not gone or svc.records.pull_field(repo, pull.number, "deleted_roots_told") == pull.head_sha:
        return
    names = ", ".join(f"`{d}`" for d in gone)
    gh.create_comment(pull.number, svc.render_notice("notice", pull.number, pull.head_sha, (
        f"This PR deletes the Terraform root {names}. tfbot does not plan or apply a deleted root, and deleting its "
        "code destroys nothing: its resources stay in the cloud and in its state, unmanaged from then on. To "
        "destroy them, first merge a PR that removes the resources from the code (its plan shows the destroys) and "
        "apply it; delete the directory afterwards. To stop managing them without destroying, `terraform state rm` "
        "them first.")))
    svc.records.set_pull_field(repo, pull.number, "deleted_roots_told", pull.head_sha)
    log.info("%s#%d deletes root(s) %s: told", repo, pull.number, names)


def pull_refs(pull: PullInfo) -> list[str]:
    return [
        f"+refs/pull/{pull.number}/head:refs/tfbot/pull/{pull.number}/head",
        f"+refs/heads/{pull.base_ref}:refs/tfbot/heads/{pull.base_ref}",
    ]


def too_many(svc: WorkerServices, gh: RepoAPI, pull: PullInfo, projects: list[Project]) -> bool:
    limit = svc.config.max_projects_per_pr
    if len(projects) <= limit:
        return False
    gh.create_comment(pull.number, svc.render_notice(
        "too-many", pull.number, pull.head_sha,
        f"This PR changes {len(projects)} Terraform projects, more than `max_projects_per_pr` ({limit}). "
        "tfbot does not plan it, to keep the queue usable for everyone. Split the PR, or ask an admin to raise the limit."))
    set_status(svc, gh, pull.head_sha, "tfbot/plan", "failure", f"{len(projects)} projects: over the limit of {limit}",
               pull=pull.number)
    return True


def refuse_fork(svc: WorkerServices, gh: RepoAPI, repo: str, pull: PullInfo, text: str) -> None:
    """Say once per PR why its pushes are not planned."""
    if svc.records.pull_field(repo, pull.number, "fork_refused"):
        return
    gh.create_comment(pull.number, svc.render_notice("fork", pull.number, pull.head_sha, text))
    svc.records.set_pull_field(repo, pull.number, "fork_refused", "1")
    log.info("%s#%d: fork PR refused", repo, pull.number)


def plan_handed_over(svc: WorkerServices, project_data: dict[str, Any], number: int, installation: int, reason: str) -> None:
    """The lock was handed to PR `number`: plan it, pass it on if it may not hold it (closed, or its base is not a
    branch tfbot applies), or apply what a merged one brought."""
    project = project_from_dict(project_data)
    gh = svc.github.repo(installation, project.repo)
    pull = gh.pull(number)
    lock = svc.locks.get(project)
    # The PR as it is now, not as it was when it joined the line: it may have been closed or retargeted since.
    state = pull_state(pull)
    decision = decide(Event.HANDOVER, Facts(pull=number, pr_state=state, applies=base_applies(svc, project.repo, pull),
                                            head_sha=pull.head_sha, lock=LockView.of(lock)))
    if decision.action is Action.RELEASE:
        release_and_hand_over(svc, project, number, None, reason=f"#{number}: {decision.reason}", mode="close")
        return
    if state == "merged":
        # Merged while waiting: its change is on the default branch but was never applied. The executor plans
        # what the branch holds now and applies only what was reviewed; otherwise it asks here.
        repo_cfg = svc.config.repo_config(project.repo)
        found = settings_of_pull(svc, gh, project.repo, repo_cfg, pull) if repo_cfg is not None else None
        if found is not None and not found.problems:
            [project] = resolved([project], found.config)  # the merge's tfbot.yaml: its workflow
        # settings_of_pull fetched the base already; without it, base_head fetches.
        base_tip = str(svc.checkouts.resolve(project.repo, f"refs/tfbot/heads/{pull.base_ref}")) \
            if found is not None else base_head(svc, gh, project.repo, pull)
        start_command(svc, "handover", project.repo, pull, installation, "tfbot", [project], head_sha=pull.head_sha,
                      note=f"#{number} was merged while it waited for the lock of `{project.name}`, so nothing was "
                           f"applied then. The lock came to it because {reason}.",
                      extra_info={"base_head_sha": base_tip})
        return
    plan_again(svc, project_data, number, installation, pull=pull,
               note=f"The lock of `{project.name}` was handed to this PR because {reason}; "
                    "tfbot planned it automatically on its current head.")


def base_head(svc: WorkerServices, gh: RepoAPI, repo: str, pull: PullInfo) -> str:
    """The tip of the PR's base branch now, fetched into tfbot's mirror."""
    svc.checkouts.fetch(repo, gh.authenticated_clone_url(pull.clone_url), pull_refs(pull))
    return str(svc.checkouts.resolve(repo, f"refs/tfbot/heads/{pull.base_ref}"))


def plan_again(svc: WorkerServices, project_data: dict[str, Any], number: int, installation: int, note: str,
               pull: PullInfo | None = None) -> None:
    """Plan one project of an open PR on its current head, with `note` on the comment."""
    project = project_from_dict(project_data)
    gh = svc.github.repo(installation, project.repo)
    pull = pull or gh.pull(number)
    if pull.state != "open":
        return
    repo_cfg = svc.config.repo_config(project.repo)
    if repo_cfg is None:
        return
    found = settings_of_pull(svc, gh, project.repo, repo_cfg, pull)
    if pull.is_fork and svc.records.pull_field(project.repo, number, FORK_APPROVED) != pull.head_sha:
        gh.create_comment(number, svc.render_notice("fork", number, pull.head_sha, (
            f"`{project.name}` was not planned: this PR comes from a fork, and its head {pull.head_sha[:8]} is not "
            "the commit a writer approved with `plan`. Someone with write access reviews the new commits and "
            "comments `plan` again.")))
        return
    if found.problems:
        tell_problems(svc, gh, pull, found)
        # It cannot be planned until a push fixes the file: it must not sit on a lock others wait for meanwhile.
        release_and_hand_over(svc, project, number, None, reason=f"#{number}'s tfbot.yaml has problems",
                              mode="close")
        return
    [project] = resolved([project], found.config)  # as the PR's tfbot.yaml makes it (workflow, requirements)
    svc.records.set_head(project.repo, number, pull.head_sha)
    start_command(svc, "plan", project.repo, pull, installation, "tfbot", [project],
                  note=f"{changed_note(found)} {note}".strip())
