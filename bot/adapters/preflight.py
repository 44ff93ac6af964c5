"""Startup checks that say exactly what to fix: the Terraform binaries, git, and their versions."""
from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

MIN_TERRAFORM = (1, 4, 0)
INSTALL_HINT = (
    "install Terraform >= 1.4 (https://developer.hashicorp.com/terraform/install) "
    "or set terraform.binary / TFBOT_TERRAFORM_BINARY to its path"
)


@dataclass(frozen=True)
class ToolCheck:
    """The verdict on one external tool tfbot runs: `error` says what was found and what to install."""

    ok: bool
    version: str = ""
    path: str = ""
    error: str = ""
    # More facts for /healthz, such as how runs are sandboxed: {"sandbox": "bubblewrap", "mode": "auto"}.
    notes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"ok": self.ok, "version": self.version, "path": self.path, **self.notes}
        if self.error:
            out["error"] = self.error
        return out


TerraformCheck: TypeAlias = ToolCheck
GitCheck: TypeAlias = ToolCheck


def check_terraform(binary: str, data_dir: Path, sandbox_mode: str = "") -> TerraformCheck:
    """Run `terraform version` through our adapter and compare with the minimum we support.

    With `sandbox_mode` (`terraform.sandbox.mode`), also whether bubblewrap runs here: the check's notes say
    which sandbox runs get (and auto's fallback warning); `bubblewrap` that cannot run fails the check.
    """
    notes = sandbox_notes(sandbox_mode) if sandbox_mode else {}
    if sandbox_mode == "bubblewrap" and notes.get("error"):
        return TerraformCheck(False, error=notes["error"], notes=notes)
    check = _check_terraform_binary(binary, data_dir)
    return TerraformCheck(check.ok, check.version, check.path, check.error, notes)


def sandbox_notes(mode: str) -> dict[str, str]:
    """{"sandbox": what runs get, "mode": mode} and, when bubblewrap cannot run, "warning" (auto) or "error"."""
    from bot.adapters.runners import probe_bubblewrap

    if mode == "none":
        return {"sandbox": "none", "mode": mode}
    problem = probe_bubblewrap()
    if not problem:
        return {"sandbox": "bubblewrap", "mode": mode}
    if mode == "bubblewrap":
        return {"sandbox": "none", "mode": mode, "error": f"terraform.sandbox.mode is bubblewrap and {problem}"}
    return {"sandbox": "none", "mode": mode, "warning": f"bubblewrap cannot run here ({problem}): Terraform and run "
            "steps run unsandboxed"}


def _check_terraform_binary(binary: str, data_dir: Path) -> TerraformCheck:
    from bot.adapters.terraform import Terraform, TerraformError

    path = shutil.which(binary)
    if path is None:
        return TerraformCheck(False, error=f"terraform binary {binary!r} not found: {INSTALL_HINT}")
    try:
        version = Terraform(binary=path, data_dir=data_dir, timeout=30).version()
    except (TerraformError, OSError, ValueError) as exc:
        return TerraformCheck(False, path=path, error=f"{path} did not report a version ({exc}): {INSTALL_HINT}")
    text = ".".join(str(p) for p in version)
    if tuple(version) < MIN_TERRAFORM:
        return TerraformCheck(False, text, path, f"Terraform {text} at {path} is older than 1.4: {INSTALL_HINT}")
    return TerraformCheck(True, text, path)


# Binaries a project picks (terraform.binaries, tofu.binaries): older than 1.0, Terraform's plan JSON and state are
# not what tfbot reads. The default binary stays >= 1.4 (MIN_TERRAFORM): it runs every project that asks for nothing.
MIN_LISTED = (1, 0, 0)
_PROGRAMS = {"terraform": "terraform", "opentofu": "tofu"}


def check_listed_binaries(listed: Mapping[str, str], engine: str, data_dir: Path) -> list[tuple[str, str]]:
    """(version key, problem) for each `version: path` entry of `terraform.binaries` (engine terraform) or
    `tofu.binaries` (opentofu) whose binary is missing, does not run, reports another version than its key, or is
    older than 1.0. Each is run once (`version -json`)."""
    from bot.adapters.terraform import Terraform, TerraformError

    program = _PROGRAMS.get(engine, engine)
    problems = []
    for key, binary in listed.items():
        path = shutil.which(binary)
        if path is None:
            problems.append((key, f"{binary!r} not found: a path to the {program} binary, or a name on PATH"))
            continue
        try:
            reported = Terraform(binary=path, data_dir=data_dir, timeout=30).reported_version()
        except (TerraformError, OSError, ValueError) as exc:
            problems.append((key, f"{path} did not report a version: {exc}"))
            continue
        if reported.lstrip("v") != key.lstrip("v"):
            problems.append((key, f"{path} reports {program} {reported}, not {key}: the key is the version of the "
                                  "binary it names"))
        elif _release(reported) < MIN_LISTED:
            problems.append((key, f"{path} is {program} {reported}, older than 1.0, which tfbot does not run"))
    return problems


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(n) for n in match.groups()) if match else (0, 0, 0)


def reported_version(binary: str, data_dir: Path) -> str:
    """The version `binary version -json` reports, or "" when it cannot be run or read (its runs then say why)."""
    from bot.adapters.terraform import Terraform, TerraformError

    path = shutil.which(binary)
    if path is None:
        return ""
    try:
        return Terraform(binary=path, data_dir=data_dir, timeout=30).reported_version()
    except (TerraformError, OSError, ValueError):
        return ""


# `git merge-tree --write-tree` (2.38) plans a PR as merged into its base without a working copy; older git
# fails every plan. (GIT_CONFIG_GLOBAL, 2.32, keeps a user's ~/.gitconfig out of tfbot's fetches.)
MIN_GIT = (2, 38)
GIT_INSTALL_HINT = (
    "install git >= 2.38 (Debian 12, Ubuntu 23.04, RHEL 10, Alpine 3.17 and later ship it; on older systems use "
    "your distribution's backports or the git-core PPA, or build it from https://git-scm.com/downloads) "
    "and put it first on PATH"
)


def judge_git_version(output: str, path: str = "git") -> GitCheck:
    """Pure: the verdict on what `git --version` printed (`git version 2.39.5`, `... (Apple Git-146)`)."""
    match = re.search(r"git version (\d+)\.(\d+)(?:\.(\d+))?", output)
    if not match:
        return GitCheck(False, path=path, error=f"{path} --version said {output.strip()[:100]!r}: {GIT_INSTALL_HINT}")
    found = tuple(int(g) for g in match.groups() if g is not None)
    text = ".".join(str(p) for p in found)
    if found[:2] < MIN_GIT:
        return GitCheck(False, text, path, f"git {text} at {path} is older than 2.38, which tfbot needs for "
                                           f"`git merge-tree --write-tree` (planning a PR merged into its base): "
                                           f"{GIT_INSTALL_HINT}")
    return GitCheck(True, text, path)


def check_git(git: str = "git") -> GitCheck:
    """Run `git --version` (argv, tfbot's scrubbed git environment) and compare with MIN_GIT."""
    from bot.adapters.git import _git_env

    path = shutil.which(git)
    if path is None:
        return GitCheck(False, error=f"git {git!r} not found on PATH: {GIT_INSTALL_HINT}")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, env=_git_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GitCheck(False, path=path, error=f"cannot run {path}: {exc}: {GIT_INSTALL_HINT}")
    if out.returncode != 0:
        return GitCheck(False, path=path, error=f"{path} --version exited with {out.returncode}: {GIT_INSTALL_HINT}")
    return judge_git_version(out.stdout, path)
