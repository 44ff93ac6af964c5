"""A STAND-IN for OpenTofu's `tofu`, because OpenTofu cannot be installed here: no package registry reachable from
this machine (PyPI, npm, Debian 12) ships it. Tests of `engine: opentofu` run this instead and say so.

What it does, and what it does not: it appends its argv (one JSON list a line) to a record file, answers
`version -json` as `tofu version -json` does (OpenTofu's internal/command/views/version.go: `terraform_version`,
`platform`, `provider_selections`) with version 1.8.5, and runs every other command with the real Terraform
(`/usr/local/bin/terraform`, or `terraform` on PATH) and the same arguments. So it shows that tfbot picked and ran the
`tofu` binary with the commands it should, not that OpenTofu itself plans.

`install(directory, record)` writes an executable `tofu` into `directory` that runs this file with the Python running
the tests; the record's path and the Terraform it hands on to are written into it, as a run's environment is scrubbed.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

STUB_VERSION = "1.8.5"


def install(directory: Path, record: Path) -> Path:
    """An executable `tofu` stand-in in `directory` recording to `record`; returns its path."""
    terraform = shutil.which("terraform") or "/usr/local/bin/terraform"
    directory.mkdir(parents=True, exist_ok=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    path = directory / "tofu"
    # A copy of this module beside the stand-in: a sandboxed run sees the binary's directory but maybe not the
    # checkout (a checkout under /tmp is hidden by the sandbox's private /tmp).
    shutil.copyfile(Path(__file__), directory / "stub_tofu_impl.py")
    path.write_text(
        f"#!{sys.executable}\n"
        "# A stand-in for OpenTofu's tofu (see tests/support/stub_tofu.py): records, then runs Terraform.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(directory.resolve())!r})\n"
        "from stub_tofu_impl import main\n"
        f"main({str(record)!r}, {os.path.abspath(terraform)!r})\n")
    path.chmod(0o755)
    return path


def recorded(record: Path) -> list[list[str]]:
    """Every argv the stand-in was run with, in order (its own name left out)."""
    if not record.is_file():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def main(record: str, terraform: str) -> None:
    args = sys.argv[1:]
    with open(record, "a") as f:
        f.write(json.dumps(args) + "\n")
    if args[:1] == ["version"]:
        answer = {"terraform_version": STUB_VERSION, "platform": "linux_amd64", "provider_selections": {}}
        print(json.dumps(answer, indent=2) if "-json" in args else f"OpenTofu v{STUB_VERSION}\non linux_amd64")
        sys.exit(0)
    os.execv(terraform, [terraform, *args])
