"""Which projects a pull request touches: changed files + repository config -> projects. Pure, no I/O.

A project is (repository, dir, workspace). Two modes, chosen per repository:
- Default mode (the repository's config declares no projects): every root at the PR head (a dir holding
  Terraform files that no other configuration calls as a local module, see bot/projects/modules.py) that
  reads a changed file is a project in workspace `default`, named after its dir: its own Terraform files,
  the local modules it calls (transitively) and the targets of its symlinks. A module is never a project.
- Declared mode (`repos[].projects[]`): only the declared projects exist; one is affected when a changed
  file, taken relative to the project's dir, matches one of its `when_modified` globs, or when its dir reads a
  changed module or symlink target (the same reading as in default mode).

Globs are matched segment by segment on '/'-separated paths: `*`, `?` and `[...]` stay inside one path
segment, a `**` segment matches any number of segments (including none), and `..` reaches up from the
project's dir (`../modules/**/*.tf`). Matching is case-sensitive, as git paths are.

Every function returns projects sorted by (dir, workspace, name), so comments and job order are stable.
"""
from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.models import Project
from bot.projects.modules import ModuleGraph
from bot.projects.paths import is_tf_file, is_trigger, join_path, normalise_dir, tf_dir_of

__all__ = ["affected_projects", "all_projects", "deleted_roots", "is_tf_file", "normalise_dir", "project_at",
           "select", "tf_dir_of"]

if TYPE_CHECKING:  # detection reads config values; it needs the models only to name their types
    from bot.config.models import ProjectConfig, RepoConfig

_GLOB_CHARS = re.compile(r"[*?\[]")


def deleted_roots(changed_files: Iterable[str], base_dirs: Collection[str], head_dirs: Collection[str]) -> list[str]:
    """Dirs that held Terraform files at the base and hold none at the head, among those the PR changes: roots the
    PR deletes. Deleting a root's code destroys nothing (its resources stay in the state and in the cloud), so
    the PR is told instead of silently not planned."""
    base, head = _as_set(base_dirs), _as_set(head_dirs)
    return sorted({tf_dir_of(path) for path in changed_files if is_trigger(path)} & (base - head))


def affected_projects(
    repo: str,
    repo_config: RepoConfig,
    changed_files: Iterable[str],
    tf_dirs: Collection[str],
    graph: ModuleGraph | None = None,
    base_graph: ModuleGraph | None = None,
) -> list[Project]:
    """The projects a PR changing `changed_files` touches; `tf_dirs` are the dirs holding .tf files at its head,
    `graph` the head's module graph (None: no local modules or links, every dir in `tf_dirs` is a root), and
    `base_graph` the graph of its base branch's tip, if known: the PR is merged into that tip, so a root the
    base added or changed since the PR branched that calls a changed module is affected too (unless the PR
    deletes it).

    Default mode: a changed `*.tf`, `*.tf.json`, `*.tfvars`, `*.tfvars.json` or `.terraform.lock.hcl` touches
    its own directory, if that directory still holds Terraform files at the head; a changed symlink or link
    target touches the configuration holding the link. Every root among the touched dirs and every root that
    calls a touched dir, directly or through other local modules, is a project; a module never is. A project
    dir the PR deletes is therefore not planned (there is nothing left to plan; destroying what it managed is
    a deliberate act, not something a deleted directory should trigger).
    Declared mode: a declared project is affected when any changed file matches one of its `when_modified`
    globs (relative to its dir), or when its dir reads a touched dir through local module calls or a changed
    path through its links; a declared project whose dir holds no Terraform files at the head is left
    out for the same reason. Projects with `autoplan: false` are included (the caller filters on
    `Project.autoplan` for autoplan; a `plan` comment plans them).
    """
    tf_dirs = _as_set(tf_dirs)
    changed_files = list(changed_files)
    graph = graph if graph is not None else ModuleGraph.flat(tf_dirs)
    direct, reached = graph.touched(changed_files)
    if not repo_config.projects:
        roots = graph.roots
        found = [_default_project(repo, repo_config, d) for d in (direct | reached) if d in tf_dirs and d in roots]
    else:
        hit = _matcher_for(repo_config.projects).match(changed_files)
        found = [_declared_project(repo, config) for i, config in enumerate(repo_config.projects)
                 if (i in hit or config.dir in reached) and config.dir in tf_dirs]
    if base_graph is not None:
        _, reached_at_base = base_graph.touched(changed_files)
        deleted = set(deleted_roots(changed_files, base_graph.roots, tf_dirs))
        later = reached_at_base - deleted
        if not repo_config.projects:
            found += [_default_project(repo, repo_config, d) for d in later
                      if d in base_graph.roots and d not in graph.modules]
        else:
            found += [_declared_project(repo, c) for c in repo_config.projects if c.dir in later]
    return _sorted(found)


def all_projects(repo: str, repo_config: RepoConfig, tf_dirs: Collection[str],
                 graph: ModuleGraph | None = None) -> list[Project]:
    """Every project of the repository at a head with `tf_dirs` and module `graph`: for comment flags naming
    untouched projects.

    Default mode: one project per root in `tf_dirs` (workspace `default`); module dirs are not projects.
    Declared mode: the declared projects whose dir holds Terraform files.
    """
    tf_dirs = _as_set(tf_dirs)
    if not repo_config.projects:
        roots = graph.roots if graph is not None else tf_dirs
        return _sorted(_default_project(repo, repo_config, normalise_dir(d)) for d in tf_dirs if d in roots)
    return _sorted(_declared_project(repo, p) for p in repo_config.projects if p.dir in tf_dirs)


def select(
    projects: Iterable[Project],
    project: str | None = None,
    dir: str | None = None,
    workspace: str | None = None,
) -> list[Project]:
    """The projects matching every given comment flag (-p name, -d dir, -w workspace); None means any."""
    want_dir = normalise_dir(dir) if dir is not None else None
    return _sorted(
        p for p in projects
        if (project is None or p.name == project)
        and (want_dir is None or p.dir == want_dir)
        and (workspace is None or p.workspace == workspace)
    )


# --- internals ----------------------------------------------------------------------------------------


def _as_set(dirs: Collection[str]) -> set[str] | frozenset[str]:
    return dirs if isinstance(dirs, (set, frozenset)) else set(dirs)


def _sorted(projects: Iterable[Project]) -> list[Project]:
    return sorted(set(projects), key=lambda p: (p.dir, p.workspace, p.name))


def project_at(repo: str, repo_config: RepoConfig | None, dir: str, workspace: str, name: str = "") -> Project:
    """The project the config makes of (dir, workspace): a declared one, else a default one, as planning does.

    Used for a lock, which records only where it is: the project is rebuilt from today's config so apply
    and hand-over run the same workflow and requirements a fresh plan would.
    """
    for declared in repo_config.projects if repo_config else ():
        if declared.dir == dir and declared.workspace == workspace:
            return _declared_project(repo, declared)
    if repo_config is None:
        return Project(repo=repo, name=name or dir, dir=dir, workspace=workspace)
    project = _default_project(repo, repo_config, dir)
    return project if workspace == "default" else Project(
        repo=repo, name=name or f"{dir}:{workspace}", dir=dir, workspace=workspace, workflow=project.workflow,
        apply_requirements=project.apply_requirements)


def _default_project(repo: str, repo_config: RepoConfig, dir: str) -> Project:
    return Project(repo=repo, name=dir, dir=dir, workspace="default", workflow=repo_config.workflow,
                   autoplan=True, apply_requirements=repo_config.apply_requirements)


def _declared_project(repo: str, config: ProjectConfig) -> Project:
    return Project(repo=repo, name=config.name, dir=config.dir, workspace=config.workspace,
                   workflow=config.workflow, autoplan=config.autoplan,
                   apply_requirements=config.apply_requirements, depends_on=config.depends_on,
                   execution_order_group=config.execution_order_group, terraform_version=config.terraform_version,
                   engine=config.engine)


@dataclass(frozen=True)
class _Glob:
    """A glob rooted at the repository, split into a literal dir prefix and a compiled remainder."""

    prefix: str  # literal leading dirs, "" for the root
    regex: re.Pattern[str]


def _compile_glob(pattern: str, project_dir: str = ".") -> _Glob | None:
    """Compile a `when_modified` glob relative to `project_dir`; None if it reaches above the repository."""
    rooted = join_path(normalise_dir(project_dir), pattern)
    if rooted is None or rooted == ".":
        return None
    # `**/**` matches what one `**` does, with a backtracking cost that grows with each: keep one.
    parts = rooted.split("/")
    segments = [seg for i, seg in enumerate(parts) if not (seg == "**" and i and parts[i - 1] == "**")]
    # The literal leading dirs index the glob, so a file is only tried against globs under its own dirs.
    # The last segment always stays in the regex, so even a literal file name has a prefix dir to live in.
    split = 0
    while split < len(segments) - 1 and not _GLOB_CHARS.search(segments[split]):
        split += 1
    return _Glob("/".join(segments[:split]), _compile_rest(tuple(segments[split:])))


@functools.lru_cache(maxsize=4096)
def _compile_rest(segments: tuple[str, ...]) -> re.Pattern[str]:
    # With the dir prefix split off, a thousand projects' `*.tf` are one and the same regex.
    return re.compile(_translate(segments))


def _translate(segments: tuple[str, ...]) -> str:
    out = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "**":
            # Trailing `**`: everything below. Elsewhere: zero or more whole dirs.
            out.append(".+" if i == last else "(?:[^/]+/)*")
            continue
        out.append(_translate_segment(seg) + ("" if i == last else "/"))
    return "".join(out) + r"\Z"


def _translate_segment(seg: str) -> str:
    out, i, n = [], 0, len(seg)
    while i < n:
        c = seg[i]
        i += 1
        if c == "*":
            while i < n and seg[i] == "*":  # `a**b` inside a segment is just `*`
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i
            if j < n and seg[j] in "!^":
                j += 1
            if j < n and seg[j] == "]":
                j += 1
            while j < n and seg[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(re.escape(c))
                continue
            body = seg[i:j]
            i = j + 1
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\")
            out.append(f"(?!/)[{'^' if negate else ''}{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out)


class _Matcher:
    """Maps changed files to declared projects with a dict lookup per ancestor dir, not a scan of every glob."""

    def __init__(self, projects: Iterable[ProjectConfig]):
        # Identical rooted globs (many projects sharing `../modules/**`) are compiled and tried once.
        by_pattern: dict[tuple[str, str], set[int]] = defaultdict(set)
        compiled: dict[tuple[str, str], _Glob] = {}
        for index, config in enumerate(projects):
            for pattern in config.when_modified:
                glob = _compile_glob(pattern, config.dir)
                if glob is None:
                    continue
                key = (glob.prefix, glob.regex.pattern)
                compiled[key] = glob
                by_pattern[key].add(index)
        self._by_prefix: dict[str, list[tuple[int, re.Pattern[str], frozenset[int]]]] = defaultdict(list)
        for gid, (key, glob) in enumerate(compiled.items()):
            self._by_prefix[glob.prefix].append((gid, glob.regex, frozenset(by_pattern[key])))

    def match(self, files: Iterable[str]) -> set[int]:
        """Indexes of the projects any of `files` (repo-relative paths) affects."""
        hit: set[int] = set()
        done: set[int] = set()  # a glob that matched once has nothing more to add
        plans: dict[str, list[tuple[int, list[tuple[int, re.Pattern[str], frozenset[int]]]]]] = {}
        for path in files:
            cut = path.rfind("/")
            parent = path[:cut] if cut >= 0 else ""
            plan = plans.get(parent)
            if plan is None:
                plan = plans[parent] = self._plan(parent)
            for start, entries in plan:
                rest = path[start:]
                for gid, regex, indexes in entries:
                    if gid not in done and regex.match(rest):
                        done.add(gid)
                        hit |= indexes
        return hit

    def _plan(self, parent: str) -> list[tuple[int, list[tuple[int, re.Pattern[str], frozenset[int]]]]]:
        """For a file's dir: the globs indexed under it and each of its ancestors, with where the
        file's path continues below that ancestor."""
        plan = []
        prefix = parent
        while True:
            entries = self._by_prefix.get(prefix)
            if entries:
                plan.append((len(prefix) + 1 if prefix else 0, entries))
            if not prefix:
                return plan
            cut = prefix.rfind("/")
            prefix = prefix[:cut] if cut >= 0 else ""


def _matcher_for(projects: tuple[ProjectConfig, ...]) -> _Matcher:
    # Configs are frozen and reused for every event of a repository: compile their globs once.
    matcher = _MATCHERS.get(projects)
    if matcher is None:
        matcher = _MATCHERS[projects] = _Matcher(projects)
        if len(_MATCHERS) > 256:
            _MATCHERS.pop(next(iter(_MATCHERS)))
    return matcher


_MATCHERS: dict[tuple[ProjectConfig, ...], _Matcher] = {}


def autodiscovered(projects: Iterable[Project], repo_config: RepoConfig) -> list[Project]:
    """Default mode only (no declared projects): `projects` less those `autodiscover` rules out: all of them when it
    is off, and those whose dir matches one of its `ignore_paths` globs (relative to the repository root)."""
    projects = list(projects)
    if repo_config.projects:
        return projects
    if not repo_config.autodiscover.enabled:
        return []
    globs = [g for g in (_compile_glob(p) for p in repo_config.autodiscover.ignore_paths) if g is not None]
    return [p for p in projects if not any(_dir_matches(g, p.dir) for g in globs)]


def _dir_matches(glob: _Glob, dir: str) -> bool:
    """Whether the dir, or a dir above it, matches (`examples/**` and `examples` both rule out `examples/a`)."""
    parts = dir.split("/")
    for end in range(1, len(parts) + 1):
        path = "/".join(parts[:end])
        prefix = f"{glob.prefix}/" if glob.prefix else ""
        if path.startswith(prefix) and glob.regex.fullmatch(path[len(prefix):]):
            return True
    return False
