"""Workflows: which steps the plan and apply pipelines run (run by `bot.lifecycle.steps`).

A workflow is one YAML file, named by its file stem. `default` ships inside the package
(`bot/config/builtin_workflows/`); the optional `workflows_dir` of the config adds workflows or overrides a built-in one:

    plan:
      steps: [init, workspace, plan, show]
    apply:
      steps: [apply]

A step is a built-in name or `run: [argv...]`, a custom command run in the project directory with
WORKSPACE and PLANFILE in its environment (an argv list, never a shell string).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml


PLAN_STEPS = frozenset({"init", "workspace", "plan", "show", "run"})
APPLY_STEPS = frozenset({"init", "workspace", "apply", "run"})
_PIPELINES = {"plan": PLAN_STEPS, "apply": APPLY_STEPS}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# `init` heads its diagnostics with this wrapper error; the one after it says what is wrong.


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
