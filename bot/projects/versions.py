"""Which Terraform or OpenTofu binary runs a project. Pure: values in, a choice or a sentence out.

The server lists the binaries it has (`terraform.binary`, the default, and `terraform.binaries` / `tofu.binaries`,
version -> path). A project asks with `engine` (terraform or opentofu) and `terraform_version` (a constraint), and
its root asks with every `required_version` of its `terraform {}` blocks. All of them must hold:

- no constraint at all: Terraform runs the default binary, OpenTofu its newest installed version;
- else, for Terraform, the default binary when it fits (so adding a binary to the server never moves a project that
  the default already serves: a state written by a newer Terraform cannot be read by an older one), else the
  newest installed version that fits; for OpenTofu, the newest that fits;
- none fits: `NoFit`, one sentence naming the engine, each constraint and where it came from, and the installed
  versions.

Constraints are HashiCorp's syntax (hashicorp/go-version, which Terraform and OpenTofu use for
`required_version`): comma-separated parts, each `=` (or no operator), `!=`, `>`, `>=`, `<`, `<=` or `~>` before a
version of one to three numbers with an optional `-prerelease`. Each part is translated into a
`packaging.specifiers.Specifier` (`=` -> `==`, `~> 1.9` -> `~=1.9`, `~> 1.9.0` -> `~=1.9.0`) and compared by
`packaging`; two rules are go-version's own and kept here: `~> 1` holds every version from 1 on (go-version fixes
all but the last number given, and with one number that is none), and a prerelease fits a part only when that part
names a prerelease of the same version (`>= 1.9` never picks `1.10.0-beta1`), or is `=`/`!=`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, Specifier
from packaging.version import InvalidVersion, Version

from bot.projects.modules import as_list, hcl_literal, parse_hcl
from bot.projects.paths import is_tf_file

Engine = Literal["terraform", "opentofu"]
ENGINES: tuple[Engine, ...] = ("terraform", "opentofu")
ENGINE_NAMES: dict[str, str] = {"terraform": "Terraform", "opentofu": "OpenTofu"}
# The config section listing each engine's extra binaries, for sentences that send an admin there.
ENGINE_KEYS: dict[str, str] = {"terraform": "terraform.binaries", "opentofu": "tofu.binaries"}

_PART = re.compile(
    r"\s*(?P<op>~>|>=|<=|!=|=|>|<)?\s*v?(?P<release>\d+(?:\.\d+){0,2})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?\s*")
_VERSION = re.compile(r"v?(?P<release>\d+\.\d+\.\d+)(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?")
_MAX_CONSTRAINT = 200


class ConstraintError(ValueError):
    """A version or constraint tfbot cannot read; the message says why, without the caller's key."""


def parse_version(text: str) -> Version:
    """An exact version as Terraform prints it (`1.11.4`, `1.12.0-alpha20250101`); ConstraintError otherwise."""
    match = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ConstraintError(f"{text!r} is not a version such as 1.11.4")
    return _version(match["release"], match["pre"])


def _version(release: str, pre: str | None) -> Version:
    try:
        return Version(f"{release}-{pre}" if pre else release)
    except InvalidVersion:
        raise ConstraintError(f"the prerelease {pre!r} is not one tfbot can compare (use alpha, beta or rc, "
                              "as Terraform's releases do)") from None


@dataclass(frozen=True)
class _Part:
    op: str  # HashiCorp's operator, "=" when none was written
    version: Version
    specifier: Specifier | None  # None: every version from `version` on (`~> N`)

    def holds(self, version: Version) -> bool:
        if version.is_prerelease and self.op not in ("=", "!="):
            # go-version: a prerelease fits only a part naming a prerelease of the very same release.
            if not self.version.is_prerelease or _padded(self.version) != _padded(version):
                return False
        if self.op == "~>" and self.version.is_prerelease and not version.is_prerelease:
            return False  # go-version: `~> 1.2.0-beta` holds prereleases only
        if self.specifier is None:
            return version >= self.version
        return self.specifier.contains(version, prereleases=True)


def _padded(version: Version) -> tuple[int, ...]:
    return (*version.release, 0, 0)[:3]


@dataclass(frozen=True)
class VersionConstraint:
    """A parsed constraint: `text` as written, and its parts (all must hold)."""

    text: str
    parts: tuple[_Part, ...]

    def holds(self, version: Version) -> bool:
        return all(part.holds(version) for part in self.parts)


def parse_constraint(text: str) -> VersionConstraint:
    """`~> 1.9`, `>= 1.0, < 1.5`, `1.0.3`, ...; ConstraintError naming the part that is not HashiCorp syntax."""
    if not isinstance(text, str) or not text.strip():
        raise ConstraintError("empty: write a version such as 1.9.8 or a constraint such as ~> 1.9")
    if len(text) > _MAX_CONSTRAINT:
        raise ConstraintError(f"longer than {_MAX_CONSTRAINT} characters")
    parts = []
    for raw in text.split(","):
        match = _PART.fullmatch(raw)
        if match is None:
            raise ConstraintError(f"{raw.strip()!r} is not a version constraint (HashiCorp syntax: an operator =, "
                                  "!=, >, >=, <, <= or ~> before a version such as 1.9.8, parts joined by commas)")
        parts.append(_translate(match["op"] or "=", match["release"], match["pre"]))
    return VersionConstraint(text.strip(), tuple(parts))


def _translate(op: str, release: str, pre: str | None) -> _Part:
    version = _version(release, pre)
    exact = str(version)
    if op == "~>":
        if len(release.split(".")) == 1:
            return _Part(op, version, None)
        spec = f"~={exact}"
    else:
        spec = {"=": "==", "!=": "!="}.get(op, op) + exact
    try:
        return _Part(op, version, Specifier(spec))
    except InvalidSpecifier:  # not reached for what _PART lets through; said plainly if it ever is
        raise ConstraintError(f"{op} {release} cannot be compared") from None


# -- what the server has ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Binary:
    """One binary a project can run with: its engine, its version as it reports it ("" if unknown), its path."""

    engine: str
    version: str
    path: str

    @property
    def label(self) -> str:
        """`Terraform 1.0.3`, `OpenTofu 1.8.5` (`Terraform` alone when its version is unknown)."""
        return f"{ENGINE_NAMES.get(self.engine, self.engine)} {self.version}".strip()


@dataclass(frozen=True)
class Binaries:
    """Every binary the server lists: `default` is `terraform.binary`; `extra` are `terraform.binaries` and
    `tofu.binaries`, whose versions are their config keys (checked at startup)."""

    default: Binary
    extra: tuple[Binary, ...] = ()

    def installed(self, engine: str) -> list[Binary]:
        """The binaries of `engine` with a known version, oldest first; the default wins a version listed twice. A
        default reporting a version tfbot cannot compare (a custom build's `1.11.4-acme`) serves only projects that
        ask for nothing."""
        found: dict[str, Version] = {}
        chosen: dict[str, Binary] = {}
        for binary in (*self.extra, self.default):
            if binary.engine != engine or not binary.version:
                continue
            try:
                found[binary.version] = parse_version(binary.version)
            except ConstraintError:
                continue
            chosen[binary.version] = binary
        return sorted(chosen.values(), key=lambda b: found[b.version])

    def find(self, engine: str, version: str) -> Binary | None:
        """The installed binary of exactly `engine` and `version`, or None."""
        return next((b for b in self.installed(engine) if b.version == version), None)

    def describe(self, engine: str) -> str:
        """`Terraform 1.0.3 and 1.11.4`, or `no OpenTofu (tofu.binaries is empty)`."""
        versions = [b.version for b in self.installed(engine)]
        name = ENGINE_NAMES.get(engine, engine)
        if not versions:
            return f"no {name} ({ENGINE_KEYS.get(engine, engine)} is empty)"
        listed = versions[0] if len(versions) == 1 else f"{', '.join(versions[:-1])} and {versions[-1]}"
        return f"{name} {listed}"


# -- choosing --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Constraint:
    """One constraint on the version and where it comes from (`the project's terraform_version`,
    `required_version in versions.tf`)."""

    text: str
    source: str


@dataclass(frozen=True)
class NoFit:
    """No installed binary fits: `message` is the sentence the PR reads."""

    message: str


def choose(engine: str, constraints: Sequence[Constraint], binaries: Binaries) -> Binary | NoFit:
    """The binary that runs a project of `engine` under `constraints` (see the module docstring for the rule).

    A constraint that cannot be parsed is a NoFit naming it (the project's own is refused when tfbot.yaml or
    config.yaml is read; a root's `required_version` is PR code, read here)."""
    parsed: list[tuple[Constraint, VersionConstraint]] = []
    for constraint in constraints:
        try:
            parsed.append((constraint, parse_constraint(constraint.text)))
        except ConstraintError as exc:
            source = constraint.source[:1].upper() + constraint.source[1:]
            return NoFit(f"{source} `{constraint.text}` cannot be read: {exc}. Nothing was run.")
    installed = binaries.installed(engine)
    if not parsed:
        if engine == "terraform":
            return binaries.default
        stable = [b for b in installed if not parse_version(b.version).is_prerelease]
        if stable or installed:
            return (stable or installed)[-1]
        return NoFit(_no_fit(engine, [], binaries))
    fitting = [b for b in installed if all(c.holds(parse_version(b.version)) for _, c in parsed)]
    if engine == "terraform" and binaries.default in fitting:
        return binaries.default
    if fitting:
        return fitting[-1]
    return NoFit(_no_fit(engine, [c for c, _ in parsed], binaries))


def _no_fit(engine: str, constraints: Sequence[Constraint], binaries: Binaries) -> str:
    name = ENGINE_NAMES.get(engine, engine)
    has = binaries.describe(engine)
    key = ENGINE_KEYS.get(engine, engine)
    if not constraints:
        return (f"This project runs with {name} (engine: {engine}), and this server has {has}. Nothing was run; "
                f"ask the server's admin to add one under {key}, or choose another engine.")
    wanted = " and ".join(f"`{c.text}` ({c.source})" for c in constraints)
    return (f"No installed {name} fits {wanted}: this server has {has}. Nothing was run; change the constraint, "
            f"or ask the server's admin to add a fitting version under {key}.")


# -- the root's required_version -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RequiredVersions:
    """The `required_version` constraints of a root's files, or why they cannot be read (`problems`, one line
    each, naming the file)."""

    constraints: tuple[Constraint, ...] = ()
    problems: tuple[str, ...] = ()


def required_versions(files: Mapping[str, str]) -> RequiredVersions:
    """The `required_version` of every `terraform {}` block in a root's files (name -> text; `*.tf`, `*.tf.json`).

    As Terraform merges them: those of the ordinary files all hold; an override file (`override.tf`,
    `*_override.tf`) that sets one replaces all before it, files taken in name order. A file that cannot be parsed,
    or a value that is not a literal string, is a problem (Terraform refuses both as well).
    """
    primary: list[Constraint] = []
    overridden: list[Constraint] | None = None
    problems: list[str] = []
    for name in sorted(files, key=lambda n: (_is_override(n), n)):
        if not is_tf_file(name) or "required_version" not in files[name]:
            continue  # a file that never says it cannot set one: no parse needed
        found, problem = _file_constraints(name, files[name])
        if problem:
            problems.append(problem)
        elif _is_override(name):
            overridden = found if found else overridden
        else:
            primary += found
    return RequiredVersions(tuple(primary if overridden is None else overridden), tuple(problems))


def _is_override(name: str) -> bool:
    stem = name.removesuffix(".json").removesuffix(".tf")
    return stem == "override" or stem.endswith("_override")


def _file_constraints(name: str, text: str) -> tuple[list[Constraint], str]:
    """(constraints, "") or ([], the problem)."""
    literal: Callable[[Any], str | None]
    if name.endswith(".json"):
        try:
            tree: Any = json.loads(text)
        except (ValueError, RecursionError) as exc:
            return [], f"{name} is not valid JSON: {getattr(exc, 'msg', 'cannot be read')}"
        literal = _json_string
    else:
        try:
            tree = parse_hcl(text)
        except ValueError as exc:
            return [], f"{name} cannot be parsed ({exc})"
        literal = hcl_literal
    found = []
    for block in as_list(tree.get("terraform") if isinstance(tree, dict) else None):
        if not isinstance(block, dict) or "required_version" not in block:
            continue
        value = literal(block["required_version"])
        if value is None:
            return [], f"the required_version in {name} is not a literal string"
        found.append(Constraint(value, f"required_version in {name}"))
    return found, ""


def _json_string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def choose_for_project(engine: str, terraform_version: str, files: Mapping[str, str],
                       binaries: Binaries) -> Binary | NoFit:
    """The binary of a project: its `engine` and `terraform_version`, and the `required_version` of its root's
    `files` (name -> text), over what the server has. A root whose constraints cannot be read is a NoFit."""
    required = required_versions(files)
    if required.problems:
        return NoFit(f"tfbot cannot read this root's required_version: {'; '.join(required.problems)}. Nothing was "
                     "run; fix the file and push.")
    own = [Constraint(terraform_version, "the project's terraform_version")] if terraform_version else []
    return choose(engine, [*own, *required.constraints], binaries)
