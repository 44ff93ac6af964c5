"""Startup checks that say exactly what to fix: the Terraform binary and its version."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

MIN_TERRAFORM = (1, 4, 0)
INSTALL_HINT = (
    "install Terraform >= 1.4 (https://developer.hashicorp.com/terraform/install) "
    "or set terraform.binary / TFBOT_TERRAFORM_BINARY to its path"
)


@dataclass(frozen=True)
class TerraformCheck:
    ok: bool
    version: str = ""
    path: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"ok": self.ok, "version": self.version, "path": self.path}
        if self.error:
            out["error"] = self.error
        return out


def check_terraform(binary: str, data_dir: Path) -> TerraformCheck:
    """Run `terraform version` through our adapter and compare with the minimum we support."""
    from bot.terraform import Terraform, TerraformError

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


MIN_GIT = (2, 38)


@dataclass(frozen=True)
class GitCheck:
    ok: bool
    version: str = ""
    error: str = ""


def check_git(binary: str = "git") -> GitCheck:
    """`git --version` >= 2.38 (checkouts rely on its newer commands), with what to do when it is not."""
    import re
    import subprocess

    path = shutil.which(binary)
    if path is None:
        return GitCheck(False, error="git not found on PATH: install git >= 2.38")
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return GitCheck(False, error=f"{path} --version failed ({exc}): install git >= 2.38")
    match = re.search(r"(\d+)\.(\d+)", out)
    if not match:
        return GitCheck(False, error=f"{path} --version printed no version: install git >= 2.38")
    version = (int(match.group(1)), int(match.group(2)))
    text = f"{version[0]}.{version[1]}"
    if version < MIN_GIT:
        return GitCheck(False, text, f"git {text} at {path} is older than 2.38: install git >= 2.38")
    return GitCheck(True, text)
