"""The module graph of one commit: which dirs are roots, which are local modules, and who reads what. Pure.

Terraform loads every `*.tf` and `*.tf.json` file directly in a root's dir, plus the dirs of the modules it calls.
A `module` block whose `source` starts with `./` or `../` calls a module from the same repository; any other
source (the registry, git, a URL, an archive) is versioned elsewhere and is left alone. So:

- a **module** is a dir that another configuration calls as a local module (`module "x" { source =
  "../modules/net" }`), or whose Terraform file another dir links in with a symlink: it is never planned as a
  root, and a change to it plans every root that reads it, directly or through other local modules;
- a **root** is any other dir holding Terraform files.

Symlinks (git stores them as blobs with mode 120000 whose text is the target) are resolved inside the
repository: a link in a configuration's dir, or below it, makes that configuration read the link's target, so a
change to the target (or to anything under it, for a dir) touches the configuration holding the link. A module
source that passes through a linked dir is resolved to the real dir. A target outside the repository, a
dangling link and a loop of links are ignored: there is nothing in the repository to watch.

Parsing is `python-hcl2` for `.tf` files and `json` for `.tf.json` files; `parse_module_sources` takes one file's
text and says which sources its `module` blocks name. A file that cannot be parsed and a cycle of module calls
(Terraform refuses both) are warnings carried by the graph, never exceptions: the PR's comment shows them.

The graph is built from plain values (`build_graph`) that the git adapter reads at a commit, and is a value
itself: `to_dict`/`from_dict` give a JSON-safe shape for caching it per commit.
"""
from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

from bot.projects.paths import is_tf_file, is_trigger, join_path, tf_dir_of

GRAPH_FORMAT = 1  # bump when the cached shape or what it means changes: older cached graphs are then rebuilt
_MAX_LINK_HOPS = 40  # Linux's own limit on links followed while resolving one path
_MAX_WARNINGS = 10
HCL_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False)


@dataclass(frozen=True)
class ParsedFile:
    """What one Terraform file calls: the raw `source` strings of its `module` blocks, or why it can't be read."""

    sources: tuple[str, ...] = ()
    error: str = ""  # "" when parsed; else "line L, column C: reason"


def parse_module_sources(name: str, text: str) -> ParsedFile:
    """The `source` of every `module` block in one file; `name` ends in `.tf.json` for JSON syntax, else HCL.

    Only literal strings count (Terraform accepts nothing else as a source). A file that names no `module`
    at all is not parsed: it cannot call one, and parsing is the slow part of building a graph. Never raises:
    a syntax error is returned in `ParsedFile.error`.
    """
    if "module" not in text:
        return ParsedFile()
    if name.endswith(".json"):
        return _parse_json(text)
    try:
        tree = parse_hcl(text)
    except ValueError as exc:
        return ParsedFile(error=str(exc))
    sources = []
    for block in as_list(tree.get("module")):
        for body in (block.values() if isinstance(block, dict) else ()):
            source = hcl_literal(body.get("source")) if isinstance(body, dict) else None
            if source is not None:
                sources.append(source)
    return ParsedFile(sources=tuple(sources))


def parse_hcl(text: str) -> dict[str, Any]:
    """One HCL file as python-hcl2 reads it (blocks as lists, string literals with their quotes: see hcl_literal).
    Raises ValueError saying where and what, without echoing the file's text."""
    try:
        tree: dict[str, Any] = hcl2.loads(text, serialization_options=HCL_OPTIONS)
    except Exception as exc:  # lark raises many kinds; all mean "not valid HCL" (or a parser limit)
        raise ValueError(hcl_error(exc)) from None
    return tree


def is_local_source(source: str) -> bool:
    """Terraform's rule: a module source is a local path when it starts with `./` or `../`."""
    return source.startswith(("./", "../"))


@dataclass(frozen=True)
class TreeEntry:
    """One file of a commit as `git ls-tree -r` lists it: `mode` 100644/100755 (a file) or 120000 (a symlink)."""

    path: str
    mode: str
    oid: str

    @property
    def is_link(self) -> bool:
        return self.mode == "120000"


@dataclass(frozen=True)
class GraphWarning:
    """Something in the repository that may hide a module call: shown on the PR, never raised."""

    dirs: tuple[str, ...]  # the dirs it concerns, to show it where it matters
    text: str


def resolve_links(path: str, links: Mapping[str, str]) -> str | None:
    """The real repo path of `path` once every symlink along it is followed (`links`: link path -> target text).

    Resolved as the OS does, one segment at a time, so `..` after a linked dir climbs from the link's target.
    None for a path that leaves the repository (an absolute target, too many `..`) or loops.
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not done:
                return None
            done.pop()
            continue
        candidate = "/".join([*done, part])
        target = links.get(candidate)
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS or target.startswith("/"):
            return None
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return "/".join(done) or "."


def build_graph(
    entries: Iterable[TreeEntry],
    link_targets: Mapping[str, str],
    parsed: Mapping[str, ParsedFile],
) -> ModuleGraph:
    """The graph of one commit.

    `entries`: every file of the commit (`git ls-tree -r`); `link_targets`: the target text of each symlink
    among them, by path; `parsed`: the parse of each Terraform file, by the path of the file that holds its
    text (for a linked `.tf` file, its target's path: see `files_to_parse`). A Terraform file missing from
    `parsed` calls nothing.
    """
    entries = list(entries)
    files = {e.path: e for e in entries if not e.is_link}
    dirs_in_tree = {"."}
    for path in files:
        while path not in dirs_in_tree:
            path = tf_dir_of(path)
            dirs_in_tree.add(path)
    tf_dirs = {tf_dir_of(e.path) for e in entries if is_tf_file(e.path)}
    links: dict[str, str] = {}
    shared: set[str] = set()  # dirs whose Terraform files are linked into another dir
    for link in link_targets:
        target = _link_target(link, link_targets)
        if target is None or not (target in files or target in dirs_in_tree):
            continue  # outside the repository, dangling, or a loop: nothing here to watch
        links[link] = target
        if is_tf_file(link) and target in files and tf_dir_of(target) != tf_dir_of(link):
            shared.add(tf_dir_of(target))
    calls: dict[str, set[str]] = defaultdict(set)
    errors: dict[str, str] = {}
    for entry in entries:
        if not is_tf_file(entry.path):
            continue
        result = parsed.get(links.get(entry.path, "") if entry.is_link else entry.path)
        if result is None:
            continue
        if result.error:
            errors[entry.path] = result.error
        dir = tf_dir_of(entry.path)
        for source in result.sources:
            lexical = join_path(dir, source) if is_local_source(source) else None
            called = resolve_links(lexical, link_targets) if lexical is not None else None
            if called is not None:
                calls[dir].add(called)
    return ModuleGraph(tf_dirs=frozenset(tf_dirs), calls={d: frozenset(c) for d, c in calls.items()},
                       links=links, errors=errors, shared=frozenset(shared))


def files_to_parse(entries: Iterable[TreeEntry], link_targets: Mapping[str, str]) -> dict[str, TreeEntry]:
    """The Terraform files whose text `build_graph` needs parsed: {path holding the text: its entry}.

    A regular `.tf` file is its own holder; a linked one is read through its target (a regular file of the
    commit), and parsed once however many dirs link it in.
    """
    entries = list(entries)
    files = {e.path: e for e in entries if not e.is_link}
    wanted: dict[str, TreeEntry] = {}
    for entry in entries:
        if not is_tf_file(entry.path):
            continue
        if not entry.is_link:
            wanted[entry.path] = entry
            continue
        target = _link_target(entry.path, link_targets)
        if target in files:
            wanted.setdefault(target, files[target])
    return wanted


@dataclass(frozen=True)
class ModuleGraph:
    """Local module calls and symlinks of one commit, and what follows from them.

    `tf_dirs`: dirs holding Terraform files; `calls`: {dir: dirs its `module` blocks call locally, resolved};
    `links`: {symlink path: the real repo path it resolves to (a file or a dir)}; `errors`: {Terraform file:
    why it could not be parsed}; `shared`: dirs whose Terraform files other dirs link in.
    """

    tf_dirs: frozenset[str]
    calls: Mapping[str, frozenset[str]] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    shared: frozenset[str] = frozenset()

    @classmethod
    def flat(cls, tf_dirs: Collection[str]) -> ModuleGraph:
        """A graph without calls or links: every dir holding Terraform files is a root."""
        return cls(tf_dirs=frozenset(tf_dirs))

    # -- what each dir is --------------------------------------------------------------------------

    @cached_property
    def modules(self) -> frozenset[str]:
        """Dirs another configuration calls as a local module, or links one of its Terraform files from."""
        return frozenset({c for d, cs in self.calls.items() for c in cs if c != d} | self.shared)

    @cached_property
    def roots(self) -> frozenset[str]:
        """Dirs holding Terraform files that no other configuration reads: the only dirs planned as projects."""
        return self.tf_dirs - self.modules

    def reads(self, dir: str) -> set[str]:
        """Repo paths the configuration in `dir` reads besides its own dir: the local modules it calls,
        transitively, and the targets (files or dirs) of the symlinks in it and in those modules."""
        seen = self._closure([dir], self.calls)
        out = set(seen)
        for owner in seen:
            out |= self._owned_links.get(owner, set())
        out.discard(dir)
        return out

    # -- what a change touches ---------------------------------------------------------------------

    def touched(self, changed_files: Iterable[str]) -> tuple[set[str], set[str]]:
        """(dirs whose own Terraform files changed, dirs that read a changed path through their links, or
        through a chain of local module calls from such a dir). A dir may be in both."""
        direct: set[str] = set()
        linked: set[str] = set()
        for path in changed_files:
            dir = tf_dir_of(path)
            if dir in self.tf_dirs and is_trigger(path):
                direct.add(dir)
            if self.links:
                linked |= self._link_readers(path)
        callers = self._closure(direct | linked, self._callers, include_start=False)
        return direct, linked | callers

    def readers_of(self, dirs: Iterable[str]) -> set[str]:
        """Dirs that call any of `dirs`, directly or through other local modules (`dirs` themselves left out
        unless a cycle leads back to them)."""
        return self._closure(dirs, self._callers, include_start=False)

    # -- what went wrong ---------------------------------------------------------------------------

    @cached_property
    def cycles(self) -> tuple[tuple[str, ...], ...]:
        """Every cycle of local module calls (a dir calling itself too), each as the dirs along it, sorted."""
        found = [tuple(c) for c in _strongly_connected(self.calls) if len(c) > 1 or c[0] in self.calls.get(c[0], ())]
        return tuple(sorted(found))

    @cached_property
    def warnings(self) -> tuple[GraphWarning, ...]:
        """Unparsable files and module cycles, one line each, in path order."""
        out = [GraphWarning((tf_dir_of(path),), f"`{_shown(path)}` cannot be parsed ({why}): tfbot cannot see which local "
                            "modules it calls, so a root that reads a change through it may not be planned.")
               for path, why in sorted(self.errors.items())]
        for cycle in self.cycles:
            ring = " → ".join(f"`{_shown(d)}`" for d in (*cycle, cycle[0]))
            out.append(GraphWarning(cycle, f"local modules call each other in a cycle: {ring} (Terraform refuses "
                                           "it); none of them is planned as a root."))
        return tuple(out)

    def warnings_for(self, changed_files: Iterable[str], dirs: Iterable[str]) -> list[str]:
        """The warnings a PR changing `changed_files` and planning `dirs` should see, as lines (at most ten).

        A warning about a dir the PR touches or a planned dir reads is shown; all are when the PR changes a
        module, since an unparsable file anywhere may hide a caller of it.
        """
        if not self.warnings:
            return []
        direct, linked = self.touched(changed_files)
        changes_module = bool((direct | linked) & self.modules)
        relevant = direct | linked
        for dir in dirs:
            relevant |= {dir} | self.reads(dir)
        lines = [w.text for w in self.warnings if changes_module or relevant.intersection(w.dirs)]
        if len(lines) > _MAX_WARNINGS:
            lines = lines[:_MAX_WARNINGS] + [f"... and {len(lines) - _MAX_WARNINGS} more."]
        return lines

    # -- caching -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the graph (sorted, so equal graphs serialise equally)."""
        return {"format": GRAPH_FORMAT, "tf_dirs": sorted(self.tf_dirs),
                "calls": {d: sorted(c) for d, c in sorted(self.calls.items())},
                "links": dict(sorted(self.links.items())), "errors": dict(sorted(self.errors.items())),
                "shared": sorted(self.shared)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModuleGraph:
        """The graph `to_dict` gave; ValueError for another format or a malformed dict."""
        try:
            if data["format"] != GRAPH_FORMAT:
                raise ValueError(f"module graph format {data['format']!r}, expected {GRAPH_FORMAT}")
            return cls(tf_dirs=frozenset(str(d) for d in data["tf_dirs"]),
                       calls={str(d): frozenset(str(c) for c in cs) for d, cs in data["calls"].items()},
                       links={str(k): str(v) for k, v in data["links"].items()},
                       errors={str(k): str(v) for k, v in data["errors"].items()},
                       shared=frozenset(str(d) for d in data["shared"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a module graph: {exc!r}") from None

    # -- internals ---------------------------------------------------------------------------------

    @cached_property
    def _callers(self) -> dict[str, frozenset[str]]:
        reverse: dict[str, set[str]] = defaultdict(set)
        for dir, called in self.calls.items():
            for c in called:
                reverse[c].add(dir)
        return {d: frozenset(c) for d, c in reverse.items()}

    @cached_property
    def _owned_links(self) -> dict[str, set[str]]:
        """{configuration dir: targets of the links in it or below it}: a link belongs to the nearest dir above
        it that holds Terraform files."""
        owned: dict[str, set[str]] = defaultdict(set)
        for link, target in self.links.items():
            owner = self._owner(link)
            if owner is not None:
                owned[owner].add(target)
        return dict(owned)

    @cached_property
    def _readers_by_path(self) -> dict[str, set[str]]:
        """{link path or link target: configuration dirs whose links make them read it}."""
        by_path: dict[str, set[str]] = defaultdict(set)
        for link, target in self.links.items():
            owner = self._owner(link)
            if owner is not None:
                by_path[link].add(owner)
                by_path[target].add(owner)
        return dict(by_path)

    def _owner(self, link: str) -> str | None:
        dir = tf_dir_of(link)
        while True:
            if dir in self.tf_dirs:
                return dir
            if dir == ".":
                return None
            dir = tf_dir_of(dir)

    def _link_readers(self, path: str) -> set[str]:
        """Dirs reading `path` through a link: the link itself, or a target that is `path` or a dir above it."""
        found: set[str] = set()
        current = path
        while True:
            found |= self._readers_by_path.get(current, set())
            if current == ".":
                return found
            current = tf_dir_of(current)

    @staticmethod
    def _closure(start: Iterable[str], edges: Mapping[str, frozenset[str]], include_start: bool = True) -> set[str]:
        """Dirs reachable from `start` along `edges` (the start dirs only if `include_start`, or if a cycle
        reaches them)."""
        start = list(start)
        seen: set[str] = set(start) if include_start else set()
        todo = deque(start)
        visited = set(start)
        while todo:
            for nxt in edges.get(todo.popleft(), frozenset()):
                seen.add(nxt)
                if nxt not in visited:
                    visited.add(nxt)
                    todo.append(nxt)
        return seen


# --- internals ----------------------------------------------------------------------------------------


def _shown(path: str) -> str:
    return path.replace("`", "'")  # inside a code span in the comment


def as_list(value: Any) -> list[Any]:
    """A parsed block or attribute as a list: python-hcl2 and Terraform JSON give one item or a list of them."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def hcl_literal(value: Any) -> str | None:
    """The text of an HCL string literal as python-hcl2 serialises it (`'"../net"'`); None for an expression
    or a template (Terraform accepts neither as a module source)."""
    if not isinstance(value, str) or len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        return None
    inner = value[1:-1]
    if "${" in inner or "%{" in inner:
        return None
    if "\\" in inner:
        try:
            decoded = json.loads(value)  # HCL's escapes are JSON's, for what a path may hold
        except ValueError:
            return None
        return decoded if isinstance(decoded, str) else None
    return inner


def _link_target(link: str, link_targets: Mapping[str, str]) -> str | None:
    """The real repo path the symlink at `link` points to, or None (absolute, outside the repository, a loop)."""
    text = link_targets.get(link)
    if text is None or text.startswith("/"):
        return None
    dir = tf_dir_of(link)  # a real dir: git stores nothing below a symlink
    return resolve_links(text if dir == "." else f"{dir}/{text}", link_targets)


def _parse_json(text: str) -> ParsedFile:
    try:
        tree = json.loads(text)
    except ValueError as exc:
        line, column = getattr(exc, "lineno", 0), getattr(exc, "colno", 0)
        return ParsedFile(error=f"line {line}, column {column}: {getattr(exc, 'msg', str(exc))}")
    except RecursionError:  # a PR's file nested past what json parses: a warning, never a failed event
        return ParsedFile(error="nested too deeply to read")
    if not isinstance(tree, dict):
        return ParsedFile(error="line 1, column 1: a Terraform JSON file must hold one object")
    sources = []
    for block in as_list(tree.get("module")):  # {"name": {...}} or a list of such objects
        for body in (block.values() if isinstance(block, dict) else ()):
            for one in as_list(body):
                source = one.get("source") if isinstance(one, dict) else None
                if isinstance(source, str):
                    sources.append(source)
    return ParsedFile(sources=tuple(sources))


def hcl_error(exc: Exception) -> str:
    """Where and what, without echoing the file's text (which a PR writes: it could mention people)."""
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    what = {"UnexpectedToken": "unexpected token", "UnexpectedCharacters": "unexpected character",
            "UnexpectedEOF": "unexpected end of file"}.get(type(exc).__name__, "not valid HCL")
    where = f"line {line}, column {column}: " if isinstance(line, int) and line > 0 else ""
    return f"{where}{what}"


def _strongly_connected(edges: Mapping[str, frozenset[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (module chains may be deep); each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out
