"""Which extra arguments a `plan` comment may pass to Terraform: the repository's allowlist over the words after
`--`. Pure, no I/O.

The words come from the comment parser (bot/lifecycle/commands.py) already split by shell quoting rules, never
through a shell. Each word must be a Terraform plan option the server allows (`repos[].extra_args`, whose entries
bot/plan_args.py checked at startup); a value given as the next word (`-target ADDR`) joins its option into one
argv item (`-target=ADDR`), so Terraform can never read a comment's word as an option of its own. A `-var-file`
must stay inside the repository: lexically here (against the project's directory), and through symlinks in the
run, after checkout (bot/lifecycle/steps.py).
"""
from __future__ import annotations

import posixpath
from collections.abc import Sequence

from bot.lifecycle.commands import echo
from bot.plan_args import KNOWN, SWITCH_VALUES, VALUE_OPTIONS, has_hidden_characters, path_problem


class ExtraArgsRefused(ValueError):
    """The extra arguments cannot be used; the message is markdown safe to post on the PR."""


def allowed_args(words: Sequence[str], allowlist: Sequence[str]) -> tuple[str, ...]:
    """The words after `--` as argv items for `terraform plan` (`-name=value`, or a switch as typed).

    `allowlist`: the repository's `extra_args` entries, an option's name (any value) or one exact argument.
    Raises ExtraArgsRefused naming the first word that is not allowed and listing what the server allows.
    """
    if not allowlist:
        raise ExtraArgsRefused("this server takes no extra arguments for Terraform in this repository "
                               "(its `extra_args` list is empty).")
    names = {e for e in allowlist if "=" not in e}
    exact = {e for e in allowlist if "=" in e}
    args: list[str] = []
    i = 0
    while i < len(words):
        token = words[i]
        if has_hidden_characters(token):
            raise ExtraArgsRefused("an extra argument holds a control or invisible formatting character.")
        name, eq, value = token.partition("=")
        if not token.startswith("-") or token == "-":
            raise ExtraArgsRefused(f"unexpected word {echo(token)} after `--`: extra arguments are Terraform "
                                   f"options, each starting with `-`. {describe_allowlist(allowlist)}")
        if token.startswith("--"):
            raise ExtraArgsRefused(f"{echo(name)}: write Terraform's options with one dash, such as `-target`.")
        if name not in KNOWN:
            raise ExtraArgsRefused(f"{echo(name)} is not an option tfbot passes to `terraform plan`. "
                                   f"{describe_allowlist(allowlist)}")
        if name in VALUE_OPTIONS:
            if not eq and i + 1 < len(words) and not words[i + 1].startswith("-"):
                i += 1
                value = words[i]
            if not value:
                raise ExtraArgsRefused(f"`{name}` needs a value: `{name}=VALUE` or `{name} VALUE`.")
            if has_hidden_characters(value):
                raise ExtraArgsRefused("an extra argument holds a control or invisible formatting character.")
            arg = f"{name}={value}"
            problem = path_problem(value) if name == "-var-file" else None
            if problem:
                raise ExtraArgsRefused(f"-var-file {echo(value)} {problem}.")
        else:
            if eq and value not in SWITCH_VALUES:
                raise ExtraArgsRefused(f"`{name}` is a switch: write `{name}`, `{name}=true` or `{name}=false`.")
            arg = token
        if name not in names and arg not in exact:
            raise ExtraArgsRefused(f"{echo(arg)} is not allowed here. {describe_allowlist(allowlist)}")
        args.append(arg)
        i += 1
    return tuple(args)


def var_file_problem(args: Sequence[str], project_dir: str) -> str | None:
    """Why a `-var-file` of `args` leads outside the repository from `project_dir` (where Terraform runs, `.` for
    the root) once its `..` parts are resolved; None when none does. Symlinks are the run's to check."""
    for arg in args:
        name, _, path = arg.partition("=")
        if name != "-var-file":
            continue
        joined = posixpath.normpath(posixpath.join(project_dir, path))
        if joined == ".." or joined.startswith("../"):
            return (f"-var-file {echo(path)} leads outside the repository from the project's directory "
                    f"`{project_dir}`.")
    return None


def describe_allowlist(allowlist: Sequence[str]) -> str:
    """The allowlist as a sentence for a reply."""
    return ("This server allows: " + ", ".join(f"`{e}`" for e in allowlist)
            + " (an option named alone takes any value).")
