"""The hidden marker on the first line of a drift issue's body: how tfbot finds the one open issue of a project,
and which project an `apply` commented on that issue is about.

`<!-- tfbot:drift project=<json> -->` where the JSON is `{"repo", "dir", "workspace", "name"}`. JSON inside an
HTML comment: `--` cannot appear in it (json.dumps writes `-` only inside strings, and `>` and `-` are escaped
below), so a dir name can never end the comment early.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

_MARKER_RE = re.compile(r"^<!-- tfbot:drift project=(\{.*?\}) -->")


@dataclass(frozen=True)
class DriftSubject:
    """The project a drift issue is about (as it was configured when the issue was written)."""

    repo: str
    dir: str
    workspace: str
    name: str


def marker(subject: DriftSubject) -> str:
    """The first line of the issue's body."""
    payload = json.dumps({"repo": subject.repo, "dir": subject.dir, "workspace": subject.workspace,
                          "name": subject.name}, sort_keys=True, separators=(",", ":"))
    payload = payload.replace("-", "\\u002d").replace(">", "\\u003e")
    return f"<!-- tfbot:drift project={payload} -->"


def subject_of(body: str | None) -> DriftSubject | None:
    """The project named by the marker on the body's first line; None for any other text (only the first line
    counts: a user quoting a marker further down names nothing)."""
    first = (body or "").split("\n", 1)[0].strip()
    match = _MARKER_RE.match(first)
    if not match:
        return None
    try:
        data = json.loads(match.group(1))
        return DriftSubject(repo=str(data["repo"]), dir=str(data["dir"]), workspace=str(data["workspace"]),
                            name=str(data["name"]))
    except (ValueError, KeyError, TypeError):
        return None
