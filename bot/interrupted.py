"""Runs that never finished: a worker killed mid-plan or mid-apply. The PR hears about it; nothing waits forever."""
from __future__ import annotations

import logging
import re
from typing import Any

from bot.jobs import queue_report
from bot.models import Outcome, ProjectResult
from bot.records import project_from_dict

log = logging.getLogger(__name__)
_LOCK_ERROR = "Error acquiring the state lock"


def report_interrupted(svc: Any, command_id: str, project_data: dict[str, Any], reason: str) -> None:
    """Record an ERROR result for the interrupted project (unless it reported after all) and report the command."""
    project = project_from_dict(project_data)
    cmd = svc.records.command(command_id)
    if svc.records.has_result(command_id, project):
        return
    lock_note = state_lock_note(svc, cmd, project)
    kind = "apply" if cmd.kind in ("apply", "merge") else "plan"
    result = ProjectResult(
        project, Outcome.ERROR, head_sha=cmd.head_sha,
        summary=f"The {kind} of {project.name} was interrupted: {reason}.",
        output=lock_note.output,
        message=(
            f"The {kind} was interrupted: {reason}. The lock stays with this PR. {lock_note.message} "
            f"Comment `{kind}` to run it again"
            + (" after checking the state: an interrupted apply may have changed part of it." if kind == "apply"
               else ".")
        ),
    )
    log.warning("%s %s#%d %s interrupted: %s", cmd.kind, cmd.repo, cmd.pull, project.name, reason)
    if svc.records.add_result(command_id, result):
        queue_report(svc.runs_queue, command_id)


class _LockNote:
    def __init__(self, message: str, output: str = ""):
        self.message = message
        self.output = output


def state_lock_note(svc: Any, cmd: Any, project: Any) -> _LockNote:
    """Whether Terraform's own state lock was left behind, from a lock-only check in the project's checkout."""
    from bot.runner import project_slug

    path = svc.checkouts.working_copy_path(cmd.repo, cmd.pull, project_slug(project))
    workdir = path / project.dir if project.dir != "." else path
    if not (workdir / ".terraform").is_dir():
        return _LockNote("tfbot could not check Terraform's state lock here (the checkout is on another host); "
                         "if the next run reports a lock, see `terraform force-unlock`.")
    result = svc.terraform.state_lock_check(workdir, project.workspace)
    if _LOCK_ERROR in result.output:
        lock_id = re.search(r"ID:\s+(\S+)", result.output)
        return _LockNote(
            "Terraform's state lock was left behind (below). Make sure no Terraform run is still going, then "
            f"run `terraform force-unlock {lock_id.group(1) if lock_id else 'LOCK_ID'}` in `{project.dir}`.",
            output=result.output,
        )
    return _LockNote("Terraform's state lock is free.")
