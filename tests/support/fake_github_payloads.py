"""JSON shapes of GitHub's issues, pull requests, comments, reactions, reviews, statuses, checks and deliveries.

Built on fake_github_payloads_base.py (users, app, repositories), whose helpers
are re-exported here. Callers hold the state lock.
"""
from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote

from tests.support import fake_github_git as git
from tests.support.fake_github_payloads_base import (
    REACTION_CONTENTS,
    ROLE_PERMISSION,
    BasePayloads,
    iso,
    node_id,
    parse_node_id,
)
from tests.support.fake_github_state import CheckRun, Comment, Delivery, Issue, Label, Pull, Reaction, Review, Status

__all__ = ["Payloads", "REACTION_CONTENTS", "ROLE_PERMISSION", "iso", "node_id", "parse_node_id"]


class Payloads(BasePayloads):
    """Builds GitHub's JSON for records of one `State`, with urls under `api` and `web`."""

    def label(self, label: Label) -> dict[str, Any]:
        """A label as `GET /repos/{owner}/{repo}/labels/{name}` returns it."""
        repo = self._repo_of(label.repo)
        return {"id": label.id, "node_id": node_id("Label", label.id),
                "url": f"{self.repo_url(repo)}/labels/{quote(label.name, safe='')}", "name": label.name,
                "description": label.description, "color": label.color, "default": False}

    def issue(self, issue: Issue) -> dict[str, Any]:
        repo = self._repo_of(issue.repo)
        url = self._issue_base(repo, issue.number)
        is_pull = isinstance(issue, Pull)
        html = f"{self.web}/{repo.full_name}/{'pull' if is_pull else 'issues'}/{issue.number}"
        data: dict[str, Any] = {
            "url": url,
            "repository_url": self.repo_url(repo),
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": html,
            "id": issue.id,
            "node_id": node_id("Issue", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self.login(issue.user),
            "labels": [self.label(self.state.labels[(repo.full_name, name.lower())]) for name in issue.labels],
            "state": issue.state,
            "locked": issue.locked,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": sum(
                1 for c in self.state.comments.values() if c.repo == issue.repo and c.number == issue.number
            ),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "author_association": self.author_association(repo, issue.user),
            "active_lock_reason": None,
            "body": issue.body or None,
            "closed_by": None,
            "reactions": self.reactions_summary(f"{url}/reactions", ("issue", issue.repo, issue.number)),
            "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None,
            "state_reason": issue.state_reason or ("completed" if issue.state == "closed" else None),
        }
        if isinstance(issue, Pull):
            pull_url = f"{self.repo_url(repo)}/pulls/{issue.number}"
            data["draft"] = issue.draft
            data["pull_request"] = {
                "url": pull_url,
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": iso(issue.merged_at),
            }
        return data

    def pull(self, pull: Pull, full: bool = True) -> dict[str, Any]:
        """The pull request; `full` is the single-PR shape, else the shorter one lists return."""
        repo = self._repo_of(pull.repo)
        url = f"{self.repo_url(repo)}/pulls/{pull.number}"
        issue_url = self._issue_base(repo, pull.number)
        html = f"{self.web}/{repo.full_name}/pull/{pull.number}"
        statuses_url = f"{self.repo_url(repo)}/statuses/{pull.head_sha}"
        data: dict[str, Any] = {
            "url": url,
            "id": pull.pull_id,
            "node_id": node_id("PullRequest", pull.pull_id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_url,
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{self.repo_url(repo)}/pulls/comments{{/number}}",
            "comments_url": f"{issue_url}/comments",
            "statuses_url": statuses_url,
            "number": pull.number,
            "state": pull.state,
            "locked": pull.locked,
            "title": pull.title,
            "user": self.login(pull.user),
            "body": pull.body or None,
            "labels": [self.label(self.state.labels[(repo.full_name, name.lower())]) for name in pull.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(pull.created_at),
            "updated_at": iso(pull.updated_at),
            "closed_at": iso(pull.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": self._pull_part(pull.head_repo, pull.head_ref, pull.head_sha),
            "base": self._pull_part(pull.repo, pull.base_ref, pull.base_sha),
            "_links": {
                "self": {"href": url},
                "html": {"href": html},
                "issue": {"href": issue_url},
                "comments": {"href": f"{issue_url}/comments"},
                "review_comments": {"href": f"{url}/comments"},
                "review_comment": {"href": f"{self.repo_url(repo)}/pulls/comments{{/number}}"},
                "commits": {"href": f"{url}/commits"},
                "statuses": {"href": statuses_url},
            },
            "author_association": self.author_association(repo, pull.user),
            "auto_merge": None,
            "draft": pull.draft,
        }
        if full:
            files = self.raw_pull_files(pull)
            data.update(
                merged=pull.merged,
                mergeable=pull.mergeable,
                rebaseable=pull.mergeable,
                mergeable_state=pull.mergeable_state,
                merged_by=self.login(pull.merged_by) if pull.merged_by else None,
                comments=sum(
                    1 for c in self.state.comments.values() if c.repo == pull.repo and c.number == pull.number
                ),
                review_comments=0,
                maintainer_can_modify=pull.maintainer_can_modify,
                commits=1,
                additions=sum(f.get("additions", 0) for f in files),
                deletions=sum(f.get("deletions", 0) for f in files),
                changed_files=len(files),
            )
        return data

    def _pull_part(self, full_name: str, ref: str, sha: str) -> dict[str, Any]:
        repo = self._repo_of(full_name)
        return {
            "label": f"{repo.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self.login(repo.owner),
            "repo": self.repo(repo, full=False),
        }

    def raw_pull_files(self, pull: Pull) -> list[dict[str, Any]]:
        """The PR's changed files (filename, status, counts, sha), before paging and urls."""
        if pull.files is not None:
            files = [dict(f) for f in pull.files]
        else:
            files = self._git_files(pull) or []
        for entry in files:
            entry.setdefault("sha", "0" * 40)
            entry.setdefault("status", "modified")
            entry.setdefault("additions", 0)
            entry.setdefault("deletions", 0)
            entry.setdefault("changes", entry["additions"] + entry["deletions"])
        return files

    def pull_file(self, pull: Pull, entry: dict[str, Any]) -> dict[str, Any]:
        """One entry of `GET .../pulls/{n}/files`: a raw file plus its blob, raw and contents urls."""
        head_repo = self._repo_of(pull.head_repo)
        path = quote(entry["filename"])
        return {
            **entry,
            "blob_url": f"{self.web}/{head_repo.full_name}/blob/{pull.head_sha}/{path}",
            "raw_url": f"{self.web}/{head_repo.full_name}/raw/{pull.head_sha}/{path}",
            "contents_url": f"{self.repo_url(head_repo)}/contents/{path}?ref={pull.head_sha}",
        }

    def _git_files(self, pull: Pull) -> Optional[list[dict[str, Any]]]:
        # Fork heads live in the fork, but GitHub also keeps them as refs/pull/N/head in the base.
        for name in dict.fromkeys([pull.repo, pull.head_repo]):
            git_dir = git.local_git_dir(self._repo_of(name).clone_url)
            if git_dir is not None:
                files = git.pull_files(git_dir, pull.base_sha, pull.head_sha)
                if files is not None:
                    return files
        return None

    # ---- comments, reactions, reviews --------------------------------------

    def comment(self, comment: Comment) -> dict[str, Any]:
        repo = self._repo_of(comment.repo)
        url = f"{self.repo_url(repo)}/issues/comments/{comment.id}"
        issue = self.state.issues[(comment.repo, comment.number)]
        kind = "pull" if isinstance(issue, Pull) else "issues"
        return {
            "url": url,
            "html_url": f"{self.web}/{repo.full_name}/{kind}/{comment.number}#issuecomment-{comment.id}",
            "issue_url": self._issue_base(repo, comment.number),
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "user": self.login(comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "author_association": self.author_association(repo, comment.user),
            "body": comment.body,
            "reactions": self.reactions_summary(f"{url}/reactions", ("comment", comment.id)),
            "performed_via_github_app": self.app() if comment.via_app else None,
        }

    def reaction(self, reaction: Reaction) -> dict[str, Any]:
        return {
            "id": reaction.id,
            "node_id": node_id("Reaction", reaction.id),
            "user": self.login(reaction.user),
            "content": reaction.content,
            "created_at": iso(reaction.created_at),
        }

    def review(self, review: Review) -> dict[str, Any]:
        repo = self._repo_of(review.repo)
        pull_url = f"{self.repo_url(repo)}/pulls/{review.number}"
        html = f"{self.web}/{repo.full_name}/pull/{review.number}#pullrequestreview-{review.id}"
        data = {
            "id": review.id,
            "node_id": node_id("PullRequestReview", review.id),
            "user": self.login(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": html,
            "pull_request_url": pull_url,
            "author_association": self.author_association(repo, review.user),
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
            "commit_id": review.commit_id,
        }
        if review.submitted_at is not None:
            data["submitted_at"] = iso(review.submitted_at)
        return data

    # ---- statuses and checks -----------------------------------------------

    def status(self, status: Status) -> dict[str, Any]:
        repo = self._repo_of(status.repo)
        return {
            "url": f"{self.repo_url(repo)}/statuses/{status.sha}",
            "avatar_url": f"{self.web}/avatars/u/{self.state.ensure_user(status.creator).id}",
            "id": status.id,
            "node_id": node_id("StatusContext", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": iso(status.created_at),
            "updated_at": iso(status.created_at),
            "creator": self.login(status.creator),
        }

    def check_run(self, run: CheckRun) -> dict[str, Any]:
        repo = self._repo_of(run.repo)
        url = f"{self.repo_url(repo)}/check-runs/{run.id}"
        pulls = [
            {"url": f"{self.repo_url(repo)}/pulls/{p.number}", "id": p.pull_id, "number": p.number,
             "head": {"ref": p.head_ref, "sha": p.head_sha, "repo": {"id": self._repo_of(p.head_repo).id}},
             "base": {"ref": p.base_ref, "sha": p.base_sha, "repo": {"id": repo.id}}}
            # GitHub lists only PRs whose head is in this repository: a fork's PR is never among them.
            for p in self.state.issues.values()
            if isinstance(p, Pull) and p.repo == run.repo and p.head_sha == run.head_sha and p.state == "open"
            and p.head_repo.lower() == p.repo.lower()
        ]
        output = {"title": None, "summary": None, "text": None, **run.output}
        output.update(annotations_count=len(run.annotations), annotations_url=f"{url}/annotations")
        return {
            "id": run.id,
            "head_sha": run.head_sha,
            "node_id": node_id("CheckRun", run.id),
            "external_id": run.external_id or "",
            "url": url,
            "html_url": f"{self.web}/{repo.full_name}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at),
            "output": output,
            "name": run.name,
            "check_suite": {"id": run.suite_id},
            "app": self.app(),
            "pull_requests": pulls,
        }

    def annotation(self, run: CheckRun, given: dict[str, Any]) -> dict[str, Any]:
        """One annotation as `GET .../check-runs/{id}/annotations` lists it."""
        repo = self._repo_of(run.repo)
        return {
            "path": given["path"], "start_line": given["start_line"], "end_line": given["end_line"],
            "start_column": given.get("start_column"), "end_column": given.get("end_column"),
            "annotation_level": given["annotation_level"], "title": given.get("title"),
            "message": given["message"], "raw_details": given.get("raw_details"),
            "blob_href": f"{self.web}/{repo.full_name}/blob/{run.head_sha}/{given['path']}",
        }

    # ---- webhook deliveries ------------------------------------------------

    def delivery(self, delivery: Delivery, full: bool = False) -> dict[str, Any]:
        ok = 200 <= delivery.status_code < 300
        data: dict[str, Any] = {
            "id": delivery.id,
            "guid": delivery.guid,
            "delivered_at": iso(delivery.delivered_at),
            "redelivery": delivery.redelivery,
            "duration": delivery.duration,
            "status": "OK" if ok else f"Invalid HTTP Response: {delivery.status_code}",
            "status_code": delivery.status_code,
            "event": delivery.event,
            "action": delivery.action,
            "installation_id": delivery.installation_id,
            "repository_id": delivery.repository_id,
            "throttled_at": None,
        }
        if full:
            data["url"] = f"{self.api}/app/hook/deliveries/{delivery.id}"
            data["request"] = {"headers": dict(delivery.request_headers), "payload": delivery.payload}
            data["response"] = {"headers": {}, "payload": None}
        return data
