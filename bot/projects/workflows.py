"""Workflows: which steps the plan and apply pipelines run, and running them over the Terraform adapter.

A workflow is one YAML file, named by its file stem. `default` ships inside the package
(`bot/projects/builtin_workflows/`); the optional `workflows_dir` of the config adds workflows or overrides a built-in one:

    plan:
      steps: [init, workspace, plan, show]
    apply:
      steps: [apply]

A step is a built-in name or `run: [argv...]`, a custom command run in the project directory with
WORKSPACE and PLANFILE in its environment (an argv list, never a shell string).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.adapters.terraform import Terraform, TerraformResult

PLAN_STEPS = frozenset({"init", "workspace", "plan", "show", "run"})
APPLY_STEPS = frozenset({"init", "workspace", "apply", "run"})
_PIPELINES = {"plan": PLAN_STEPS, "apply": APPLY_STEPS}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_PLAN_LINE = re.compile(r"^Plan: \d+ to add\b.*$", re.MULTILINE)
_NO_CHANGES = re.compile(r"^No changes\..*$", re.MULTILINE)
_APPLY_LINE = re.compile(r"^Apply complete! Resources: .*$", re.MULTILINE)
_ERROR_LINE = re.compile(r"^Error: .*$", re.MULTILINE)
_TIMEOUT_LINE = re.compile(r"^\[tfbot\].*timed out.*$", re.MULTILINE)
_OUTPUTS_ONLY = "You can apply this plan to save these new output values"
# `init` heads its diagnostics with this wrapper error; the one after it says what is wrong.
_INIT_PREAMBLE = "Error: Terraform encountered problems during initialisation"


class WorkflowError(ValueError):
    """A workflow file is missing, unreadable or invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...] = ()  # only for `run`

    def __str__(self) -> str:
        return f"run {list(self.argv)}" if self.name == "run" else self.name


@dataclass(frozen=True)
class Workflow:
    name: str
    plan_steps: tuple[Step, ...]
    apply_steps: tuple[Step, ...]


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


@dataclass
class ApplyOutcome:
    ok: bool
    steps: list[TerraformResult]
    summary: str
    failed_step: str | None = None
    apply_output: str = ""


# -- loading --------------------------------------------------------------------------------------

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin_workflows"


def load_workflows(directory: Path | None = None) -> dict[str, Workflow]:
    """The built-in workflows, then every `*.yaml`/`*.yml` workflow in `directory` (which may override one).

    Raises WorkflowError on the first bad file.
    """
    workflows = _load_directory(BUILTIN_DIR)
    if directory is not None:
        workflows.update(_load_directory(Path(directory)))
    return workflows


def _load_directory(directory: Path) -> dict[str, Workflow]:
    if not directory.is_dir():
        raise WorkflowError(f"{directory}: workflows directory not found")
    workflows: dict[str, Workflow] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        workflow = load_workflow(path)
        if workflow.name in workflows:
            raise WorkflowError(f"{path}: a workflow named {workflow.name!r} is already defined in this directory")
        workflows[workflow.name] = workflow
    return workflows


def load_workflow(path: Path) -> Workflow:
    """Parse and validate one workflow file."""
    name = path.stem
    if not _NAME_RE.fullmatch(name):
        raise WorkflowError(f"{path}: workflow name {name!r} must be letters, digits, '-' or '_'")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise WorkflowError(f"{path}: cannot read workflow: {exc}") from exc
    if not isinstance(raw, dict):
        raise WorkflowError(f"{path}: a workflow is a mapping with keys 'plan' and 'apply'")
    for key in raw:
        if key not in _PIPELINES:
            raise WorkflowError(f"{path}: unknown key {key!r} (expected: apply, plan)")
    pipelines = {p: _parse_pipeline(path, p, raw.get(p)) for p in _PIPELINES}
    return Workflow(name, pipelines["plan"], pipelines["apply"])


def _parse_pipeline(path: Path, pipeline: str, raw: object) -> tuple[Step, ...]:
    where = f"{path}: {pipeline}"
    if not isinstance(raw, dict) or set(raw) != {"steps"}:
        raise WorkflowError(f"{where}: expected a mapping with one key, 'steps' (got {raw!r})")
    items = raw["steps"]
    if not isinstance(items, list) or not items:
        raise WorkflowError(f"{where}.steps: expected a non-empty list of steps")
    steps = tuple(_parse_step(f"{where}.steps[{i}]", item, _PIPELINES[pipeline]) for i, item in enumerate(items))
    names = [s.name for s in steps]
    for name in set(names) - {"run"}:
        if names.count(name) > 1:
            raise WorkflowError(f"{where}.steps: step {name!r} appears more than once")
    if pipeline not in names:
        raise WorkflowError(f"{where}.steps: the {pipeline!r} step is required")
    if "show" in names and names.index("show") < names.index("plan"):
        raise WorkflowError(f"{where}.steps: 'show' reads the saved plan, so it must come after 'plan'")
    return steps


def _parse_step(where: str, item: object, allowed: frozenset[str]) -> Step:
    if isinstance(item, str):
        if item not in allowed - {"run"}:
            raise WorkflowError(f"{where}: unknown step {item!r} (allowed: {', '.join(sorted(allowed - {'run'}))}, run)")
        return Step(item)
    if isinstance(item, dict) and list(item) == ["run"]:
        argv = item["run"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise WorkflowError(f"{where}.run: expected a non-empty list of strings (an argv, not a shell string)")
        return Step("run", tuple(argv))
    key = next(iter(item)) if isinstance(item, dict) and item else item
    raise WorkflowError(f"{where}: unknown step {key!r} (a step name, or run: [argv...])")


# -- running --------------------------------------------------------------------------------------

def run_plan_steps(tf: Terraform, workflow: Workflow, workdir: Path, workspace: str, plan_file: Path,
                   before_step: Callable[[str], None] | None = None) -> PlanOutcome:
    """Run the plan pipeline, stopping at the first failing step.

    `before_step(step)` runs before every step and may raise to stop the run (a lost run guard).
    """
    results, failed = _run_steps(tf, workflow.plan_steps, workdir, workspace, plan_file, before_step)
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
    )


def run_apply_steps(tf: Terraform, workflow: Workflow, workdir: Path, workspace: str, plan_file: Path,
                    before_step: Callable[[str], None] | None = None) -> ApplyOutcome:
    """Run the apply pipeline over a saved plan, stopping at the first failing step (see run_plan_steps)."""
    results, failed = _run_steps(tf, workflow.apply_steps, workdir, workspace, plan_file, before_step)
    apply = {s.name: r for s, r in zip(workflow.apply_steps[: len(results)], results, strict=True)}.get("apply")
    summary = failure_summary(results[-1]) if failed is not None else apply_summary(apply.output if apply else "")
    return ApplyOutcome(failed is None, results, summary, failed, apply.output if apply else "")


def _run_steps(
    tf: Terraform, steps: Sequence[Step], workdir: Path, workspace: str, plan_file: Path,
    before_step: Callable[[str], None] | None = None,
) -> tuple[list[TerraformResult], str | None]:
    results: list[TerraformResult] = []
    for step in steps:
        if before_step is not None:
            before_step(str(step))
        result = _run_step(tf, step, workdir, workspace, plan_file)
        results.append(result)
        if not result.ok:
            return results, str(step)
    return results, None


def _run_step(tf: Terraform, step: Step, workdir: Path, workspace: str, plan_file: Path) -> TerraformResult:
    if step.name == "init":
        return tf.init(workdir)
    if step.name == "workspace":
        return tf.select_workspace(workdir, workspace)
    if step.name == "plan":
        return tf.plan(workdir, plan_file, workspace)
    if step.name == "show":
        return tf.show_plan(workdir, plan_file)
    if step.name == "apply":
        return tf.apply(workdir, plan_file, workspace)
    if step.name == "run":
        return tf.run_custom(workdir, step.argv, env={"WORKSPACE": workspace, "PLANFILE": str(plan_file)})
    raise WorkflowError(f"unknown step {step.name!r}")  # load_workflow never lets one through


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
