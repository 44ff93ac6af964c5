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
