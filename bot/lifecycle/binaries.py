"""Which binary runs a project, for a worker: the root's Terraform files read from its working copy, the choice made
by bot/projects/versions.py over the server's binaries, and the adapter that runs the chosen one.

The working copy is PR code: a file is read only when it is a regular file inside the checkout (a link to a device,
a pipe or a file of the host is skipped, as nothing in the repository), and at most MAX_FILE_BYTES of it; a larger
file that mentions `required_version` is a problem said on the PR, never a slow parse.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from bot.adapters.runners import checkout_root
from bot.projects.paths import is_tf_file
from bot.projects.versions import Binary, NoFit, choose_for_project

if TYPE_CHECKING:
    from bot.adapters.terraform import Terraform
    from bot.models import Project
    from bot.services import WorkerServices
    from bot.state.records import PlanRecord

MAX_FILE_BYTES = 4 * 1024 * 1024
_CHUNK = 1024 * 1024
_NEEDLE = b"required_version"


def choose_binary(svc: WorkerServices, project: Project, workdir: Path) -> Binary | NoFit:
    """The binary that plans `project`, whose root is checked out at `workdir`; NoFit says why none can."""
    files, problems = root_files(workdir)
    if problems:
        return NoFit(f"tfbot cannot read this root's required_version: {'; '.join(problems)}. Nothing was run.")
    return choose_for_project(project.engine, project.terraform_version, files, svc.binaries)


def adapter(svc: WorkerServices, binary: Binary) -> Terraform:
    """The adapter that runs `binary`: the worker's own for the default binary (the very object, so whatever wraps it
    keeps seeing every call), else its sibling for that binary."""
    if binary == svc.binaries.default:
        return svc.terraform
    return svc.terraform.using(binary.path, binary.version, binary.engine)


def plan_binary(svc: WorkerServices, project: Project, plan: PlanRecord) -> Binary | str:
    """The binary a saved plan must be applied with (a plan file applies only with the version that made it), or the
    sentence saying why it cannot be: that version is no longer installed."""
    default = svc.binaries.default
    if not plan.engine or not plan.engine_version:  # made with the default binary, whose version was not known
        return default
    if (plan.engine, plan.engine_version) == (default.engine, default.version):
        return default  # even one whose version tfbot cannot compare (`1.11.4-acme`), which `find` does not list
    found = svc.binaries.find(plan.engine, plan.engine_version)
    if found is not None:
        return found
    made_with = Binary(plan.engine, plan.engine_version, "").label
    return (f"The plan of `{project.name}` was made with {made_with}, which this server no longer has (it has "
            f"{svc.binaries.describe(plan.engine)}), and a plan file applies only with the version that made it. "
            "Nothing was applied; comment `plan` to plan it again.")


def root_files(workdir: Path) -> tuple[dict[str, str], list[str]]:
    """The Terraform files directly in `workdir` that may hold a `required_version` (name -> text), and problems."""
    files: dict[str, str] = {}
    problems: list[str] = []
    try:
        entries = sorted(os.scandir(workdir), key=lambda e: e.name)
    except OSError as exc:
        return {}, [f"the project's dir cannot be listed: {exc.strerror}"]
    root = Path(os.path.realpath(checkout_root(workdir)))
    for entry in entries:
        if not is_tf_file(entry.name):
            continue
        real = Path(os.path.realpath(entry.path))
        try:
            inside = real == root or root in real.parents
            if not inside or not stat.S_ISREG(os.stat(real).st_mode):
                continue
            text = _read_bounded(real)
        except OSError as exc:
            problems.append(f"{entry.name} cannot be read: {exc.strerror}")
            continue
        if text is None:
            problems.append(f"{entry.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB and sets "
                            "required_version: tfbot does not parse a file that large")
        elif text:
            files[entry.name] = text
    return files, problems


def _read_bounded(path: Path) -> str | None:
    """The text of `path` when it may set required_version ("" when it cannot), None when it is too large to parse
    and mentions it. Reads in chunks, so a huge file costs no more memory than one."""
    with open(path, "rb") as f:
        head = f.read(MAX_FILE_BYTES + 1)
        if len(head) <= MAX_FILE_BYTES:
            return head.decode("utf-8", "replace") if _NEEDLE in head else ""
        tail = head[-len(_NEEDLE):]
        if _NEEDLE in head:
            return None
        while chunk := f.read(_CHUNK):
            if _NEEDLE in tail + chunk:
                return None
            tail = chunk[-len(_NEEDLE):]
    return ""
