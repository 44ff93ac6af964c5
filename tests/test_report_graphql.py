"""bot/render/report_graphql.py (pure): the GraphQL document of a report's comment parts and check run updates, and
what GitHub's answer says was written.

The document is validated, and its variables coerced, against the part of GitHub's GraphQL schema it uses, the one
SDL the fake GitHub answers with too (tests/support/github_graphql_schema.py: input objects, enums upper case,
required fields): a field name, an enum value or a missing required field that GitHub would refuse fails here.
"""
from __future__ import annotations

import pytest
from graphql import parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode

from bot.lifecycle.checks import request_fields
from bot.models import Diagnostic, Outcome, Project, ProjectResult, ResourceChange
from bot.render.checks import completed
from bot.render.report_graphql import (CheckUpdate, ReportWrites, WritesAnswer, annotation_input, check_run_input,
                                       read_answer, report_writes)
from tests.support.github_graphql_schema import GITHUB_SCHEMA

pytestmark = pytest.mark.unit

NET = Project(repo="acme/infra", name="network", dir="infra/network")
SHA = "0123456789abcdef0123456789abcdef01234567"


def assert_github_takes(writes: ReportWrites) -> dict:
    """The document validates against GitHub's types and its variables coerce; returns the coerced variables."""
    document = parse(writes.query)
    assert validate(GITHUB_SCHEMA, document) == []
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    coerced = get_variable_values(GITHUB_SCHEMA, operation.variable_definitions or [], writes.variables)
    assert not isinstance(coerced, list), [e.message for e in coerced]
    return getattr(coerced, "coerced", coerced)  # graphql-core 3.3 wraps the values with where each came from


def a_plan_with_a_diagnostic() -> dict:
    result = ProjectResult(NET, Outcome.PLANNED, head_sha=SHA, run_id="r1", has_changes=True,
                           summary="Plan: 1 to add, 0 to change, 0 to destroy.",
                           changes=[ResourceChange("create", "terraform_data.a")],
                           diagnostics=[Diagnostic("warning", "Deprecated", "Use `x`.", "main.tf", 3, 4)])
    return request_fields(completed("plan", result, lambda run: f"https://tfbot/runs/{run}"))


def test_comments_then_check_runs_as_aliased_mutations_github_takes() -> None:
    fields = a_plan_with_a_diagnostic()
    writes = report_writes("PR_1", ["part one", "part two"], "R_1", [CheckUpdate("CR_1", fields),
                                                                     CheckUpdate("CR_2", fields)])
    coerced = assert_github_takes(writes)
    assert (writes.comments, writes.checks) == (2, 2)
    # GitHub runs a document's mutations in the order written: the comment's parts first, in order.
    order = [writes.query.index(f"{alias}:") for alias in ("comment0", "comment1", "check0", "check1")]
    assert order == sorted(order)
    assert coerced["comment1"] == {"subjectId": "PR_1", "body": "part two"}
    check = coerced["check0"]
    assert (check["repositoryId"], check["checkRunId"], check["status"], check["conclusion"]) == (
        "R_1", "CR_1", "COMPLETED", "SUCCESS")
    assert check["detailsUrl"] == "https://tfbot/runs/r1"
    assert check["actions"] == [{"label": "Apply", "identifier": "apply", "description": "Apply this project's plan"}]
    assert check["output"]["annotations"] == [{
        "path": "infra/network/main.tf", "location": {"startLine": 3, "endLine": 4}, "annotationLevel": "WARNING",
        "title": "Deprecated", "message": "Use `x`."}]
    assert check["output"]["summary"] == fields["output"]["summary"]


def test_hostile_text_travels_in_variables_never_in_the_document() -> None:
    body = 'x" } } mutation { deleteRepository(input: {}) { clientMutationId } } #'
    writes = report_writes("PR_1", [body], "R_1", [CheckUpdate("CR_1", {"status": "completed",
                                                                        "conclusion": "failure",
                                                                        "output": {"title": body, "summary": body}})])
    assert body not in writes.query and "deleteRepository" not in writes.query
    coerced = assert_github_takes(writes)
    assert coerced["comment0"]["body"] == body and coerced["check0"]["output"]["title"] == body


def test_an_empty_actions_list_is_sent_so_github_takes_the_button_away() -> None:
    data = check_run_input("R", "C", {"status": "completed", "conclusion": "neutral", "actions": [],
                                      "output": {"title": "t", "summary": "s"}})
    assert data["actions"] == [] and "annotations" not in data["output"]


def test_every_rest_conclusion_and_level_maps_to_githubs_enum() -> None:
    for conclusion in ("action_required", "cancelled", "failure", "neutral", "skipped", "success"):
        writes = report_writes("PR", [], "R", [CheckUpdate("C", {"status": "completed", "conclusion": conclusion})])
        assert assert_github_takes(writes)["check0"]["conclusion"] == conclusion.upper()
    for level in ("notice", "warning", "failure"):
        assert annotation_input({"path": "a.tf", "start_line": 1, "end_line": 1, "annotation_level": level,
                                 "message": "m", "start_column": 2, "end_column": 5})["annotationLevel"] == \
            level.upper()
    columns = annotation_input({"path": "a.tf", "start_line": 1, "end_line": 1, "annotation_level": "notice",
                                "message": "m", "start_column": 2, "end_column": 5, "raw_details": "d"})
    assert columns["location"] == {"startLine": 1, "endLine": 1, "startColumn": 2, "endColumn": 5}
    assert columns["rawDetails"] == "d"


def test_the_most_annotations_tfbot_sends_fit_one_request() -> None:
    diagnostics = [Diagnostic("error", f"E{i}", "d", "main.tf", i + 1, i + 1) for i in range(80)]
    result = ProjectResult(NET, Outcome.PLAN_FAILED, head_sha=SHA, diagnostics=diagnostics)
    writes = report_writes("PR", ["c"], "R", [CheckUpdate("C", request_fields(completed("plan", result)))])
    assert len(assert_github_takes(writes)["check0"]["output"]["annotations"]) == 50


# ---- the answer -----------------------------------------------------------------------------------------------

WRITES = report_writes("PR", ["one", "two"], "R", [CheckUpdate("C1", {"status": "completed",
                                                                     "conclusion": "success"}),
                                                   CheckUpdate("C2", {"status": "completed",
                                                                      "conclusion": "success"})])


def comment(database_id: int) -> dict:
    return {"commentEdge": {"node": {"id": f"IC_{database_id}", "databaseId": database_id}}}


def test_an_answer_with_everything_written() -> None:
    answer = read_answer(WRITES, {"data": {"comment0": comment(7), "comment1": comment(8),
                                           "check0": {"checkRun": {"id": "C1"}}, "check1": {"checkRun": {"id": "C2"}}}})
    assert answer == WritesAnswer(comments=[(7, "IC_7"), (8, "IC_8")], checks=[True, True], errors=[])
    assert answer.posted == [(7, "IC_7"), (8, "IC_8")]


def test_a_partial_answer_says_what_was_written_and_why_not_the_rest() -> None:
    answer = read_answer(WRITES, {
        "data": {"comment0": comment(7), "comment1": None, "check0": None, "check1": {"checkRun": {"id": "C2"}}},
        "errors": [{"type": "NOT_FOUND", "path": ["check0"], "message": "Could not resolve to a node"},
                   {"type": "UNPROCESSABLE", "path": ["comment1"], "message": "Body is too long"}]})
    assert (answer.comments, answer.checks, answer.rejected) == ([(7, "IC_7"), None], [False, True], False)
    assert answer.errors == ["check0: NOT_FOUND: Could not resolve to a node", "comment1: UNPROCESSABLE: Body is too long"]


def test_only_the_leading_parts_count_as_posted() -> None:
    answer = read_answer(WRITES, {"data": {"comment0": None, "comment1": comment(8)},
                                  "errors": [{"path": ["comment0"], "message": "no"}]})
    assert answer.posted == []  # part two landed before part one: the retry posts both, in order


def test_a_document_refused_as_a_whole_wrote_nothing() -> None:
    answer = read_answer(WRITES, {"errors": [{"message": "Field 'addComent' doesn't exist on type 'Mutation'"}]})
    assert answer.rejected and answer.comments == [None, None] and answer.checks == [False, False]
    assert answer.errors == ["Field 'addComent' doesn't exist on type 'Mutation'"]


@pytest.mark.parametrize("payload", [None, {}, {"commentEdge": None}, {"commentEdge": {"node": {"id": "x"}}},
                                     {"commentEdge": {"node": {"id": "x", "databaseId": "7"}}},
                                     {"commentEdge": {"node": {"id": "x", "databaseId": True}}}])
def test_a_malformed_payload_counts_as_not_written(payload) -> None:
    answer = read_answer(WRITES, {"data": {"comment0": payload, "check0": {"checkRun": None}}})
    assert answer.comments[0] is None and answer.checks == [False, False]
    assert answer.errors == ["no answer for comment0, comment1, check0, check1"]


def test_data_null_is_a_failure_to_retry_not_a_refusal() -> None:
    """`data: null` (GitHub cut the request off while it ran) may follow mutations that did run: writing the report
    over REST at once could post the comment twice, so it is not taken for a refusal."""
    answer = read_answer(WRITES, {"data": None, "errors": [{"message": "Something went wrong (timeout)"}]})
    assert not answer.rejected and answer.errors == ["Something went wrong (timeout)"]
    assert answer.comments == [None, None] and answer.checks == [False, False]


def test_a_conclusion_goes_with_its_completion_time() -> None:
    done = check_run_input("R", "C", {"status": "completed", "conclusion": "success"}, "2026-12-01T18:00:00Z")
    assert (done["status"], done["conclusion"], done["completedAt"]) == ("COMPLETED", "SUCCESS", "2026-12-01T18:00:00Z")
    going = check_run_input("R", "C", {"status": "in_progress"}, "2026-12-01T18:00:00Z")
    assert going["status"] == "IN_PROGRESS" and "completedAt" not in going
