"""The GraphQL document of one report's writes (pure): the parts of a PR comment and the completion of the
command's check runs, sent as one request of aliased mutations, and what GitHub's answer says of each.

GitHub runs the mutations of a document one after another, in the order written, and answers each by itself: one
that fails does not stop the next. The shapes are GitHub's GraphQL schema (docs.github.com/en/graphql/reference):

- `addComment(input: AddCommentInput!)`: `subjectId` (the PR's node id), `body`; answers `commentEdge.node` with
  the comment's `id` (node id) and `databaseId` (the REST id).
- `updateCheckRun(input: UpdateCheckRunInput!)`: `repositoryId` and `checkRunId` (node ids), `status`
  (RequestableCheckStatusState), `conclusion` (CheckConclusionState), `detailsUrl`, `externalId`, `output`
  (CheckRunOutput: `title`, `summary`, `text`, `annotations` as CheckAnnotationData with `path`,
  `location {startLine endLine startColumn endColumn}`, `annotationLevel`, `message`, `title`, `rawDetails`) and
  `actions` (CheckRunAction: `label`, `description`, `identifier`). Enum values are upper case; the REST request's
  lower-case ones (bot.lifecycle.checks.request_fields) are translated here.

GitHub's answer is `{"data": {alias: payload | null, ...}, "errors": [{"type", "path": [alias, ...], "message"}]}`;
a document refused as a whole (it does not parse, or names what the schema lacks, as an older GitHub Enterprise
may) has `errors` and no `data`: nothing of it was written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_COMMENT = "comment"  # alias prefix of the comment parts: comment0, comment1, ...
_CHECK = "check"  # alias prefix of the check run updates: check0, check1, ...


@dataclass(frozen=True)
class CheckUpdate:
    """One check run to update: its node id and the REST request's fields (status, conclusion, output, actions,
    details_url, external_id) as bot.lifecycle.checks.request_fields makes them."""

    check_run_node_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class ReportWrites:
    """One GraphQL request: `query` (the document) and `variables`, with `comments` addComment mutations
    (aliases comment0..) followed by `checks` updateCheckRun mutations (aliases check0..)."""

    query: str
    variables: dict[str, Any]
    comments: int
    checks: int


@dataclass(frozen=True)
class WritesAnswer:
    """What GitHub did of a ReportWrites. `comments[i]`: part i's (REST id, node id), None when it was not posted;
    `checks[i]`: whether update i was written; `errors`: GitHub's messages, each prefixed with its alias;
    `rejected`: the document was refused as a whole and nothing was written."""

    comments: list[tuple[int, str] | None]
    checks: list[bool]
    errors: list[str]
    rejected: bool = False

    @property
    def posted(self) -> list[tuple[int, str]]:
        """The comment parts posted before the first that was not: the ones a retry need not post again."""
        found: list[tuple[int, str]] = []
        for ref in self.comments:
            if ref is None:
                break
            found.append(ref)
        return found


def report_writes(subject_id: str, bodies: list[str], repository_id: str,
                  checks: list[CheckUpdate], completed_at: str = "") -> ReportWrites:
    """The document posting `bodies` in order as comments on the PR or issue with node id `subject_id`, then
    updating each of `checks` in repository `repository_id` (node id). Values travel as variables, never spliced
    into the document: comment bodies and check run texts hold PR output."""
    declared: list[str] = []
    fields: list[str] = []
    variables: dict[str, Any] = {}
    for i, body in enumerate(bodies):
        alias = f"{_COMMENT}{i}"
        declared.append(f"${alias}: AddCommentInput!")
        fields.append(f"  {alias}: addComment(input: ${alias}) {{ commentEdge {{ node {{ id databaseId }} }} }}")
        variables[alias] = {"subjectId": subject_id, "body": body}
    for i, check in enumerate(checks):
        alias = f"{_CHECK}{i}"
        declared.append(f"${alias}: UpdateCheckRunInput!")
        fields.append(f"  {alias}: updateCheckRun(input: ${alias}) {{ checkRun {{ id }} }}")
        variables[alias] = check_run_input(repository_id, check.check_run_node_id, check.fields, completed_at)
    query = f"mutation Report({', '.join(declared)}) {{\n" + "\n".join(fields) + "\n}"
    return ReportWrites(query=query, variables=variables, comments=len(bodies), checks=len(checks))


def check_run_input(repository_id: str, check_run_id: str, fields: dict[str, Any],
                    completed_at: str = "") -> dict[str, Any]:
    """UpdateCheckRunInput from the REST request's `fields`; a field the REST request lacks is left out (GitHub
    leaves it as it was). `completed_at` (ISO 8601, UTC) is sent with a conclusion: REST completes a check run
    given a conclusion alone, and GraphQL is not documented to, so the completion is said in full."""
    data: dict[str, Any] = {"repositoryId": repository_id, "checkRunId": check_run_id}
    for rest, graphql in (("status", "status"), ("conclusion", "conclusion")):
        if fields.get(rest) is not None:
            data[graphql] = str(fields[rest]).upper()
    if completed_at and fields.get("conclusion") is not None:
        data["status"] = "COMPLETED"
        data["completedAt"] = completed_at
    for rest, graphql in (("details_url", "detailsUrl"), ("external_id", "externalId"), ("name", "name")):
        if rest in fields:
            data[graphql] = fields[rest]
    if "output" in fields:
        data["output"] = _output(fields["output"])
    if "actions" in fields:
        data["actions"] = [{"label": a["label"], "description": a["description"], "identifier": a["identifier"]}
                           for a in fields["actions"]]
    return data


def _output(output: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"title": output["title"], "summary": output["summary"]}
    if "text" in output:
        data["text"] = output["text"]
    if output.get("annotations"):
        data["annotations"] = [annotation_input(a) for a in output["annotations"]]
    return data


def annotation_input(annotation: dict[str, Any]) -> dict[str, Any]:
    """CheckAnnotationData from a REST annotation (path, start_line, end_line, start_column, end_column,
    annotation_level, message, title, raw_details)."""
    location: dict[str, Any] = {"startLine": annotation["start_line"], "endLine": annotation["end_line"]}
    for rest, graphql in (("start_column", "startColumn"), ("end_column", "endColumn")):
        if rest in annotation:
            location[graphql] = annotation[rest]
    data: dict[str, Any] = {"path": annotation["path"], "location": location,
                            "annotationLevel": str(annotation["annotation_level"]).upper(),
                            "message": annotation["message"]}
    for rest, graphql in (("title", "title"), ("raw_details", "rawDetails")):
        if annotation.get(rest) is not None:
            data[graphql] = annotation[rest]
    return data


def read_answer(writes: ReportWrites, answer: Any) -> WritesAnswer:
    """What GitHub's JSON `answer` to `writes` says was written. A mutation counts as written only when its payload
    is there and well formed: an answer that is not GitHub's shape writes nothing a retry would skip."""
    answer = answer if isinstance(answer, dict) else {}
    errors = [_describe(e) for e in answer.get("errors") or [] if isinstance(e, dict)]
    data = answer.get("data")
    if not isinstance(data, dict):
        # GraphQL's rule: `data` is absent only when the document failed before execution (it does not parse or
        # validate), so nothing ran; `data: null` (a timeout, an error during execution) may follow mutations that
        # did run, so it is a failure to retry, never a refusal to write over REST at once (which could post twice).
        return WritesAnswer(comments=[None] * writes.comments, checks=[False] * writes.checks,
                            errors=errors or ["GitHub's answer had no data"], rejected="data" not in answer)
    comments = [_comment_ref(data.get(f"{_COMMENT}{i}")) for i in range(writes.comments)]
    checks = [_check_written(data.get(f"{_CHECK}{i}")) for i in range(writes.checks)]
    missing = [f"{_COMMENT}{i}" for i, ref in enumerate(comments) if ref is None] + [
        f"{_CHECK}{i}" for i, ok in enumerate(checks) if not ok]
    if missing and not errors:
        errors = [f"no answer for {', '.join(missing)}"]
    return WritesAnswer(comments=comments, checks=checks, errors=errors)


def _comment_ref(payload: Any) -> tuple[int, str] | None:
    node = ((payload or {}).get("commentEdge") or {}).get("node") if isinstance(payload, dict) else None
    if not isinstance(node, dict):
        return None
    database_id, node_id = node.get("databaseId"), node.get("id")
    if not isinstance(database_id, int) or isinstance(database_id, bool) or not isinstance(node_id, str):
        return None
    return database_id, node_id


def _check_written(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("checkRun"), dict)


def _describe(error: dict[str, Any]) -> str:
    path = error.get("path")
    where = f"{path[0]}: " if isinstance(path, list) and path else ""
    kind = f"{error['type']}: " if error.get("type") else ""
    return f"{where}{kind}{error.get('message') or 'no message'}"
