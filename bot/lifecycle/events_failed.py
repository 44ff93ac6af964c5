"""An event job (a webhook, a hand-over) that failed inside tfbot: the PR is told, never left guessing.

Event jobs are retried with backoff (bot.queue.EVENT_RETRY_INTERVALS); RQ calls the failure callback on
every failed try, so the PR hears only of the last one. The advice names what helps for that event: a
merged PR is not told to comment `plan` (a plan of a merged PR does nothing).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from rq.job import Job

    from bot.services import WorkerServices

log = logging.getLogger(__name__)

PLAN_AGAIN = "Comment `plan` to try again."


def _target(job: Job) -> tuple[str, int, int] | None:
    """(repo, PR number, installation) the failed job was about, when it was about a PR."""
    if job.func_name == "bot.jobs.handle_delivery":
        _, event, payload = job.args
        repo = (payload.get("repository") or {}).get("full_name")
        number = payload.get("number") or (payload.get("issue") or {}).get("number") \
            or (payload.get("pull_request") or {}).get("number")
        installation = (payload.get("installation") or {}).get("id")
        if event in ("pull_request", "issue_comment") and repo and number and installation:
            return str(repo), int(number), int(installation)
        return None
    if job.func_name in ("bot.jobs.plan_waiter", "bot.jobs.replan"):
        project, pull, installation, _ = job.args
        return str(project["repo"]), int(pull), int(installation)
    return None


def what_failed(func_name: str, event: str = "", payload: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """Pure: (what tfbot could not do, what helps now) for a failed event job."""
    if func_name == "bot.jobs.plan_waiter":
        return "plan it after the lock was handed to it", PLAN_AGAIN + " (If it was merged meanwhile: `apply`.)"
    if func_name == "bot.jobs.replan":
        return "plan it again", PLAN_AGAIN
    payload = payload or {}
    if event == "issue_comment":
        return "run the command of a comment", "Post the command again in a new comment (an edit is not read)."
    if event == "pull_request" and payload.get("action") == "closed":
        if (payload.get("pull_request") or {}).get("merged"):
            return "handle the merge of this PR", (
                "Nothing was applied for this merge. tfbot tries again by itself: its reconciliation (every few "
                "minutes in `tfbot serve`) hands a merge that was never handled back to it; an admin can run "
                "`tfbot reconcile` to do that at once. If this PR still holds its workspace lock, someone with "
                "write access can instead comment `apply` here.")
        return "handle the closing of this PR", (
            "Its workspace locks may still be held: tfbot's reconciliation releases them by itself; an admin can "
            "run `tfbot reconcile` to do it at once, or unlock them on the lock page.")
    return "handle the last event of this PR", PLAN_AGAIN


def report_event_failure(svc: WorkerServices, job: Job, exc_type: type[BaseException] | None,
                         exc_value: BaseException | None) -> None:
    """Comment on the PR with what failed and what to do next, once its last retry has failed."""
    if getattr(job, "retries_left", None):
        log.warning("event job %s failed (%s); %d retries left", job.id, getattr(exc_type, "__name__", "error"),
                    job.retries_left)
        return
    target = _target(job)
    if target is None:
        return
    repo, number, installation = target
    event, payload = (job.args[1], job.args[2]) if job.func_name == "bot.jobs.handle_delivery" else ("", None)
    what, advice = what_failed(job.func_name or "", event, payload)
    reason = svc.mask(f"{getattr(exc_type, '__name__', 'error')}: {exc_value}")[:500]
    text = (f"tfbot could not {what}: `{reason}`. This is a fault in tfbot or its surroundings (GitHub, git, "
            f"Redis), not in your Terraform code; the details are in tfbot's log. {advice}")
    gh = svc.github.repo(installation, repo)
    gh.create_comment(number, svc.render_notice("error", number, "", text))
    log.warning("told %s#%d that %s failed: %s", repo, number, job.func_name, reason)
