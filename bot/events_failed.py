"""An event job (a webhook, a hand-over) that failed inside tfbot: the PR is told, never left guessing."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def _target(job: Any) -> tuple[str, int, int] | None:
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


def report_event_failure(svc: Any, job: Any, exc_type: Any, exc_value: Any) -> None:
    """Comment on the PR with what failed and what to do next."""
    target = _target(job)
    if target is None:
        return
    repo, number, installation = target
    what = "plan it after the lock was handed to it" if job.func_name == "bot.jobs.plan_waiter" else \
        "plan it again" if job.func_name == "bot.jobs.replan" else "handle the last event of this PR"
    reason = svc.mask(f"{getattr(exc_type, '__name__', 'error')}: {exc_value}")[:500]
    text = (f"tfbot could not {what}: `{reason}`. This is a fault in tfbot or its surroundings (GitHub, git, "
            "Redis), not in your Terraform code; the details are in tfbot's log. Comment `plan` to try again.")
    gh = svc.github.repo(installation, repo)
    gh.create_comment(number, svc.render_notice("error", number, "", text))
    log.warning("told %s#%d that %s failed: %s", repo, number, job.func_name, reason)
