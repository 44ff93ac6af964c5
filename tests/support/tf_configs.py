"""Terraform configurations for tests: only the built-in `terraform_data` resource and `local-exec`
provisioners, so nothing needs a provider download (there is no network here)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path


def hcl_string(value: str) -> str:
    """`value` as an HCL string literal: JSON escapes, with template sequences made literal."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def backend_block(backend_path: Path | None) -> str:
    """A local backend keeping state (and workspaces' states) in `backend_path`, outside the checkout."""
    if backend_path is None:
        return ""
    state = Path(backend_path)
    return (
        "terraform {\n"
        '  backend "local" {\n'
        f"    path          = {hcl_string(str(state / 'terraform.tfstate'))}\n"
        f"    workspace_dir = {hcl_string(str(state / 'workspaces'))}\n"
        "  }\n"
        "}\n"
    )


def write_config(directory: Path, resources: dict[str, str] | int, backend_path: Path | None = None) -> Path:
    """Write `main.tf` with one `terraform_data` per resource (name -> input value); an int n gives r0..r{n-1}.

    Returns the path of main.tf. With `backend_path`, state lives there instead of in `directory`.
    """
    if isinstance(resources, int):
        resources = {f"r{i}": f"value-{i}" for i in range(resources)}
    body = "".join(
        f'resource "terraform_data" {hcl_string(name)} {{\n  input = {hcl_string(value)}\n}}\n'
        for name, value in resources.items()
    )
    return _write(directory, backend_block(backend_path) + body)


def write_syntax_error_config(directory: Path) -> Path:
    """A config Terraform cannot parse: `init` fails with "Error: Invalid expression"."""
    return _write(directory, 'resource "terraform_data" "broken" {\n  input = \n}\n')


def write_failing_apply_config(directory: Path, backend_path: Path | None = None) -> Path:
    """Plans fine, fails at apply time: a local-exec provisioner that runs `false`."""
    return _write(directory, backend_block(backend_path) + _provisioned("fails", "false"))


def write_slow_apply_config(directory: Path, backend_path: Path | None, pid_file: Path, orphan: bool = False) -> Path:
    """Apply runs a provisioner that sleeps 30 s after writing the sleeping process's pid to `pid_file`.

    With `orphan`, the sleep is a background child that ignores SIGTERM: Terraform kills the
    provisioner's shell on interrupt and exits, leaving the sleep behind in its process group.
    """
    pid = shlex.quote(str(pid_file))
    command = f"trap '' TERM; sleep 30 & echo $! > {pid}; wait" if orphan else f"echo $$ > {pid}; exec sleep 30"
    return _write(directory, backend_block(backend_path) + _provisioned("slow", command))


def write_big_plan_config(directory: Path, backend_path: Path | None, megabytes: int = 20) -> Path:
    """A plan whose text output is about `megabytes` MB: one input of that many million digits."""
    value = f'join("", [for i in range({megabytes * 50}) : format("%020000d", i)])'
    return _write(directory, backend_block(backend_path) + f'resource "terraform_data" "big" {{\n  input = {value}\n}}\n')


def _provisioned(name: str, command: str) -> str:
    return (
        f'resource "terraform_data" {hcl_string(name)} {{\n'
        '  provisioner "local-exec" {\n'
        f"    command = {hcl_string(command)}\n"
        "  }\n"
        "}\n"
    )


def _write(directory: Path, text: str) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "main.tf"
    path.write_text(text)
    return path
