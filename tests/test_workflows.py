"""Workflow files, their validation, the pipelines' step order, and reading Terraform's summaries."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.adapters.terraform import TerraformResult, action_name, read_resource_changes
from bot.config.workflows import Step, Workflow, WorkflowError, load_workflows
from bot.lifecycle.steps import apply_summary, failure_summary, plan_summary, run_apply_steps, run_plan_steps
from tests.support.tf_configs import write_config

ROOT = Path(__file__).resolve().parent.parent


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


# -- loading ----------------------------------------------------------------------------------------

def test_the_default_workflow():
    workflows = load_workflows()
    default = workflows["default"]
    assert [s.name for s in default.plan_steps] == ["init", "workspace", "plan", "show"]
    assert [s.name for s in default.apply_steps] == ["init", "apply"]


def test_run_steps_are_argv_lists(tmp_path):
    _write(tmp_path, "lint.yaml", 'plan:\n  steps: [init, {run: ["make", "lint"]}, plan]\napply:\n  steps: [apply]\n')
    workflow = load_workflows(tmp_path)["lint"]
    assert workflow.plan_steps == (Step("init"), Step("run", ("make", "lint")), Step("plan"))
    assert str(workflow.plan_steps[1]) == "run ['make', 'lint']"


def test_yml_files_and_several_workflows(tmp_path):
    _write(tmp_path, "a.yaml", "plan: {steps: [plan]}\napply: {steps: [apply]}\n")
    _write(tmp_path, "b.yml", "plan: {steps: [plan, show]}\napply: {steps: [init, workspace, apply]}\n")
    _write(tmp_path, "notes.txt", "not a workflow")
    assert sorted(load_workflows(tmp_path)) == ["a", "b", "default"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("plan: {steps: [plan]}\napply: {steps: [apply]}\nhooks: {}\n", "unknown key 'hooks' (expected: apply, plan)"),
        ("plan: {steps: [init, validate, plan]}\napply: {steps: [apply]}\n", "plan.steps[1]: unknown step 'validate'"),
        ("plan: {steps: [plan]}\napply: {steps: [plan, apply]}\n", "apply.steps[0]: unknown step 'plan'"),
        ("plan: {steps: [init, workspace]}\napply: {steps: [apply]}\n", "plan.steps: the 'plan' step is required"),
        ("plan: {steps: [plan]}\napply: {steps: [init]}\n", "apply.steps: the 'apply' step is required"),
        ("plan: {steps: [show, plan]}\napply: {steps: [apply]}\n", "'show' reads the saved plan, so it must come after 'plan'"),
        ("plan: {steps: [plan, plan]}\napply: {steps: [apply]}\n", "step 'plan' appears more than once"),
        ("plan: {steps: []}\napply: {steps: [apply]}\n", "plan.steps: expected a non-empty list of steps"),
        ("plan: [init, plan]\napply: {steps: [apply]}\n", "plan: expected a mapping with one key, 'steps'"),
        ("plan: {steps: [plan]}\n", "apply: expected a mapping with one key, 'steps'"),
        ("plan: {steps: [plan, {run: make lint}]}\napply: {steps: [apply]}\n", "plan.steps[1].run: expected a non-empty list"),
        ("plan: {steps: [plan, {run: [make, 3]}]}\napply: {steps: [apply]}\n", "plan.steps[1].run: expected a non-empty list"),
        ("plan: {steps: [plan, {exec: [make]}]}\napply: {steps: [apply]}\n", "plan.steps[1]: unknown step 'exec'"),
        ("- plan\n- apply\n", "a workflow is a mapping with keys 'plan' and 'apply'"),
        ("plan: {steps: [plan\n", "cannot read workflow"),
    ],
)
def test_invalid_workflows_name_the_file_and_the_key(tmp_path, text, message):
    path = _write(tmp_path, "custom.yaml", text)
    with pytest.raises(WorkflowError) as info:
        load_workflows(tmp_path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_bad_workflow_file_name(tmp_path):
    _write(tmp_path, "my workflow.yaml", "plan: {steps: [plan]}\napply: {steps: [apply]}\n")
    with pytest.raises(WorkflowError, match="workflow name 'my workflow'"):
        load_workflows(tmp_path)


def test_missing_directory(tmp_path):
    with pytest.raises(WorkflowError, match="workflows directory not found"):
        load_workflows(tmp_path / "nope")


# -- reading Terraform's output ---------------------------------------------------------------------

PLAN_OUTPUT = """
Terraform will perform the following actions:

  # terraform_data.a will be created
  + resource "terraform_data" "a" {
      + input  = "one"
    }

Plan: 1 to add, 0 to change, 0 to destroy.

Warning: Some objects will no longer be managed by Terraform
"""

NO_CHANGES = """
terraform_data.a: Refreshing state... [id=5ddeeca0]

No changes. Your infrastructure matches the configuration.

Terraform has compared your real infrastructure against your configuration
and found no differences, so no changes are needed.
"""

OUTPUTS_ONLY = """
Changes to Outputs:
  + x = "hello"

You can apply this plan to save these new output values to the Terraform
state, without changing any real infrastructure.
"""


@pytest.mark.parametrize(
    "output, summary",
    [
        (PLAN_OUTPUT, "Plan: 1 to add, 0 to change, 0 to destroy."),
        (NO_CHANGES, "No changes. Your infrastructure matches the configuration."),
        (OUTPUTS_ONLY, "You can apply this plan to save these new output values to the Terraform state, "
                       "without changing any real infrastructure."),
        ("Plan: 0 to add, 0 to change, 0 to destroy, 2 to import.\n", "Plan: 0 to add, 0 to change, 0 to destroy, 2 to import."),
        ("something else entirely\n", ""),
    ],
)
def test_plan_summary(output, summary):
    assert plan_summary(output) == summary


def test_apply_summary():
    output = "terraform_data.a: Creating...\n\nApply complete! Resources: 1 added, 0 changed, 0 destroyed.\n\nOutputs:\n"
    assert apply_summary(output) == "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
    assert apply_summary("Error: Saved plan is stale\n") == ""


def _result(output: str, exit_code: int = 1, timed_out: bool = False, args=("terraform", "plan")) -> TerraformResult:
    return TerraformResult(list(args), exit_code, output, 0.1, timed_out)


def test_failure_summary():
    init = "Initializing the backend...\n\nError: Terraform encountered problems during initialisation, including problems\n" \
           "with the configuration, described below.\n\nError: Invalid expression\n\n  on main.tf line 2\n"
    assert failure_summary(_result(init)) == "Error: Invalid expression"
    assert failure_summary(_result("\nError: Saved plan is stale\n\nThe given plan file")) == "Error: Saved plan is stale"
    timed_out = "Error: execution halted\n\n[tfbot] terraform apply timed out after 2 s; its process group was stopped.\n"
    assert failure_summary(_result(timed_out, -15, True)).startswith("[tfbot] terraform apply timed out after 2 s")
    assert failure_summary(_result("", 3, args=("/usr/bin/make", "lint"))) == "make failed with exit code 3"


@pytest.mark.parametrize(
    "actions, name",
    [
        (["create"], "create"), (["update"], "update"), (["delete"], "destroy"),
        (["delete", "create"], "replace"), (["create", "delete"], "replace"),
        (["read"], "read"), (["no-op"], "no-op"), (["forget"], "forget"),
    ],
)
def test_action_names(actions, name):
    assert action_name(actions) == name


def test_read_resource_changes_streams_the_plan_json():
    plan = {
        "format_version": "1.2",
        "planned_values": {"root_module": {"resources": [{"address": "ignored"}]}},
        "resource_changes": [
            {"address": "terraform_data.a", "change": {"actions": ["create"], "after": {"input": "x"}}},
            {"address": "terraform_data.b", "change": {"actions": ["no-op"]}},
            {"address": "module.m.terraform_data.c[0]", "change": {"actions": ["delete", "create"]}},
            {"address": "terraform_data.d", "deposed": "00000001", "change": {"actions": ["delete"]}},
        ],
        "configuration": {"root_module": {}},
    }
    changes = read_resource_changes(io.BytesIO(json.dumps(plan).encode()))
    assert changes == [
        ("create", "terraform_data.a"),
        ("replace", "module.m.terraform_data.c[0]"),
        ("destroy", "terraform_data.d (deposed object 00000001)"),
    ]


# -- running pipelines (real terraform and real processes) ------------------------------------------

def test_run_steps_see_the_workspace_and_plan_file(terraform, tf_workdir, tf_state_dir, tmp_path):
    write_config(tf_workdir, 1, tf_state_dir)
    workflow = Workflow(
        "custom",
        (Step("init"), Step("plan"), Step("run", ("sh", "-c", 'echo "ws=$WORKSPACE plan=$PLANFILE"'))),
        (Step("run", ("true",)), Step("apply")),
    )
    plan_file = tmp_path / "p.tfplan"
    outcome = run_plan_steps(terraform, workflow, tf_workdir, "pr-3", plan_file)

    assert outcome.ok and outcome.has_changes
    assert outcome.steps[2].output == f"ws=pr-3 plan={plan_file}\n"
    assert outcome.summary == "Plan: 1 to add, 0 to change, 0 to destroy."
    assert outcome.resource_changes == [] and outcome.plan_json is None  # no show step

    applied = run_apply_steps(terraform, workflow, tf_workdir, "pr-3", plan_file)
    assert applied.ok and applied.summary == "Apply complete! Resources: 1 added, 0 changed, 0 destroyed."
    assert [r["name"] for r in terraform.state_pull(tf_workdir, "pr-3")["resources"]] == ["r0"]


def test_a_failing_step_stops_the_pipeline(terraform, tf_workdir, tf_state_dir, tmp_path):
    write_config(tf_workdir, 1, tf_state_dir)
    workflow = Workflow("custom", (Step("init"), Step("run", ("false",)), Step("plan")), (Step("apply"),))

    outcome = run_plan_steps(terraform, workflow, tf_workdir, "default", tmp_path / "p.tfplan")

    assert not outcome.ok and outcome.failed_step == "run ['false']"
    assert len(outcome.steps) == 2
    assert outcome.summary == "false failed with exit code 1"
    assert not (tmp_path / "p.tfplan").exists()
