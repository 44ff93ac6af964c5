"""Terraform plan's options as tfbot knows them, for the extra arguments a PR comment may add to a plan. Pure.

A server allows extra arguments per repository (`repos[].extra_args`); every entry must name one of the options
below, so no configuration can let a comment reach the options tfbot sets itself (`-out`, `-input=false`,
`-detailed-exitcode`, `-no-color`) or ones that change where Terraform reads and writes (`-chdir`, `-state`,
`-generate-config-out`): Terraform takes the last of two equal options, so one such argument after tfbot's own
would silently win. The Terraform adapter checks the same list again before it starts a plan.

Shared by the config (load-time checks), the comment policy (bot/lifecycle/extra_args.py), the adapter, the PR
comment and the lock page, so it imports nothing of tfbot.
"""
from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Iterable, Sequence

# Options that take a value (`-target=ADDR`, or `-target ADDR` in a comment); each may be given more than once.
VALUE_OPTIONS = ("-target", "-replace", "-var", "-var-file", "-parallelism", "-lock-timeout")
# Switches: given bare (`-destroy`) or as `-name=true` / `-name=false`.
SWITCHES = ("-destroy", "-refresh-only", "-refresh", "-lock", "-compact-warnings")
KNOWN = frozenset(VALUE_OPTIONS + SWITCHES)
SWITCH_VALUES = ("true", "false")

DEFAULT_ALLOWED = ("-target", "-replace", "-var", "-var-file", "-refresh=false", "-destroy")

# Why a plan option tfbot does not know cannot be allowed; anything else: not a `terraform plan` option tfbot knows.
_NEVER = {
    "-out": "tfbot saves the plan file itself",
    "-input": "tfbot never waits for input (it passes -input=false)",
    "-detailed-exitcode": "tfbot reads the exit code itself",
    "-no-color": "tfbot sets it itself",
    "-chdir": "tfbot runs Terraform in the project's directory",
    "-state": "the state is the backend's, never a path from a comment",
    "-state-out": "the state is the backend's, never a path from a comment",
    "-backup": "the state is the backend's, never a path from a comment",
    "-json": "tfbot reads Terraform's own output",
    "-generate-config-out": "it writes files into the checkout",
}
# Unicode categories no argument may hold: control, format (bidi overrides, zero-width), surrogate, private,
# unassigned, line and paragraph separators. They would hide what an argument says when it is shown back.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def has_hidden_characters(text: str) -> bool:
    """Whether `text` holds a control or invisible formatting character."""
    return any(unicodedata.category(c) in _HIDDEN for c in text)


def entry_problem(entry: str) -> str | None:
    """Why `entry` cannot be in `repos[].extra_args`, or None when it can.

    An entry is an option's name (`-target`: any value; `-destroy`: the switch) or one exact argument
    (`-refresh=false`, `-var-file=prod.tfvars`).
    """
    name, eq, value = entry.partition("=")
    if not name.startswith("-") or name.startswith("--"):
        return f"{entry!r} is not a Terraform option: write it with one dash, such as -target"
    if name not in KNOWN:
        why = _NEVER.get(name, "not a `terraform plan` option tfbot knows")
        return (f"{name} cannot be allowed: {why} (tfbot knows {', '.join(VALUE_OPTIONS)}, which take a value, and "
                f"{', '.join(SWITCHES)})")
    if not eq:
        return None
    if not value or has_hidden_characters(value):
        return f"{entry!r}: give a value after `=` (visible characters only), or the name alone to allow any value"
    if name in SWITCHES and value not in SWITCH_VALUES:
        return f"{entry!r}: {name} is a switch, so its value is true or false"
    problem = path_problem(value) if name == "-var-file" else None
    return f"{entry!r}: -var-file {problem}" if problem else None


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a `-var-file` (relative to the project's directory), lexically, as words that follow
    the path ("must be ..."); None when it can be.

    Where it leads once `..` parts are resolved against the project's directory is checked with the directory
    (bot/lifecycle/extra_args.py), and where it leads through symlinks after checkout, in the run.
    """
    if path.startswith("/") or path.startswith("~"):
        return "must be a path relative to the project's directory, inside the repository"
    if "\\" in path:
        return "must separate directories with `/`"
    return None


def shown(args: Sequence[str]) -> str:
    """Extra arguments as one line a person can paste back after `--` (shell-quoted where needed); "" for none.
    `parsed` reads it back. A masked `-var=name=***` stays bare: it cannot be pasted back anyway, and quotes around it
    would only make the lock page read oddly."""
    return " ".join(a if _MASKED_VAR.fullmatch(a) else shlex.quote(a) for a in args)


_MASKED_VAR = re.compile(r"-var=[A-Za-z0-9_-]+=\*\*\*")


def public(args: Sequence[str]) -> list[str]:
    """The arguments as places other than the PR show them (the lock page, its JSON, run logs, the audit trail):
    a `-var` value may be a secret typed into the comment, so only its name is shown (`-var=db_password=***`)."""
    return [f"-var={a[5:].split('=', 1)[0]}=***" if a.startswith("-var=") else a for a in args]


def parsed(text: str) -> list[str]:
    """The arguments `shown` wrote."""
    return shlex.split(text)


def is_destroy(args: Iterable[str]) -> bool:
    """Whether a plan with these (normalised) extra arguments is a destroy plan."""
    return any(a in ("-destroy", "-destroy=true") for a in args)


def known_option(arg: str) -> bool:
    """Whether one argv item is a plan option of the lists above (`-target=x`, `-destroy`): the adapter's last
    check before extra arguments reach Terraform."""
    name, eq, value = arg.partition("=")
    if name in VALUE_OPTIONS:
        return bool(eq and value)
    return name in SWITCHES and (not eq or value in SWITCH_VALUES)
