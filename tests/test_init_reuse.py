"""Terraform work a run need not do, with the real binary: `init` of a working copy whose Terraform files and
dependency lock file are those the last init saw (bot/adapters/init_stamp.py), and `workspace select default` where
`default` is selected."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from bot.adapters import init_stamp
from tests.support.tf_configs import backend_block

RESOURCE = 'resource "terraform_data" "vpc" {\n  input = "%s"\n}\n'
SKIPPED = "[tfbot] init skipped"


def copy_with_project(tmp_path: Path, state: Path, value: str = "10.0.0.0/16") -> tuple[Path, Path]:
    """A working copy holding the project `network/` (its state outside the copy) and a local module."""
    copy = tmp_path / "work" / "network_default"
    (copy / "modules" / "tags").mkdir(parents=True)
    (copy / "modules" / "tags" / "main.tf").write_text('output "tags" {\n  value = {}\n}\n')
    project = copy / "network"
    project.mkdir()
    (project / "main.tf").write_text(backend_block(state) + RESOURCE % value
                                     + 'module "tags" {\n  source = "../modules/tags"\n}\n')
    return copy, project


def test_init_runs_once_then_is_skipped_until_what_it_reads_changes(terraform, tmp_path, tf_state_dir):
    copy, project = copy_with_project(tmp_path, tf_state_dir)
    first = terraform.init(project, copy_root=copy)
    assert first.ok and SKIPPED not in first.output and (project / ".terraform" / "modules").is_dir(), first.output
    again = terraform.init(project, copy_root=copy)
    assert again.ok and SKIPPED in again.output and again.duration == 0.0
    # The plan after a skipped init is Terraform's own: the backend and the module are there.
    plan = terraform.plan(project, tmp_path / "run" / "plan.tfplan", "default")
    assert plan.ok and plan.has_changes, plan.output

    # Any Terraform file of the copy: here the module's, where a new module call would need installing.
    (copy / "modules" / "tags" / "main.tf").write_text('output "tags" {\n  value = { team = "net" }\n}\n')
    assert SKIPPED not in terraform.init(project, copy_root=copy).output
    assert SKIPPED in terraform.init(project, copy_root=copy).output
    # A dependency lock file that appears, changes or goes (a reset copy drops an untracked one init wrote).
    (project / ".terraform.lock.hcl").write_text("# This file is maintained automatically by \"terraform init\".\n")
    assert SKIPPED not in terraform.init(project, copy_root=copy).output
    (project / ".terraform.lock.hcl").unlink()
    assert SKIPPED not in terraform.init(project, copy_root=copy).output
    # `.terraform` removed, or made a symlink by PR code: init again.
    assert SKIPPED in terraform.init(project, copy_root=copy).output
    shutil.rmtree(project / ".terraform")
    assert SKIPPED not in terraform.init(project, copy_root=copy).output


def test_the_stamp_is_outside_the_copy_and_a_failed_init_leaves_none(terraform, tmp_path, tf_state_dir):
    copy, project = copy_with_project(tmp_path, tf_state_dir)
    stamp = init_stamp.stamp_path(copy, project)
    assert copy not in stamp.parents  # runs write only inside the copy: PR code cannot forge a stamp
    assert terraform.init(project, copy_root=copy).ok and stamp.exists()
    (project / "main.tf").write_text('terraform {\n  backend "nowhere" {}\n}\n')
    failed = terraform.init(project, copy_root=copy)
    assert not failed.ok and not stamp.exists()
    assert SKIPPED not in terraform.init(project, copy_root=copy).output


def test_a_symlink_in_the_copy_counts_by_its_target_name_and_is_never_followed(tmp_path, tf_state_dir):
    copy, project = copy_with_project(tmp_path, tf_state_dir)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (project / "extra.tf").symlink_to(fifo)  # reading it would block forever
    before = init_stamp.fingerprint(copy, ["terraform", "init"])
    (project / "extra.tf").unlink()
    (project / "extra.tf").symlink_to(tmp_path / "elsewhere.tf")
    assert init_stamp.fingerprint(copy, ["terraform", "init"]) != before
    assert init_stamp.fingerprint(copy, ["terraform", "init", "-upgrade"]) != init_stamp.fingerprint(
        copy, ["terraform", "init"])


def test_without_the_copy_init_always_runs(terraform, tmp_path, tf_state_dir):
    _, project = copy_with_project(tmp_path, tf_state_dir)
    assert SKIPPED not in terraform.init(project).output
    assert SKIPPED not in terraform.init(project).output


def test_default_is_not_selected_again_but_another_workspace_is(terraform, tmp_path, tf_state_dir):
    copy, project = copy_with_project(tmp_path, tf_state_dir)
    assert terraform.init(project, copy_root=copy).ok
    skipped = terraform.select_workspace(project, "default")
    assert skipped.ok and "skipped" in skipped.output and skipped.duration == 0.0
    staging = terraform.select_workspace(project, "staging")
    assert staging.ok and "skipped" not in staging.output, staging.output
    assert (project / ".terraform" / "environment").read_text().strip() == "staging"
    # `staging` is selected now: `default` must really be selected again (a `run` step's terraform reads the file).
    back = terraform.select_workspace(project, "default")
    assert back.ok and "skipped" not in back.output, back.output
    assert terraform.select_workspace(project, "default").duration == 0.0
    # A file PR code could have made anything: a symlink is never trusted to say `default`.
    environment = project / ".terraform" / "environment"
    environment.unlink(missing_ok=True)
    (tmp_path / "says-default").write_text("default")
    environment.symlink_to(tmp_path / "says-default")
    assert "skipped" not in terraform.select_workspace(project, "default").output
