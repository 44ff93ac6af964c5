"""An event job (a webhook, a hand-over) that failed inside tfbot: the PR is told, never left guessing.

Event jobs are retried with backoff (bot.queue.EVENT_RETRY_INTERVALS); RQ calls the failure callback
(bot.jobs.event_job_failed) on every failed try, which queues this report after the last one only. The advice names what helps for that event: a
merged PR is not told to comment `plan` (a plan of a merged PR does nothing).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)

PLAN_AGAIN = "Comment `plan` to try again."
# The event jobs whose failure a PR hears of: a webhook delivery, the plan of a PR handed a lock, a re-plan.
KINDS = ("delivery", "handover", "replan")


def _target(kind: str, args: Sequence[Any]) -> tuple[str, int, int] | None:
    """(repo, PR number, installation) the failed job was about, when it was about a PR."""
    if kind == "delivery":
        _, event, payload = args
        repo = (payload.get("repository") or {}).get("full_name")
        number = payload.get("number") or (payload.get("issue") or {}).get("number") \
            or (payload.get("pull_request") or {}).get("number")
        installation = (payload.get("installation") or {}).get("id")
        if event in ("pull_request", "issue_comment") and repo and number and installation:
            return str(repo), int(number), int(installation)
        return None
    if kind in ("handover", "replan"):
        project, pull, installation, _ = args
        return str(project["repo"]), int(pull), int(installation)
    return None


def what_failed(kind: str, event: str = "", payload: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """Pure: (what tfbot could not do, what helps now) for a failed event job of `kind` (KINDS)."""
    if kind == "handover":
        return "plan it after the lock was handed to it", PLAN_AGAIN + " (If it was merged meanwhile: `apply`.)"
    if kind == "replan":
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


def report_event_failure(svc: WorkerServices, kind: str, args: Sequence[Any], error: str) -> None:
    """Comment on the PR with what failed and what to do next; called once the job's last retry failed.

    `kind` is one of KINDS, `args` the failed job's arguments, `error` its exception as "Type: text".
    """
    target = _target(kind, args)
    if target is None:
        return
    repo, number, installation = target
    event, payload = (args[1], args[2]) if kind == "delivery" else ("", None)
    what, advice = what_failed(kind, event, payload)
    reason = svc.mask(error)[:500]
    text = (f"tfbot could not {what}: `{reason}`. This is a fault in tfbot or its surroundings (GitHub, git, "
            f"Redis), not in your Terraform code; the details are in tfbot's log. {advice}")
    gh = svc.github.repo(installation, repo)
    gh.create_comment(number, svc.render_notice("error", number, "", text))
    log.warning("told %s#%d that its %s job failed: %s", repo, number, kind, reason)
