"""A report's comment and its check runs in one GitHub request: when the report has comment parts to post and check
runs to complete, both go as one GraphQL document (bot/render/report_graphql.py) instead of a REST request each.

It needs GraphQL node ids: the PR's and its repository's (kept with the command from the webhook or `GET /pulls`;
asked of GitHub for a command made before tfbot kept them) and each check run's (kept when it was made). What lacks
one, a check run the report must make, and everything when `github.check_runs` is off, goes over REST as before
(bot/lifecycle/reporting.py, bot/lifecycle/checks.py).

A retry posts only what GitHub has not got: the posted parts are recorded with the command and each written check
run's digest is marked sent, also when only some of the mutations succeeded; then GitHubError is raised so that the
report job retries the rest.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bot.lifecycle.checks import PendingCheck, pending_checks
from bot.models import ProjectResult
from bot.render.report_graphql import CheckUpdate, read_answer, report_writes
from bot.state.check_runs import CheckRuns
from bot.state.records import Command

if TYPE_CHECKING:
    from bot.adapters.github import RepoAPI
    from bot.services import WorkerServices

log = logging.getLogger(__name__)

MAX_CHECKS = 10  # check run updates in one GraphQL request


def post_with_checks(svc: WorkerServices, gh: RepoAPI, cmd: Command, parts: list[str],
                     refs: list[tuple[int, str]], results: list[ProjectResult]) -> list[tuple[int, str]]:
    """Post the first of comment `parts` (those after `refs`, the ones posted already) together with the completion
    of the results' check runs, in one GraphQL request, when that can be done; return `refs` with what was posted.

    Returns `refs` unchanged when it cannot (no part, no check run with a node id to complete, no node ids of the
    PR) or when GitHub refused the document as a whole (nothing written): the caller then writes over REST.
    Raises GitHubError when the request failed, or some of its mutations did (what succeeded is recorded).
    """
    from bot.adapters.github import GitHubError

    # Only the first part rides along: GitHub runs a document's mutations in order but goes on past one that fails,
    # so a later part could land before an earlier one. The parts after it go over REST, in order, by the caller.
    parts = parts[:1]
    if not parts:
        return refs
    # At most MAX_CHECKS per request: a smaller document is less likely to run into GitHub's GraphQL time limit;
    # the check runs left go over REST (bot/lifecycle/checks.py report_checks).
    checks = [c for c in pending_checks(svc, cmd, results) if c.check_run_id is not None and c.node_id][:MAX_CHECKS]
    if not checks:
        return refs
    ids = _node_ids(gh, cmd)
    if ids is None:
        return refs
    subject_id, repository_id = ids
    completed_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    writes = report_writes(subject_id, parts, repository_id, [CheckUpdate(c.node_id, c.fields) for c in checks],
                           completed_at)
    answer = read_answer(writes, gh.graphql(f"report {cmd.kind} of #{cmd.pull}", writes.query, writes.variables))
    if answer.rejected:
        log.warning("GitHub refused the GraphQL report of %s#%d (%s): writing it over REST", cmd.repo, cmd.pull,
                    "; ".join(answer.errors))
        return refs
    posted = answer.posted
    if posted:
        refs = [*refs, *posted]
        svc.records.set_posted_comments(cmd.id, refs)
    _mark_sent(svc, cmd, checks, answer.checks)
    if answer.errors:
        raise GitHubError(f"report {cmd.kind} of #{cmd.pull} on {cmd.repo}: {'; '.join(answer.errors)}")
    return refs


def _mark_sent(svc: WorkerServices, cmd: Command, checks: list[PendingCheck], written: list[bool]) -> None:
    store = CheckRuns(svc.redis)
    for check, ok in zip(checks, written):
        if ok:
            store.mark_sent(cmd.id, check.project, check.digest)


def _node_ids(gh: RepoAPI, cmd: Command) -> tuple[str, str] | None:
    """The PR's and its repository's node ids: kept with the command, else asked of GitHub (a command made before
    tfbot kept them); None when GitHub does not say or cannot be asked (the report goes over REST)."""
    from bot.adapters.github import GitHubError

    subject_id, repository_id = str(cmd.info.get("node_id") or ""), str(cmd.info.get("repo_node_id") or "")
    if subject_id and repository_id:
        return subject_id, repository_id
    try:
        pull = gh.pull(cmd.pull)
    except GitHubError as exc:
        log.warning("node ids of %s#%d not known (%s): the report goes over REST", cmd.repo, cmd.pull, exc)
        return None
    if not (pull.node_id and pull.repo_node_id):
        return None
    return pull.node_id, pull.repo_node_id
