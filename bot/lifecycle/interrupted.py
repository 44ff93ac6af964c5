"""Runs that never finished: a worker killed mid-plan or mid-apply. The PR hears about it; nothing waits forever."""
from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.lifecycle.planning import advance_command
from bot.lifecycle.runner import applies, pr_state, project_slug
from bot.models import Outcome, Project, ProjectResult
from bot.state.records import Command, project_from_dict

if TYPE_CHECKING:
    from bot.services import WorkerServices

log = logging.getLogger(__name__)


def report_interrupted(svc: WorkerServices, command_id: str, project_data: dict[str, Any], reason: str) -> None:
    """Record an ERROR result for the interrupted project (unless it reported after all) and report the command."""
    project = project_from_dict(project_data)
    cmd = svc.records.command(command_id)
    if svc.records.has_result(command_id, project):
        # It reported before it died: what waits for it may not have been started yet (idempotent).
        advance_command(svc, cmd)
        return
    lock_note = state_lock_note(svc, cmd, project)
    kind = "plan" if cmd.kind == "plan" else "apply"
    result = ProjectResult(
        project, Outcome.ERROR, head_sha=cmd.head_sha,
        summary=f"The {kind} of {project.name} was interrupted: {reason}.",
        output=lock_note.output,
        message=(
            f"The {kind} was interrupted: {reason}. The lock stays with this PR. {lock_note.message} "
            f"Comment `{kind}` to run it again"
            + (" after checking the state: an interrupted apply may have changed part of it." if kind == "apply"
               else ".")
            + " Should the run finish after all, its own result is posted and replaces this report."
        ),
    )
    log.warning("%s %s#%d %s interrupted: %s", cmd.kind, cmd.repo, cmd.pull, project.name, reason)
    mark_failed(svc, cmd, project, reason)
    if svc.records.add_interrupted_result(command_id, result):
        svc.jobs.report_command(command_id)
    advance_command(svc, cmd)  # what waited for it is not applied


def stopped_result(svc: WorkerServices, cmd: Command, result: ProjectResult, reason: str) -> ProjectResult:
    """The run's own result after a stopping `tfbot serve` asked its Terraform to stop: why it ended, and whether
    Terraform's state lock is free, before what the result itself says to do."""
    kind = "plan" if cmd.kind == "plan" else "apply"
    lock_note = state_lock_note(svc, cmd, result.project)
    log.warning("%s %s#%d %s interrupted: %s", cmd.kind, cmd.repo, cmd.pull, result.project.name, reason)
    return replace(result, message=(
        f"The {kind} was interrupted: {reason}. tfbot asked Terraform to stop and let it finish what it had "
        f"started and save its state; its output is below. {lock_note.message} {result.message}").strip())


def mark_failed(svc: WorkerServices, cmd: Command, project: Project, reason: str) -> None:
    """The lock of a run whose worker died leaves "planning" / "applying" (bot/lifecycle/decision.py, worker died),
    if that run set it: a dead job of the same PR that never ran the apply says nothing about it."""
    from bot.lifecycle.decision import Action, Event, Facts, LockView, decide
    from bot.models import LockState

    lock = svc.locks.get(project)
    facts = Facts(pull=cmd.pull, pr_state=pr_state(cmd), applies=applies(cmd),
                  head_sha=cmd.head_sha, lock=LockView.of(lock), command=cmd.id)
    if lock is None or decide(Event.WORKER_DIED, facts).action is not Action.MARK_FAILED:
        return
    failed = LockState.APPLY_FAILED if lock.state is LockState.APPLYING else LockState.PLAN_FAILED
    # Under the lock's own token, and only if it still is the state that run set: if the lock changed hands or
    # state meanwhile, nothing is touched.
    svc.locks.set_state(project, lock.pull, lock.token, failed, summary=f"interrupted: {reason}"[:200],
                        expect={"state": lock.state.value, "command_id": cmd.id})


class _LockNote:
    def __init__(self, message: str, output: str = ""):
        self.message = message
        self.output = output


# Why the check below never runs Terraform: a `terraform plan` here would run the PR's code (providers, data
# sources) outside a guarded run, racing a run that may not be dead after all or the next one. The evidence is
# read instead: the backend Terraform recorded in the working copy and, for a local state file, whether a
# process holds its lock (fcntl F_GETLK: asks who holds it, takes nothing).
_REMOTE_ADVICE = (
    "The state is in a `{backend}` backend, which tfbot does not query (that would mean running Terraform, and "
    "this PR's code, outside a guarded run). If the next run fails with \"Error acquiring the state lock\", make "
    "sure no Terraform run is still going, then run `terraform force-unlock LOCK_ID` in `{dir}` with the ID that "
    "error shows.")


def state_lock_note(svc: WorkerServices, cmd: Command, project: Project) -> _LockNote:
    """Whether Terraform's state lock was left behind, from the evidence in the project's checkout (no Terraform)."""
    path = svc.checkouts.working_copy_path(cmd.repo, cmd.pull, project_slug(project))
    workdir = path / project.dir if project.dir != "." else path
    if not (workdir / ".terraform").is_dir():
        return _LockNote("tfbot could not check Terraform's state lock here (the checkout is on another host); "
                         "if the next run reports a lock, see `terraform force-unlock`.")
    backend, state = local_state_file(workdir, project.workspace)
    if state is None:
        return _LockNote(_REMOTE_ADVICE.format(backend=backend, dir=project.dir))
    pid = state_lock_holder(state)
    if pid is None:
        return _LockNote("Terraform's state lock is free.")
    return _LockNote(
        f"Terraform's state lock is held by process {pid} on this host: a Terraform run is still going (perhaps "
        "the interrupted one's, orphaned). Let it end, or stop it, before running again; its lock goes with it.",
        output=f"state file {state}: locked by pid {pid}")


def local_state_file(workdir: Path, workspace: str) -> tuple[str, Path | None]:
    """(backend type, the local state file of `workspace`, or None for a backend whose state is elsewhere)."""
    try:
        backend = json.loads((workdir / ".terraform" / "terraform.tfstate").read_text()).get("backend") or {}
    except (OSError, ValueError):
        backend = {}  # no backend block: Terraform's default local backend
    kind = str(backend.get("type") or "local")
    if kind != "local":
        return kind, None
    config = backend.get("config") or {}
    if workspace == "default":
        return kind, workdir / (config.get("path") or "terraform.tfstate")
    return kind, workdir / (config.get("workspace_dir") or "terraform.tfstate.d") / workspace / "terraform.tfstate"


def state_lock_holder(state: Path) -> int | None:
    """The pid holding Terraform's lock on a local state file (POSIX record lock), None when free or absent."""
    if sys.platform != "linux":
        return None  # struct flock's layout below is Linux's
    try:
        fd = os.open(state, os.O_RDONLY)
    except OSError:
        return None
    try:
        probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, probe))
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if l_type == fcntl.F_UNLCK else pid
