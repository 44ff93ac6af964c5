"""Read a PR comment and decide whether it is a tfbot command: pure, no I/O, returns a value.

Grammar of the first line (the rest of the comment is free text):

    [tfbot | /]<command> [-p PROJECT | --project PROJECT] [-d DIR | --dir DIR] [-w WS | --workspace WS] [-- EXTRA...]

with `<command>` one of plan, apply, unlock, help (ASCII, any case) and `-p=x`/`--project=x` also accepted.
Everything after a standalone `--` is the list of extra arguments for `terraform plan` (`plan` only, at most
MAX_EXTRA_ARGS words, split by the same quoting rules); whether the server allows them is decided later, against
the repository's allowlist (bot/lifecycle/extra_args.py), because only the server config knows it.
Who is addressing us decides what an error gets back:

- prefixed (`tfbot plan`, `/plan`): clearly meant for us, so any mistake gets a Reply with the error and the
  help text. Exception: `/word` for a word that is not a tfbot command is ignored, because other bots on the
  same repository own their own slash commands (`/lgtm`, `/assign`).
- bare (`plan`): a command only when alone or followed by something that looks like a flag (`-x`/`--x`, or `--`
  and then one: `plan -- -target=x`, while `apply -- done` is people talking);
  `plan looks good to me` is people talking and is ignored. Once a flag is seen, mistakes get a Reply.

Flag values are read the way a POSIX shell reads words (the standard library's `shlex` in POSIX mode, never a
shell): `'core net'` and `"core net"` are one value, quoted parts next to each other join (`'it'"'"'s'`).
Backslash is not an escape (a Windows path separator typed by mistake must not change meaning silently).

User text never reaches a shell or Terraform's argument list: a dir is only compared with the dirs of the
repository's projects, and every value is checked below. A dir may be any name git allows except one holding
a control or invisible formatting character or a backslash; it stays inside the repository (no absolute
path, no `..` part) and may not start with '-' as typed (`./-name` names such a directory). Workspaces and
project names keep their allowlists and may not start with '-' (so one can never be read as an option).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal, Union

from bot.plan_args import has_hidden_characters

PREFIX = "tfbot"
COMMANDS = ("plan", "apply", "unlock")
MAX_LINE = 1000  # longest first line we read; beyond it we stop looking (a comment may be 65,536 chars)
MAX_EXTRA_ARGS = 20  # words after `--`: enough for a handful of -target and -var, not a script
MAX_DIR_PART_BYTES = 255  # longest file name the file systems tfbot checks out on allow (ext4, xfs, APFS)
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
  (quote a name with spaces: `-d "core net"` or `-d 'core net'`; a name holding `"` goes in `'...'` and one
  holding `'` in `"..."`; a name starting with `-` is written `./-name`)
- `-w NAME`, `--workspace NAME`: a Terraform workspace (letters, digits, `-`, `_`, `.`)

`-p` cannot be combined with `-d` or `-w`. Example: `tfbot plan -d network -w staging`

Extra arguments for Terraform go after `--`, on `plan` only: `tfbot plan -d network -- -target=aws_vpc.main`.
The server decides which are allowed (by default `-target`, `-replace`, `-var`, `-var-file` inside the repository,
`-refresh=false` and `-destroy`). The plan comment names them, and `apply` applies exactly that plan.
"""


@dataclass(frozen=True)
class Command:
    """A valid command; values are allowlisted, and dir is normalised (`./network/` -> `network`)."""

    name: Literal["plan", "apply", "unlock"]
    project: str | None = None
    dir: str | None = None
    workspace: str | None = None
    extra_args: tuple[str, ...] = ()  # the words after `--`, as typed: not yet checked against any allowlist


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
    line = line.rstrip("\r \t")
    # ASCII space and tab only: any other character stays inside a word (and then fails the checks).
    spans = [(m.group(), m.end()) for m in re.finditer(r"[^ \t]+", line)]
    tokens = [t for t, _ in spans]
    if not tokens:
        return Ignore("empty first line")

    first = _word(tokens[0])
    if first == PREFIX:
        if len(tokens) < 2:
            return _reply("say which command to run.")
        raw, rest = tokens[1], line[spans[1][1]:]
    elif tokens[0].startswith("/") and _word(tokens[0][1:]) in (*COMMANDS, "help"):
        raw, rest = tokens[0][1:], line[spans[0][1]:]
    elif first in (*COMMANDS, "help"):
        raw, rest = tokens[0], line[spans[0][1]:]
        if len(tokens) > 1 and not _looks_like_flag(tokens[1]) and not (
                tokens[1] == "--" and len(tokens) > 2 and _looks_like_flag(tokens[2])):
            return Ignore(f"conversation starting with {first!r}")
    else:
        return Ignore("not a command")

    if too_long:
        return _reply(f"the first line is longer than {MAX_LINE} characters.")
    word = _word(raw)
    if word == "help":
        return Reply(HELP_TEXT)
    if word not in COMMANDS:
        return _reply(f"{echo(raw)} is not a tfbot command.")
    try:
        flags, extra = _split_extra(split_words(rest))
        values = _parse_flags(flags)
    except _Invalid as e:
        return _reply(str(e))
    if extra and word != "plan":
        return _reply(_NO_EXTRA.get(word, f"`{word}` takes no extra arguments."))
    return Command(name=word, extra_args=tuple(extra), **values)  # type: ignore[arg-type]  # one of COMMANDS


def _word(token: str) -> str:
    """Lower-case a command word only if it is ASCII: `str.lower` maps e.g. the Kelvin sign to 'k'."""
    return token.lower() if token.isascii() else ""


def split_words(text: str) -> list[str]:
    """Split flag text into words by POSIX shell quoting rules (shlex, POSIX mode); no expansion of any kind.

    Separators are ASCII space and tab; `'...'` and `"..."` quote; `#` is an ordinary character and backslash
    is literal. Raises _Invalid (postable) for a quote that is never closed.
    """
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace = " \t"
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    try:
        return list(lexer)
    except ValueError:
        raise _Invalid("a quote is not closed (quote a value with spaces as `\"core net\"` or `'core net'`).") \
            from None


def _looks_like_flag(token: str) -> bool:
    return re.match(r"^--?[A-Za-z]", token) is not None


_NO_EXTRA = {
    "apply": "`apply` takes no extra arguments: it applies the saved plan exactly as it was reviewed. Comment "
             "`plan -- ARGUMENTS` first, review that plan, then comment `apply`.",
    "unlock": "`unlock` takes no extra arguments.",
}


def _split_extra(words: list[str]) -> tuple[list[str], list[str]]:
    """(tfbot's flags, the extra arguments after the first standalone `--`); raises _Invalid (postable)."""
    if "--" not in words:
        return words, []
    at = words.index("--")
    extra = words[at + 1:]
    if not extra:
        raise _Invalid("`--` must be followed by the extra arguments for Terraform, such as `-- -target=ADDRESS`.")
    if len(extra) > MAX_EXTRA_ARGS:
        raise _Invalid(f"at most {MAX_EXTRA_ARGS} extra arguments may follow `--` ({len(extra)} were given).")
    return words[:at], extra


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
            raise _Invalid(f"{what} {echo(name if token.startswith('-') else token)}.")
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


def dir_problem(value: str) -> str | None:
    """Why `value` cannot name a project dir from a comment, or None when it can (pure; used by the parser)."""
    if not value:
        return "-d needs a value."
    if value.startswith("/"):
        return "-d must be a path relative to the repository root."
    if value.startswith("-"):
        return "-d cannot start with `-` (write `./-name` for a directory whose name starts with `-`)."
    if "\\" in value:
        return "-d cannot hold a backslash: separate directories with `/`."
    if has_hidden_characters(value):
        return "-d cannot hold control or invisible formatting characters."
    parts = value.split("/")
    if ".." in parts:
        return "-d must stay inside the repository (no `..`)."
    if any(len(p.encode("utf-8")) > MAX_DIR_PART_BYTES for p in parts):
        return f"-d: a directory name is at most {MAX_DIR_PART_BYTES} bytes long."
    return None


def _valid_dir(value: str) -> str:
    """A relative path inside the checkout, normalised the way the config normalises project dirs."""
    problem = dir_problem(value)
    if problem:
        raise _Invalid(problem)
    return "/".join(p for p in value.split("/") if p not in ("", ".")) or "."


def _valid_workspace(value: str) -> str:
    # Same rule as bot.models.validate_workspace: '..' would be a path under terraform.tfstate.d/.
    if value.startswith("-") or not WORKSPACE_RE.match(value) or set(value) == {"."}:
        raise _Invalid("-w allows letters, digits, `-`, `_` and `.` only (Terraform's rule), at most 90 characters.")
    return value


def _valid_project(value: str) -> str:
    if value.startswith("-") or not PROJECT_RE.match(value) or ".." in value.split("/"):
        raise _Invalid("-p allows letters, digits and `_.:/-` only, at most 100 characters.")
    return value


_VALIDATORS = {"dir": _valid_dir, "workspace": _valid_workspace, "project": _valid_project}


def describe_flags(cmd: Command) -> str:
    """The command's flags as a markdown code span, quoted so they can be pasted back (`-d 'core net'`)."""
    parts = [f"-p {cmd.project}" if cmd.project else "",
             f"-d {shlex.quote(cmd.dir)}" if cmd.dir else "",
             f"-w {cmd.workspace}" if cmd.workspace else ""]
    text = " ".join(p for p in parts if p)
    return f"`{text.replace('`', '?')}`" if text else "(no flags)"


def echo(token: str) -> str:
    """User text quoted back defanged: '?' for anything unusual, cut at 40 characters, in a code span, so a reply
    carries no markup."""
    return f"`{_UNSAFE_ECHO.sub('?', token[:40])}`" + ("..." if len(token) > 40 else "")


def _reply(error: str) -> Reply:
    return Reply(f"**tfbot could not run that:** {error}\n\n{HELP_TEXT}")
