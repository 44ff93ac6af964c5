"""Running a workflow's steps over the Terraform adapter, and reading what Terraform printed (pure)."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.adapters.terraform import NO_RUN_ENV, RunEnv, Terraform, TerraformResult
from bot.config.workflows import Step, Workflow, WorkflowError
from bot.models import Diagnostic

_PLAN_LINE = re.compile(r"^Plan: \d+ to add\b.*$", re.MULTILINE)
_NO_CHANGES = re.compile(r"^No changes\..*$", re.MULTILINE)
_APPLY_LINE = re.compile(r"^Apply complete! Resources: .*$", re.MULTILINE)
_ERROR_LINE = re.compile(r"^Error: .*$", re.MULTILINE)
_TIMEOUT_LINE = re.compile(r"^\[tfbot\].*timed out.*$", re.MULTILINE)
_OUTPUTS_ONLY = "You can apply this plan to save these new output values"
_INIT_PREAMBLE = "Error: Terraform encountered problems during initialisation"
# A failure of these steps may be the configuration's: `terraform validate` then names the files and lines.
_DIAGNOSED_STEPS = frozenset({"init", "plan"})
# Diagnostics kept of one run, and characters of each text: PR code writes them, Redis keeps them.
MAX_DIAGNOSTICS = 100
MAX_DIAGNOSTIC_TEXT = 4000


@dataclass
class PlanOutcome:
    ok: bool
    steps: list[TerraformResult]
    summary: str
    plan_json: dict[str, Any] | None = None
    resource_changes: list[tuple[str, str]] = field(default_factory=list)
    has_changes: bool | None = None
    failed_step: str | None = None
    plan_output: str = ""
    binary: str = ""  # what ran it, as the PR reads it: `Terraform 1.0.3`
    diagnostics: list[Diagnostic] = field(default_factory=list)  # of a failed `init` or `plan`, when diagnosed


@dataclass
class ApplyOutcome:
    ok: bool
    steps: list[TerraformResult]
    summary: str
    failed_step: str | None = None
    apply_output: str = ""
    binary: str = ""


# -- running --------------------------------------------------------------------------------------

def run_plan_steps(tf: Terraform, workflow: Workflow, workdir: Path, workspace: str, plan_file: Path,
                   before_step: Callable[[str], None] | None = None, run_env: RunEnv = NO_RUN_ENV,
                   extra_args: Sequence[str] = (), root: Path | None = None,
                   diagnose: bool = False) -> PlanOutcome:
    """Run the plan pipeline, stopping at the first failing step.

    `before_step(step)` runs before every step and may raise to stop the run (a lost run guard). Every step
    gets `run_env` (the project's env and the plan credentials); one with an `error` fails its first step.
    `extra_args` (checked against the repository's allowlist) go to the built-in `plan` step, which fails without
    starting Terraform when a `-var-file` among them leads outside `root` (the working copy; default `workdir`)
    once symlinks are resolved. Raises WorkflowError for extra arguments and a workflow with no `plan` step.
    With `diagnose`, a failed `init` or `plan` is followed by `terraform validate -json` (same environment), whose
    diagnostics with a file and line become `diagnostics`; it is not a step of the run log.
    """
    if extra_args and not any(step.name == "plan" for step in workflow.plan_steps):
        raise WorkflowError(f"workflow {workflow.name!r} has no built-in plan step to pass extra arguments to")
    inputs = _PlanInputs(tuple(extra_args), root or workdir, root)
    results, failed = _run_steps(tf, workflow.plan_steps, workdir, workspace, plan_file, before_step, run_env, inputs)
    diagnostics: list[Diagnostic] = []
    if diagnose and failed in _DIAGNOSED_STEPS:
        diagnostics = read_diagnostics(tf.validate(workdir, run=run_env).data)
    by_step = {s.name: r for s, r in zip(workflow.plan_steps[: len(results)], results, strict=True)}
    plan, show = by_step.get("plan"), by_step.get("show")
    if failed is not None:
        summary = failure_summary(results[-1])
    else:
        summary = plan_summary(plan.output) if plan else ""
    return PlanOutcome(
        ok=failed is None,
        steps=results,
        summary=summary,
        plan_json=show.data if show and show.ok else None,
        resource_changes=list(show.resource_changes) if show and show.ok else [],
        has_changes=plan.has_changes if plan else None,
        failed_step=failed,
        plan_output=plan.output if plan else "",
        diagnostics=diagnostics,
    )


def run_apply_steps(tf: Terraform, workflow: Workflow, workdir: Path, workspace: str, plan_file: Path,
                    before_step: Callable[[str], None] | None = None, run_env: RunEnv = NO_RUN_ENV,
                    root: Path | None = None) -> ApplyOutcome:
    """Run the apply pipeline over a saved plan, stopping at the first failing step (see run_plan_steps; `root`, the
    working copy, lets an init that would change nothing be skipped)."""
    results, failed = _run_steps(tf, workflow.apply_steps, workdir, workspace, plan_file, before_step, run_env,
                                 _PlanInputs(copy_root=root))
    apply = {s.name: r for s, r in zip(workflow.apply_steps[: len(results)], results, strict=True)}.get("apply")
    summary = failure_summary(results[-1]) if failed is not None else apply_summary(apply.output if apply else "")
    return ApplyOutcome(failed is None, results, summary, failed, apply.output if apply else "")


@dataclass(frozen=True)
class _PlanInputs:
    """What the built-in `plan` step adds to tfbot's own options: a comment's extra arguments, and the working copy
    their `-var-file`s must stay in."""

    extra_args: tuple[str, ...] = ()
    root: Path | None = None
    copy_root: Path | None = None  # the working copy, when the caller named it: init may be skipped there


def _run_steps(
    tf: Terraform, steps: Sequence[Step], workdir: Path, workspace: str, plan_file: Path,
    before_step: Callable[[str], None] | None = None, run_env: RunEnv = NO_RUN_ENV,
    inputs: _PlanInputs = _PlanInputs(),
) -> tuple[list[TerraformResult], str | None]:
    results: list[TerraformResult] = []
    for step in steps:
        if before_step is not None:
            before_step(str(step))
        result = _run_step(tf, step, workdir, workspace, plan_file, run_env, inputs)
        results.append(result)
        if not result.ok:
            return results, str(step)
    return results, None


def _run_step(tf: Terraform, step: Step, workdir: Path, workspace: str, plan_file: Path,
              run: RunEnv, inputs: _PlanInputs) -> TerraformResult:
    if step.name == "init":
        # With the working copy known, an init that would change nothing is skipped (bot/adapters/init_stamp.py).
        return tf.init(workdir, run=run, copy_root=inputs.copy_root)
    if step.name == "workspace":
        return tf.select_workspace(workdir, workspace, run=run)
    if step.name == "plan":
        # Checked here, right before Terraform reads the files: the steps before it (init, `run` steps) run PR code
        # that may have made a symlink since checkout.
        outside = var_file_outside(workdir, inputs.root or workdir, inputs.extra_args)
        if outside:
            return TerraformResult(["terraform", "plan", *inputs.extra_args], 1, f"Error: {outside}\n", 0.0)
        return tf.plan(workdir, plan_file, workspace, run=run, extra_args=inputs.extra_args)
    if step.name == "show":
        return tf.show_plan(workdir, plan_file, run=run)
    if step.name == "apply":
        return tf.apply(workdir, plan_file, workspace, run=run)
    if step.name == "run":
        return tf.run_custom(workdir, step.argv, env={"WORKSPACE": workspace, "PLANFILE": str(plan_file)}, run=run,
                             writable=(plan_file.parent,))
    raise WorkflowError(f"unknown step {step.name!r}")  # load_workflow never lets one through


def var_file_outside(workdir: Path, root: Path, extra_args: Sequence[str]) -> str:
    """Why a `-var-file` of `extra_args` may not be read: it resolves (symlinks followed, relative to `workdir`)
    outside `root`, the run's working copy; "" when none does. Terraform prints pieces of a variables file it cannot
    parse, so a file outside the checkout could end up on the PR."""
    base = root.resolve()
    for arg in extra_args:
        name, _, path = arg.partition("=")
        if name != "-var-file":
            continue
        try:
            real = (workdir / path).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return f"-var-file {path!r} cannot be resolved (a symlink loop?): tfbot did not start the plan."
        if real != base and base not in real.parents:
            return (f"-var-file {path!r} leads outside the repository's working copy (through a symlink or `..`): "
                    "tfbot did not start the plan.")
    return ""


# -- reading Terraform's output (pure) --------------------------------------------------------------

def plan_summary(output: str) -> str:
    """Terraform's own summary line of a successful plan, verbatim; "" if it printed none."""
    for pattern in (_PLAN_LINE, _NO_CHANGES):
        match = pattern.search(output)
        if match:
            return match.group(0).strip()
    start = output.find(_OUTPUTS_ONLY)
    if start >= 0:
        # Terraform wraps this sentence over two lines; the paragraph ends at a blank line.
        paragraph = output[start:].split("\n\n", 1)[0]
        return " ".join(paragraph.split())
    return ""


def apply_summary(output: str) -> str:
    """Terraform's `Apply complete! ...` line, verbatim; "" if it printed none."""
    match = _APPLY_LINE.search(output)
    return match.group(0).strip() if match else ""


def failure_summary(result: TerraformResult) -> str:
    """One line saying why a step failed: our timeout note, Terraform's first `Error:` line, or the exit code."""
    if result.timed_out:
        match = _TIMEOUT_LINE.search(result.output)
        if match:
            return match.group(0).strip()
    errors: list[str] = [e.strip() for e in _ERROR_LINE.findall(result.output) if not e.startswith(_INIT_PREAMBLE)]
    if errors:
        return errors[0]
    return f"{result.command} failed with exit code {result.exit_code}"


def read_diagnostics(data: dict[str, Any] | None) -> list[Diagnostic]:
    """The diagnostics of `terraform validate -json` output that name a file and line, texts bounded; [] for None."""
    found: list[Diagnostic] = []
    for item in (data or {}).get("diagnostics") or []:
        if not isinstance(item, dict):
            continue
        where = _mapping(item.get("range"))
        start, end = _mapping(where.get("start")), _mapping(where.get("end"))
        line, end_line, filename = start.get("line"), end.get("line"), where.get("filename")
        if not isinstance(filename, str) or not isinstance(line, int) or line < 1:
            continue
        found.append(Diagnostic(
            severity="error" if item.get("severity") == "error" else "warning",
            summary=str(item.get("summary") or "")[:MAX_DIAGNOSTIC_TEXT],
            detail=str(item.get("detail") or "")[:MAX_DIAGNOSTIC_TEXT],
            filename=filename[:MAX_DIAGNOSTIC_TEXT],
            line=line, end_line=end_line if isinstance(end_line, int) and end_line >= line else line))
        if len(found) == MAX_DIAGNOSTICS:
            break
    return found


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
