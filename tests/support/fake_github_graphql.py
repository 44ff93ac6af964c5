"""The fake GitHub's GraphQL endpoint: documents of (aliased) mutations, checked and run with graphql-core against
the part of GitHub's schema in tests/support/github_graphql_schema.py.

Answered mutations: `addComment`, `updateCheckRun`, `minimizeComment`, `unminimizeComment`, applied to the state the
REST routes use (a comment posted here is the one `GET /issues/comments/{id}` returns; a check run is checked as
the REST PATCH checks it, annotations appended). As GitHub does:

- A document is refused as a whole (`{"errors": [{"message", "locations"?, ...}]}`, no `data`, nothing applied)
  when it does not parse; does not validate against the schema (a field, argument, input field or variable type
  the schema lacks, a selection on a scalar or none on an object, a literal input that does not coerce, a variable
  used where its type does not fit); holds no single operation to run (several and no `operationName`, or a name
  that matches none); is not a mutation; or its variables do not coerce to their declared types (an input field
  the type lacks, a required field missing, an enum value not upper case, a string where an Int goes).
- Otherwise the mutations run one after another in document order, each by itself: one that fails answers `null`
  under its alias and an error `{"type", "path": [alias], "locations", "message"}` (NOT_FOUND for a node id that
  names nothing the token may see, FORBIDDEN without the write permission the REST route needs, UNPROCESSABLE for
  what the REST route answers 422), and the next still runs. The HTTP status is 200 either way.
- Each field's answer holds only what its selection asked for, under the selection's aliases (graphql-core's
  execution, so fragments and `__typename` are answered too).

The messages of a refusal are graphql-core's, not GitHub's word for word; tests match a name in them, not the text.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from graphql import DocumentNode, GraphQLError, OperationType, execute_sync, get_operation_ast, parse, validate
from graphql.execution.values import get_variable_values

from tests.support.fake_github_http import ApiError, Ctx, Request, Response
from tests.support.fake_github_payloads import node_id, parse_node_id
from tests.support.fake_github_routes_checks import _apply_check_fields
from tests.support.fake_github_routes_issues import MAX_COMMENT_LENGTH, post_comment
from tests.support.fake_github_state import Comment, Issue, Pull, Repo
from tests.support.github_graphql_schema import GITHUB_SCHEMA


class _Failed(Exception):
    """One mutation failed: `kind` is GitHub's error type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def answer(ctx: Ctx, req: Request) -> Response:
    """Run the request's GraphQL document against the state; GitHub's JSON answer, HTTP 200."""
    body = req.body if isinstance(req.body, dict) else {}
    query, variables, operation_name = body.get("query"), body.get("variables") or {}, body.get("operationName")
    document = _checked(query, variables, operation_name)
    if isinstance(document, list):
        return Response(200, {"errors": document})
    root = {name: _resolver(ctx, req, name, run) for name, run in _RUN.items()}
    result = execute_sync(GITHUB_SCHEMA, document, root_value=root, variable_values=variables,
                          operation_name=operation_name)
    errors = [_github_error(error) for error in result.errors or []]
    return Response(200, {"data": result.data, **({"errors": errors} if errors else {})})


def _checked(query: Any, variables: Any, operation_name: Any) -> DocumentNode | list[dict[str, Any]]:
    """The document to run, or GitHub's errors refusing it as a whole (nothing runs), checked in GitHub's order."""
    if not isinstance(query, str) or not query.strip():
        return [{"message": "A query attribute must be specified and must be a string."}]
    if not isinstance(variables, dict):
        return [{"message": "Variables are invalid JSON: expected an object."}]
    if operation_name is not None and not isinstance(operation_name, str):
        return [{"message": "operationName must be a string."}]
    try:
        document = parse(query)
    except GraphQLError as error:
        return [dict(error.formatted)]
    invalid = validate(GITHUB_SCHEMA, document)
    if invalid:
        return [dict(error.formatted) for error in invalid]
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return [{"message": "The document must hold exactly one operation, or name one with operationName"}]
    if operation.operation is not OperationType.MUTATION:
        return [{"message": "The fake GitHub answers only mutations"}]
    coerced = get_variable_values(GITHUB_SCHEMA, operation.variable_definitions or [], variables)
    if isinstance(coerced, list):
        return [dict(error.formatted) for error in coerced]
    return document


def _resolver(ctx: Ctx, req: Request, mutation: str,
              run: Callable[[Ctx, Request, dict[str, Any]], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The root field's resolver: graphql-core calls it with the `input` argument coerced to its input type
    (enum values as their names, fields not given left out, an explicit null as None)."""
    def resolve(_info: Any, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002 - GitHub's name
        _take_fault(ctx, mutation)
        return run(ctx, req, input)

    return resolve


def _github_error(error: GraphQLError) -> dict[str, Any]:
    """A failed mutation's error as GitHub words it; anything but _Failed is a defect of the fake and raises."""
    if not isinstance(error.original_error, _Failed):
        raise error.original_error or error
    failure = error.original_error
    return {"type": failure.kind, "path": error.path, "locations": error.formatted.get("locations", []),
            "message": failure.message}


def _take_fault(ctx: Ctx, mutation: str) -> None:
    for fault in ctx.state.mutation_faults:
        if fault.remaining > 0 and fault.mutation == mutation:
            fault.remaining -= 1
            raise _Failed(fault.kind, fault.message)


# ---- the mutations --------------------------------------------------------------------------------------------

def _unresolved(node: str) -> _Failed:
    return _Failed("NOT_FOUND", f"Could not resolve to a node with the global id of '{node}'")


def _reachable(ctx: Ctx, req: Request, full_name: str, permissions: tuple[str, ...], node: str) -> Repo:
    """The repository a mutation writes to, as the REST routes decide: NOT_FOUND where the token cannot see it,
    FORBIDDEN where it may read but not write (a public repository outside the installation, or a token without
    any of `permissions` as write)."""
    repo = ctx.state.repo(full_name)
    token = req.token
    if repo is None or token is None:
        raise _unresolved(node)
    installed = repo.installation_id == token.installation_id and (
        token.repositories is None or repo.full_name.lower() in token.repositories)
    if not installed and repo.private:
        raise _unresolved(node)
    if not installed or not any(token.permissions.get(p) in ("write", "admin") for p in permissions):
        raise _Failed("FORBIDDEN", "Resource not accessible by integration")
    return repo


def _subject(ctx: Ctx, node: str) -> Optional[Issue]:
    """The issue or pull request a node id names (`Issue` by issue id, `PullRequest` by pull request id)."""
    parsed = parse_node_id(node)
    if parsed is None or parsed[0] not in ("Issue", "PullRequest"):
        return None
    kind, ident = parsed
    for issue in ctx.state.issues.values():
        if (kind == "PullRequest" and isinstance(issue, Pull) and issue.pull_id == ident) or (
                kind == "Issue" and issue.id == ident):
            return issue
    return None


def _add_comment(ctx: Ctx, req: Request, value: dict[str, Any]) -> dict[str, Any]:
    subject_id = value["subjectId"]
    issue = _subject(ctx, subject_id)
    if issue is None:
        raise _unresolved(subject_id)
    _reachable(ctx, req, issue.repo, ("issues", "pull_requests"), subject_id)
    if len(value["body"]) > MAX_COMMENT_LENGTH:
        raise _Failed("UNPROCESSABLE", f"Body is too long (maximum is {MAX_COMMENT_LENGTH} characters)")
    comment = post_comment(ctx, issue, ctx.state.bot_login, value["body"], via_app=True)
    subject = {"__typename": "PullRequest" if isinstance(issue, Pull) else "Issue", "id": subject_id}
    return {"clientMutationId": value.get("clientMutationId"),
            "commentEdge": {"cursor": node_id("Cursor", comment.id), "node": _comment_node(ctx, comment)},
            "subject": subject}


def _comment_node(ctx: Ctx, comment: Comment) -> dict[str, Any]:
    """An IssueComment as the schema's fields name it. `minimizedReason` is worded as GitHub answers it, not as the
    classifier was given: lower case, `off-topic` with a hyphen."""
    made = ctx.pay.comment(comment)
    reason = comment.minimized_reason.lower().replace("_", "-") if comment.minimized_reason else None
    return {"__typename": "IssueComment", "id": made["node_id"], "databaseId": comment.id, "body": comment.body,
            "url": made["html_url"], "isMinimized": comment.minimized, "minimizedReason": reason}


def _update_check_run(ctx: Ctx, req: Request, value: dict[str, Any]) -> dict[str, Any]:
    repository_id, check_run_id = value["repositoryId"], value["checkRunId"]
    parsed = parse_node_id(repository_id)
    repo = ctx.state.repo_by_id(parsed[1]) if parsed and parsed[0] == "Repository" else None
    if repo is None:
        raise _unresolved(repository_id)
    repo = _reachable(ctx, req, repo.full_name, ("checks",), repository_id)
    parsed = parse_node_id(check_run_id)
    run = ctx.state.check_runs.get(parsed[1]) if parsed and parsed[0] == "CheckRun" else None
    if run is None or run.repo != repo.full_name:
        raise _unresolved(check_run_id)
    try:
        _apply_check_fields(run, rest_check_run_body(value))
    except ApiError as error:
        message = error.body.get("message") if isinstance(error.body, dict) else None
        details = [e.get("message") or f"{e.get('field')} {e.get('code')}" for e in
                   (error.body.get("errors") or [] if isinstance(error.body, dict) else []) if isinstance(e, dict)]
        raise _Failed("UNPROCESSABLE", "; ".join(details) or message or "Validation Failed") from None
    made = ctx.pay.check_run(run)
    return {"clientMutationId": value.get("clientMutationId"),
            "checkRun": {"__typename": "CheckRun", "id": made["node_id"], "databaseId": run.id, "name": run.name,
                         "status": run.status.upper(), "conclusion": (run.conclusion or "").upper() or None,
                         "url": made["html_url"]}}


def rest_check_run_body(value: dict[str, Any]) -> dict[str, Any]:
    """The REST PATCH body an UpdateCheckRunInput means, so the REST route's checks and state change apply."""
    body: dict[str, Any] = {}
    for graphql, rest in (("status", "status"), ("conclusion", "conclusion")):
        if value.get(graphql) is not None:
            body[rest] = str(value[graphql]).lower()
    for graphql, rest in (("detailsUrl", "details_url"), ("externalId", "external_id"), ("name", "name")):
        if graphql in value:
            body[rest] = value[graphql]
    if value.get("output") is not None:
        output = value["output"]
        body["output"] = {k: output[k] for k in ("title", "summary", "text") if k in output}
        if output.get("annotations"):
            body["output"]["annotations"] = [_rest_annotation(a) for a in output["annotations"]]
    if value.get("actions") is not None:
        body["actions"] = value["actions"]
    return body


def _rest_annotation(annotation: dict[str, Any]) -> dict[str, Any]:
    location = annotation["location"]
    found: dict[str, Any] = {"path": annotation["path"], "start_line": location["startLine"],
                             "end_line": location["endLine"],
                             "annotation_level": str(annotation["annotationLevel"]).lower(),
                             "message": annotation["message"]}
    for graphql, rest in (("startColumn", "start_column"), ("endColumn", "end_column")):
        if location.get(graphql) is not None:
            found[rest] = location[graphql]
    for graphql, rest in (("title", "title"), ("rawDetails", "raw_details")):
        if annotation.get(graphql) is not None:
            found[rest] = annotation[graphql]
    return found


def _minimize(minimized: bool) -> Callable[[Ctx, Request, dict[str, Any]], dict[str, Any]]:
    def run(ctx: Ctx, req: Request, value: dict[str, Any]) -> dict[str, Any]:
        subject_id = value["subjectId"]
        parsed = parse_node_id(subject_id)
        comment = ctx.state.comments.get(parsed[1]) if parsed and parsed[0] == "IssueComment" else None
        if comment is None:
            raise _unresolved(subject_id)
        _reachable(ctx, req, comment.repo, ("issues", "pull_requests"), subject_id)
        comment.minimized = minimized
        comment.minimized_reason = str(value.get("classifier", "OUTDATED")).upper() if minimized else None
        key = "minimizedComment" if minimized else "unminimizedComment"
        return {"clientMutationId": value.get("clientMutationId"), key: _comment_node(ctx, comment)}

    return run


_RUN: dict[str, Callable[[Ctx, Request, dict[str, Any]], dict[str, Any]]] = {
    "addComment": _add_comment, "updateCheckRun": _update_check_run,
    "minimizeComment": _minimize(True), "unminimizeComment": _minimize(False),
}
