"""The text of a change-record issue (pure): its title, and its body listing every call of its group.

Everything taken from the event (ARNs, the user agent, request parameters) is hostile text: it is shown in
code spans and fenced blocks that nothing inside can close (bot/render/comments.py), never as markdown. A hidden
marker holds the group's key, so tfbot (and a person) can tell which group an issue records.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.changes.events import ChangeEvent
from bot.changes.rules import resource_of
from bot.models import Project
from bot.render.comments import code_span, fenced

TITLE_MAX = 256  # GitHub's limit on an issue title
SHOWN_IN_FULL = 10  # calls shown with who/when/where/what; later ones get one line each
LISTED_MAX = 100  # calls listed at all; beyond, a count
PARAMETERS_MAX = 4000  # characters of one call's request parameters shown


@dataclass(frozen=True)
class Placement:
    """What tfbot knows of a changed resource: the projects whose state holds it, and whether their drift checks
    were queued."""

    projects: tuple[Project, ...] = ()
    drift_checks: bool = False


def marker(key: str) -> str:
    """The hidden marker of group `key` (a hex digest tfbot made, never text from the event)."""
    if not re.fullmatch(r"[0-9a-f]{8,64}", key):
        raise ValueError(f"not a group key: {key!r}")
    return f"<!-- tfbot:change-record group={key} -->"


def issue_title(events: Sequence[ChangeEvent]) -> str:
    """`AWS change: PutBucketPolicy on acme-logs (s3.amazonaws.com)`; with several calls, how many and which."""
    first = events[0]
    resource = resource_of(first) or "the service"
    names = list(dict.fromkeys(e.name for e in events))
    calls = first.name if len(events) == 1 else f"{len(events)} calls ({', '.join(names)})"
    return _one_line(f"AWS change: {calls} on {resource} ({first.source})", TITLE_MAX)


def issue_body(key: str, events: Sequence[ChangeEvent], placement: Placement) -> str:
    """The markdown body: a summary, what tfbot knows of the resource, what people should do, then every call.
    `events` are masked already (bot/changes/masking.py) and in the order they were recorded."""
    first = events[0]
    resource = resource_of(first)
    where = f" in account {code_span(first.account)}" if first.account else ""
    where += f", {code_span(first.region)}" if first.region else ""
    what = f" on {code_span(resource)}" if resource else ""
    lines = [marker(key),
             f"**{code_span(first.name)}**{what} ({code_span(first.source)}){where}, by "
             f"{code_span(first.principal.who)}.", ""]
    lines += _placement(resource, placement)
    lines += ["Comment why this change was made, then close this issue.", ""]
    many = len(events) > 1
    if many:
        lines += [f"## {len(events)} calls within the group's window", ""]
    for i, event in enumerate(events[:SHOWN_IN_FULL], 1):
        lines += _call(event, i if many else 0)
    rest = events[SHOWN_IN_FULL:LISTED_MAX]
    if rest:
        lines += ["### Later calls", ""]
        lines += [f"- {_when(e)}: {code_span(e.name)} by {code_span(e.principal.who)}" for e in rest]
        lines.append("")
    if len(events) > LISTED_MAX:
        lines += [f"… and {len(events) - LISTED_MAX} more calls.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _placement(resource: str, placement: Placement) -> list[str]:
    if not placement.projects:
        return ["No tfbot project's Terraform state holds this resource (as tfbot last read the states).", ""]
    names = ", ".join(f"{code_span(p.name)} of {code_span(p.repo)} (dir {code_span(p.dir)}, workspace "
                      f"{code_span(p.workspace)})" for p in placement.projects)
    one = len(placement.projects) == 1
    lines = [f"**This change was made outside Terraform.** {code_span(resource) if resource else 'The resource'} "
             f"is in the Terraform state of {'project' if one else 'projects'} {names}."]
    if placement.drift_checks:
        lines.append(f"tfbot queued {'its' if one else 'their'} drift check.")
    return [" ".join(lines), ""]


def _call(event: ChangeEvent, number: int) -> list[str]:
    who = event.principal
    head = f"{number}. " if number else ""
    lines = [f"### {head}{code_span(event.name)} at {_when(event)}", "",
             f"- **Who:** {code_span(who.who)}" + (f" ({code_span(who.type)})" if who.type else "")]
    if who.issuer_arn or who.session_name:
        role = code_span(who.issuer_arn) if who.issuer_arn else "a role"
        session = f", session {code_span(who.session_name)}" if who.session_name else ""
        lines.append(f"- **Assumed role:** {role}{session}")
    if who.invoked_by:
        lines.append(f"- **Invoked by:** {code_span(who.invoked_by)}")
    lines.append(f"- **When:** {_when(event)}")
    where = [f"account {code_span(event.account)}" if event.account else "",
             f"region {code_span(event.region)}" if event.region else "",
             f"source IP {code_span(event.source_ip)}" if event.source_ip else "",
             f"user agent {code_span(event.user_agent)}" if event.user_agent else ""]
    lines.append("- **Where:** " + (", ".join(w for w in where if w) or "not recorded"))
    lines.append(f"- **What:** {code_span(event.source)} {code_span(event.name)}, event id {code_span(event.event_id)}")
    if event.error_code:
        message = f": {code_span(event.error_message)}" if event.error_message else ""
        lines.append(f"- **Refused by AWS:** {code_span(event.error_code)}{message}")
    lines.append("")
    if event.request_parameters not in (None, {}, []):
        text = json.dumps(event.request_parameters, indent=2, sort_keys=True, ensure_ascii=False)
        cut = len(text) > PARAMETERS_MAX
        lines += ["Request parameters (secrets masked"
                  + (f"; the first {PARAMETERS_MAX} characters" if cut else "") + "):", "",
                  fenced(text[:PARAMETERS_MAX], "json"), ""]
    return lines


def _when(event: ChangeEvent) -> str:
    return event.at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _one_line(text: str, limit: int) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
