"""Read a PR comment and decide whether it is a tfbot command: pure, no I/O, returns a value.

Grammar of the first line (the rest of the comment is free text):

    [tfbot | /]<command> [-p PROJECT | --project PROJECT] [-d DIR | --dir DIR] [-w WS | --workspace WS]

with `<command>` one of plan, apply, unlock, help (ASCII, any case) and `-p=x`/`--project=x` also accepted.
Who is addressing us decides what an error gets back:

- prefixed (`tfbot plan`, `/plan`): clearly meant for us, so any mistake gets a Reply with the error and the
  help text. Exception: `/word` for a word that is not a tfbot command is ignored, because other bots on the
  same repository own their own slash commands (`/lgtm`, `/assign`).
- bare (`plan`): a command only when alone or followed by something that looks like a flag (`-x`/`--x`);
  `plan looks good to me` is people talking and is ignored. Once a flag is seen, mistakes get a Reply.

User text never reaches a shell or Terraform's argument list unchecked: every value must match an allowlist
below, and none may start with '-' (so it can never be read as an option).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Union

PREFIX = "tfbot"
COMMANDS = ("plan", "apply", "unlock")
MAX_LINE = 1000  # longest first line we read; beyond it we stop looking (a comment may be 65,536 chars)
MAX_DIR = 255

DIR_RE = re.compile(r"^[A-Za-z0-9._/@+-]{1,%d}$" % MAX_DIR)
WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,90}$")  # Terraform's workspace rule
PROJECT_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
_UNSAFE_ECHO = re.compile(r"[^A-Za-z0-9._:/=@+-]")  # characters never quoted back to the PR
_FLAGS = {
    "-p": "project", "--project": "project",
    "-d": "dir", "--dir": "dir",
    "-w": "workspace", "--workspace": "workspace",
}

HELP_TEXT = """\
**tfbot commands** (write the command on the first line of a PR comment; `tfbot plan` and `/plan` work too)

| Command | What it does | Who may run it |
|---|---|---|
| `plan` | plan the projects this PR changes, or the one chosen with a flag | anyone with read access |
| `apply` | apply the saved plans of this PR | write, maintain or admin |
| `unlock` | drop this PR's plans and release its workspace locks | write, maintain or admin |
| `help` | show this message | anyone |

Flags (optional; choose a project by name, or by directory and workspace):

- `-p NAME`, `--project NAME`: a project named in the tfbot config
- `-d DIR`, `--dir DIR`: a directory relative to the repository root, such as `network` or `.`
- `-w NAME`, `--workspace NAME`: a Terraform workspace (letters, digits, `-`, `_`, `.`)

`-p` cannot be combined with `-d` or `-w`. Example: `tfbot plan -d network -w staging`
"""


@dataclass(frozen=True)
class Command:
    """A valid command; values are allowlisted, and dir is normalised (`./network/` -> `network`)."""

    name: Literal["plan", "apply", "unlock"]
    project: str | None = None
    dir: str | None = None
    workspace: str | None = None


@dataclass(frozen=True)
class Reply:
    """Addressed to us but not runnable (or `help`): post `text` (markdown) back on the PR."""

    text: str


@dataclass(frozen=True)
class Ignore:
    """Not for us; `reason` is for the log only."""

    reason: str


ParseResult = Union[Command, Reply, Ignore]


class _Invalid(Exception):
    """A mistake in a command that was addressed to us; the message is safe to post."""


def parse_comment(body: str, author: str, bot_login: str) -> ParseResult:
    """Classify one new PR comment as a Command, a Reply to post, or something to Ignore."""
    author_l = (author or "").lower()
    # GitHub user logins cannot contain '[', so the suffix alone identifies an App (type Bot).
    if author_l == (bot_login or "").lower() or author_l.endswith("[bot]"):
        return Ignore("comment by a bot")
    text = (body or "").lstrip(" \t\r\n")
    head = text[: MAX_LINE + 1]  # bounded work whatever the comment's size
    line = head.split("\n", 1)[0]
    too_long = len(line) > MAX_LINE
    # ASCII space and tab only: any other character stays inside a token and then fails the allowlists.
    tokens = [t for t in re.split(r"[ \t]+", line.rstrip("\r \t")) if t]
    if not tokens:
        return Ignore("empty first line")

    first = _word(tokens[0])
    if first == PREFIX:
        if len(tokens) < 2:
            return _reply("say which command to run.")
        raw, args = tokens[1], tokens[2:]
    elif tokens[0].startswith("/") and _word(tokens[0][1:]) in (*COMMANDS, "help"):
        raw, args = tokens[0][1:], tokens[1:]
    elif first in (*COMMANDS, "help"):
        raw, args = tokens[0], tokens[1:]
        if args and not _looks_like_flag(args[0]):
            return Ignore(f"conversation starting with {first!r}")
    else:
        return Ignore("not a command")

    if too_long:
        return _reply(f"the first line is longer than {MAX_LINE} characters.")
    word = _word(raw)
    if word == "help":
        return Reply(HELP_TEXT)
    if word not in COMMANDS:
        return _reply(f"{_echo(raw)} is not a tfbot command.")
    try:
        values = _parse_flags(args)
    except _Invalid as e:
        return _reply(str(e))
    return Command(name=word, **values)  # type: ignore[arg-type]  # word is one of COMMANDS here


def _word(token: str) -> str:
    """Lower-case a command word only if it is ASCII: `str.lower` maps e.g. the Kelvin sign to 'k'."""
    return token.lower() if token.isascii() else ""


def _looks_like_flag(token: str) -> bool:
    return re.match(r"^--?[A-Za-z]", token) is not None


def _parse_flags(args: list[str]) -> dict[str, str]:
    """Turn flag tokens into validated values; raises _Invalid with a postable message."""
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        name, eq, inline = token.partition("=")
        field = _FLAGS.get(name)
        if field is None:
            what = "unknown flag" if token.startswith("-") else "unexpected word"
            raise _Invalid(f"{what} {_echo(name if token.startswith('-') else token)}.")
        if eq and not inline:
            raise _Invalid(f"{name} needs a value.")
        if eq:
            value = inline
        elif i + 1 < len(args):
            i += 1
            value = args[i]
        else:
            raise _Invalid(f"{name} needs a value.")
        if field in values:
            raise _Invalid(f"{name} was given twice.")
        values[field] = _VALIDATORS[field](value)
        i += 1
    if "project" in values and ("dir" in values or "workspace" in values):
        raise _Invalid("choose a project either by -p, or by -d and -w, not both.")
    return values


def _valid_dir(value: str) -> str:
    """A relative path inside the checkout, normalised the way the config normalises project dirs."""
    if value.startswith("/"):
        raise _Invalid("-d must be a path relative to the repository root.")
    if value.startswith("-") or not DIR_RE.match(value):
        raise _Invalid(f"-d allows letters, digits and `._/@+-` only, at most {MAX_DIR} characters.")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Invalid("-d must stay inside the repository (no `..`).")
    return "/".join(parts) or "."


def _valid_workspace(value: str) -> str:
    # Same rule as bot.terraform.validate_workspace: '..' would be a path under terraform.tfstate.d/.
    if value.startswith("-") or not WORKSPACE_RE.match(value) or set(value) == {"."}:
        raise _Invalid("-w allows letters, digits, `-`, `_` and `.` only (Terraform's rule), at most 90 characters.")
    return value


def _valid_project(value: str) -> str:
    if value.startswith("-") or not PROJECT_RE.match(value) or ".." in value.split("/"):
        raise _Invalid("-p allows letters, digits and `_.:/-` only, at most 100 characters.")
    return value


_VALIDATORS = {"dir": _valid_dir, "workspace": _valid_workspace, "project": _valid_project}


def _echo(token: str) -> str:
    """Quote user text back defanged ('?' for anything unusual, in a code span), so a reply carries no markup."""
    return f"`{_UNSAFE_ECHO.sub('?', token[:40])}`" + ("..." if len(token) > 40 else "")


def _reply(error: str) -> Reply:
    return Reply(f"**tfbot could not run that:** {error}\n\n{HELP_TEXT}")
