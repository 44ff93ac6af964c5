"""`tfbot.yaml`: what a repository says about its own projects, and what the server lets it say. Pure.

The file sits at the repository root and is read from the commit being planned (the PR's version when the PR
changes it, else the base branch's). The server's `repos[]` entry is the starting point; the file replaces the
keys the server allows (`allowed_overrides`). A key the server does not allow, an unknown key, a bad value or
broken YAML is a `Problem` with the file's line, and the PR is planned with nothing until the file is fixed.

Why the server decides: the file is PR code. A PR that could drop `apply_requirements` could apply without the
approval the team asked for; one that could name any workflow could pick one with weaker steps. So by default
a repository may set only `projects`, `when_modified`, `autoplan`, `workflow` (among `allowed_workflows`) and the
ordering keys (`depends_on`, `execution_order_group`, `parallel_plan`, `parallel_apply`). What a run is given
(`env`, `env_passthrough`, `credentials`) is never the file's: no override names it, and runs take it from the
server's entry by (dir, workspace) (bot/lifecycle/run_env.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from bot.config.loading import describe_error, duplicate_keys, split_key, yaml_error_at
from bot.config.models import AutodiscoverConfig, ProjectConfig, RepoConfig, _Model, check_unique_projects

REPO_FILE = "tfbot.yaml"
MAX_BYTES = 256 * 1024
MAX_DEPTH = 20
# Keys of a project that come with declaring it: without them there is no project to speak of.
_IDENTITY = frozenset({"name", "dir", "workspace"})
# What a run is given: the server's alone, whatever allowed_overrides says (a PR naming a role would take it).
_RUN_KEYS = frozenset({"env", "env_passthrough", "credentials"})


class RepoFile(_Model):
    """The schema of `tfbot.yaml` (`tfbot schema --repo` prints it as JSON Schema)."""

    version: Literal[1] = Field(1, description="the file format; 1")
    projects: tuple[ProjectConfig, ...] = Field((), description="the repository's projects; replaces the server's "
                                                                "list and turns autodiscovery off")
    autodiscover: AutodiscoverConfig = Field(default_factory=AutodiscoverConfig,
                                             description="finding projects when none are declared")
    parallel_plan: bool = Field(True, description="plan the projects of one PR at once; false: one at a time")
    parallel_apply: bool = Field(True, description="apply the projects of one apply at once where their order "
                                                   "allows; false: one at a time, in order")

    @model_validator(mode="after")
    def _unique(self) -> "RepoFile":
        check_unique_projects(self.projects)
        return self


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a repository's `tfbot.yaml`: where (line, dotted key) and why."""

    line: int | None
    key: str
    reason: str

    def text(self) -> str:
        """`tfbot.yaml:12: projects[0].autoplan: must be true or false`."""
        where = f"{REPO_FILE}:{self.line}" if self.line else REPO_FILE
        return f"{where}: {self.key}: {self.reason}" if self.key else f"{where}: {self.reason}"


@dataclass(frozen=True)
class RepoSettings:
    """The settings a PR is planned with: `config` (server entry with the file's overrides), whether the file
    exists and whether the PR changes it, and its problems (none: `config` is usable)."""

    config: RepoConfig
    present: bool = False
    changed: bool = False
    problems: tuple[Problem, ...] = ()


def settings(server: RepoConfig, text: str | None, *, changed: bool = False,
             workflows: frozenset[str] | None = None) -> RepoSettings:
    """The settings of a repository whose `tfbot.yaml` holds `text` (None: no file) under its server entry.

    `workflows`: the names the server knows, for checking `workflow`. Never raises: what is wrong is in
    `problems`, and then `config` is the server entry unchanged (which the caller must not plan with).
    """
    if text is None:
        return RepoSettings(server)
    parsed = _parse(text)
    if isinstance(parsed, list):
        return RepoSettings(server, True, changed, tuple(parsed))
    raw, root = parsed
    problems = list(_not_allowed(server, raw, root))
    refused = {p.key for p in problems if not p.key.endswith(".workflow")}  # keys refused whole, not a value
    try:
        repo_file = RepoFile.model_validate(raw, context={"workflows": workflows})
    except ValidationError as exc:
        for error in exc.errors():
            key, reason = describe_error(error, RepoFile)
            if not any(key == k or key.startswith((f"{k}.", f"{k}[")) for k in refused):  # said once, as refused
                problems.append(Problem(_line_of(root, _loc(error["loc"], error)), key, reason))
    if not problems:
        merged = _overridden(server, repo_file)
        if isinstance(merged, RepoConfig):
            return RepoSettings(merged, True, changed)
        problems = merged
    return RepoSettings(server, True, changed, tuple(sorted(problems, key=lambda p: (p.line or 0, p.key))))


def _parse(text: str) -> tuple[dict[str, Any], yaml.Node | None] | list[Problem]:
    """The file's mapping and its node tree, or its problems. The file is PR code: its size, depth and aliases are
    bounded before anything walks or builds it (an alias bomb or a deep nest must cost a worker nothing)."""
    if len(text) > MAX_BYTES:
        return [Problem(None, "", f"larger than {MAX_BYTES // 1024} KiB")]
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        shape = _shape_problem(node)
        if shape:
            return [shape]
        raw = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark, reason = yaml_error_at(exc)
        return [Problem(mark.line + 1 if mark is not None else None, "", f"not valid YAML: {reason}")]
    except RecursionError:
        return [Problem(None, "", f"nested more than {MAX_DEPTH} levels deep")]
    finally:
        loader.dispose()
    if raw is None:
        return {}, node
    if not isinstance(raw, dict):
        return [Problem(1, "", f"the top level must be a mapping of keys, got {type(raw).__name__}")]
    duplicates = [Problem(int(at.split(":")[0]), key, reason) for key, at, reason in duplicate_keys(node)]
    if duplicates:
        return duplicates
    return raw, node


def _shape_problem(root: yaml.Node | None) -> Problem | None:
    """A Problem when the tree uses an alias (a node reached twice) or nests deeper than MAX_DEPTH; else None."""
    seen: set[int] = set()
    stack = [(root, 1)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            return Problem(node.start_mark.line + 1, "", "anchors and aliases (& and *) are not supported here")
        seen.add(id(node))
        if depth > MAX_DEPTH:
            return Problem(node.start_mark.line + 1, "", f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
    return None


def _loc(loc: tuple[int | str, ...], error: Any) -> list[int | str]:
    parts = list(loc)
    if error["type"] == "at_key":  # a model validator named the key it is about: `projects[1].name`
        parts += split_key(error["ctx"]["key"])
    return parts


def _line_of(node: yaml.Node | None, loc: list[int | str]) -> int | None:
    """The 1-based line of the deepest node `loc` reaches in the YAML tree (a key's own line for mapping keys)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            found = next(((k, v) for k, v in node.value if k.value == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _not_allowed(server: RepoConfig, raw: dict[str, Any], root: yaml.Node | None) -> Iterator[Problem]:
    """A Problem for every key the file sets that the server's entry does not let a repository set (read from the
    raw mapping, so they are reported in the same round as bad values; unknown keys are left to validation)."""
    allowed = set(server.allowed_overrides)
    why = f"the server does not let a repository set this (repos[].allowed_overrides of {server.name}: " \
          f"{', '.join(server.allowed_overrides) or 'nothing'})"
    for key in raw:
        if key in RepoFile.model_fields and key != "version" and key not in allowed:
            yield Problem(_line_of(root, [key]), str(key), why)
        elif key == "extra_args":  # PR code must not widen what its own comments may pass to Terraform
            yield Problem(_line_of(root, [key]), key, "which extra arguments a `plan` comment may pass to Terraform "
                          f"is the server's decision alone (repos[].extra_args of {server.name})")
    projects = raw.get("projects")
    if "projects" not in allowed or not isinstance(projects, list):
        return
    workflows = {server.workflow, *server.allowed_workflows}
    for i, project in enumerate(projects):
        if not isinstance(project, dict):
            continue
        for key in project:
            if key in _RUN_KEYS:
                yield Problem(_line_of(root, ["projects", i, key]), f"projects[{i}].{key}",
                              "a repository never sets what its runs are given: env, env_passthrough and credentials "
                              f"come from the server's config (repos[] entry {server.name})")
            elif key in ProjectConfig.model_fields and key not in _IDENTITY and key not in allowed:
                yield Problem(_line_of(root, ["projects", i, key]), f"projects[{i}].{key}", why)
        workflow = project.get("workflow")
        if "workflow" in allowed and isinstance(workflow, str) and workflow not in workflows:
            yield Problem(_line_of(root, ["projects", i, "workflow"]), f"projects[{i}].workflow",
                          f"workflow {workflow!r} is not one this repository may use "
                          f"(repos[].allowed_workflows of {server.name}: {', '.join(sorted(workflows))})")


def _overridden(server: RepoConfig, repo_file: RepoFile) -> RepoConfig | list[Problem]:
    """The server entry with the file's keys in place of its own; projects inherit the entry's defaults.

    The server's own projects stay projects: the file adds projects and, for one the server declares (same dir and
    workspace), changes only the keys it sets (which are allowed, or it would not get here); every other key of it
    stays the server's (its apply requirements, its workflow, what its runs are given).
    """
    data = server.model_dump(exclude={"projects"})
    remaining = {(p.dir, p.workspace): p for p in server.projects}
    projects = []
    for project in repo_file.projects:
        own = remaining.pop((project.dir, project.workspace), None)
        # The file's keys (only allowed ones get this far) over the server's project, key by key.
        base = own.model_dump(exclude_unset=True) if own is not None else {}
        projects.append({**base, **project.model_dump(exclude_unset=True)})
    data["projects"] = projects + [p.model_dump(exclude_unset=True) for p in remaining.values()]
    if "autodiscover" in repo_file.model_fields_set:
        data["autodiscover"] = repo_file.autodiscover.model_dump()
    for key in ("parallel_plan", "parallel_apply"):
        if key in repo_file.model_fields_set:
            data[key] = getattr(repo_file, key)
    # Validated again so projects inherit the entry's apply_requirements and workflow, as the server's own do.
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as exc:  # the file's projects clash with the server's (a name, a dependency)
        return [Problem(None, key, f"{reason} (with the projects the server declares for {server.name})")
                for key, reason in (describe_error(error, RepoConfig) for error in exc.errors())]


def schema() -> dict[str, Any]:
    """The JSON Schema of `tfbot.yaml`, for editors (`tfbot schema --repo`): without the keys a repository never
    sets (what runs are given)."""
    found = RepoFile.model_json_schema()
    for definition in found.get("$defs", {}).values():
        for key in _RUN_KEYS:
            definition.get("properties", {}).pop(key, None)
    return found
