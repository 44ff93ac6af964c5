"""What a drift issue says (pure): its title, its body, and the comments tfbot adds while the drift lasts, when a
check fails, and when the drift is gone.

Every text field comes from Terraform or a repository (hostile): names go in code spans, the plan in a fence
nothing inside can close, anything else through `escape_text`. Resources are `"<action> <address>"` strings
(`update terraform_data.app`), as bot/state/drift_checks.py keeps them.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from bot.render.comments import code_span, cut_output, escape_text, fenced, plan_to_diff, strip_ansi

BODY_LIMIT = 65536  # GitHub's limit on an issue body or comment, in characters
LABEL = "drift"
LABEL_COLOR = "d93f0b"
LABEL_DESCRIPTION = "the infrastructure differs from the default branch (tfbot keeps this issue)"
_ACTION_ORDER = ("create", "update", "replace", "delete", "destroy")


@dataclass(frozen=True)
class DriftReport:
    """One check that found drift, as the issue shows it. Times are unix seconds; URLs "" when none."""

    repo: str
    project: str
    dir: str
    workspace: str
    sha: str  # the default branch's head that was planned
    summary: str  # Terraform's summary line
    resources: tuple[str, ...]  # "<action> <address>"
    plan_output: str  # the plan's text
    run_id: str
    run_url: str
    checked_at: float
    drifted_since: float  # when this drift was first seen (the issue's first check)
    links: tuple[str, ...] = ()  # change records that asked for a check of this project
    digest: str = ""  # the plan's changes digest: what an `apply` on the issue is bound to


def issue_title(repo: str, project: str) -> str:
    """`Drift: acme/infra network` (GitHub's title limit is 256)."""
    return f"Drift: {repo} {project}"[:256]


def when(at: float) -> str:
    """`2026-12-01 14:05 UTC`."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def by_action(resources: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Resources grouped by action, create/update/replace/delete first, addresses sorted."""
    groups: dict[str, list[str]] = {}
    for item in resources:
        action, _, address = item.partition(" ")
        groups.setdefault(action, []).append(address)
    order = {a: i for i, a in enumerate(_ACTION_ORDER)}
    return [(action, sorted(addrs)) for action, addrs in sorted(groups.items(),
                                                                key=lambda kv: (order.get(kv[0], len(order)), kv[0]))]


def resource_lines(resources: Sequence[str]) -> list[str]:
    """One markdown list item per action: `- **update** (2): `a`, `b``; for none, that only outputs differ."""
    if not resources:
        return ["- no resource: only output values would change"]
    return [f"- **{escape_text(action)}** ({len(addrs)}): {', '.join(code_span(a) for a in addrs)}"
            for action, addrs in by_action(resources)]


def _link(text: str, url: str) -> str:
    url = re.sub(r"[\s<>]", lambda m: f"%{ord(m[0]):02X}", url)
    return f"[{text}](<{url}>)"


def _change_link(url: str) -> str:
    """A change record's issue, linked when it is an http(s) URL; anything else shown as text."""
    if re.match(r"https?://[^\s<>]+$", url):
        return _link(escape_text(url), url)
    return code_span(url)


def _run_ref(run_id: str, run_url: str, capital: bool = False) -> str:
    """`run 20261201…` linked to its log when tfbot has a public address."""
    word = "Run" if capital else "run"
    if run_url:
        return _link(f"{word} {run_id}", run_url)
    return f"{word} {code_span(run_id)} (tfbot's `/runs` page)" if run_id else f"{word} (no log kept)"


def issue_body(marker_line: str, report: DriftReport, limit: int = BODY_LIMIT) -> str:
    """The issue's body: the marker, what drifted by action, when, the run, the change records, the folded plan
    (cut to fit `limit`, the whole of it in the run log)."""
    head = [
        marker_line,
        f"**The infrastructure of {code_span(report.project)} differs from the default branch.** A plan of "
        f"{code_span(report.repo)} at `{report.sha[:12]}` (dir {code_span(report.dir)}, workspace "
        f"{code_span(report.workspace)}) wants to change what is deployed: {escape_text(strip_ansi(report.summary))}",
        "",
        "### What drifted",
        *resource_lines(report.resources),
        "",
        f"First seen {when(report.drifted_since)}; last checked {when(report.checked_at)} by "
        f"{_run_ref(report.run_id, report.run_url)}.",
    ]
    if report.links:
        head += ["", "### Changes recorded that may explain it",
                 *(f"- {_change_link(link)}" for link in report.links)]
    head += ["", "Either apply the default branch to put the infrastructure back (comment `apply` on this issue), or "
                 "change the configuration to what is deployed in a PR. tfbot checks again on its schedule, updates "
                 "this issue while the drift lasts and closes it when the plan is clean."]
    text = "\n".join(head)
    where = report.run_url or (f"run log {report.run_id} on tfbot's /runs page" if report.run_id else "tfbot's log")
    room = max(1000, limit - len(text) - 200)
    plan = fenced(plan_to_diff(cut_output(strip_ansi(report.plan_output), limit=room, where=where)), "diff")
    folded = f"\n\n<details><summary>The plan</summary>\n\n{plan}\n\n</details>\n"
    if len(text) + len(folded) > limit:  # a resource list so long the plan cannot fit: the list is cut too
        folded = f"\n\nThe plan is too long to show here: see {_run_ref(report.run_id, report.run_url)}.\n"
        text = text[: limit - len(folded) - 40].rsplit("\n", 1)[0] + "\n\n[tfbot] … cut here."
    return text + folded


def changed_comment(before: Sequence[str], report: DriftReport) -> str:
    """What a check that found a different set of drifted resources adds to the issue."""
    gone = sorted(set(before) - set(report.resources))
    new = sorted(set(report.resources) - set(before))
    lines = [f"**The drift changed** ({when(report.checked_at)}, {_run_ref(report.run_id, report.run_url)}): "
             f"{escape_text(strip_ansi(report.summary))}"]
    if new:
        lines += ["", "Drifted since the last check:", *resource_lines(new)]
    if gone:
        lines += ["", "No longer drifted:", *resource_lines(gone)]
    if report.links:
        lines += ["", "Recorded changes: " + ", ".join(_change_link(link) for link in report.links)]
    return _fit("\n".join(lines))


def values_changed_comment(report: DriftReport) -> str:
    """What a check adds when the same resources drifted but the plan now sets other values: said out loud, since
    an `apply` applies the plan the issue shows when it is commented."""
    return _fit(f"**The plan changed** ({when(report.checked_at)}, {_run_ref(report.run_id, report.run_url)}): the "
                "same resources, other values. The issue above shows the new plan; review it before commenting "
                f"`apply`. {escape_text(strip_ansi(report.summary))}")


def resolved_comment(checked_at: float, sha: str, run_id: str, run_url: str) -> str:
    """The comment that closes the issue: when, which run saw the plan clean."""
    return (f"**No drift any more.** {_run_ref(run_id, run_url, capital=True)} planned the default branch at "
            f"`{sha[:12]}` on {when(checked_at)} and found no changes: the infrastructure matches it again. tfbot closes "
            "this issue; it opens a new one if drift comes back.")


def failed_comment(checked_at: float, detail: str, run_id: str, run_url: str) -> str:
    """What a failed check says on the issue left open (once per run of failures): the drift may or may not last."""
    ran = f" ({_run_ref(run_id, run_url)})" if run_id else ""
    return _fit(f"**The drift check of {when(checked_at)} failed**{ran}, so tfbot cannot tell whether this drift "
                f"lasts: {escape_text(strip_ansi(detail))}\n\nThis issue stays as the last successful check left it.")


def _fit(text: str) -> str:
    return text if len(text) <= BODY_LIMIT else text[: BODY_LIMIT - 20] + "\n\n[tfbot] … cut"
