"""How locks and runs are shown: times, states, safe links, filters, pages and the JSON shape. Pure, no I/O.

The HTML page, `/api/locks` and `tfbot locks --json` all use `lock_json` (and the last two `locks_json`), so they
cannot disagree.
"""
from __future__ import annotations

import base64
import collections
import binascii
import bisect
import functools
import itertools
import json
import math
import operator
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Collection, Iterable, Sequence

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


def pull_url(api_url: str, repo: str, pull: int, kind: str = "pull") -> str:
    """The PR's page on GitHub; with `kind` "drift", the drift issue's (a drift apply holds a lock by its number)."""
    return f"{github_web_url(api_url)}/{repo}/{'issues' if kind == 'drift' else 'pull'}/{int(pull)}"


def commit_url(api_url: str, repo: str, sha: str) -> str:
    return f"{github_web_url(api_url)}/{repo}/commit/{sha}" if re.fullmatch(r"[0-9a-fA-F]{4,64}", sha) else ""


def run_url(base_url: str, run_id: str) -> str:
    """The run's page: absolute under `base_url` (server.public_url) when set, else a path."""
    return f"{base_url.rstrip('/')}/runs/{run_id}" if run_id else ""


def search_text(lock: LockInfo) -> str:
    """What the free-text filter searches: everything the page shows of a lock, lowercased."""
    return " ".join((lock.repo, lock.project, lock.dir, lock.workspace, f"#{lock.pull}", lock.pull_title, lock.user,
                     lock.state.value, lock.summary, lock.extra_args)).lower()


# The order locks are shown in: oldest first (the one blocking longest is the one to chase), then by place. An
# attrgetter, not a function: it sorts 10,000 locks in C each time one of them changes.
age_order: Callable[[LockInfo], tuple[float, str, str, str]] = operator.attrgetter("locked_at", "repo", "dir",
                                                                                  "workspace")


@dataclass(frozen=True)
class Listing:
    """Every lock in the order shown (`age_order`) with what the filters read, prepared once per lock version (the
    web process keeps it with its copy of the locks), so that a request only scans it."""

    locks: tuple[LockInfo, ...]
    repos: list[str]  # the repositories holding locks, for the page's repository filter
    counts: list[tuple[str, str, int]]  # `state_counts` of every lock

    @functools.cached_property
    def searched(self) -> tuple[str, ...]:
        """`search_text` of each lock, in the same order: made by the first search of this version, not before."""
        return tuple(search_text(lk) for lk in self.locks)

    def select(self, repo: str = "", text: str = "", states: Collection[LockState] = ()) -> list[LockInfo]:
        """The locks that pass the filter, in order: the exact repository (case-insensitive), every word of `text`
        somewhere in what the page shows, and (the API's) one of `states` when any are given."""
        if not (repo or text or states):
            return list(self.locks)
        repo, words = repo.lower(), text.lower().split()
        searched = self.searched if words else itertools.repeat("")
        return [lk for lk, found in zip(self.locks, searched)
                if (not repo or lk.repo.lower() == repo) and (not states or lk.state in states)
                and all(word in found for word in words)]


def listing(locks: Iterable[LockInfo]) -> Listing:
    ordered = tuple(sorted(locks, key=age_order))
    return Listing(locks=ordered, repos=sorted({lk.repo for lk in ordered}, key=str.lower),
                   counts=state_counts(ordered))


def filtered(locks: Iterable[LockInfo], repo: str = "", text: str = "",
             states: Collection[LockState] = ()) -> list[LockInfo]:
    """Locks that pass the filter, oldest first."""
    return listing(locks).select(repo, text, states)


def site_url(base_url: str, path: str) -> str:
    """`path` of this tfbot: absolute under `base_url` (server.public_url) when set, else the path itself."""
    return f"{base_url.rstrip('/')}{path}" if base_url else path


# `/api/locks` pages: `limit` locks per answer, and a cursor naming the last lock given, so the next page starts right
# after it even when locks before it were released or taken meanwhile (an offset would skip or repeat some).
API_LIMIT = 100
API_MAX_LIMIT = 1000
_MAX_CURSOR_CHARS = 4000  # a real one names a repo, a dir and a workspace


def parse_limit(value: str | None) -> int:
    """`?limit=`: API_LIMIT when absent; ValueError (naming the parameter) unless a whole number 1..API_MAX_LIMIT."""
    if value is None or value == "":
        return API_LIMIT
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= API_MAX_LIMIT:
        raise ValueError(f"limit must be a whole number from 1 to {API_MAX_LIMIT}, not {value[:20]!r}")
    return int(value)


def parse_states(values: Iterable[str]) -> frozenset[LockState]:
    """`?state=` (repeatable, case-insensitive): the lock states to keep; ValueError naming an unknown one."""
    wanted = set()
    by_name = {state.value: state for state in LockState}
    for value in values:
        state = by_name.get(value.strip().lower())
        if state is None:
            raise ValueError(f"state {value[:40]!r} is not a lock state; use one of: {', '.join(by_name)}")
        wanted.add(state)
    return frozenset(wanted)


def encode_cursor(lock: LockInfo) -> str:
    """An opaque cursor naming `lock`'s place in the age order (URL-safe base64 of JSON, no padding)."""
    raw = json.dumps(list(age_order(lock)), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str, str, str]:
    """The place `encode_cursor` named; ValueError when `cursor` is not one it made (it comes from the request)."""
    try:
        if len(cursor) > _MAX_CURSOR_CHARS:
            raise ValueError
        at, repo, dir, workspace = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) \
                or not all(isinstance(part, str) for part in (repo, dir, workspace)):
            raise ValueError
    except (binascii.Error, ValueError, TypeError, RecursionError):
        raise ValueError("cursor is not one this API gave out: use the `next` link of the previous page, "
                         "or leave cursor out to start again") from None
    return float(at), repo, dir, workspace


def page_after(ordered: Sequence[LockInfo], after: tuple[float, str, str, str] | None,
               limit: int) -> tuple[list[LockInfo], LockInfo | None]:
    """(up to `limit` locks of `ordered` (in age order) that come after the place `after`, the last of them when more
    follow, else None)."""
    start = 0 if after is None else bisect.bisect_right(ordered, after, key=age_order)
    shown = list(ordered[start:start + limit])
    return shown, shown[-1] if shown and start + limit < len(ordered) else None


def locks_json(locks: Iterable[LockInfo], total: int, next_url: str | None, now: float, api_url: str,
               base_url: str, waiting: Callable[[LockInfo], int]) -> dict[str, Any]:
    """`/api/locks` and `tfbot locks --json`: {"locks": [lock_json, ...], "total": locks matching the filters on every
    page, "next": the URL of the next page, or null on the last}."""
    return {"locks": [lock_json(lk, now, api_url, base_url, waiting(lk)) for lk in locks], "total": total,
            "next": next_url}


def lock_json(lock: LockInfo, now: float, api_url: str, base_url: str = "", waiting: int = 0) -> dict[str, Any]:
    """One lock as `/api/locks` and `tfbot locks --json` show it."""
    return {
        "repo": lock.repo,
        "project": lock.project,
        "dir": lock.dir,
        "workspace": lock.workspace,
        "kind": lock.kind,  # "pull", or "drift": `pull_number` is a drift issue applying the default branch
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
    counts = collections.Counter(lock.state for lock in locks)
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
