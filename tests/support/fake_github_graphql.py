"""The fake GitHub's GraphQL endpoint: documents of (aliased) mutations, parsed with graphql-core.

Answered mutations: `addComment`, `updateCheckRun`, `minimizeComment`, `unminimizeComment`, applied to the state the
REST routes use (a comment posted here is the one `GET /issues/comments/{id}` returns; a check run is checked as
the REST PATCH checks it, annotations appended). As GitHub does:

- A document that does not parse, is no mutation, names a field the schema lacks, or whose inputs do not coerce
  (a missing required field, an enum value not upper case) is refused as a whole: `{"errors": [...]}` and no
  `data`; nothing is applied.
- Otherwise the mutations run one after another in document order, each by itself: one that fails answers `null`
  under its alias and an error `{"type", "path": [alias], "locations", "message"}` (NOT_FOUND for a node id that
  names nothing the token may see, FORBIDDEN without the write permission the REST route needs, UNPROCESSABLE for
  what the REST route answers 422), and the next still runs. The HTTP status is 200 either way.
- Each field's answer holds only what its selection asked for, under the selection's aliases.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from graphql import GraphQLError, parse
from graphql.language import FieldNode, OperationDefinitionNode, OperationType, SelectionSetNode
from graphql.utilities import value_from_ast_untyped

from tests.support.fake_github_http import ApiError, Ctx, Request, Response
from tests.support.fake_github_payloads import node_id, parse_node_id
from tests.support.fake_github_routes_checks import _apply_check_fields
from tests.support.fake_github_routes_issues import MAX_COMMENT_LENGTH, post_comment
from tests.support.fake_github_state import Issue, Pull, Repo

# What each mutation's payload may select (a subset of GitHub's schema): None marks a leaf.
_COMMENT_NODE = {"id": None, "databaseId": None, "body": None, "url": None, "isMinimized": None}
_PAYLOADS: dict[str, dict[str, Any]] = {
    "addComment": {"clientMutationId": None, "commentEdge": {"cursor": None, "node": _COMMENT_NODE},
                   "subject": {"id": None}},
    "updateCheckRun": {"clientMutationId": None, "checkRun": {"id": None, "databaseId": None, "name": None,
                                                             "status": None, "conclusion": None, "url": None}},
    "minimizeComment": {"clientMutationId": None, "minimizedComment": {"isMinimized": None,
                                                                       "minimizedReason": None}},
    "unminimizeComment": {"clientMutationId": None, "unminimizedComment": {"isMinimized": None}},
}
_INPUT_TYPES = {"addComment": "AddCommentInput", "updateCheckRun": "UpdateCheckRunInput",
                "minimizeComment": "MinimizeCommentInput", "unminimizeComment": "UnminimizeCommentInput"}
CHECK_STATUSES = ("COMPLETED", "IN_PROGRESS", "PENDING", "QUEUED", "WAITING")  # RequestableCheckStatusState
CHECK_CONCLUSIONS = ("ACTION_REQUIRED", "CANCELLED", "FAILURE", "NEUTRAL", "SKIPPED", "STALE", "STARTUP_FAILURE",
                     "SUCCESS", "TIMED_OUT")  # CheckConclusionState
ANNOTATION_LEVELS = ("FAILURE", "NOTICE", "WARNING")  # CheckAnnotationLevel
CLASSIFIERS = ("SPAM", "ABUSE", "OFF_TOPIC", "OUTDATED", "DUPLICATE", "RESOLVED")  # ReportedContentClassifiers


class _Refused(Exception):
    """The document as a whole is refused: nothing runs."""


class _Failed(Exception):
    """One mutation failed: `kind` is GitHub's error type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def answer(ctx: Ctx, req: Request) -> Response:
    """Run the request's GraphQL document against the state; GitHub's JSON answer, HTTP 200."""
    body = req.body if isinstance(req.body, dict) else {}
    variables = body.get("variables") or {}
    try:
        fields = _mutations(str(body.get("query") or ""), body.get("operationName"))
        inputs = [_input(field, variables if isinstance(variables, dict) else {}) for field in fields]
    except GraphQLError as error:
        return Response(200, {"errors": [error.formatted]})
    except _Refused as refusal:
        return Response(200, {"errors": [{"message": str(refusal)}]})
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for field, value in zip(fields, inputs):
        key = field.alias.value if field.alias else field.name.value
        try:
            _take_fault(ctx, field.name.value)
            payload = _RUN[field.name.value](ctx, req, value)
        except _Failed as failure:
            data[key] = None
            errors.append({"type": failure.kind, "path": [key], "locations": _locations(field),
                           "message": failure.message})
            continue
        data[key] = _select(payload, field.selection_set)
    return Response(200, {"data": data, **({"errors": errors} if errors else {})})


def _take_fault(ctx: Ctx, mutation: str) -> None:
    for fault in ctx.state.mutation_faults:
        if fault.remaining > 0 and fault.mutation == mutation:
            fault.remaining -= 1
            raise _Failed(fault.kind, fault.message)


# ---- the document ---------------------------------------------------------------------------------------------

def _mutations(query: str, operation_name: Any) -> list[FieldNode]:
    """The top-level fields of the document's mutation, checked against the schema subset; raises to refuse."""
    document = parse(query)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        raise _Refused("The document must hold exactly one operation, or name one with operationName")
    operation = operations[0]
    if operation.operation is not OperationType.MUTATION:
        raise _Refused("The fake GitHub answers only mutations")
    fields: list[FieldNode] = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.name.value not in _PAYLOADS:
            name = selection.name.value if isinstance(selection, FieldNode) else type(selection).__name__
            raise _Refused(f"Field '{name}' doesn't exist on type 'Mutation'")
        _check_selection(selection.selection_set, _PAYLOADS[selection.name.value], selection.name.value)
        fields.append(selection)
    return fields


def _check_selection(selection_set: Optional[SelectionSetNode], schema: dict[str, Any], type_name: str) -> None:
    if selection_set is None:
        raise _Refused(f"Field must have selections (payload of '{type_name}' returns an object)")
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.name.value not in schema:
            name = selection.name.value if isinstance(selection, FieldNode) else type(selection).__name__
            raise _Refused(f"Field '{name}' doesn't exist on the payload of '{type_name}'")
        inner = schema[selection.name.value]
        if inner is None and selection.selection_set is not None:
            raise _Refused(f"Selections can't be made on scalars (field '{selection.name.value}')")
        if inner is not None:
            _check_selection(selection.selection_set, inner, selection.name.value)


def _select(value: Any, selection_set: Optional[SelectionSetNode]) -> Any:
    """`value` as the selection asks for it: only the selected fields, under their aliases."""
    if selection_set is None or value is None:
        return value
    out: dict[str, Any] = {}
    for selection in selection_set.selections:
        assert isinstance(selection, FieldNode)  # _check_selection refused anything else
        key = selection.alias.value if selection.alias else selection.name.value
        out[key] = _select(value.get(selection.name.value), selection.selection_set)
    return out


def _locations(field: FieldNode) -> list[dict[str, int]]:
    if field.loc is None:
        return []
    token = field.loc.start_token
    return [{"line": token.line, "column": token.column}]


def _input(field: FieldNode, variables: dict[str, Any]) -> dict[str, Any]:
    """The field's `input` argument with variables substituted, coerced as GitHub's input type requires."""
    name = field.name.value
    argument = next((a for a in field.arguments if a.name.value == "input"), None)
    value = value_from_ast_untyped(argument.value, variables) if argument is not None else None
    if not isinstance(value, dict):
        raise _Refused(f"Argument 'input' on Field '{name}' has an invalid value: expected {_INPUT_TYPES[name]}!")
    _COERCE[name](value, _INPUT_TYPES[name])
    return value


def _required(value: dict[str, Any], names: tuple[str, ...], type_name: str, kind: type = str) -> None:
    for name in names:
        if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
            raise _Refused(f"{type_name}: '{name}' is required and must be {kind.__name__}")


def _enum(value: dict[str, Any], name: str, allowed: tuple[str, ...], type_name: str) -> None:
    if name in value and value[name] is not None and value[name] not in allowed:
        raise _Refused(f"{type_name}: '{name}' got invalid value {value[name]!r}; expected one of {list(allowed)}")


def _coerce_comment(value: dict[str, Any], type_name: str) -> None:
    _required(value, ("subjectId", "body"), type_name)


def _coerce_minimize(value: dict[str, Any], type_name: str) -> None:
    _required(value, ("subjectId",), type_name)
    if type_name == "MinimizeCommentInput":
        _required(value, ("classifier",), type_name)
        _enum(value, "classifier", CLASSIFIERS, type_name)


def _coerce_check_run(value: dict[str, Any], type_name: str) -> None:
    _required(value, ("repositoryId", "checkRunId"), type_name)
    _enum(value, "status", CHECK_STATUSES, type_name)
    _enum(value, "conclusion", CHECK_CONCLUSIONS, type_name)
    output = value.get("output")
    if output is not None:
        if not isinstance(output, dict):
            raise _Refused(f"{type_name}: 'output' must be a CheckRunOutput")
        _required(output, ("title", "summary"), "CheckRunOutput")
        for annotation in output.get("annotations") or []:
            if not isinstance(annotation, dict) or not isinstance(annotation.get("location"), dict):
                raise _Refused("CheckAnnotationData: 'location' is required")
            _required(annotation, ("path", "message", "annotationLevel"), "CheckAnnotationData")
            _enum(annotation, "annotationLevel", ANNOTATION_LEVELS, "CheckAnnotationData")
            _required(annotation["location"], ("startLine", "endLine"), "CheckAnnotationRange", int)
    for action in value.get("actions") or []:
        if not isinstance(action, dict):
            raise _Refused("CheckRunAction must be an object")
        _required(action, ("label", "description", "identifier"), "CheckRunAction")


_COERCE: dict[str, Callable[[dict[str, Any], str], None]] = {
    "addComment": _coerce_comment, "updateCheckRun": _coerce_check_run,
    "minimizeComment": _coerce_minimize, "unminimizeComment": _coerce_minimize,
}


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
    made = ctx.pay.comment(comment)
    node = {"id": made["node_id"], "databaseId": comment.id, "body": comment.body, "url": made["html_url"],
            "isMinimized": False}
    return {"clientMutationId": value.get("clientMutationId"),
            "commentEdge": {"cursor": node_id("Cursor", comment.id), "node": node}, "subject": {"id": subject_id}}


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
            "checkRun": {"id": made["node_id"], "databaseId": run.id, "name": run.name,
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
        return {"clientMutationId": value.get("clientMutationId"),
                key: {"isMinimized": minimized, "minimizedReason": comment.minimized_reason}}

    return run


_RUN: dict[str, Callable[[Ctx, Request, dict[str, Any]], dict[str, Any]]] = {
    "addComment": _add_comment, "updateCheckRun": _update_check_run,
    "minimizeComment": _minimize(True), "unminimizeComment": _minimize(False),
}
