"""The Apply button of a check run: GitHub's `check_run` `requested_action` event is the presser's `apply -p
<project>` comment, acted on by the same code (bot/lifecycle/handlers/comments.py `run_apply`)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.intake.webhooks import Delivery
from bot.lifecycle.checks import new_external_id
from bot.lifecycle.commands import Command as CommentCommand
from bot.lifecycle.handlers.comments import run_apply
from bot.lifecycle.routing import Router
from bot.render.checks import APPLY_ACTION, check_name
from bot.state.check_runs import CheckRuns

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)
router = Router()


@router.register("check_run", "requested_action")
def on_requested_action(delivery: Delivery, svc: WorkerServices) -> None:
    """Apply the project of the pressed check run, as the presser, on the PR tfbot made the check run for.

    The PR and the project come from tfbot's own record of the check run, by GitHub's id: never from its name, nor
    from `pull_requests`, which GitHub leaves empty for a fork's PR.
    """
    payload = delivery.payload
    identifier = str(payload["requested_action"]["identifier"])
    pressed = payload["check_run"]
    if identifier != APPLY_ACTION:
        log.info("ignored %s: tfbot offers no action %r", delivery.describe(), identifier[:40])
        return
    record = CheckRuns(svc.redis).record(delivery.repo, int(pressed["id"]))
    if record is None or record.head_sha != str(pressed["head_sha"]):
        log.warning("ignored %s: check run %s is not one tfbot made (or its record expired)", delivery.describe(),
                    pressed["id"])
        return
    user = str(payload["sender"]["login"])
    gh = svc.github.repo(delivery.installation_id, delivery.repo)
    # Before acting: the next press's event then carries another external_id, which a replay of this one does not.
    gh.update_check_run(record.id, {"external_id": new_external_id()})
    svc.records.set_pull_field(delivery.repo, record.pull, "installation", str(delivery.installation_id))
    project = record.of_project
    log.info("%s: apply -p %s of #%d by %s (the Apply button)", delivery.describe(), project.name, record.pull, user)
    # Nothing on the PR shows a press, as a comment shows itself: the reply says who pressed what.
    run_apply(svc, gh, delivery, record.pull, user, CommentCommand(name="apply", project=project.name),
              note=f"@{user} pressed Apply on the check run {check_name(record.kind, project)}.")
