"""Comments on drift issues: `apply` queues the `apply_drift` job (bot/drift/apply.py), which checks the author's
permission, the lock and the plan at the moment it acts. Comments on PRs are bot/lifecycle/handlers/comments.py's;
comments on any other issue, and comments by bots (tfbot itself included), are ignored. Its router is merged with
the lifecycle's in bot/jobs.py `event_router` (the lifecycle never imports drift: drift's apply uses the runner)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.drift.marker import subject_of
from bot.intake.webhooks import Delivery
from bot.lifecycle.commands import Command, Ignore, parse_comment
from bot.lifecycle.routing import Router

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)
router = Router()

DRIFT_HELP = ("On a drift issue tfbot knows one command: `apply`, with no flags. It plans the project this issue "
              "names on the default branch's head and applies that plan if it is the one this issue shows; it "
              "needs write, maintain or admin permission on the repository.")


@router.register("issue_comment", "created")
def on_issue_comment(delivery: Delivery, svc: WorkerServices) -> None:
    payload = delivery.payload
    issue = payload["issue"]
    if issue.get("pull_request"):
        return  # a PR's comment: bot/lifecycle/handlers/comments.py
    comment = payload["comment"]
    author = str(comment["user"]["login"])
    if comment["user"].get("type") == "Bot" or author.lower() == svc.bot_login.lower():
        return
    if subject_of(str(issue.get("body") or "")) is None:
        return  # not a drift issue (the job reads the body again from GitHub before acting)
    if svc.config.repo_config(delivery.repo) is None:
        log.info("ignored %s: repository not in config.repos", delivery.describe())
        return
    parsed = parse_comment(str(comment["body"]), author, bot_login=svc.bot_login)
    if isinstance(parsed, Ignore):
        return
    number = int(issue["number"])
    gh = svc.github.repo(delivery.installation_id, delivery.repo)
    if not isinstance(parsed, Command) or parsed.name != "apply" or parsed.project or parsed.dir or parsed.workspace:
        gh.create_comment(number, f"@{author}: {DRIFT_HELP}")
        return
    gh.react(number, int(comment["id"]), "eyes")
    log.info("%s: apply on drift issue #%d by %s", delivery.describe(), number, author)
    svc.jobs.apply_drift(delivery.repo, delivery.installation_id, number, author, str(comment.get("html_url") or ""))
