"""What the pull request shows: the comment text of one command and the commit status line. Pure, no I/O.

The layout lives in bot/render/templates/*.md.j2 (one template per outcome); this module prepares values for them.
Every value that comes from users or GitHub reaches a template already made safe here, so a template
cannot forget: plain text through `escape_text`, names through `code_span`, output through `fenced`.

Each comment starts with a hidden marker `<!-- tfbot:{kind} pr={pull} sha={sha} -->` on its first line;
`marker_of` reads it back so the bot can find its earlier comments, and only the first line counts, so
text quoted further down cannot pass for one.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import jinja2

from bot.models import LockInfo, Outcome, ProjectResult
from bot.plan_args import is_destroy, shown

COMMENT_LIMIT = 65536  # GitHub's limit on a comment body, in characters
SPLIT_MARGIN = 500  # room left in every part for mark_outdated's wrapper and the part header
COMMAND_PREFIX = "tfbot"  # how users address the bot in comments: "tfbot apply"
STATUS_LIMIT = 140  # GitHub truncates a commit status description beyond this

_ACTION_ORDER = ("create", "update", "replace", "destroy")
_TEMPLATE = {
    Outcome.PLANNED: "planned.md.j2",
    Outcome.PLAN_FAILED: "failed.md.j2",
    Outcome.APPLY_FAILED: "failed.md.j2",
    Outcome.ERROR: "failed.md.j2",
    Outcome.APPLIED: "applied.md.j2",
    Outcome.LOCKED: "locked.md.j2",
    Outcome.REFUSED: "refused.md.j2",
    Outcome.STALE: "stale.md.j2",
}  # any other outcome (SUPERSEDED, or one added later): other.md.j2
_TITLE = {
    Outcome.PLANNED: "Planned",
    Outcome.PLAN_FAILED: "Plan failed",
    Outcome.APPLY_FAILED: "Apply failed",
    Outcome.ERROR: "Error",
    Outcome.APPLIED: "Applied",
    Outcome.LOCKED: "Locked",
    Outcome.REFUSED: "Refused",
    Outcome.STALE: "Plan is stale",
    Outcome.SUPERSEDED: "Superseded",
    Outcome.NOTHING_TO_APPLY: "Nothing to apply",
    Outcome.NOT_APPLIED: "Not applied",
}
_OK_OUTCOMES = {"plan": {Outcome.PLANNED}, "apply": {Outcome.APPLIED, Outcome.NOTHING_TO_APPLY}}
_STATUS_TAG = {Outcome.LOCKED: " (locked)", Outcome.REFUSED: " (refused)", Outcome.STALE: " (stale)",
               Outcome.ERROR: " (error)", Outcome.SUPERSEDED: " (superseded)", Outcome.NOT_APPLIED: " (not applied)"}

_MARKER_RE = re.compile(r"<!-- tfbot:([a-z][a-z0-9-]*) pr=(\d+) sha=([0-9a-f]*) -->")
_KIND_RE = re.compile(r"[a-z][a-z0-9-]*")
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_SIGN_RE = re.compile(r"( *)(-/\+|\+/-|[-+~])(?= |$)")
_ERROR_LINE_RE = re.compile(r"(?:│ )?Error: ")
_SUMMARY_RE = re.compile(r"(?:Plan: \d|No changes\.|(?:Apply|Destroy) complete! )")
_COUNT_RE = re.compile(r"(\d+) ((?:to )?[a-z]+)")
_COUNT_ORDER = ("to import", "to add", "to change", "to destroy", "to forget",
                "imported", "added", "changed", "destroyed", "forgotten")


# ---- markers -------------------------------------------------------------------------------------

def marker(kind: str, pull: int, sha: str) -> str:
    """The hidden first line that identifies a tfbot comment."""
    if not _KIND_RE.fullmatch(kind) or not re.fullmatch(r"[0-9a-fA-F]*", sha):
        raise ValueError(f"bad marker kind or sha: {kind!r} {sha!r}")
    return f"<!-- tfbot:{kind} pr={int(pull)} sha={sha.lower()} -->"


def marker_of(body: str) -> dict[str, Any] | None:
    """{"kind", "pr", "sha"} from a comment's first line, or None when it is not a tfbot comment."""
    first = body.split("\n", 1)[0].strip()
    m = _MARKER_RE.fullmatch(first)
    return {"kind": m[1], "pr": int(m[2]), "sha": m[3]} if m else None


def short_sha(sha: str) -> str:
    return sha[:7]


# ---- making text safe for markdown ---------------------------------------------------------------

def _newlines(text: str) -> str:
    # GitHub ends a line at \r too; splitting on \n alone must see the same lines.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def escape_text(text: str) -> str:
    """User or GitHub text for a markdown paragraph: no HTML (so no <details> or marker), no code fence."""
    text = _newlines(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # ``` or ~~~ opening a line (or a list item, or a quote) would start a fence that swallows what follows.
    return re.sub(r"`{3,}|~{3,}", lambda m: "\\" + m[0], text)


def code_span(text: str) -> str:
    """`text` as inline code, whatever backticks it holds."""
    text = _newlines(text).replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence_for(content: str) -> str:
    """A fence that nothing in `content` can close: longer than its longest run of the fence character.

    Runs anywhere count, not only at line start, so a piece of a hard-wrapped line cannot close it
    either. Tildes serve when the content holds a very long run of backticks.
    """
    longest = {c: max((len(run) for run in re.findall(f"{c}+", content)), default=0) for c in "`~"}
    char = "`" if longest["`"] < 10 or longest["`"] <= longest["~"] else "~"
    return char * max(3, longest[char] + 1)


def fenced(content: str, info: str = "") -> str:
    """`content` verbatim in a fenced code block."""
    content = _newlines(content).rstrip("\n")
    fence = fence_for(content)
    return f"{fence}{info}\n{content}\n{fence}"


def plan_to_diff(output: str) -> str:
    """Terraform plan text in a form GitHub's diff highlighter colours.

    The action sign moves to column 0, swapping places with the indentation so columns stay aligned
    (`  + id` -> `+   id`); `~` becomes `!`. Replacement signs (`-/+`, `+/-`) already stand at column 0
    and are kept: their first character says which half happens first. Everything else is verbatim.
    """
    lines = []
    for line in output.split("\n"):
        m = _SIGN_RE.match(line)
        if m:
            indent, sign = m.groups()
            line = ("!" if sign == "~" else sign) + indent + line[m.end():]
        lines.append(line)
    return "\n".join(lines)


def _clean(text: str) -> str:
    return strip_ansi(_newlines(text))


def _quote(markdown: str) -> str:
    """Markdown as a block quote, line by line."""
    return "\n".join(f"> {line}" if line else ">" for line in markdown.split("\n"))


def _link(text: str, url: str) -> str:
    url = re.sub(r"[\s<>]", lambda m: f"%{ord(m[0]):02X}", url)
    return f"[{text}](<{url}>)"


# ---- summaries and counts ------------------------------------------------------------------------

def find_summary(output: str) -> str:
    """Terraform's own summary line in `output` (`Plan: ...`, `No changes. ...`, `Apply complete! ...`), or ""."""
    found = ""
    for line in _clean(output).split("\n"):
        if _SUMMARY_RE.match(line):
            found = line.strip()
    return found


def summary_counts(summary: str) -> dict[str, int]:
    """{"to add": 3, "to change": 1, ...} or {"added": 2, ...} from a summary line; {} for `No changes.`."""
    summary = _clean(summary).strip()
    if not _SUMMARY_RE.match(summary) or summary.startswith("No changes."):
        return {}
    tail = summary.split(":", 1)[1] if ":" in summary else summary
    return {phrase: int(n) for n, phrase in _COUNT_RE.findall(tail)}


def _changes_counts(result: ProjectResult) -> dict[str, int]:
    # Used only when no summary line is known: replace is one add and one destroy, as Terraform counts it.
    counts: dict[str, int] = {}
    for change in result.changes:
        for phrase in {"create": ["to add"], "update": ["to change"], "destroy": ["to destroy"],
                       "replace": ["to add", "to destroy"]}.get(change.action, []):
            counts[phrase] = counts.get(phrase, 0) + 1
    return counts


def _counts(result: ProjectResult) -> dict[str, int]:
    summary = _clean(result.summary).strip() or find_summary(result.output)
    return summary_counts(summary) if summary else _changes_counts(result)


def _counts_text(counts: dict[str, int]) -> str:
    order = {phrase: i for i, phrase in enumerate(_COUNT_ORDER)}
    phrases = sorted((p for p, n in counts.items() if n), key=lambda p: (order.get(p, len(order)), p))
    return ", ".join(f"{counts[p]} {p}" for p in phrases)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _clip(text: str, limit: int = STATUS_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- the comment of one command ------------------------------------------------------------------

@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    # Markdown, not HTML: autoescape would turn our own markup into entities. Values arrive escaped.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.render", "templates"),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def change_groups(result: ProjectResult) -> list[dict[str, Any]]:
    """The planned changes by action (create, update, replace, destroy, then any other): action, count, addresses."""
    by_action: dict[str, list[str]] = {}
    for change in result.changes:
        by_action.setdefault(change.action, []).append(change.address)
    order = {a: i for i, a in enumerate(_ACTION_ORDER)}
    return [
        {"action": escape_text(action), "count": len(addrs), "addresses": ", ".join(map(code_span, addrs))}
        for action, addrs in sorted(by_action.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    ]


def _error_blocks(output: str) -> tuple[str, str]:
    """(the error, shown) and (the full output, folded; "" when the error is all there is)."""
    lines = output.rstrip("\n").split("\n")
    start = next((i for i, line in enumerate(lines) if _ERROR_LINE_RE.match(line)), None)
    if start is not None and start > 0 and lines[start - 1].strip() == "╷":
        start -= 1  # keep Terraform's box around the diagnostic whole
    if not start:  # no Error: line, or it opens the output: show it all
        return fenced(output), ""
    return fenced("\n".join(lines[start:])), fenced(output)


# Output beyond this many characters per project is cut in the PR (head and tail kept); the run log has it all.
OUTPUT_LIMIT = 100_000


def cut_output(output: str, limit: int = OUTPUT_LIMIT, where: str = "the run log") -> str:
    """Keep the first and last part of a long output, with a line saying how much was cut and where it is."""
    if len(output) <= limit:
        return output
    head = output[: limit * 2 // 3].rsplit("\n", 1)[0]
    tail = output[-(limit // 3):].split("\n", 1)[-1]
    cut = len(output) - len(head) - len(tail)
    return f"{head}\n\n[tfbot] … {cut:,} characters cut here; the whole output is in {where}.\n\n{tail}"


def _project_view(result: ProjectResult, run_url: Callable[[str], str] | None,
                  output_limit: int = OUTPUT_LIMIT) -> dict[str, Any]:
    project = result.project
    url = run_url(result.run_id) if run_url and result.run_id else ""
    where = url or (f"run log {result.run_id} on tfbot's /runs page" if result.run_id else "tfbot's log")
    output = cut_output(_clean(result.output), limit=output_limit, where=where)
    summary = _clean(result.summary).strip() or find_summary(output)
    view = {
        "outcome": result.outcome.value,
        "title": _TITLE.get(result.outcome, result.outcome.value.capitalize()),
        "name": code_span(project.name),
        "dir": code_span(project.dir),
        "workspace": code_span(project.workspace),
        "summary": escape_text(summary),
        "message": escape_text(result.message.strip()),
        "quoted_message": _quote(escape_text(result.message.strip())),
        "groups": change_groups(result),
        "output": "",
        "error": "",
        "full_output": "",
        "run_link": "",
        "binary": escape_text(result.binary),
        "extra_args": code_span(shown(result.extra_args)) if result.extra_args else "",
        "destroy": _destroy_warning(result),
    }
    if url:  # "" when tfbot has no public address
        view["run_link"] = _link("run log", url)
    if not output.strip():
        return view
    if result.outcome in (Outcome.PLANNED, Outcome.STALE):
        view["output"] = fenced(plan_to_diff(output), "diff")
    elif result.outcome in (Outcome.PLAN_FAILED, Outcome.APPLY_FAILED, Outcome.ERROR):
        view["error"], view["full_output"] = _error_blocks(output)
    else:
        view["output"] = fenced(output)
    return view


def _destroy_warning(result: ProjectResult) -> str:
    """What a `-destroy` plan does, said loudly ("" for any other): the count is Terraform's own."""
    if not is_destroy(result.extra_args) or result.outcome not in (Outcome.PLANNED, Outcome.APPLIED):
        return ""
    counts = _counts(result)
    n = counts.get("to destroy", counts.get("destroyed", 0))
    what = _plural(n, "resource") if n else "no resource (the state holds none)"
    if result.outcome is Outcome.APPLIED:
        return f"it destroyed {what} of this workspace (planned with `-destroy`)"
    return f"applying it destroys {what} of this workspace, whatever the code says (planned with `-destroy`)"


def _next_steps(results: list[ProjectResult]) -> dict[str, bool]:
    outcomes = {r.outcome for r in results}
    planned = [r for r in results if r.outcome is Outcome.PLANNED]
    return {
        "can_apply": any((_counts(r) or r.changes or r.has_changes) and r.applicable for r in planned),
        "extra_args": any(r.extra_args for r in planned),
        "planned": bool(planned),
        "plan_failed": Outcome.PLAN_FAILED in outcomes,
        "error": Outcome.ERROR in outcomes,
        "apply_failed": Outcome.APPLY_FAILED in outcomes,
        "applied": Outcome.APPLIED in outcomes,
        "locked": Outcome.LOCKED in outcomes,
        "refused": Outcome.REFUSED in outcomes,
        "stale": Outcome.STALE in outcomes,
        "none": not results,
    }


def _kind_of(command: str) -> str:
    kind = re.sub(r"[^a-z0-9-]+", "-", command.lower()).strip("-")
    return kind if _KIND_RE.fullmatch(kind) else "command"


# Counts phrases of Terraform's summary line, by the table's column: a plan's and an apply's.
_COLUMNS = (("to add", "added"), ("to change", "changed"), ("to destroy", "destroyed"))


def lock_cell(lock: LockInfo | None, pull: int) -> str:
    """What the table says of a project's lock as the comment is written: held by this PR (and its state), by
    another PR, or free (plain text; escaped by the caller)."""
    if lock is None:
        return "free"
    if lock.pull == pull:
        return f"held ({lock.state.value})"
    return f"#{lock.pull} holds it"


def _summary_table(results: list[ProjectResult], locks: Mapping[str, LockInfo | None] | None,
                   pull: int) -> str:
    """One row per project (result, resources to add / change / destroy, lock): the PR's projects at a glance, with
    each project's section and folded output below. Empty for a single project."""
    if len(results) < 2:
        return ""
    rows = ["| Project | Result | + | ~ | − | Lock |", "|---|---|---:|---:|---:|---|"]
    for result in results:
        counts = _counts(result)
        # A plan or apply with no count ("No changes.") changes nothing; other outcomes have no figures to show.
        known = bool(counts) or result.outcome in (Outcome.PLANNED, Outcome.APPLIED)
        cells = [str(counts.get(plan, counts.get(apply, 0))) if known else "" for plan, apply in _COLUMNS]
        lock = escape_text(lock_cell(locks.get(result.project.id), pull)) if locks is not None else "—"
        title = _TITLE.get(result.outcome, result.outcome.value.capitalize())
        rows.append(f"| {code_span(result.project.name)} | {title} | {' | '.join(cells)} | {lock} |")
    return "\n".join(rows)


def render_command_comment(
    command: str,
    results: list[ProjectResult],
    pull: int,
    head_sha: str,
    run_url: Callable[[str], str] | None = None,
    note: str = "",
    *,
    command_prefix: str = COMMAND_PREFIX,
    output_limit: int = OUTPUT_LIMIT,
    locks: Mapping[str, LockInfo | None] | None = None,
) -> str:
    """The whole comment for one command over its projects; may exceed GitHub's limit (see split_comment).

    `run_url(run_id)` links each project to its run log; `note` is a paragraph under the heading
    (plain text, escaped here); `locks` (project id -> its lock as the comment is written, None when free) fills
    the Lock column of the table a comment over several projects opens with.
    """
    env = _env()
    # Template files end in newlines of their own; a section ends with a fence or text, never inside one.
    sections = [env.get_template(_TEMPLATE.get(r.outcome, "other.md.j2")).render(p=_project_view(r, run_url, output_limit)).strip("\n")
                for r in results]
    return env.get_template("comment.md.j2").render(
        marker=marker(_kind_of(command), pull, head_sha),
        command=escape_text(command),
        pull=int(pull),
        sha=escape_text(short_sha(head_sha)),
        note=escape_text((note or "").strip()),
        table=_summary_table(results, locks, pull),
        sections=sections,
        steps=_next_steps(results),
        cmd=lambda verb: code_span(f"{command_prefix} {verb}"),
        retry=code_span(f"{command_prefix} {command}"),
    ).rstrip("\n") + "\n"


def render_notice(kind: str, pull: int, sha: str, markdown: str) -> str:
    """A marked comment around tfbot's own markdown (help, refusals, notices); `sha` may be "".

    `markdown` is trusted as is: user values inside it must already be escaped (escape_text, code_span).
    """
    return f"{marker(kind, pull, sha)}\n{markdown.rstrip()}\n"


# ---- commit statuses -----------------------------------------------------------------------------

def pending_status(count: int, kind: str) -> tuple[str, str]:
    """(state, description) while a command runs."""
    verb = {"plan": "planning", "apply": "applying"}.get(kind, f"running {kind} on")
    return "pending", _clip(f"{verb} {_plural(count, 'project')}")


def status_description(results: list[ProjectResult], kind: str) -> tuple[str, str]:
    """(state, description) for the `tfbot/{kind}` commit status once every project finished."""
    ok = _OK_OUTCOMES.get(kind, {Outcome.PLANNED, Outcome.APPLIED})
    if not results:
        return "success", f"no projects to {kind}"
    failed = [r for r in results if r.outcome not in ok]
    if failed:
        state = "error" if all(r.outcome is Outcome.ERROR for r in failed) else "failure"
        head = (f"{len(failed)} of {len(results)} projects failed: " if len(results) > 1
                else "1 project failed: ")
        names = [r.project.name + _STATUS_TAG.get(r.outcome, "") for r in failed]
        return state, _fit_names(head, names)
    totals: dict[str, int] = {}
    for r in results:
        for phrase, n in _counts(r).items():
            totals[phrase] = totals.get(phrase, 0) + n
    outputs = [r for r in results if r.has_changes and not _counts(r) and not r.changes]
    text = _counts_text(totals) or ("output changes" if outputs else "no changes")
    if outputs and totals:
        text += f"; output changes in {_plural(len(outputs), 'project')}"
    return "success", _clip(f"{_plural(len(results), 'project')}: {text}")


def _fit_names(head: str, names: list[str]) -> str:
    for count in range(len(names), 0, -1):
        rest = f" and {len(names) - count} more" if count < len(names) else ""
        text = head + ", ".join(names[:count]) + rest
        if len(text) <= STATUS_LIMIT:
            return text
    return _clip(head + names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else ""))


# ---- outdated comments ---------------------------------------------------------------------------

def mark_outdated(body: str, newer_sha: str, limit: int = COMMENT_LIMIT) -> str:
    """An earlier comment, folded under a note that a newer plan supersedes it; unchanged if already so.

    The marker stays on the first line with kind `{kind}-outdated`, so a search for the current plan
    comment skips it. The result is at most `limit` characters: content that no longer fits is cut on a
    line boundary, with open fences and <details> closed.
    """
    body = _newlines(body)
    found = marker_of(body)
    if found is None:
        raise ValueError("not a tfbot comment: no marker on its first line")
    if found["kind"].endswith("-outdated"):
        return body
    old = body.split("\n")[1:]
    head = [
        marker(f"{found['kind']}-outdated", found["pr"], found["sha"]),
        f"> **Outdated**: superseded by the plan for {escape_text(short_sha(newer_sha))}.",
        "",
        f"<details><summary>Previous {escape_text(found['kind'])} at {short_sha(found['sha'])}</summary>",
        "",
    ]
    tail = ["", "</details>"]
    text = "\n".join(head + old + tail)
    if len(text) <= limit:
        return text
    note = ["", "*(cut: the rest no longer fits in one comment)*"]
    budget = limit - sum(len(line) + 1 for line in head + tail + note)
    return "\n".join(head + _pack(old, budget)[0] + note + tail)


# ---- splitting over several comments -------------------------------------------------------------

def split_comment(body: str, limit: int = COMMENT_LIMIT, margin: int = SPLIT_MARGIN) -> list[str]:
    """`body` as one or more comments of at most `limit - margin` characters each.

    Cuts fall on line boundaries (a line longer than a whole part is hard-wrapped). A code fence or
    <details> open at a cut is closed at the end of that part and reopened, with the same fence and
    info string or summary, at the start of the next, so every part is valid markdown on its own.
    Parts after the first start with the body's marker and "(continued, part k of n)". Linear time.
    """
    body = _newlines(body)
    cap = limit - margin
    if len(body) <= cap:
        return [body]
    lines = body.split("\n")
    mark = lines.pop(0) if marker_of(lines[0]) else None
    footer = ["", "*(continued in the next comment)*"]
    widest_header = [mark or "", "*(continued, part 9999999999 of 9999999999)*", ""]
    budget = cap - sum(len(line) + 1 for line in widest_header + footer)
    chunks = _pack(lines, budget)
    parts = []
    for k, chunk in enumerate(chunks, 1):
        head = [mark] if mark else []
        if k > 1:
            head += [f"*(continued, part {k} of {len(chunks)})*", ""]
        parts.append("\n".join(head + chunk + (footer if k < len(chunks) else [])))
    return parts


_OPEN_BACKTICK_RE = re.compile(r" {0,3}(`{3,})[^`]*")
_OPEN_TILDE_RE = re.compile(r" {0,3}(~{3,}).*")
_DETAILS_OPEN_RE = re.compile(r"<details\b[^>]*>")
_DETAILS_CLOSE_RE = re.compile(r"</details>\s*")

# (fence: (run, opening line) | None, details: tuple of opening lines)
_State = tuple[tuple[str, str] | None, tuple[str, ...]]


def _step(state: _State, line: str) -> _State:
    """The markdown block state after `line`, as CommonMark sees fences (and our column-0 <details>)."""
    fence, details = state
    if fence is not None:
        run = fence[0]
        closer = re.fullmatch(r" {0,3}(%s+)[ \t]*" % re.escape(run[0]), line)
        return (None, details) if closer and len(closer[1]) >= len(run) else state
    opener = _OPEN_BACKTICK_RE.fullmatch(line) or _OPEN_TILDE_RE.fullmatch(line)
    if opener:
        return ((opener[1], line), details)
    if _DETAILS_OPEN_RE.match(line) and "</details>" not in line:
        return (None, details + (line,))
    if _DETAILS_CLOSE_RE.fullmatch(line) and details:
        return (None, details[:-1])
    return state


def _closers(state: _State) -> list[str]:
    fence, details = state
    return ([fence[0]] if fence else []) + ["</details>"] * len(details)


def _reopeners(state: _State) -> list[str]:
    fence, details = state
    return list(details) + ([""] if details else []) + ([fence[1]] if fence else [])


def _cost(lines: Iterable[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _pack(lines: list[str], budget: int) -> list[list[str]]:
    """`lines` in chunks of at most `budget` characters (joined by newlines), each closing what it opened."""
    if budget < 100:
        raise ValueError(f"comment limit too small: {budget} characters left for content")
    chunks: list[list[str]] = []
    state: _State = (None, ())
    cur: list[str] = []
    cur_len, has_content = 0, False

    def flush() -> None:
        nonlocal cur, cur_len, has_content
        chunks.append(cur + _closers(state))
        cur = _reopeners(state)
        cur_len, has_content = _cost(cur), False
        if cur_len + _cost(_closers(state)) + 80 > budget:
            raise ValueError(f"comment limit too small for its fences and <details> ({budget} characters)")

    for line in lines:
        after = _step(state, line) if line[:1] in " `~<" else state
        if has_content and cur_len + len(line) + 1 + _cost(_closers(after)) > budget:
            flush()
        close_len = max(_cost(_closers(state)), _cost(_closers(after)))
        while len(line) > budget - cur_len - close_len - 1:  # longer than a whole part: wrap by hand
            cut = budget - cur_len - close_len - 1
            # Outside code, a piece starting with a run of ` or ~ (after spaces) would open a fence:
            # cut before the run, unless that leaves too small a piece.
            floor = max(1, cut // 2)
            while cut > floor and line[cut] in " `~":
                cut -= 1
            cur.append(line[:cut])
            has_content, line = True, line[cut:]
            flush()
        cur.append(line)
        cur_len += len(line) + 1
        has_content, state = True, after
    chunks.append(cur + _closers(state))
    return chunks
