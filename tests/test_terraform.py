"""The Terraform adapter against the real terraform binary (only built-in `terraform_data`, no providers)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
import python_terraform
from python_terraform import IsFlagged

from bot.adapters.terraform import RunEnv, Terraform
from bot.models import validate_workspace
from bot.config.workflows import Workflow, load_workflows
from bot.lifecycle.steps import failure_summary, run_apply_steps, run_plan_steps
from tests.support.tf_configs import (
    write_big_plan_config,
    write_config,
    write_failing_apply_config,
    write_slow_apply_config,
    write_syntax_error_config,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def default_workflow() -> Workflow:
    return load_workflows()["default"]


def _plan(tf: Terraform, workdir: Path, plan_file: Path, workspace: str = "default") -> None:
    for result in (tf.init(workdir), tf.select_workspace(workdir, workspace), tf.plan(workdir, plan_file, workspace)):
        assert result.ok, result.output


def _process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for its new parent to reap it counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _wait_until(condition, limit: float = 20.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- environment and setup --------------------------------------------------------------------------

def test_runs_ignore_the_machine_cli_config_and_cli_args(terraform, tf_workdir, tf_state_dir, tmp_path, monkeypatch):
    # This machine points TF_CLI_CONFIG_FILE at a missing file; TF_CLI_ARGS_plan would turn our plan into a destroy.
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "missing.tfrc"))
    monkeypatch.setenv("TF_CLI_ARGS_plan", "-destroy")
    monkeypatch.setenv("TF_WORKSPACE", "elsewhere")
    write_config(tf_workdir, {"a": "one"}, tf_state_dir)

    init = terraform.init(tf_workdir)
    plan = terraform.plan(tf_workdir, tmp_path / "p.tfplan", "default")

    assert init.ok and plan.ok, init.output + plan.output
    assert "Unable to open CLI configuration file" not in init.output + plan.output
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in plan.output
    assert plan.args[1:] == ["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={tmp_path / 'p.tfplan'}"]


def test_cli_config_names_the_plugin_cache(terraform, tf_data_dir):
    text = (tf_data_dir / "terraform" / "cli.tfrc").read_text()
    assert f'plugin_cache_dir = "{tf_data_dir.resolve()}/terraform/plugin-cache"' in text
    assert "plugin_cache_may_break_dependency_lock_file = true" in text
    assert (tf_data_dir / "terraform" / "plugin-cache").is_dir()  # Terraform will not create it


def test_environment_of_a_run(terraform_binary, tf_data_dir, tf_workdir, monkeypatch):
    monkeypatch.setenv("TF_DATA_DIR", "/shared/.terraform")
    monkeypatch.setenv("TF_LOG", "TRACE")  # would pour debug logs, and maybe secrets, into PR comments
    tf = Terraform(terraform_binary, tf_data_dir, 60, extra_env={"AWS_REGION": "eu-west-1", "TF_CLI_ARGS": "-x"})
    result = tf.run_custom(tf_workdir, ["env"])
    env = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert env["TF_CLI_CONFIG_FILE"] == str(tf_data_dir.resolve() / "terraform" / "cli.tfrc")
    assert (env["TF_IN_AUTOMATION"], env["CHECKPOINT_DISABLE"], env["TF_INPUT"]) == ("1", "1", "0")
    assert env["AWS_REGION"] == "eu-west-1"
    assert "TF_CLI_ARGS" not in env and "TF_DATA_DIR" not in env and "TF_LOG" not in env


def test_version(terraform):
    env = {**os.environ, "CHECKPOINT_DISABLE": "1"}
    text = subprocess.run(["terraform", "version"], capture_output=True, text=True, env=env).stdout
    expected = tuple(int(p) for p in re.search(r"Terraform v(\d+)\.(\d+)\.(\d+)", text).groups())
    assert terraform.version() == expected


def test_missing_binary_is_a_result_not_a_crash(tf_data_dir, tf_workdir):
    result = Terraform("/nonexistent/terraform", tf_data_dir, 10).init(tf_workdir)
    assert not result.ok and result.exit_code == 127
    assert "/nonexistent/terraform" in result.output


@pytest.mark.parametrize("name", ["default", "pr-7", "a.b_c", "x" * 90, ".hidden"])
def test_valid_workspace_names(name):
    assert validate_workspace(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "-destroy", "a b", "a/b", "x" * 91, "ü", "a\nb"])
def test_invalid_workspace_names_never_reach_terraform(terraform, tf_workdir, name):
    with pytest.raises(ValueError, match="invalid workspace name"):
        terraform.select_workspace(tf_workdir, name)


# -- the plan pipeline ------------------------------------------------------------------------------

def test_plan_with_changes(terraform, default_workflow, tf_workdir, tf_state_dir, tmp_path):
    write_config(tf_workdir, {"a": "one", "b": "two"}, tf_state_dir)
    outcome = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan")

    assert outcome.ok, outcome.summary
    assert [r.args[1] for r in outcome.steps] == ["init", "workspace", "plan", "show"]
    plan = outcome.steps[2]
    assert plan.exit_code == 2 and plan.has_changes is True and plan.ok  # -detailed-exitcode: 2 is success
    assert outcome.has_changes is True
    assert outcome.summary == "Plan: 2 to add, 0 to change, 0 to destroy."
    assert outcome.resource_changes == [("create", "terraform_data.a"), ("create", "terraform_data.b")]
    assert outcome.plan_json["resource_changes"][0]["address"] == "terraform_data.a"
    assert not list(tf_workdir.glob("*.tfstate")), "state must live outside the checkout"


def test_plan_without_changes(terraform, default_workflow, tf_workdir, tf_state_dir, tmp_path):
    write_config(tf_workdir, 1, tf_state_dir)
    _plan(terraform, tf_workdir, tmp_path / "first.tfplan")
    assert terraform.apply(tf_workdir, tmp_path / "first.tfplan", "default").ok

    outcome = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "second.tfplan")

    assert outcome.ok and outcome.has_changes is False
    assert outcome.steps[2].exit_code == 0
    assert outcome.summary == "No changes. Your infrastructure matches the configuration."
    assert outcome.resource_changes == []


def test_update_and_replace_are_named(terraform, tf_workdir, tf_state_dir, tmp_path):
    (tf_workdir / "extra.tf").write_text('resource "terraform_data" "r" {\n  triggers_replace = "x"\n}\n')
    write_config(tf_workdir, {"u": "old", "gone": "soon"}, tf_state_dir)
    _plan(terraform, tf_workdir, tmp_path / "1.tfplan")
    assert terraform.apply(tf_workdir, tmp_path / "1.tfplan", "default").ok

    (tf_workdir / "extra.tf").write_text('resource "terraform_data" "r" {\n  triggers_replace = "y"\n}\n')
    write_config(tf_workdir, {"u": "new"}, tf_state_dir)
    assert terraform.plan(tf_workdir, tmp_path / "2.tfplan", "default").has_changes
    changes = terraform.show_plan(tf_workdir, tmp_path / "2.tfplan").resource_changes

    assert sorted(changes) == [
        ("destroy", "terraform_data.gone"), ("replace", "terraform_data.r"), ("update", "terraform_data.u"),
    ]


def test_syntax_error_is_reported_verbatim(terraform, default_workflow, tf_workdir, tmp_path):
    write_syntax_error_config(tf_workdir)
    outcome = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan")

    assert not outcome.ok and outcome.failed_step == "init"
    assert len(outcome.steps) == 1  # stopped at the first failing step
    assert outcome.summary == "Error: Invalid expression"
    assert 'on main.tf line 2, in resource "terraform_data" "broken":' in outcome.steps[0].output
    assert not (tmp_path / "p.tfplan").exists()


def test_a_failed_init_or_plan_is_diagnosed_with_files_and_lines(terraform, default_workflow, tf_workdir, tmp_path):
    write_syntax_error_config(tf_workdir)
    (tf_workdir / "outputs.tf").write_text('output "x" {\n  value = terraform_data.nope.id\n}\n')
    broken = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan", diagnose=True)
    assert broken.failed_step == "init"
    assert [(d.severity, d.filename, d.line) for d in broken.diagnostics] == [("error", "main.tf", 2)]
    assert broken.diagnostics[0].summary == "Invalid expression"
    assert len(broken.steps) == 1  # validate is no step of the run log

    (tf_workdir / "main.tf").write_text('resource "terraform_data" "a" {\n  input = var.missing\n}\n')
    undeclared = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan",
                                diagnose=True)
    assert undeclared.failed_step == "plan"
    assert sorted((d.filename, d.line, d.summary) for d in undeclared.diagnostics) == [
        ("main.tf", 2, "Reference to undeclared input variable"),
        ("outputs.tf", 2, "Reference to undeclared resource")]
    assert "missing" in next(d.detail for d in undeclared.diagnostics if d.filename == "main.tf")
    # Only asked for: without `diagnose` (check runs off) no validate runs.
    assert run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan").diagnostics == []


def test_validate_masks_secrets_in_its_json(terraform_binary, tf_data_dir, tf_workdir):
    tf = Terraform(terraform_binary, tf_data_dir, timeout=120, mask_values=["hunter2-secret"])
    (tf_workdir / "main.tf").write_text('resource "terraform_data" "a" {\n  input = var.hunter2-secret\n}\n')
    result = tf.validate(tf_workdir)
    assert result.exit_code == 1 and result.data is not None and result.data["valid"] is False
    assert "hunter2-secret" not in str(result.data) and "***" in str(result.data)


# -- apply ------------------------------------------------------------------------------------------

def test_apply_from_a_plan_file(terraform, default_workflow, tf_workdir, tf_state_dir, tmp_path):
    write_config(tf_workdir, {"a": "one"}, tf_state_dir)
    plan_file = tmp_path / "p.tfplan"
    assert run_plan_steps(terraform, default_workflow, tf_workdir, "default", plan_file).ok

    outcome = run_apply_steps(terraform, default_workflow, tf_workdir, "default", plan_file)

    assert outcome.ok, outcome.summary
    assert outcome.summary == "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
    state = terraform.state_pull(tf_workdir, "default")
    assert [(r["name"], r["instances"][0]["attributes"]["input"]["value"]) for r in state["resources"]] == [("a", "one")]


def test_stale_plan_is_rejected_and_reported(terraform, default_workflow, tf_workdir, tf_state_dir, tmp_path):
    write_config(tf_workdir, {"a": "one"}, tf_state_dir)
    _plan(terraform, tf_workdir, tmp_path / "first.tfplan")
    assert terraform.plan(tf_workdir, tmp_path / "second.tfplan", "default").ok
    assert terraform.apply(tf_workdir, tmp_path / "first.tfplan", "default").ok
    serial = terraform.state_pull(tf_workdir, "default")["serial"]

    outcome = run_apply_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "second.tfplan")

    assert not outcome.ok and outcome.failed_step == "apply"
    assert outcome.summary == "Error: Saved plan is stale"
    assert "the state was changed by\nanother operation after the plan was created" in outcome.steps[-1].output
    assert terraform.state_pull(tf_workdir, "default")["serial"] == serial


def test_apply_time_failure(terraform, default_workflow, tf_workdir, tf_state_dir, tmp_path):
    write_failing_apply_config(tf_workdir, tf_state_dir)
    assert run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan").ok

    outcome = run_apply_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan")

    assert not outcome.ok
    assert outcome.summary == "Error: local-exec provisioner error"
    assert "Error running command 'false': exit status 1" in outcome.steps[-1].output


def test_non_default_workspace_state(terraform, tf_workdir, tf_state_dir, tmp_path):
    write_config(tf_workdir, {"a": "one"}, tf_state_dir)
    _plan(terraform, tf_workdir, tmp_path / "p.tfplan", workspace="pr-7")
    # Another run selects a different workspace in the same checkout between plan and apply:
    # `terraform apply PLANFILE` alone would write to "default"; the adapter pins the plan's workspace.
    assert terraform.select_workspace(tf_workdir, "default").ok
    assert terraform.apply(tf_workdir, tmp_path / "p.tfplan", "pr-7").ok

    assert [r["name"] for r in terraform.state_pull(tf_workdir, "pr-7")["resources"]] == ["a"]
    assert terraform.state_pull(tf_workdir, "default") == {}
    assert (tf_state_dir / "workspaces" / "pr-7" / "terraform.tfstate").is_file()

    # python-terraform's read_state_file reads .terraform/terraform.tfstate (backend settings), not this state.
    legacy = python_terraform.Terraform(working_dir=str(tf_workdir))
    legacy.read_state_file()
    assert "backend" in vars(legacy.tfstate) and "resources" not in vars(legacy.tfstate)


# -- extra arguments from a `plan -- ...` comment ---------------------------------------------------

def test_extra_arguments_reach_terraform_as_argv_items_after_tfbots_own(terraform, default_workflow, tf_workdir,
                                                                         tf_state_dir, tmp_path):
    write_config(tf_workdir, {"a": "one", "b": "two"}, tf_state_dir)
    outcome = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "p.tfplan",
                             extra_args=("-target=terraform_data.a",))

    assert outcome.ok, outcome.summary
    plan = outcome.steps[2]
    assert plan.args[-1] == "-target=terraform_data.a"  # one item, after -out and -detailed-exitcode
    assert plan.args.index(f"-out={tmp_path / 'p.tfplan'}") < len(plan.args) - 1
    assert outcome.resource_changes == [("create", "terraform_data.a")]
    assert outcome.summary == "Plan: 1 to add, 0 to change, 0 to destroy."


def test_a_var_and_a_destroy_change_the_plan(terraform, default_workflow, tf_workdir, tf_state_dir, tmp_path):
    (tf_workdir / "vars.tf").write_text('variable "x" {\n  default = "0"\n}\n'
                                        'resource "terraform_data" "v" {\n  input = var.x\n}\n')
    write_config(tf_workdir, {"a": "one"}, tf_state_dir)
    _plan(terraform, tf_workdir, tmp_path / "first.tfplan")
    assert terraform.apply(tf_workdir, tmp_path / "first.tfplan", "default").ok

    assert run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "same.tfplan").has_changes \
        is False
    changed = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "var.tfplan",
                             extra_args=("-var=x=1",))
    assert changed.ok and changed.resource_changes == [("update", "terraform_data.v")]
    destroy = run_plan_steps(terraform, default_workflow, tf_workdir, "default", tmp_path / "destroy.tfplan",
                             extra_args=("-destroy",))
    assert destroy.ok and destroy.summary == "Plan: 0 to add, 0 to change, 2 to destroy."


@pytest.mark.parametrize("arg", ["-out=/tmp/x", "-chdir=..", "-state=/tmp/s", "-input=true", "-detailed-exitcode",
                                 "-target", "terraform_data.a"])
def test_the_adapter_starts_no_plan_with_an_argument_outside_the_known_options(terraform, tf_workdir, tmp_path, arg):
    with pytest.raises(ValueError, match="not a plan option"):
        terraform.plan(tf_workdir, tmp_path / "p.tfplan", "default", extra_args=("-target=a", arg))
    assert not (tmp_path / "p.tfplan").exists()


def test_a_var_file_that_a_symlink_leads_outside_the_checkout_is_never_read(terraform, default_workflow, tmp_path):
    checkout = tmp_path / "checkout"
    workdir = checkout / "network"
    workdir.mkdir(parents=True)
    (workdir / "main.tf").write_text('variable "x" {}\nresource "terraform_data" "v" {\n  input = var.x\n}\n')
    secret = tmp_path / "secret.tfvars"
    secret.write_text('x = "outside"\n')
    (workdir / "inside.tfvars").write_text('x = "inside"\n')
    (checkout / "shared.tfvars").write_text('x = "shared"\n')
    (workdir / "link.tfvars").symlink_to(secret)
    (workdir / "ok.tfvars").symlink_to(checkout / "shared.tfvars")

    refused = run_plan_steps(terraform, default_workflow, workdir, "default", tmp_path / "p.tfplan",
                             extra_args=("-var-file=inside.tfvars", "-var-file=link.tfvars"), root=checkout)
    assert not refused.ok and refused.failed_step == "plan"
    assert refused.summary == ("Error: -var-file 'link.tfvars' leads outside the repository's working copy (through a "
                               "symlink or `..`): tfbot did not start the plan.")
    assert refused.steps[-1].duration == 0.0 and not (tmp_path / "p.tfplan").exists()
    # Without the working copy named, the project's directory is the bound: `../shared.tfvars` leaves it.
    assert not run_plan_steps(terraform, default_workflow, workdir, "default", tmp_path / "p.tfplan",
                              extra_args=("-var-file=../shared.tfvars",)).ok

    for var_file, value in (("ok.tfvars", "shared"), ("../shared.tfvars", "shared"), ("inside.tfvars", "inside")):
        outcome = run_plan_steps(terraform, default_workflow, workdir, "default", tmp_path / "p.tfplan",
                                 extra_args=(f"-var-file={var_file}",), root=checkout)
        assert outcome.ok, outcome.summary
        assert outcome.plan_json["resource_changes"][0]["change"]["after"]["input"] == value


def test_extra_arguments_need_a_built_in_plan_step():
    from bot.config.workflows import Step, WorkflowError

    custom = Workflow("custom", (Step("init"), Step("run", ("make", "plan"))), (Step("apply"),))
    with pytest.raises(WorkflowError, match="no built-in plan step"):
        run_plan_steps(None, custom, Path("."), "default", Path("p.tfplan"), extra_args=("-target=a",))  # type: ignore[arg-type]


# -- python-terraform 0.10.1 quirks the adapter works around -----------------------------------------

# python-terraform logs failures with the deprecated Logger.warn.
python_terraform_quirk = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")


@pytest.fixture
def legacy(terraform, tf_workdir, tf_state_dir, monkeypatch) -> python_terraform.Terraform:
    """python-terraform's own runner on an initialised config with one resource to create."""
    write_config(tf_workdir, {"a": "one"}, tf_state_dir)
    assert terraform.init(tf_workdir).ok
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(terraform.cli_config_file))  # it can only pass os.environ
    return python_terraform.Terraform(working_dir=str(tf_workdir))


@python_terraform_quirk
def test_python_terraform_plan_exits_2_on_changes(legacy):
    code, out, err = legacy.plan(no_color=IsFlagged)
    assert code == 2 and "Plan: 1 to add" in out  # -detailed-exitcode by default: not a failure


@python_terraform_quirk
def test_python_terraform_destroy_passes_force(legacy):
    code, out, err = legacy.destroy()
    assert code == 1 and "flag provided but not defined: -force" in err


@python_terraform_quirk
def test_python_terraform_plan_with_directory_argument(legacy, tf_workdir):
    code, out, err = legacy.plan(str(tf_workdir), no_color=IsFlagged)
    assert code == 1 and "Too many command line arguments" in err


@python_terraform_quirk
def test_python_terraform_synchronous_false_reaches_terraform(legacy):
    proc, out, err = legacy.plan(no_color=IsFlagged, synchronous=False)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and b"flag provided but not defined: -synchronous" in stderr


# -- timeouts ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("orphan", [False, True], ids=["provisioner", "orphan-ignoring-sigterm"])
def test_timeout_stops_the_whole_process_group(terraform_binary, tf_data_dir, tf_workdir, tf_state_dir, tmp_path, orphan):
    pid_file = tmp_path / "provisioner.pid"
    write_slow_apply_config(tf_workdir, tf_state_dir, pid_file, orphan=orphan)
    _plan(Terraform(terraform_binary, tf_data_dir, 120), tf_workdir, tmp_path / "p.tfplan")
    tf = Terraform(terraform_binary, tf_data_dir, timeout=2, kill_grace=1)

    result = tf.apply(tf_workdir, tmp_path / "p.tfplan", "default")

    assert result.timed_out and not result.ok
    assert "Gracefully shutting down..." in result.output  # SIGTERM first: Terraform gets to save its state
    pid = int(pid_file.read_text())  # `sleep 30`, a grandchild of ours
    assert _wait_until(lambda: _process_gone(pid)), f"provisioner process {pid} survived the timeout"
    how = "SIGTERM, then SIGKILL for the processes it left behind" if orphan else "SIGTERM"
    assert f"[tfbot] terraform apply timed out after 2 s; its process group was stopped with {how}.\n" in result.output
    assert failure_summary(result).startswith("[tfbot] terraform apply timed out after 2 s")


def test_sigkill_after_the_grace_period(terraform_binary, tf_data_dir, tf_workdir, tmp_path):
    tf = Terraform(terraform_binary, tf_data_dir, timeout=1, kill_grace=1)
    pid_file = tmp_path / "pid"
    # Both the shell and its sleep ignore SIGTERM; the shell waits for the sleep.
    result = tf.run_custom(tf_workdir, ["sh", "-c", f"trap '' TERM; sleep 30 & echo $! > {pid_file}; wait"])

    assert result.timed_out and result.exit_code == -9
    assert "its process group was stopped with SIGTERM, then SIGKILL after 1 s." in result.output
    # SIGKILL is delivered asynchronously: on a loaded machine the process may take a moment to die.
    assert _wait_until(lambda: _process_gone(int(pid_file.read_text())), limit=5)


@pytest.mark.parametrize("holds_output", [False, True], ids=["detached", "holding-the-output-pipe"])
def test_processes_left_behind_are_killed(terraform, tf_workdir, tmp_path, holds_output):
    terraform.drain_after_exit = 0.5
    pid_file = tmp_path / "pid"
    redirect = "" if holds_output else " >/dev/null 2>&1"
    result = terraform.run_custom(tf_workdir, ["sh", "-c", f"sleep 30{redirect} & echo $! > {pid_file}; echo done"])

    assert result.ok and not result.timed_out
    assert result.output == "done\n\n[tfbot] sh left processes running in its process group; they were killed.\n"
    assert _wait_until(lambda: _process_gone(int(pid_file.read_text())))


# -- the shared plugin cache ------------------------------------------------------------------------

def test_concurrent_inits_take_turns(terraform_binary, tf_data_dir, tmp_path):
    # A wrapper logs when each init starts and ends; a pause widens the window two unguarded inits would share.
    log = tmp_path / "init.log"
    wrapper = tmp_path / "terraform-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = init ]; then echo "start $$" >> {log}; sleep 0.3; "{terraform_binary}" "$@"; rc=$?; '
        f'echo "end $$" >> {log}; exit $rc; fi\n'
        f'exec "{terraform_binary}" "$@"\n'
    )
    wrapper.chmod(0o755)
    dirs = [tmp_path / f"project{i}" for i in range(4)]
    for i, d in enumerate(dirs):
        write_config(d, {f"r{i}": "x"}, tmp_path / f"state{i}")
    # One adapter per worker: each opens the lock file itself, as separate processes would.
    results: dict[int, object] = {}
    threads = [
        threading.Thread(target=lambda i=i, d=d: results.__setitem__(i, Terraform(str(wrapper), tf_data_dir, 120).init(d)))
        for i, d in enumerate(dirs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert all(results[i].ok for i in range(4)), [results[i].output for i in range(4)]
    events = [line.split() for line in log.read_text().splitlines()]
    assert len(events) == 8
    for start, end in zip(events[::2], events[1::2], strict=True):
        assert start[0] == "start" and end == ["end", start[1]], f"inits overlapped: {events}"


# -- output: masking and bounded memory -------------------------------------------------------------

def test_masking_of_configured_values(terraform_binary, tf_data_dir, tf_workdir, tf_state_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_TOKEN", "tok-0123456789")
    tf = Terraform(terraform_binary, tf_data_dir, 120, mask_values=["hunter2-secret"], mask_env=["DEPLOY_TOKEN"])
    write_config(tf_workdir, {"a": "hunter2-secret", "b": "tok-0123456789"}, tf_state_dir)
    _plan(tf, tf_workdir, tmp_path / "p.tfplan")

    plan = tf.plan(tf_workdir, tmp_path / "p.tfplan", "default")
    show = tf.show_plan(tf_workdir, tmp_path / "p.tfplan")
    # tfbot's environment is never inherited: the run's own env (the project's config) passes it on.
    echo = tf.run_custom(tf_workdir, ["printenv", "DEPLOY_TOKEN"], run=RunEnv({"DEPLOY_TOKEN": "tok-0123456789"}))

    assert 'input  = "***"' in plan.output
    for text in (plan.output, repr(show.data), echo.output):
        assert "hunter2-secret" not in text and "tok-0123456789" not in text
    assert echo.output == "***\n"


def test_masking_survives_truncation_at_a_secret(terraform_binary, tf_data_dir, tf_workdir):
    tf = Terraform(terraform_binary, tf_data_dir, 60, mask_values=["SECRETVALUE"], output_head_bytes=100, output_tail_bytes=100)
    # The secret straddles the end of the kept head, and again the start of the kept tail.
    script = "import sys; sys.stdout.write('h' * 95 + 'SECRETVALUE' + 'm' * 1000 + 'SECRETVALUE' + 't' * 95)"
    result = tf.run_custom(tf_workdir, [sys.executable, "-c", script])

    assert result.ok and result.omitted_bytes > 1000
    assert "SECR" not in result.output and "ALUE" not in result.output
    # What could hold a cut secret (its length - 1 bytes at each side of the gap) is dropped too.
    assert result.output.startswith("h" * 90 + "\n\n[...") and result.output.endswith("]\n\n" + "t" * 90)
    assert f"[... tfbot: {result.omitted_bytes} bytes of output omitted ...]" in result.output


def test_a_20_mb_plan_is_read_in_bounded_memory(terraform, tf_workdir, tf_state_dir, tmp_path):
    write_big_plan_config(tf_workdir, tf_state_dir, megabytes=20)
    assert terraform.init(tf_workdir).ok

    tracemalloc.start()
    try:
        plan = terraform.plan(tf_workdir, tmp_path / "big.tfplan", "default")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert plan.ok and plan.has_changes
    assert plan.omitted_bytes > 19_000_000
    assert peak < 4_000_000, f"peak {peak} bytes while reading a 20 MB output"
    assert plan.output.startswith("\nTerraform used the selected providers")
    assert plan.output.rstrip().endswith("Plan: 1 to add, 0 to change, 0 to destroy.")
    assert len(plan.output) < 600_000

    show = terraform.show_plan(tf_workdir, tmp_path / "big.tfplan")
    assert show.ok and show.resource_changes == [("create", "terraform_data.big")]
    assert show.data is None  # 40 MB of JSON is over max_json_bytes: not loaded
