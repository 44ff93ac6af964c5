"""How locks and runs are shown: times, states, safe links, filters and the JSON shape. Pure, no I/O.

The HTML page, `/api/locks` and `tfbot locks --json` all use `lock_json`, so they cannot disagree.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from bot.models import LockInfo, LockState
from bot.plan_args import is_destroy, parsed
from bot.render.comments import strip_ansi

# A lock older than this is shown as old: it probably blocks others and someone should look at it.
OLD_LOCK_SECONDS = 24 * 3600
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# State -> CSS class of its badge. Failures stand out; waiting-for-a-person states are calm.
STATE_CLASS = {
    LockState.PLANNING: "busy",
    LockState.PLANNED: "ok",
    LockState.PLAN_FAILED: "bad",
    LockState.PLAN_STALE: "warn",
    LockState.APPLYING: "busy",
    LockState.APPLIED: "done",
    LockState.APPLY_FAILED: "bad",
}


def iso_utc(ts: float) -> str:
    """ISO 8601 in UTC with a Z, to the second: 2024-05-01T12:03:04Z."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_utc(ts: float) -> str:
    """An absolute time people read: 2024-05-01 12:03 UTC."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def relative_age(seconds: float) -> str:
    """How long ago, coarse and short: 'just now', '5 min', '3 h 10 min', '2 days'."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes and hours < 10 else f"{hours} h"
    days = hours // 24
    return "1 day" if days == 1 else f"{days} days"


def duration_text(seconds: float | None) -> str:
    """A run's duration: '850 ms', '12.3 s', '4 min 05 s'."""
    if seconds is None:
        return "unknown"
    if seconds < 1:
        return f"{int(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


_HTTP_URL_RE = re.compile(r"https?://[^\s/?#\\]+(?:[/?#]\S*)?\Z", re.IGNORECASE)


def safe_url(url: str) -> str:
    """`url` when it is an absolute http(s) URL, else "" (a `javascript:` link from a record must never render)."""
    return url if url and _HTTP_URL_RE.match(url) else ""


def github_web_url(api_url: str) -> str:
    """The web address of the GitHub whose REST API is `api_url` (github.com, or GitHub Enterprise's host)."""
    api_url = api_url.rstrip("/")
    if api_url == "https://api.github.com":
        return "https://github.com"
    return api_url[: -len("/api/v3")] if api_url.endswith("/api/v3") else api_url


def pull_url(api_url: str, repo: str, pull: int) -> str:
    return f"{github_web_url(api_url)}/{repo}/pull/{int(pull)}"


def commit_url(api_url: str, repo: str, sha: str) -> str:
    return f"{github_web_url(api_url)}/{repo}/commit/{sha}" if re.fullmatch(r"[0-9a-fA-F]{4,64}", sha) else ""


def run_url(base_url: str, run_id: str) -> str:
    """The run's page: absolute under `base_url` (server.public_url) when set, else a path."""
    return f"{base_url.rstrip('/')}/runs/{run_id}" if run_id else ""


def matches(lock: LockInfo, repo: str, text: str) -> bool:
    """The page's filter: exact repository (case-insensitive) and free text over everything shown."""
    if repo and lock.repo.lower() != repo.lower():
        return False
    if not text:
        return True
    haystack = " ".join((lock.repo, lock.project, lock.dir, lock.workspace, f"#{lock.pull}", lock.pull_title,
                         lock.user, lock.state.value, lock.summary, lock.extra_args)).lower()
    return all(word in haystack for word in text.lower().split())


def filtered(locks: Iterable[LockInfo], repo: str = "", text: str = "") -> list[LockInfo]:
    """Locks that pass the filter, oldest first (the one blocking longest is the one to chase)."""
    return sorted((lk for lk in locks if matches(lk, repo, text)),
                  key=lambda lk: (lk.locked_at, lk.repo, lk.dir, lk.workspace))


def lock_json(lock: LockInfo, now: float, api_url: str, base_url: str = "", waiting: int = 0) -> dict[str, Any]:
    """One lock as `/api/locks` and `tfbot locks --json` show it."""
    return {
        "repo": lock.repo,
        "project": lock.project,
        "dir": lock.dir,
        "workspace": lock.workspace,
        "pull_number": lock.pull,
        "pull_title": lock.pull_title,
        "pull_url": safe_url(lock.pull_url) or pull_url(api_url, lock.repo, lock.pull),
        "user": lock.user,
        "locked_at": iso_utc(lock.locked_at),
        "age_seconds": max(0, int(now - lock.locked_at)),
        "state": lock.state.value,
        "summary": lock.summary,
        "extra_args": extra_args(lock),
        "destroy": is_destroy(extra_args(lock)),
        "run_id": lock.run_id or None,
        "run_url": run_url(base_url, lock.run_id) or None,
        "waiting": waiting,
    }


def extra_args(lock: LockInfo) -> list[str]:
    """The extra arguments the lock's current plan was made with (`plan -- ...`); [] for a plain plan."""
    try:
        return parsed(lock.extra_args)
    except ValueError:  # written by tfbot itself, so never; shown whole rather than lost
        return [lock.extra_args]


def summary_line(lock: LockInfo) -> str:
    """The plan's summary with what it was made with, for one line of text (`tfbot locks`)."""
    args = extra_args(lock)
    if not args:
        return lock.summary
    mark = "DESTROY plan: " if is_destroy(args) else ""
    return f"{mark}{lock.summary} (with {lock.extra_args})".strip()


@dataclass(frozen=True)
class LockRow:
    """One lock prepared for the HTML table: every value plain text, escaped by the template."""

    lock: LockInfo
    pull_url: str
    age: str
    since: str
    since_iso: str
    old: bool
    state_class: str
    waiting: int
    ref: str  # what the unlock button posts: the lock's place and the token the admin saw
    destroy: bool = False  # the lock's current plan was made with `-destroy`: marked loudly


def lock_row(lock: LockInfo, now: float, api_url: str, waiting: int = 0) -> LockRow:
    age = now - lock.locked_at
    return LockRow(
        lock=lock,
        pull_url=safe_url(lock.pull_url) or pull_url(api_url, lock.repo, lock.pull),
        age=relative_age(age),
        since=human_utc(lock.locked_at),
        since_iso=iso_utc(lock.locked_at),
        old=age >= OLD_LOCK_SECONDS,
        state_class=STATE_CLASS.get(lock.state, "busy"),
        waiting=waiting,
        ref=json.dumps({"repo": lock.repo, "dir": lock.dir, "workspace": lock.workspace, "token": lock.token},
                       separators=(",", ":")),
        destroy=is_destroy(extra_args(lock)),
    )


def state_counts(locks: Iterable[LockInfo]) -> list[tuple[str, str, int]]:
    """(state, css class, count) for the states present, in lifecycle order."""
    counts: dict[LockState, int] = {}
    for lock in locks:
        counts[lock.state] = counts.get(lock.state, 0) + 1
    return [(state.value, STATE_CLASS[state], counts[state]) for state in LockState if state in counts]


# Terraform's change markers at the start of a line (after indentation), for colouring the run log.
# Only indented lines: `terraform init` prints "- Installing ..." at column 0, which is not a change.
_LINE_KIND = re.compile(r"^\s+(?P<sign>-/\+|\+/-|[-+~])\s")
_SIGN_CLASS = {"+": "add", "-": "del", "~": "chg", "-/+": "rep", "+/-": "rep"}


_SUMMARY_COUNT = re.compile(r"(\d+) (to add|to change|to destroy|to import|added|changed|destroyed|imported)")
_COUNT_CLASS = {"add": "add", "added": "add", "change": "chg", "changed": "chg", "destroy": "del",
                "destroyed": "del", "import": "imp", "imported": "imp"}


def summary_parts(summary: str) -> list[tuple[str, str]]:
    """Terraform's summary line cut into (css class, text) pieces, so non-zero counts stand out in colour."""
    parts: list[tuple[str, str]] = []
    at = 0
    for m in _SUMMARY_COUNT.finditer(summary):
        parts.append(("", summary[at:m.start()]))
        kind = _COUNT_CLASS[m[2].split()[-1]]
        parts.append((kind if m[1] != "0" else "zero", m[0]))
        at = m.end()
    parts.append(("", summary[at:]))
    return [(cls, text) for cls, text in parts if text]


def output_text(output: str) -> str:
    """A run's output as plain text: ANSI colour codes stripped, line ends normalised."""
    return strip_ansi(output).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")


def output_lines(output: str) -> list[tuple[str, str]]:
    """(css class, text) per line of a run's output, ANSI codes stripped; text stays raw for the template to escape."""
    lines = []
    for line in output_text(output).split("\n"):
        if line.startswith("$ "):
            kind = "cmd"
        elif line.lstrip("│ ").startswith("Error:"):
            kind = "err"
        else:
            m = _LINE_KIND.match(line)
            kind = _SIGN_CLASS[m["sign"]] if m else ""
        lines.append((kind, line))
    return lines
