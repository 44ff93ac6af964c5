"""What a project's check run shows (pure): its name, status and conclusion, title, summary, text, annotations and
the Apply button. bot/lifecycle/checks.py writes it to GitHub.

The conclusion of each outcome, for the `tfbot/plan: <project>` and `tfbot/apply: <project>` check runs alike:

| Outcome                                    | Conclusion        | Apply button |
|--------------------------------------------|-------------------|--------------|
| planned, with changes (resources, outputs) | `success`         | yes, if the PR's base branch is one tfbot applies |
| planned, no changes                        | `neutral`         | no |
| stale: a plan that needs `apply`           | `action_required` | yes, when tfbot planned what is to be applied |
| locked: waiting for the lock               | `action_required` | no |
| refused (permission, apply requirements)   | `action_required` | no |
| applied                                    | `success`         | no |
| nothing to apply                           | `neutral`         | no |
| not applied: a dependency did not apply    | `skipped`         | no |
| plan failed, apply failed, tfbot error     | `failure`         | no |
| superseded by a newer push                 | `cancelled`       | no |

GitHub's limits, which every value here keeps: `output.title` (255 characters here), `output.summary` and
`output.text` 65,535 characters; at most 50 annotations per request, each with a title of at most 255 characters
and a message of at most 64 KB; at most 3 actions, label 20, identifier 20 and description 40 characters.
Terraform's text (its output, diagnostics) comes from PR code: it goes only into these fields, bounded, and
summary and text are Markdown with every such value escaped or fenced.
"""
from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.models import Diagnostic, Outcome, Project, ProjectResult
from bot.render.comments import (COMMAND_PREFIX, change_groups, code_span, cut_output, escape_text, fenced,
                                 find_summary, plan_to_diff, short_sha, strip_ansi)

OUTPUT_LIMIT = 65535  # output.summary and output.text, in characters
TITLE_LIMIT = 255
MAX_ANNOTATIONS = 50  # per request; tfbot sends one request's worth
ANNOTATION_MESSAGE_BYTES = 64 * 1024
APPLY_ACTION = "apply"  # the identifier GitHub sends back in a `check_run` `requested_action` event
_APPLY_BUTTON = {"label": "Apply", "identifier": APPLY_ACTION, "description": "Apply this project's plan"}
_KIND = {"plan": "plan", "apply": "apply", "merge": "apply", "handover": "apply"}

CONCLUSION = {
    Outcome.PLAN_FAILED: "failure",
    Outcome.APPLY_FAILED: "failure",
    Outcome.ERROR: "failure",
    Outcome.APPLIED: "success",
    Outcome.NOTHING_TO_APPLY: "neutral",
    Outcome.LOCKED: "action_required",
    Outcome.REFUSED: "action_required",
    Outcome.STALE: "action_required",
    Outcome.NOT_APPLIED: "skipped",
    Outcome.SUPERSEDED: "cancelled",
}  # PLANNED: success with changes, neutral without (conclusion())

_TITLE = {
    Outcome.LOCKED: "Waiting for the lock",
    Outcome.REFUSED: "Refused",
    Outcome.STALE: "Needs apply",
    Outcome.NOT_APPLIED: "Not applied: a project it depends on did not apply",
    Outcome.SUPERSEDED: "Superseded by a newer push",
    Outcome.ERROR: "tfbot could not run it",
}


@dataclass(frozen=True)
class CheckRunView:
    """One check run as GitHub takes it (`POST`/`PATCH /repos/{owner}/{repo}/check-runs`).

    `conclusion` None means `in_progress`; `output()` is the request's `output` object.
    """

    name: str
    title: str
    summary: str
    conclusion: str | None = None
    text: str = ""
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    details_url: str = ""

    @property
    def status(self) -> str:
        return "in_progress" if self.conclusion is None else "completed"

    def output(self) -> dict[str, Any]:
        data: dict[str, Any] = {"title": self.title, "summary": self.summary}
        if self.text:
            data["text"] = self.text
        if self.annotations:
            data["annotations"] = self.annotations
        return data


def check_kind(command_kind: str) -> str:
    """`plan` or `apply`: the check run a command kind (plan, apply, merge, handover) writes."""
    return _KIND.get(command_kind, "apply")


def check_name(command_kind: str, project: Project) -> str:
    """`tfbot/plan: <project>` or `tfbot/apply: <project>` (the project's name, which defaults to its dir)."""
    return f"tfbot/{check_kind(command_kind)}: {project.name}"


def in_progress(command_kind: str, project: Project, head_sha: str) -> CheckRunView:
    """The check run of a project whose run has started."""
    verb = "Planning" if check_kind(command_kind) == "plan" else "Applying"
    return CheckRunView(name=check_name(command_kind, project), title=f"{verb} {project.name}",
                        summary=f"{verb} {_where(project, head_sha)}.")


def can_apply(result: ProjectResult) -> bool:
    """Whether the result carries the Apply button: a plan with changes, into a branch tfbot applies."""
    if result.outcome is Outcome.PLANNED:
        return bool(result.has_changes or result.changes) and result.applicable
    # A stale result with a plan of its own is the plan `apply` would apply now (merged: what the branch holds).
    return result.outcome is Outcome.STALE and bool(result.run_id) and bool(result.has_changes or result.changes)


def conclusion(result: ProjectResult) -> str:
    """The check run's conclusion for one project's result (the table in the module docstring)."""
    if result.outcome is Outcome.PLANNED:
        return "success" if result.has_changes or result.changes else "neutral"
    return CONCLUSION.get(result.outcome, "neutral")


def completed(command_kind: str, result: ProjectResult, run_url: Callable[[str], str] | None = None,
              command_prefix: str = COMMAND_PREFIX) -> CheckRunView:
    """The finished check run of one project's result; `run_url(run_id)` links the run log ("" when unknown)."""
    url = run_url(result.run_id) if run_url and result.run_id else ""
    where = url or (f"run log {result.run_id} on tfbot's /runs page" if result.run_id else "tfbot's log")
    button = can_apply(result)
    annotations = annotations_of(result.project, result.diagnostics)
    summary = _summary(result, url, button, len(result.diagnostics) - len(annotations), command_prefix)
    return CheckRunView(
        name=check_name(command_kind, result.project), conclusion=conclusion(result), title=title(result),
        summary=summary, text=output_text(result, where), annotations=annotations,
        actions=[dict(_APPLY_BUTTON)] if button else [], details_url=url)


def title(result: ProjectResult) -> str:
    """Terraform's summary line (or, for a failure, its first error line); tfbot's words where Terraform has none."""
    line = _one_line(result.summary) or _one_line(find_summary(result.output))
    if result.outcome in (Outcome.LOCKED, Outcome.REFUSED, Outcome.NOT_APPLIED, Outcome.SUPERSEDED) or not line:
        line = _TITLE.get(result.outcome, result.outcome.value.capitalize())
    elif result.outcome is Outcome.STALE:
        line = f"{_TITLE[Outcome.STALE]}: {line}"
    return _clip(line, TITLE_LIMIT)


def output_text(result: ProjectResult, where: str, limit: int = OUTPUT_LIMIT) -> str:
    """Terraform's output, fenced (a plan as a diff), within `limit` characters: a longer one keeps its start and
    end, with a line saying how much was cut and that `where` (the run log) has it all. "" for no output."""
    output = strip_ansi(result.output).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    if not output.strip():
        return ""
    planned = result.outcome in (Outcome.PLANNED, Outcome.STALE)
    budget = limit
    while True:
        body = cut_output(output, limit=budget, where=where)
        text = fenced(plan_to_diff(body), "diff") if planned else fenced(body)
        if len(text) <= limit:
            return text
        # Fences, the cut note and a diff's moved signs take room of their own: try again with less.
        budget -= max(len(text) - limit, 100)


def annotations_of(project: Project, diagnostics: list[Diagnostic]) -> list[dict[str, Any]]:
    """One annotation per diagnostic on a file of the repository (at most MAX_ANNOTATIONS), texts bounded.

    The path is the project's dir joined with Terraform's filename; one outside the repository (`..`, absolute) or
    in `.terraform/` (a downloaded module) is no file of the PR and is left out.
    """
    found: list[dict[str, Any]] = []
    for diagnostic in diagnostics:
        path = repo_path(project.dir, diagnostic.filename)
        if path is None or diagnostic.line < 1:
            continue
        message = _one_paragraph(diagnostic.detail) or _one_paragraph(diagnostic.summary) or "Terraform diagnostic"
        found.append({
            "path": path,
            "start_line": diagnostic.line,
            "end_line": max(diagnostic.end_line, diagnostic.line),
            "annotation_level": "failure" if diagnostic.severity == "error" else "warning",
            "title": _clip(_one_line(diagnostic.summary) or "Terraform", TITLE_LIMIT),
            "message": _clip_bytes(message, ANNOTATION_MESSAGE_BYTES),
        })
        if len(found) == MAX_ANNOTATIONS:
            break
    return found


def repo_path(project_dir: str, filename: str) -> str | None:
    """`filename` (relative to the project's dir, as Terraform names it) relative to the repository root, or None
    when it lies outside the repository or under `.terraform/`."""
    if not filename or "\x00" in filename or filename.startswith("/") or "\\" in filename:
        return None
    joined = posixpath.normpath(posixpath.join(project_dir or ".", filename))
    if joined in (".", "..") or joined.startswith(("../", "/")) or ".terraform" in joined.split("/"):
        return None
    return joined


# ---- summary -----------------------------------------------------------------------------------------

def _summary(result: ProjectResult, url: str, button: bool, left_out: int, command_prefix: str) -> str:
    """Markdown: the summary line, the project, the changes by action, tfbot's message, what to do next."""
    for with_addresses in (True, False):
        parts = [f"**{escape_text(title(result))}**", f"In {_where(result.project, result.head_sha)}."]
        changes = _changes(result, with_addresses)
        if changes:
            parts.append(changes)
        if result.message.strip():
            parts.append(escape_text(result.message.strip()))
        if left_out > 0:
            parts.append(f"{left_out} more of Terraform's diagnostics are not shown as annotations: see the output.")
        if button:
            apply = code_span(f"{command_prefix} apply -p {result.project.name}")
            parts.append(f"Press **Apply** above to apply this plan, or comment {apply}.")
        if url:
            parts.append(f"[Run log](<{url}>)")
        text = "\n\n".join(parts)
        if len(text) <= OUTPUT_LIMIT:
            return text
    return _clip(text, OUTPUT_LIMIT)


def _changes(result: ProjectResult, with_addresses: bool) -> str:
    return "\n".join(f"* **{g['action']}** ({g['count']})" + (f": {g['addresses']}" if with_addresses else "")
                     for g in change_groups(result))


def _where(project: Project, head_sha: str) -> str:
    at = f" at {escape_text(short_sha(head_sha))}" if head_sha else ""
    return (f"project {code_span(project.name)} (dir {code_span(project.dir)}, workspace "
            f"{code_span(project.workspace)}){at}")


def _one_line(text: str) -> str:
    return " ".join(strip_ansi(text).split())


def _one_paragraph(text: str) -> str:
    return strip_ansi(text).replace("\x00", "\ufffd").strip()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - len("…".encode())].decode("utf-8", "ignore") + "…"
