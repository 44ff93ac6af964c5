"""bot.render.comments: comment text, markers, outdated comments, splitting, commit statuses.

Structure is checked with cmarkgfm, GitHub's own markdown parser, rather than with render's own scanner:
a part is valid when a paragraph appended after it renders as a paragraph (so no code fence was left
open) and its raw <details> tags nest and balance. Goldens: TFBOT_UPDATE_GOLDEN=1 rewrites them.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import Outcome, Project, ProjectResult, ResourceChange
from bot.render.comments import (
    COMMENT_LIMIT,
    SPLIT_MARGIN,
    code_span,
    escape_text,
    fence_for,
    fenced,
    find_summary,
    mark_outdated,
    marker,
    marker_of,
    pending_status,
    plan_to_diff,
    render_command_comment,
    render_notice,
    split_comment,
    status_description,
    strip_ansi,
    summary_counts,
)

GOLDEN = Path(__file__).parent / "golden"
INPUTS = GOLDEN / "inputs"
SHA = "abc1234def567890abc1234def567890abc12345"
NEWER = "fedcba9876543210fedcba9876543210fedcba98"
SENTINEL = "SENTINEL-END-OF-PART"


def read_input(name: str) -> str:
    return (INPUTS / name).read_text(encoding="utf-8")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TFBOT_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8", newline="")
    assert path.exists(), f"{path} is missing: run with TFBOT_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


# ---- an independent oracle: GitHub's parser -----------------------------------------------------

def to_html(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, text) of every fenced code block as GitHub renders it."""
    found = re.findall(r'<pre(?: lang="([^"]*)")?><code>(.*?)</code></pre>', to_html(markdown), re.S)
    return [(lang, html.unescape(text)) for lang, text in found]


def assert_valid_part(part: str) -> None:
    """No fence left open at the end, and raw <details> tags nest and balance."""
    rendered = to_html(part + "\n\n" + SENTINEL + "\n")
    assert f"<p>{SENTINEL}</p>" in rendered, "a code fence is left open: the text after it became code"
    depth = 0
    for tag in re.findall(r"</?details>", rendered):
        depth += -1 if tag.startswith("</") else 1
        assert depth >= 0, "</details> without its <details>"
    assert depth == 0, "<details> left open"


def assert_valid_parts(parts: list[str], limit: int, margin: int) -> None:
    assert parts
    first = marker_of(parts[0])
    for k, part in enumerate(parts, 1):
        assert len(part) <= limit - margin, f"part {k} has {len(part)} characters"
        assert_valid_part(part)
        if first:
            assert marker_of(part) == first
        if k > 1:
            assert part.split("\n")[1 if first else 0] == f"*(continued, part {k} of {len(parts)})*"


def diff_code(parts: list[str]) -> str:
    return "".join(text for part in parts for lang, text in code_blocks(part) if lang == "diff")


# ---- inputs ------------------------------------------------------------------------------------

def project(name: str = "network", dir: str = "infra/network", workspace: str = "default") -> Project:
    return Project(repo="acme/infra", name=name, dir=dir, workspace=workspace)


PLAN_CHANGES = [
    ResourceChange("destroy", "terraform_data.added"),
    ResourceChange("create", "terraform_data.added2"),
    ResourceChange("replace", "terraform_data.cbd"),
    ResourceChange("create", "terraform_data.gone2"),
    ResourceChange("replace", "terraform_data.rep"),
    ResourceChange("update", "terraform_data.upd"),
]


def planned(output: str | None = None, summary: str = "Plan: 4 to add, 1 to change, 3 to destroy.",
            name: str = "network") -> ProjectResult:
    return ProjectResult(project(name), Outcome.PLANNED, summary=summary, changes=list(PLAN_CHANGES),
                         output=read_input("plan.txt") if output is None else output, run_id=f"run-{name}")


def run_url(run_id: str) -> str:
    return f"https://tfbot.example.com/runs/{run_id}"


def mixed_plan_results() -> list[ProjectResult]:
    return [
        planned(),
        ProjectResult(project("dns", "infra/dns", "prod"), Outcome.PLANNED,
                      summary="No changes. Your infrastructure matches the configuration.",
                      output=read_input("no_changes.txt"), run_id="run-dns"),
        ProjectResult(project("db", "infra/db"), Outcome.PLAN_FAILED, output=read_input("error.txt"),
                      message="Fix the configuration and push, or comment `tfbot plan` to retry.", run_id="run-db"),
        ProjectResult(project("edge", "infra/edge", "staging"), Outcome.LOCKED,
                      message="Locked by #7 (Add a VPC peering) by @alice since 2024-05-01 10:00 UTC.\n"
                              "It frees when #7 merges or closes."),
    ]


def mixed_plan_comment() -> str:
    return render_command_comment("plan", mixed_plan_results(), 12, SHA, run_url=run_url,
                                  note="Planned after a push to `feature/vpc`.")


def big_plan(min_chars: int, hostile: bool = False) -> str:
    """A plan of many resources, at least `min_chars` long, from the real plan's resource blocks."""
    text = read_input("plan.txt")
    block = text[text.index("  # terraform_data.added2"):text.index("  # terraform_data.gone2")]
    extra = "      + note   = \"```\\n</details>\\n<!-- tfbot:apply pr=1 sha=ab -->\"\n" if hostile else ""
    blocks, size, i = [], 0, 0
    while size < min_chars:
        b = block.replace("added2", f"r{i:06d}")
        if extra:
            b = b.replace("    }\n", extra + "    }\n", 1)
        blocks.append(b)
        size += len(b)
        i += 1
    return "Terraform will perform the following actions:\n\n" + "".join(blocks) + f"Plan: {i} to add, 0 to change, 0 to destroy.\n"


# ---- goldens -----------------------------------------------------------------------------------

def test_golden_plan_comment_with_every_plan_outcome():
    body = mixed_plan_comment()
    check_golden("plan_mixed.md", body)
    assert_valid_part(body)
    assert marker_of(body) == {"kind": "plan", "pr": 12, "sha": SHA}
    assert body.split("\n")[1] == "### tfbot plan for #12 at abc1234"


def test_golden_apply_comment():
    results = [
        ProjectResult(project(), Outcome.APPLIED, summary="Apply complete! Resources: 1 added, 1 changed, 1 destroyed.",
                      output=read_input("apply.txt"), run_id="run-apply"),
        ProjectResult(project("db", "infra/db"), Outcome.APPLY_FAILED, output=read_input("error_ansi.txt"),
                      message="The lock stays with this pull request. Fix the cause and comment `tfbot apply` again."),
        ProjectResult(project("dns", "infra/dns"), Outcome.ERROR,
                      output="fatal: unable to access 'https://github.com/acme/infra/': Could not resolve host",
                      message="tfbot could not check out the pull request; comment `tfbot apply` to retry."),
    ]
    body = render_command_comment("apply", results, 12, SHA, run_url=run_url)
    check_golden("apply.md", body)
    assert_valid_part(body)


def test_golden_refused_and_stale():
    results = [
        ProjectResult(project(), Outcome.REFUSED,
                      message="Apply needs an approving review on abc1234; @bob may apply (write access)."),
        ProjectResult(project("db", "infra/db"), Outcome.STALE, summary="Plan: 4 to add, 1 to change, 3 to destroy.",
                      changes=list(PLAN_CHANGES), output=read_input("plan.txt"),
                      message="main changed infra/db since this plan: the merge commit was planned again and "
                              "its changes differ from the reviewed ones."),
    ]
    body = render_command_comment("apply", results, 12, SHA)
    check_golden("refused_stale.md", body)
    assert_valid_part(body)


def test_golden_outdated_plan_comment():
    body = mark_outdated(mixed_plan_comment(), NEWER)
    check_golden("plan_outdated.md", body)
    assert_valid_part(body)


def test_golden_split_with_a_small_limit():
    parts = split_comment(mixed_plan_comment(), limit=3000, margin=200)
    check_golden("plan_split.md", "\n\n=== next comment ===\n\n".join(parts))
    assert_valid_parts(parts, 3000, 200)


def test_golden_values_that_try_to_break_out():
    nasty = "x</details><!-- tfbot:apply pr=1 sha=ab -->\n```\n<details>"
    results = [
        ProjectResult(project(name=f"net{nasty}", dir="a``b`", workspace="<script>"), Outcome.PLANNED,
                      summary="Plan: 1 to add, 0 to change, 0 to destroy.",
                      changes=[ResourceChange("create", 'module.m["`<x>`"].terraform_data.y')],
                      output='  + resource "terraform_data" "y" {\n      + input = "```"\n    }\n````\n'),
        ProjectResult(project("db"), Outcome.LOCKED, message=f"Locked by #7 ({nasty}) by @mallory"),
    ]
    body = render_command_comment("plan", results, 12, SHA, note=nasty)
    check_golden("hostile.md", body)
    assert_valid_part(body)
    rendered = to_html(body)
    assert rendered.count("<!--") == 1, "only our marker may be an HTML comment"
    assert rendered.count("<details>") == 1  # the output fold; none from the values
    assert marker_of(body) == {"kind": "plan", "pr": 12, "sha": SHA}
    assert code_blocks(body) == [("diff", plan_to_diff(results[0].output).rstrip("\n") + "\n")]


# ---- the comment's content ---------------------------------------------------------------------

def test_plan_output_goes_to_a_diff_block_verbatim_but_for_signs():
    result = planned()
    blocks = code_blocks(render_command_comment("plan", [result], 1, SHA))
    assert blocks == [("diff", plan_to_diff(read_input("plan.txt")).rstrip("\n") + "\n")]
    assert "+   resource \"terraform_data\" \"added2\" {" in blocks[0][1]
    assert "!       input  = \"new\" -> \"old\"" in blocks[0][1]


def test_ansi_codes_are_stripped():
    plain = render_command_comment("plan", [planned(read_input("plan.txt"))], 1, SHA)
    colour = render_command_comment("plan", [planned(read_input("plan_ansi.txt"))], 1, SHA)
    assert "\x1b" in read_input("plan_ansi.txt")
    assert colour == plain


def test_summary_and_changes_grouped_by_action_in_order():
    body = render_command_comment("plan", [planned()], 1, SHA)
    lines = body.split("\n")
    assert "Plan: 4 to add, 1 to change, 3 to destroy." in lines
    groups = [line for line in lines if line.startswith("* **")]
    assert groups == [
        "* **create** (2): `terraform_data.added2`, `terraform_data.gone2`",
        "* **update** (1): `terraform_data.upd`",
        "* **replace** (2): `terraform_data.cbd`, `terraform_data.rep`",
        "* **destroy** (1): `terraform_data.added`",
    ]


def test_summary_falls_back_to_terraforms_line_in_the_output():
    body = render_command_comment("plan", [planned(summary="")], 1, SHA)
    assert "\nPlan: 4 to add, 1 to change, 3 to destroy.\n\n* **create**" in body


def test_error_is_shown_verbatim_and_the_full_output_folded():
    result = ProjectResult(project(), Outcome.PLAN_FAILED, output=read_input("error.txt"), message="Fix it.")
    blocks = code_blocks(render_command_comment("plan", [result], 1, SHA))
    error = read_input("error.txt")
    assert blocks[0][1] == error[error.index("Error: Reference"):]
    assert blocks[1][1] == error


def test_error_without_preamble_is_shown_once():
    result = ProjectResult(project(), Outcome.ERROR, output="Error: boom\n", message="Retry.")
    body = render_command_comment("plan", [result], 1, SHA)
    assert code_blocks(body) == [("", "Error: boom\n")]
    assert "\nRetry.\n" in body


def test_output_containing_fences_gets_a_longer_fence():
    output = "  + a = <<EOT\n```\n`````\nEOT\n"
    body = render_command_comment("plan", [planned(output)], 1, SHA)
    assert "\n``````diff\n" in body
    assert code_blocks(body) == [("diff", plan_to_diff(output).rstrip("\n") + "\n")]


def test_run_links_only_with_a_run_url():
    with_link = render_command_comment("plan", [planned()], 1, SHA, run_url=run_url)
    without = render_command_comment("plan", [planned()], 1, SHA)
    assert "[run log](<https://tfbot.example.com/runs/run-network>)" in with_link
    assert "run log" not in without
    assert "run log" not in render_command_comment("plan", [planned()], 1, SHA, run_url=lambda run_id: "")


def test_next_steps_follow_the_outcomes():
    plan = render_command_comment("plan", [planned()], 1, SHA)
    assert "Comment `tfbot apply` to apply this plan; merging this pull request applies it too." in plan
    assert "`tfbot unlock` releases" in plan
    no_changes = planned(output=read_input("no_changes.txt"), summary="No changes.")
    no_changes.changes = []
    assert "to apply this plan" not in render_command_comment("plan", [no_changes], 1, SHA)
    applied = ProjectResult(project(), Outcome.APPLIED, output=read_input("apply.txt"))
    applied_body = render_command_comment("apply", [applied], 1, SHA)
    assert "Merge this pull request to release the locks of the applied projects." in applied_body
    assert "Apply complete! Resources: 1 added, 1 changed, 1 destroyed." in applied_body
    assert "No projects matched" in render_command_comment("plan", [], 1, SHA)
    error = ProjectResult(project(), Outcome.ERROR, output="fatal: x", message="Retry.")
    error_body = render_command_comment("apply", [error], 1, SHA)
    assert "comment `tfbot apply` to try again" in error_body
    assert "Fix the errors and push" not in error_body


def test_command_prefix_is_configurable():
    body = render_command_comment("plan", [planned()], 1, SHA, command_prefix="/tf")
    assert "Comment `/tf apply` to apply" in body


def test_render_notice_is_marked():
    body = render_notice("help", 3, SHA, "Commands: `tfbot plan`, `tfbot apply`.")
    assert marker_of(body) == {"kind": "help", "pr": 3, "sha": SHA}
    assert marker_of(render_notice("too-many", 3, "", "x")) == {"kind": "too-many", "pr": 3, "sha": ""}


def test_an_outcome_without_its_own_template_still_renders():
    result = ProjectResult(project(), Outcome.SUPERSEDED, message="A newer push planned this.", output="x")
    body = render_command_comment("plan", [result], 1, SHA)
    assert "#### Superseded: `network`" in body and "\nA newer push planned this.\n" in body
    assert code_blocks(body) == [("", "x\n")]
    assert status_description([result], "plan") == ("failure", "1 project failed: network (superseded)")


# ---- markers and escaping ----------------------------------------------------------------------

def test_marker_round_trip_and_only_on_the_first_line():
    line = marker("plan", 12, SHA)
    assert line == f"<!-- tfbot:plan pr=12 sha={SHA} -->"
    assert marker_of(line + "\r\nrest") == {"kind": "plan", "pr": 12, "sha": SHA}
    assert marker_of("hello\n" + line) is None
    assert marker_of("<!-- tfbot:plan pr=x sha=1 -->") is None
    with pytest.raises(ValueError):
        marker("plan -->", 1, SHA)
    with pytest.raises(ValueError):
        marker("plan", 1, "not-a-sha")


def test_escape_text_neutralises_html_and_fences():
    text = escape_text("a <!-- x --> </details> & b\n```\n   ~~~python\n- ````\n> ```")
    assert text == "a &lt;!-- x --&gt; &lt;/details&gt; &amp; b\n\\```\n   \\~~~python\n- \\````\n&gt; \\```"
    assert not code_blocks(text)
    rendered = to_html(text)
    assert "<!--" not in rendered and "details>" not in rendered


def test_code_span_survives_backticks():
    for value in ["plain", "a`b", "``x``", "`", "a\nb"]:
        span = code_span(value)
        rendered = re.findall(r"<code>(.*?)</code>", to_html(span), re.S)
        assert [html.unescape(r) for r in rendered] == [value.replace("\n", " ")]


def test_fence_is_longer_than_any_run_in_the_content():
    assert fence_for("plain") == "```"
    assert fence_for("```") == "````"
    assert fence_for("x\n  ``````\n```") == "```````"
    assert fence_for("a ````` b") == "``````"
    assert fence_for("`" * 40) == "~~~"
    assert fence_for("`" * 40 + "~" * 20) == "~" * 21
    for content in ["```", "`" * 40, "~~~\n```", "x\n   ````\n"]:
        assert code_blocks(fenced(content)) == [("", content.rstrip("\n") + "\n")]


@pytest.mark.parametrize(("line", "expected"), [
    ("  + resource \"a\" \"b\" {", "+   resource \"a\" \"b\" {"),
    ("      - id = \"x\" -> null", "-       id = \"x\" -> null"),
    ("  ~ resource \"a\" \"b\" {", "!   resource \"a\" \"b\" {"),
    ("-/+ resource \"a\" \"b\" {", "-/+ resource \"a\" \"b\" {"),
    ("+/- resource \"a\" \"b\" {", "+/- resource \"a\" \"b\" {"),
    (" <= data \"a\" \"b\" {", " <= data \"a\" \"b\" {"),
    ("  # terraform_data.a will be created", "  # terraform_data.a will be created"),
    ("        id = \"x\"", "        id = \"x\""),
    ("Plan: 1 to add, 0 to change, 0 to destroy.", "Plan: 1 to add, 0 to change, 0 to destroy."),
    ("  +foo", "  +foo"),
])
def test_plan_to_diff(line, expected):
    assert plan_to_diff(line) == expected


def test_strip_ansi():
    assert strip_ansi("\x1b[0m\x1b[1m\x1b[32m+\x1b[0m\x1b[0m x\x1b]8;;http://a\x07y") == "+ xy"


# ---- summaries and statuses --------------------------------------------------------------------

def test_summary_counts():
    assert summary_counts("Plan: 1 to import, 2 to add, 0 to change, 3 to destroy.") == {
        "to import": 1, "to add": 2, "to change": 0, "to destroy": 3}
    assert summary_counts("No changes. Your infrastructure matches the configuration.") == {}
    assert summary_counts("Apply complete! Resources: 1 added, 1 changed, 1 destroyed.") == {
        "added": 1, "changed": 1, "destroyed": 1}
    assert find_summary(read_input("plan.txt")) == "Plan: 4 to add, 1 to change, 3 to destroy."
    assert find_summary(read_input("error.txt")) == ""


def test_status_success_sums_the_summary_lines():
    other = planned(summary="Plan: 0 to add, 2 to change, 0 to destroy.", name="dns")
    assert status_description([planned(), other], "plan") == (
        "success", "2 projects: 4 to add, 3 to change, 3 to destroy")
    none = planned(summary="No changes.", name="dns")
    assert status_description([none], "plan") == ("success", "1 project: no changes")


def test_status_counts_from_changes_without_a_summary():
    result = planned(summary="", output="")
    assert status_description([result], "plan") == ("success", "1 project: 4 to add, 1 to change, 3 to destroy")


def test_status_of_apply():
    applied = ProjectResult(project(), Outcome.APPLIED, output=read_input("apply.txt"))
    assert status_description([applied], "apply") == ("success", "1 project: 1 added, 1 changed, 1 destroyed")
    assert status_description([planned()], "apply")[0] == "failure"


def test_status_failure_names_the_failed_projects():
    failed = ProjectResult(project("network"), Outcome.PLAN_FAILED)
    assert status_description([planned(name="dns"), failed], "plan") == (
        "failure", "1 of 2 projects failed: network")
    locked = ProjectResult(project("edge"), Outcome.LOCKED)
    assert status_description([locked], "plan") == ("failure", "1 project failed: edge (locked)")
    error = ProjectResult(project("edge"), Outcome.ERROR)
    assert status_description([error], "plan")[0] == "error"


def test_status_description_fits_140_characters():
    many = [ProjectResult(project(f"project-with-a-long-name-{i}"), Outcome.PLAN_FAILED) for i in range(20)]
    state, text = status_description(many, "plan")
    assert state == "failure" and len(text) <= 140
    assert text.startswith("20 of 20 projects failed: project-with-a-long-name-0, ") and text.endswith(" more")
    huge = [ProjectResult(project("n" * 300), Outcome.PLAN_FAILED)]
    assert len(status_description(huge, "plan")[1]) == 140
    assert pending_status(2, "plan") == ("pending", "planning 2 projects")


# ---- outdated ----------------------------------------------------------------------------------

def test_mark_outdated_keeps_the_marker_and_is_idempotent():
    old = mixed_plan_comment()
    outdated = mark_outdated(old, NEWER)
    assert marker_of(outdated) == {"kind": "plan-outdated", "pr": 12, "sha": SHA}
    assert outdated.split("\n")[1] == "> **Outdated**: superseded by the plan for fedcba9."
    assert mark_outdated(outdated, "1" * 40) == outdated
    assert code_blocks(outdated) == code_blocks(old)  # nothing lost, only folded
    with pytest.raises(ValueError):
        mark_outdated("no marker here", NEWER)


def test_mark_outdated_of_a_full_split_part_fits_without_cutting():
    parts = split_comment(render_command_comment("plan", [planned(big_plan(200_000))], 12, SHA))
    for part in parts:
        outdated = mark_outdated(part, NEWER)
        assert len(outdated) <= COMMENT_LIMIT
        assert "*(cut:" not in outdated
        assert_valid_part(outdated)


def test_mark_outdated_cuts_what_does_not_fit():
    body = render_command_comment("plan", [planned(big_plan(70_000))], 12, SHA)
    outdated = mark_outdated(body, NEWER, limit=30_000)
    assert len(outdated) <= 30_000
    assert "*(cut: the rest no longer fits in one comment)*" in outdated
    assert_valid_part(outdated)


# ---- splitting ---------------------------------------------------------------------------------

def test_short_comment_is_one_part():
    body = mixed_plan_comment()
    assert split_comment(body) == [body]


def test_split_a_70000_character_plan():
    output = big_plan(70_000)
    body = render_command_comment("plan", [planned(output)], 12, SHA)
    assert len(body) > COMMENT_LIMIT
    parts = split_comment(body)
    assert len(parts) == 2
    assert_valid_parts(parts, COMMENT_LIMIT, SPLIT_MARGIN)
    assert diff_code(parts) == plan_to_diff(output).rstrip("\n") + "\n"
    assert parts[1].split("\n")[3] == "<details><summary>Show output</summary>"  # reopened after the header
    assert parts[-1].rstrip().endswith("releases this pull request's locks and discards its plans.")


def test_split_a_2mb_output_with_hostile_lines():
    output = big_plan(2_000_000, hostile=True)
    body = render_command_comment("plan", [planned(output), planned(output[:5000], name="small")], 12, SHA, output_limit=10**9)
    parts = split_comment(body)
    assert len(parts) > 30
    assert_valid_parts(parts, COMMENT_LIMIT, SPLIT_MARGIN)
    expected = plan_to_diff(output).rstrip("\n") + "\n" + plan_to_diff(output[:5000]).rstrip("\n") + "\n"
    assert diff_code(parts) == expected


def test_a_line_longer_than_a_comment_is_hard_wrapped():
    line = "x" + "ab`c```" * 30_000  # 210,001 characters; most cut points fall on backticks
    body = render_command_comment("plan", [planned(line + "\n")], 12, SHA, output_limit=10**9)
    parts = split_comment(body)
    assert len(parts) >= 4
    assert_valid_parts(parts, COMMENT_LIMIT, SPLIT_MARGIN)
    pieces = [text for part in parts for lang, text in code_blocks(part) if lang == "diff"]
    assert "".join(piece[:-1] for piece in pieces) == line


def test_a_long_run_of_backticks_in_code_is_wrapped_without_closing_the_fence():
    line = "a" + "`" * 150_000
    parts = split_comment(render_command_comment("plan", [planned(line + "\n")], 12, SHA, output_limit=10**9))
    assert len(parts) >= 3
    assert_valid_parts(parts, COMMENT_LIMIT, SPLIT_MARGIN)
    pieces = [text for part in parts for lang, text in code_blocks(part) if lang == "diff"]
    assert "".join(piece[:-1] for piece in pieces) == line


def test_a_long_line_of_tilde_runs_is_cut_before_a_run():
    # Outside code a piece that began with ~~~ would open a fence; almost every cut point lies in a run.
    body = marker("plan", 1, SHA) + "\n" + ("a" + "~" * 40) * 5000
    parts = split_comment(body)
    assert len(parts) >= 4
    assert_valid_parts(parts, COMMENT_LIMIT, SPLIT_MARGIN)


def test_a_long_line_outside_code_is_wrapped_without_opening_a_fence():
    message = "a```" * 50_000
    result = ProjectResult(project(), Outcome.LOCKED, message=message)
    parts = split_comment(render_command_comment("plan", [result], 12, SHA))
    assert len(parts) >= 3
    assert_valid_parts(parts, COMMENT_LIMIT, SPLIT_MARGIN)
    assert not any(code_blocks(part) for part in parts)


def test_split_without_a_marker():
    body = "\n".join(f"line {i}" for i in range(2000))
    parts = split_comment(body, limit=3000, margin=200)
    assert_valid_parts(parts, 3000, 200)
    assert parts[1].startswith("*(continued, part 2 of ")


def test_split_refuses_a_limit_too_small_for_its_structure():
    with pytest.raises(ValueError):
        split_comment(mixed_plan_comment(), limit=300, margin=50)  # room for a fold's reopening only
    with pytest.raises(ValueError):
        split_comment("x" * 1000, limit=200, margin=50)


# A body as our templates build them: escaped text, folded fences, bare fences, in any order.
_text_line = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=120)
_code_line = st.one_of(_text_line, st.sampled_from(["```", "````diff", "~~~", "</details>", "<details>", "  ```", ""]))


@st.composite
def bodies(draw):
    blocks, code = [marker("plan", 5, SHA), "### tfbot plan for #5 at abc1234"], []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["text", "fold", "fence"]))
        if kind == "text":
            # (stripped: four leading spaces would make an indented code block, which is harmless but
            # would count as code below)
            text = "\n".join(line.lstrip() for line in draw(st.lists(_text_line, max_size=8)))
            blocks += ["", escape_text(text)]
            continue
        content = "\n".join(draw(st.lists(_code_line, min_size=1, max_size=60)))
        info = draw(st.sampled_from(["", "diff"]))
        code.append((info, content.rstrip("\n") + "\n"))
        block = fenced(content, info)
        blocks += ["", f"<details><summary>{escape_text(draw(_text_line)[:40])}</summary>", "", block, "", "</details>"] \
            if kind == "fold" else ["", block]
    return "\n".join(blocks), code


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies(), st.integers(1200, 5000))
def test_split_property(body_and_code, limit):
    body, code = body_and_code
    assert code_blocks(body) == code
    parts = split_comment(body, limit=limit, margin=150)
    assert_valid_parts(parts, limit, 150)
    # Every code line arrives, in order, inside code blocks of the same language.
    for info in ("", "diff"):
        got = "".join(text for part in parts for lang, text in code_blocks(part) if lang == info)
        assert got == "".join(text for i, text in code if i == info)


def test_output_over_the_limit_is_cut_with_a_pointer_to_the_run_log():
    from bot.render.comments import cut_output

    output = "".join(f"line {i}\n" for i in range(100_000))
    cut = cut_output(output, limit=10_000, where="https://tfbot.example.com/runs/r1")
    assert len(cut) < 11_000
    assert cut.startswith("line 0\n") and cut.endswith("line 99999\n")
    assert "characters cut here; the whole output is in https://tfbot.example.com/runs/r1" in cut
    result = planned(output)
    result.run_id = "r1"
    body = render_command_comment("plan", [result], 12, SHA, run_url=lambda run_id: f"https://t.example/runs/{run_id}")
    assert len(split_comment(body)) <= 2 and "https://t.example/runs/r1." in body


OUTPUTS_ONLY = ("Changes to Outputs:\n  ~ endpoint = \"a\" -> \"b\"\n\nYou can apply this plan to save these new output "
                "values to the Terraform state, without changing any real infrastructure.\n")


def test_a_plan_that_changes_only_outputs_is_a_change_and_offers_apply():
    summary = ("You can apply this plan to save these new output values to the Terraform state, without changing "
               "any real infrastructure.")
    result = ProjectResult(project(), Outcome.PLANNED, summary=summary, output=OUTPUTS_ONLY, run_id="r1",
                           head_sha="a" * 40, has_changes=True)
    state, description = status_description([result], "plan")
    assert (state, description) == ("success", "1 project: output changes")
    body = render_command_comment("plan", [result], 7, "a" * 40)
    assert "tfbot apply" in body
    nothing = ProjectResult(project(), Outcome.PLANNED, summary="No changes. Your infrastructure matches the "
                            "configuration.", output="No changes.", head_sha="a" * 40, has_changes=False)
    assert status_description([nothing], "plan") == ("success", "1 project: no changes")
    assert "tfbot apply" not in render_command_comment("plan", [nothing], 7, "a" * 40)


def test_a_plan_of_a_pr_into_a_branch_that_does_not_apply_offers_no_apply():
    result = planned()
    result.applicable = False
    assert "tfbot apply" not in render_command_comment("plan", [result], 7, "a" * 40)


# ---- the table of a comment over several projects ------------------------------------------------------------

def test_a_comment_over_several_projects_opens_with_a_table_of_results_counts_and_locks():
    from bot.models import LockInfo, LockState

    def lock(pull: int, state: LockState = LockState.PLANNED) -> LockInfo:
        return LockInfo(repo="acme/infra", dir="d", workspace="default", project="p", pull=pull, user="alice",
                        locked_at=0.0, token=1, state=state)

    results = mixed_plan_results()
    locks = {results[0].project.id: lock(12), results[1].project.id: None,
             results[2].project.id: lock(12, LockState.PLAN_FAILED), results[3].project.id: lock(7)}
    body = render_command_comment("plan", results, 12, SHA, locks=locks)
    table = body[body.index("| Project"):body.index("\n\n", body.index("| Project"))].split("\n")
    assert table[2:] == [
        "| `network` | Planned | 4 | 1 | 3 | held (planned) |",  # Terraform's own counts
        "| `dns` | Planned | 0 | 0 | 0 | free |",  # no changes: planned without a lock kept
        "| `db` | Plan failed |  |  |  | held (plan failed) |",
        "| `edge` | Locked |  |  |  | #7 holds it |",
    ]
    assert body.index("| Project") < body.index("#### Planned: `network`")  # the table first, sections below
    assert "| Project" not in render_command_comment("plan", results[:1], 12, SHA, locks=locks)  # one project: none
    applied = ProjectResult(project(), Outcome.APPLIED, summary="Apply complete! Resources: 2 added, 0 changed, "
                                                                "1 destroyed.")
    two = render_command_comment("apply", [applied, results[3]], 12, SHA, locks={})
    assert "| `network` | Applied | 2 | 0 | 1 | free |" in two


# ---- plans made with a comment's extra arguments (`plan -- ...`) ---------------------------------------------------

def extra_args_results() -> list[ProjectResult]:
    targeted = planned()
    targeted.extra_args = ["-target=terraform_data.added2", "-var=name=core net", "-var=tick=`x`"]
    destroy = ProjectResult(project("dns", "infra/dns"), Outcome.PLANNED,
                            summary="Plan: 0 to add, 0 to change, 2 to destroy.",
                            changes=[ResourceChange("destroy", "terraform_data.a"),
                                     ResourceChange("destroy", "terraform_data.b")],
                            output="Terraform will perform the following actions:\n\n"
                                   "  # terraform_data.a will be destroyed\n  - resource \"terraform_data\" \"a\" {}\n\n"
                                   "  # terraform_data.b will be destroyed\n  - resource \"terraform_data\" \"b\" {}\n\n"
                                   "Plan: 0 to add, 0 to change, 2 to destroy.\n",
                            run_id="run-dns", extra_args=["-destroy"])
    failed = ProjectResult(project("db", "infra/db"), Outcome.PLAN_FAILED, run_id="run-db",
                           output="Error: -var-file 'up.tfvars' leads outside the repository's working copy\n",
                           message="Fix the error and push, or comment `plan` to run it again.",
                           extra_args=["-var-file=up.tfvars"])
    return [targeted, destroy, failed]


def test_golden_plans_made_with_extra_arguments():
    body = render_command_comment("plan", extra_args_results(), 12, SHA, run_url=run_url)
    check_golden("plan_extra_args.md", body)
    assert_valid_part(body)
    dns = body[body.index("#### Planned: `dns`"):body.index("#### Plan failed")]
    # Loud, and first in the project's section: a destroy plan is never mistaken for an ordinary one.
    assert dns.split("\n")[3:5] == ["> [!CAUTION]", "> **DESTROY plan:** applying it destroys 2 resources of this "
                                    "workspace, whatever the code says (planned with `-destroy`)."]
    assert "Planned with extra arguments: `-destroy`." in dns
    assert ("Planned with extra arguments: ``-target=terraform_data.added2 '-var=name=core net' '-var=tick=`x`'``. "
            "`apply` applies exactly this plan; a merge does not apply it as it is.") in body
    assert "Planned with extra arguments: `-var-file=up.tfvars`." in body
    assert body.count("DESTROY") == 1
    assert "merging this pull request applies it too" not in body
    assert "Merging this pull request does not apply a plan made with extra arguments as it is" in body


def test_a_plain_plan_says_nothing_of_extra_arguments():
    body = render_command_comment("plan", [planned()], 12, SHA)
    assert "extra arguments" not in body and "DESTROY" not in body
    assert "merging this pull request applies it too" in body


def test_an_applied_plan_made_with_extra_arguments_says_so():
    destroyed = ProjectResult(project(), Outcome.APPLIED, summary="Apply complete! Resources: 0 added, 0 changed, "
                              "1 destroyed.", output="Apply complete! Resources: 0 added, 0 changed, 1 destroyed.\n",
                              extra_args=["-destroy"])
    body = render_command_comment("apply", [destroyed], 12, SHA)
    assert "> **DESTROY plan applied:** it destroyed 1 resource of this workspace (planned with `-destroy`)." in body
    assert "Applied exactly the reviewed plan, made with extra arguments: `-destroy`." in body
    plain = ProjectResult(project(), Outcome.APPLIED, summary="Apply complete!", output="x")
    assert "extra arguments" not in render_command_comment("apply", [plain], 12, SHA)


def test_a_destroy_plan_of_an_empty_state_says_it_destroys_nothing():
    empty = ProjectResult(project(), Outcome.PLANNED, summary="No changes. No objects need to be destroyed.",
                          output="No changes.", has_changes=False, extra_args=["-destroy"])
    assert "applying it destroys no resource (the state holds none)" in render_command_comment("plan", [empty], 1, SHA)
    assert "DESTROY" not in render_command_comment(
        "plan", [ProjectResult(project(), Outcome.PLANNED, summary="Plan: 0 to add, 0 to change, 1 to destroy.",
                               extra_args=["-destroy=false"])], 1, SHA)
