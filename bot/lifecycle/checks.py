"""What a commit shows of tfbot's commands: a check run per project and command (`github.check_runs`) and the
commit statuses `tfbot/plan` and `tfbot/apply` (`github.statuses`); both when both are on.

A project's check run is made `in_progress` when its Terraform is about to run (a plan: when its job starts; an
apply, a merge or a hand-over: once it decided to run Terraform), and completed by the command's report, which
makes it then if the run never did (a refusal known up front, a run that never started or died). A merged PR's
result that needed no Terraform run (nothing left to apply, waiting for the lock) gets none (`shown_on_commit`).
The report job is retried while GitHub fails, like the statuses: what a retry finds written already is not
written again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from bot.models import Outcome, Project, ProjectResult
from bot.render import checks as render
from bot.state.check_runs import CheckRunRecord, CheckRuns
from bot.state.records import Command, project_to_dict

if TYPE_CHECKING:
    from bot.adapters.github import RepoAPI
    from bot.services import WorkerServices

log = logging.getLogger(__name__)


def set_status(svc: WorkerServices, gh: RepoAPI, sha: str, context: str, state: str, description: str,
               target_url: str = "", *, pull: int = 0) -> None:
    """Set a commit status, unless `github.statuses` is off. A final one on the head of PR `pull` is remembered
    (`final_status_on`): a later command on that commit must show `pending` over it while it runs."""
    if svc.config.github.statuses:
        gh.set_status(sha, context, state, description, target_url)
        if pull and state != "pending":
            svc.records.set_pull_field(gh.full_name, pull, _FINAL_STATUS + context, sha)


_FINAL_STATUS = "final_status:"  # pull record field prefix: context -> the commit tfbot last gave a final status


def final_status_on(svc: WorkerServices, repo: str, pull: int, context: str) -> str | None:
    """The commit of PR `pull` tfbot last wrote a final status `context` on (None: none that tfbot remembers)."""
    return svc.records.pull_field(repo, pull, _FINAL_STATUS + context)


def start_check(svc: WorkerServices, cmd: Command, project: Project) -> None:
    """Make the project's check run `in_progress` on the command's head, once per command (a deferred job's next
    attempt finds it made). Best effort: a failure is logged, and the report makes the check run instead."""
    if not svc.config.github.check_runs:
        return
    store = CheckRuns(svc.redis)
    if store.id_of(cmd.id, project) is not None:
        return
    view = render.in_progress(cmd.kind, project, cmd.head_sha)
    try:
        check_run_id, node_id = svc.github.repo(cmd.installation, cmd.repo).create_check_run(
            cmd.head_sha, view.name, request_fields(view, external_id=new_external_id()))
    except Exception as exc:  # noqa: BLE001 - GitHub unreachable must not stop the run; the report makes it
        log.warning("check run %r of %s#%d at %s not made: %s", view.name, cmd.repo, cmd.pull, cmd.head_sha[:8], exc)
        return
    store.remember(_record(check_run_id, node_id, cmd, project))


# What a merged PR's command may end with without running Terraform and without a word on its head: nothing was
# left to apply (the lock released), or the PR waits in line for the lock (the comment says so).
_QUIET_WHEN_MERGED = frozenset({Outcome.NOTHING_TO_APPLY, Outcome.LOCKED})


def shown_on_commit(svc: WorkerServices, cmd: Command, results: list[ProjectResult]) -> list[ProjectResult]:
    """The results the PR's head shows as check runs and in its status: all of them, but a merged PR's results that
    ran no Terraform because nothing was left to apply or the lock is another PR's, and made no check run. The head
    of a merged PR gates nothing any more, and the comment says what happened: a check run and a status of such a
    result would be two GitHub writes saying nothing new. A failure, a refusal or an interrupted run is shown.
    Without check runs a merge wrote a pending status when it started (bot/lifecycle/planning.py
    `pending_needed`), and its final one must follow: all are shown."""
    if not cmd.info.get("merged") or not svc.config.github.check_runs:
        return results
    store = CheckRuns(svc.redis)
    return [r for r in results if r.outcome not in _QUIET_WHEN_MERGED or r.run_id
            or store.id_of(cmd.id, r.project) is not None]


def report_checks(svc: WorkerServices, gh: RepoAPI, cmd: Command, results: list[ProjectResult]) -> None:
    """Complete the check run of every result (made now where none was); raises GitHubError for the report's retry.

    A result written before (same request) is skipped, so a retried report neither repeats GitHub's appended
    annotations nor writes what it wrote; a changed result (a real result after an interrupted-run report) is.
    """
    if not svc.config.github.check_runs:
        return
    store = CheckRuns(svc.redis)
    for check in pending_checks(svc, cmd, results):
        if check.check_run_id is None:
            check_run_id, node_id = gh.create_check_run(cmd.head_sha, check.name,
                                                        {**check.fields, "external_id": new_external_id()})
            store.remember(_record(check_run_id, node_id, cmd, check.project))
        else:
            gh.update_check_run(check.check_run_id, check.fields)
        store.mark_sent(cmd.id, check.project, check.digest)


@dataclasses.dataclass(frozen=True)
class PendingCheck:
    """A project's completed check run that GitHub has not got yet: the request's `fields` and their `digest`,
    and the check run it goes to (`check_run_id` None: none was made; `node_id` "" when not known)."""

    project: Project
    name: str
    fields: dict[str, Any]
    digest: str
    check_run_id: int | None
    node_id: str


def pending_checks(svc: WorkerServices, cmd: Command, results: list[ProjectResult]) -> list[PendingCheck]:
    """The completed check runs of `results` not written yet, in order (none when `github.check_runs` is off)."""
    if not svc.config.github.check_runs:
        return []
    store = CheckRuns(svc.redis)
    found: list[PendingCheck] = []
    for result in results:
        view = render.completed(cmd.kind, result, svc.run_url)
        fields = request_fields(view)
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        if store.sent(cmd.id, result.project) == digest:
            continue
        found.append(PendingCheck(project=result.project, name=view.name, fields=fields, digest=digest,
                                  check_run_id=store.id_of(cmd.id, result.project),
                                  node_id=store.node_id_of(cmd.id, result.project)))
    return found


def superseded(results: list[ProjectResult]) -> list[ProjectResult]:
    """The results of a command a newer push superseded, as its check runs show them: all cancelled, no button."""
    return [dataclasses.replace(r, outcome=Outcome.SUPERSEDED, message="A newer push was planned instead: see the "
                                "check runs of the PR's head.") for r in results]


def request_fields(view: render.CheckRunView, external_id: str = "") -> dict[str, Any]:
    """The create or update request's fields besides name and head_sha. `actions` is always sent: an empty list
    takes away a button an earlier write showed."""
    fields: dict[str, Any] = {"status": view.status, "output": view.output(), "actions": view.actions}
    if view.conclusion is not None:
        fields["conclusion"] = view.conclusion
    if view.details_url:
        fields["details_url"] = view.details_url
    if external_id:
        fields["external_id"] = external_id
    return fields


def new_external_id() -> str:
    """A fresh `external_id`: every button press's event carries the check run's current one, so renewing it after
    each press tells a new press from a replayed one (bot/intake/replay.py)."""
    return uuid.uuid4().hex


def _record(check_run_id: int, node_id: str, cmd: Command, project: Project) -> CheckRunRecord:
    return CheckRunRecord(id=check_run_id, repo=cmd.repo, kind=cmd.kind, command_id=cmd.id, pull=cmd.pull,
                          head_sha=cmd.head_sha, project=project_to_dict(project), node_id=node_id)
