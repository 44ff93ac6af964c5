"""What the PR sees when a command completes: one comment (split if long), a commit status and a check run per
project (bot/lifecycle/checks.py). The comment and the check runs go as one GraphQL request where they can
(bot/lifecycle/report_writes.py)."""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from bot.models import Outcome
from bot.lifecycle.checks import report_checks, set_status, shown_on_commit, superseded
from bot.lifecycle.planning import STATUS_CONTEXT
from bot.lifecycle.report_writes import post_with_checks
from bot.notify.emit import notify_applies
from bot.state.records import Command, PlanRecord, comment_refs
from bot.render.comments import mark_outdated, render_command_comment, split_comment, status_description

if TYPE_CHECKING:
    from bot.adapters.github import RepoAPI
    from bot.services import WorkerServices

log = logging.getLogger(__name__)


def finish_command(svc: WorkerServices, cmd: Command) -> None:
    """Render every project's result of `cmd` into the PR comment, set the commit status and complete the check
    runs (each as the config has them on)."""
    results = svc.records.results(cmd.id)
    # Before GitHub: receivers hear of an apply even while the PR cannot be told (once each, across retries).
    notify_applies(svc, cmd, results, svc.run_url)
    gh = svc.github.repo(cmd.installation, cmd.repo)
    head = svc.records.head(cmd.repo, cmd.pull) if cmd.kind == "plan" else None
    if any(r.outcome == Outcome.SUPERSEDED for r in results) or (head and head != cmd.head_sha):
        # The plan of the newer head reports; this one would only be noise on the PR.
        log.info("%s %s#%d at %s superseded by a newer push: not reported", cmd.kind, cmd.repo, cmd.pull,
                 cmd.head_sha[:8])
        set_status(svc, gh, cmd.head_sha, STATUS_CONTEXT[cmd.kind], "error",
                   "Superseded by a newer push: see the PR's head", svc.status_url(cmd), pull=cmd.pull)
        report_checks(svc, gh, cmd, superseded(results))
        return
    kind = "plan" if cmd.kind == "plan" else "apply"
    # The table of a comment over several projects says where each lock is as the comment is written.
    locks = {r.project.id: svc.locks.get(r.project) for r in results} if len(results) > 1 else None
    body = render_command_comment(kind, results, cmd.pull, cmd.head_sha, run_url=svc.run_url, note=cmd.note,
                                  locks=locks)
    if kind == "plan" and not svc.records.posted_comments(cmd.id):
        _hide_previous(svc, gh, cmd)
    # A retry after a partial failure posts only the parts GitHub has not got yet. With check runs to complete,
    # the parts and the check runs go as one GraphQL request where the node ids are known; the rest over REST.
    shown = shown_on_commit(svc, cmd, results)
    refs = svc.records.posted_comments(cmd.id)
    refs = post_with_checks(svc, gh, cmd, split_comment(body)[len(refs):], refs, shown)
    for part in split_comment(body)[len(refs):]:
        refs.append(gh.post_comment(cmd.pull, part))
        svc.records.set_posted_comments(cmd.id, refs)
    for result in results:
        if result.run_id and result.outcome in (Outcome.PLANNED, Outcome.STALE):
            # Now reviewed; the plans it replaces are forgotten and their files deleted.
            drop_files(svc, svc.records.mark_plan_posted(result.project, cmd.pull, result.run_id))
    if kind == "plan":
        svc.records.set_pull_field(cmd.repo, cmd.pull, "plan_comments", json.dumps(refs))
    if shown:
        state, description = status_description(shown, kind)
        set_status(svc, gh, cmd.head_sha, STATUS_CONTEXT[cmd.kind], state, description, svc.status_url(cmd),
                   pull=cmd.pull)
    report_checks(svc, gh, cmd, shown)
    log.info("%s %s#%d at %s reported: %s", cmd.kind, cmd.repo, cmd.pull, cmd.head_sha[:8],
             ", ".join(f"{r.project.name}={r.outcome.value}" for r in results))


def drop_files(svc: WorkerServices, plans: list[PlanRecord]) -> None:
    for plan in plans:
        try:
            svc.plans.delete(plan.key)
        except Exception as exc:  # noqa: BLE001 - a file left behind is garbage, not a fault of the report
            log.warning("could not delete plan file %s: %s", plan.key, exc)


def _hide_previous(svc: WorkerServices, gh: RepoAPI, cmd: Command) -> None:
    """The PR's earlier plan comments give way to this one: hidden as outdated (GitHub's own "Hide", which folds
    them), or with `comments.hide_previous: false`, left open under an "Outdated" banner. A comment GitHub will not
    hide (no node id recorded, an older GitHub Enterprise) gets the banner."""
    from bot.adapters.github import GitHubError

    previous = svc.records.pull_field(cmd.repo, cmd.pull, "plan_comments")
    for comment_id, node_id in comment_refs(previous) if previous else []:
        if svc.config.comments.hide_previous and node_id:
            try:
                gh.minimize_comment(node_id)
                continue
            except GitHubError as exc:
                log.warning("could not hide comment %s on %s#%d (%s): marking it outdated instead", comment_id,
                            cmd.repo, cmd.pull, exc)
        try:
            gh.edit_comment(cmd.pull, comment_id, mark_outdated(gh.comment_body(cmd.pull, comment_id), cmd.head_sha))
        except Exception as exc:  # noqa: BLE001 - an old comment that cannot be edited must not stop the new one
            log.warning("could not mark comment %s on %s#%d outdated: %s", comment_id, cmd.repo, cmd.pull, exc)
