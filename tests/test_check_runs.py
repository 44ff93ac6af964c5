"""bot.render.checks (pure): the conclusion of every outcome, the Apply button, titles, summaries, the output cut
at GitHub's 65,535 characters with a link to the run log, and Terraform's diagnostics as annotations within
GitHub's limits. Also the replay fingerprint of a button press, and the request bot.lifecycle.checks sends."""
from __future__ import annotations

import cmarkgfm
import pytest

from bot.intake.replay import fingerprint
from bot.lifecycle.checks import request_fields, superseded
from bot.lifecycle.steps import MAX_DIAGNOSTICS, read_diagnostics
from bot.models import Diagnostic, Outcome, Project, ProjectResult, ResourceChange
from bot.render.checks import (MAX_ANNOTATIONS, OUTPUT_LIMIT, annotations_of, can_apply, check_name, completed,
                               conclusion, in_progress, output_text, repo_path, title)

NET = Project(repo="acme/infra", name="network", dir="infra/network")
SHA = "0123456789abcdef0123456789abcdef01234567"
PLAN = "Plan: 2 to add, 0 to change, 0 to destroy."


def result(outcome: Outcome, **kw: object) -> ProjectResult:
    return ProjectResult(NET, outcome, head_sha=SHA, **kw)  # type: ignore[arg-type]


def planned(**kw: object) -> ProjectResult:
    defaults: dict[str, object] = {
        "summary": PLAN, "has_changes": True, "run_id": "r1",
        "changes": [ResourceChange("create", "terraform_data.a"), ResourceChange("create", "terraform_data.b")],
        "output": f"  # terraform_data.a will be created\n  + resource \"terraform_data\" \"a\" {{}}\n\n{PLAN}\n"}
    return result(Outcome.PLANNED, **{**defaults, **kw})


# ---- the table -------------------------------------------------------------------------------------

@pytest.mark.parametrize("outcome, expected", [
    (Outcome.PLAN_FAILED, "failure"), (Outcome.APPLY_FAILED, "failure"), (Outcome.ERROR, "failure"),
    (Outcome.APPLIED, "success"), (Outcome.NOTHING_TO_APPLY, "neutral"), (Outcome.LOCKED, "action_required"),
    (Outcome.REFUSED, "action_required"), (Outcome.STALE, "action_required"), (Outcome.NOT_APPLIED, "skipped"),
    (Outcome.SUPERSEDED, "cancelled"),
])
def test_every_outcome_has_its_conclusion(outcome: Outcome, expected: str) -> None:
    assert conclusion(result(outcome)) == expected


def test_every_outcome_is_in_the_table() -> None:
    assert {conclusion(result(o)) for o in Outcome} <= {"success", "failure", "neutral", "action_required",
                                                        "skipped", "cancelled"}


def test_a_plan_with_changes_succeeds_with_the_apply_button() -> None:
    view = completed("plan", planned())
    assert (view.name, view.status, view.conclusion, view.title) == (
        "tfbot/plan: network", "completed", "success", PLAN)
    assert view.actions == [{"label": "Apply", "identifier": "apply", "description": "Apply this project's plan"}]


@pytest.mark.parametrize("outputs_only", [False, True])
def test_a_plan_of_outputs_only_counts_as_changes(outputs_only: bool) -> None:
    plan = planned(changes=[], has_changes=outputs_only, summary="No changes. Your infrastructure matches.")
    assert conclusion(plan) == ("success" if outputs_only else "neutral")
    assert can_apply(plan) is outputs_only


def test_a_plan_without_changes_is_neutral_and_has_no_button() -> None:
    view = completed("plan", planned(changes=[], has_changes=False,
                                     summary="No changes. Your infrastructure matches the configuration."))
    assert (view.conclusion, view.actions) == ("neutral", [])
    assert view.title.startswith("No changes.")


def test_a_plan_into_a_branch_tfbot_does_not_apply_has_no_button() -> None:
    view = completed("plan", planned(applicable=False))
    assert (view.conclusion, view.actions) == ("success", [])
    assert "Press **Apply**" not in view.summary


def test_a_stale_plan_needs_apply_and_offers_it_only_with_a_plan_of_its_own() -> None:
    asked = result(Outcome.STALE, summary="Plan: 1 to add, 0 to change, 0 to destroy.", run_id="r2", has_changes=True)
    replanning = result(Outcome.STALE, message="tfbot is planning the head now")
    assert completed("merge", asked).actions and completed("merge", asked).conclusion == "action_required"
    assert completed("merge", asked).title == "Needs apply: Plan: 1 to add, 0 to change, 0 to destroy."
    assert completed("apply", replanning).actions == []


@pytest.mark.parametrize("kind, name", [("plan", "tfbot/plan: network"), ("apply", "tfbot/apply: network"),
                                        ("merge", "tfbot/apply: network"), ("handover", "tfbot/apply: network")])
def test_names_by_command_kind(kind: str, name: str) -> None:
    assert check_name(kind, NET) == name
    assert in_progress(kind, NET, SHA).name == name


def test_in_progress_has_no_conclusion_nor_button() -> None:
    view = in_progress("plan", NET, SHA)
    fields = request_fields(view, external_id="e1")
    assert fields["status"] == "in_progress" and "conclusion" not in fields
    assert fields["actions"] == [] and fields["external_id"] == "e1"
    assert "0123456" in view.summary


def test_titles_use_terraforms_line_or_tfbots_words() -> None:
    failed = result(Outcome.PLAN_FAILED, summary="Error: Reference to undeclared input variable")
    assert title(failed) == "Error: Reference to undeclared input variable"
    assert title(result(Outcome.LOCKED, message="locked by #3")) == "Waiting for the lock"
    assert title(result(Outcome.APPLIED, output="...\nApply complete! Resources: 2 added, 0 changed, 0 destroyed.\n")) \
        == "Apply complete! Resources: 2 added, 0 changed, 0 destroyed."
    assert len(title(result(Outcome.PLAN_FAILED, summary="Error: " + "x" * 1000))) == 255


def test_superseded_results_are_cancelled_without_a_button() -> None:
    [view] = [completed("plan", r) for r in superseded([planned()])]
    assert (view.conclusion, view.actions, view.title) == ("cancelled", [], "Superseded by a newer push")


# ---- summary and text --------------------------------------------------------------------------------

def test_summary_has_the_changes_by_action_and_escapes_hostile_text() -> None:
    plan = planned(changes=[ResourceChange("create", "terraform_data.a"),
                            ResourceChange("destroy", "terraform_data.<b>"),
                            ResourceChange("update", "terraform_data.c")],
                   message="<img src=x onerror=alert(1)> ```")
    summary = completed("plan", plan, run_url=lambda run: f"https://tfbot.example/runs/{run}").summary
    lines = summary.split("\n")
    assert lines.index("* **create** (1): `terraform_data.a`") < lines.index("* **update** (1): `terraform_data.c`") \
        < lines.index("* **destroy** (1): `terraform_data.<b>`")
    assert "<img" not in cmarkgfm.github_flavored_markdown_to_html(summary).replace("&lt;img", "")
    assert "[Run log](<https://tfbot.example/runs/r1>)" in summary
    assert "`tfbot apply -p network`" in summary


def test_a_summary_too_long_for_github_drops_the_addresses() -> None:
    many = [ResourceChange("create", f"terraform_data.r{i:05d}_{'x' * 40}") for i in range(3000)]
    summary = completed("plan", planned(changes=many)).summary
    assert len(summary) <= OUTPUT_LIMIT
    assert "* **create** (3000)" in summary and "r00001" not in summary


def test_a_short_plan_is_whole_in_a_diff_fence() -> None:
    text = completed("plan", planned()).text
    assert text.startswith("```diff\n") and PLAN in text and "+   resource" in text


def test_a_long_output_is_cut_at_githubs_limit_with_the_link() -> None:
    long = "\n".join(f"  + line {i} {'y' * 60}" for i in range(5000)) + f"\n{PLAN}\n"
    assert len(long) > OUTPUT_LIMIT
    url = "https://tfbot.example/runs/r1"
    text = completed("plan", planned(output=long), run_url=lambda run: url).text
    assert len(text) <= OUTPUT_LIMIT
    assert len(text) > OUTPUT_LIMIT - 1000  # cut near the limit, not far below it
    assert f"the whole output is in {url}" in text
    assert PLAN in text and "line 0 " in text  # the start and the end are kept


def test_the_limit_counts_characters_not_bytes() -> None:
    wide = "é" * (OUTPUT_LIMIT - 20)  # two bytes each in UTF-8: over the limit in bytes, not in characters
    text = output_text(result(Outcome.APPLIED, output=wide), "the run log")
    assert len(text) <= OUTPUT_LIMIT and "characters cut" not in text


@pytest.mark.parametrize("backticks", [3, 40])
def test_a_cut_output_fits_whatever_fence_it_needs(backticks: int) -> None:
    hostile = ("`" * backticks + "\n") * 2000 + "z" * OUTPUT_LIMIT
    text = output_text(result(Outcome.PLAN_FAILED, output=hostile), "run log r1 on tfbot's /runs page")
    assert len(text) <= OUTPUT_LIMIT
    assert "run log r1 on tfbot's /runs page" in text


def test_no_output_no_text() -> None:
    view = completed("plan", result(Outcome.LOCKED, message="locked"))
    assert view.text == "" and "text" not in view.output()


# ---- annotations --------------------------------------------------------------------------------------

def test_a_diagnostic_becomes_an_annotation_on_the_repository_path() -> None:
    diag = Diagnostic("error", "Reference to undeclared input variable", 'An input variable "nope" is not declared.',
                      "main.tf", 2, 2)
    [annotation] = annotations_of(NET, [diag])
    assert annotation == {"path": "infra/network/main.tf", "start_line": 2, "end_line": 2,
                          "annotation_level": "failure", "title": "Reference to undeclared input variable",
                          "message": 'An input variable "nope" is not declared.'}
    assert annotations_of(NET, [Diagnostic("warning", "Deprecated", "", "x.tf", 4, 6)])[0] == {
        "path": "infra/network/x.tf", "start_line": 4, "end_line": 6, "annotation_level": "warning",
        "title": "Deprecated", "message": "Deprecated"}


@pytest.mark.parametrize("filename, path", [
    ("main.tf", "infra/network/main.tf"), ("../modules/vpc/main.tf", "infra/modules/vpc/main.tf"),
    ("./sub/../a.tf", "infra/network/a.tf"), ("../../../etc/passwd", None), ("/etc/passwd", None),
    (".terraform/modules/x/main.tf", None), ("../../.terraform/x.tf", None), ("", None), ("a\\b.tf", None),
])
def test_paths_outside_the_repository_are_left_out(filename: str, path: str | None) -> None:
    assert repo_path(NET.dir, filename) == path


def test_a_root_project_path() -> None:
    assert repo_path(".", "main.tf") == "main.tf"
    assert repo_path(".", "../x.tf") is None


def test_annotations_stay_within_githubs_limits() -> None:
    huge = Diagnostic("error", "S" * 1000, "é" * 70_000, "main.tf", 1, 1)
    many = [huge] + [Diagnostic("error", f"e{i}", "d", "main.tf", i + 1, i + 1) for i in range(80)]
    annotations = annotations_of(NET, many)
    assert len(annotations) == MAX_ANNOTATIONS
    assert len(annotations[0]["title"]) <= 255
    assert len(annotations[0]["message"].encode()) <= 64 * 1024
    view = completed("plan", result(Outcome.PLAN_FAILED, summary="Error: e", diagnostics=many))
    assert len(view.annotations) == MAX_ANNOTATIONS
    assert "31 more of Terraform's diagnostics" in view.summary


def test_validate_json_is_read_bounded_and_without_places_left_out() -> None:
    data = {"diagnostics": [
        {"severity": "error", "summary": "Bad", "detail": "d" * 10_000,
         "range": {"filename": "main.tf", "start": {"line": 3, "column": 1}, "end": {"line": 2}}},
        {"severity": "error", "summary": "No place"},
        {"severity": "warning", "summary": "W", "range": {"filename": "a.tf", "start": {"line": 0}}},
        "not an object",
    ] + [{"severity": "warning", "summary": "w", "range": {"filename": "b.tf", "start": {"line": 1}}}] * 500}
    found = read_diagnostics(data)
    assert found[0] == Diagnostic("error", "Bad", "d" * 4000, "main.tf", 3, 3)
    assert len(found) == MAX_DIAGNOSTICS and found[1].severity == "warning"
    assert read_diagnostics(None) == [] and read_diagnostics({"diagnostics": "x"}) == []


# ---- a button press, replayed or new -------------------------------------------------------------------

def press(external_id: str, sender: int = 7, identifier: str = "apply") -> dict[str, object]:
    return {"action": "requested_action", "repository": {"full_name": "acme/infra"},
            "check_run": {"id": 5, "external_id": external_id}, "requested_action": {"identifier": identifier},
            "sender": {"id": sender, "login": "bob"}}


def test_a_replayed_press_has_the_same_fingerprint_and_a_new_press_another() -> None:
    assert fingerprint("check_run", press("e1")) == fingerprint("check_run", press("e1"))
    assert fingerprint("check_run", press("e2")) != fingerprint("check_run", press("e1"))  # renewed after a press
    assert fingerprint("check_run", press("e1", sender=8)) != fingerprint("check_run", press("e1"))
    assert fingerprint("check_run", {**press("e1"), "action": "created"}) is None
