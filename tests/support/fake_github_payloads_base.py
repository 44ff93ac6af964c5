"""JSON shapes shared by every GitHub object the fake returns: users, the app, installations, repositories.

Every `url` and `*_url` points back at the fake (API urls under `api`, web
pages under `web`), so a client that follows them keeps talking to the fake.
Callers hold the state lock. fake_github_payloads.py builds the rest on this.
"""
from __future__ import annotations

import base64
import time
from typing import Any, Optional
from urllib.parse import quote

from tests.support.fake_github_state import Installation, Repo, State, User

REACTION_CONTENTS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
# GitHub's repository permissions and the role names that grant them.
ROLE_PERMISSION = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}


def iso(ts: Optional[float]) -> Optional[str]:
    """A unix time as GitHub writes it: `2024-01-02T03:04:05Z`."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def node_id(kind: str, ident: int) -> str:
    """A node id in GitHub's legacy format, base64 of `<len>:<Kind><id>` (`MDQ6VXNlcjE=` is User 1)."""
    return base64.b64encode(f"{len(kind):02d}:{kind}{ident}".encode()).decode()


def parse_node_id(value: str) -> Optional[tuple[str, int]]:
    """(kind, id) from a node id made by `node_id`, or None."""
    try:
        text = base64.b64decode(value.encode(), validate=True).decode()
        length, rest = text.split(":", 1)
        kind, ident = rest[: int(length)], rest[int(length):]
        return kind, int(ident)
    except (ValueError, UnicodeDecodeError):
        return None


class BasePayloads:
    """JSON of actors and repositories, and the helpers every other shape uses."""

    def __init__(self, state: State, api: str, web: str) -> None:
        self.state = state
        self.api = api
        self.web = web

    # ---- actors ------------------------------------------------------------

    def user(self, user: User) -> dict[str, Any]:
        login = quote(user.login, safe="")
        url = f"{self.api}/users/{login}"
        html = f"{self.web}/apps/{self.state.app_slug}" if user.type == "Bot" else f"{self.web}/{login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id(user.type if user.type != "Organization" else "Organization", user.id),
            "avatar_url": f"{self.web}/avatars/u/{user.id}",
            "gravatar_id": "",
            "url": url,
            "html_url": html,
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": user.type,
            "user_view_type": "public",
            "site_admin": user.site_admin,
        }

    def user_full(self, user: User) -> dict[str, Any]:
        """The single-user shape (`GET /users/{login}`), a superset of the embedded one."""
        return {
            **self.user(user),
            "name": user.name,
            "company": None,
            "blog": "",
            "location": None,
            "email": user.email,
            "hireable": None,
            "bio": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        }

    def login(self, login: str) -> dict[str, Any]:
        """The embedded user object for `login`."""
        return self.user(self.state.ensure_user(login))

    def app(self) -> dict[str, Any]:
        s = self.state
        return {
            "id": s.app_id,
            "slug": s.app_slug,
            "node_id": node_id("App", s.app_id),
            "client_id": s.client_id,
            "owner": self.login(s.app_owner),
            "name": s.app_slug,
            "description": "Terraform pull request automation (fake)",
            "external_url": f"{self.web}/{s.app_slug}",
            "html_url": f"{self.web}/apps/{s.app_slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": {"checks": "write", "contents": "write", "issues": "write", "metadata": "read",
                            "pull_requests": "write", "statuses": "write"},
            "events": ["issue_comment", "pull_request", "pull_request_review", "push"],
            "installations_count": len(s.installations),
        }

    def installation(self, inst: Installation) -> dict[str, Any]:
        account = self.state.ensure_user(inst.account_login)
        return {
            "id": inst.id,
            "client_id": self.state.client_id,
            "account": self.user(account),
            "repository_selection": inst.repository_selection,
            "access_tokens_url": f"{self.api}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{self.api}/installation/repositories",
            "html_url": f"{self.web}/organizations/{quote(inst.account_login)}/settings/installations/{inst.id}",
            "app_id": self.state.app_id,
            "app_slug": self.state.app_slug,
            "target_id": account.id,
            "target_type": account.type,
            "permissions": dict(inst.permissions),
            "events": list(inst.events),
            "created_at": iso(inst.created_at),
            "updated_at": iso(inst.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": iso(inst.created_at) if inst.suspended else None,
        }

    # ---- repositories ------------------------------------------------------

    def repo_url(self, repo: Repo) -> str:
        return f"{self.api}/repos/{quote(repo.owner)}/{quote(repo.name)}"

    def repo(self, repo: Repo, full: bool = True) -> dict[str, Any]:
        """The repository; `full` adds what only `GET /repos/{o}/{r}` returns (parent, network counts)."""
        url = self.repo_url(repo)
        html = f"{self.web}/{quote(repo.owner)}/{quote(repo.name)}"
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self.login(repo.owner),
            "html_url": html,
            "description": None,
            "fork": repo.fork,
            "url": url,
            "archive_url": f"{url}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{url}/assignees{{/user}}",
            "blobs_url": f"{url}/git/blobs{{/sha}}",
            "branches_url": f"{url}/branches{{/branch}}",
            "collaborators_url": f"{url}/collaborators{{/collaborator}}",
            "comments_url": f"{url}/comments{{/number}}",
            "commits_url": f"{url}/commits{{/sha}}",
            "compare_url": f"{url}/compare/{{base}}...{{head}}",
            "contents_url": f"{url}/contents/{{+path}}",
            "contributors_url": f"{url}/contributors",
            "deployments_url": f"{url}/deployments",
            "downloads_url": f"{url}/downloads",
            "events_url": f"{url}/events",
            "forks_url": f"{url}/forks",
            "git_commits_url": f"{url}/git/commits{{/sha}}",
            "git_refs_url": f"{url}/git/refs{{/sha}}",
            "git_tags_url": f"{url}/git/tags{{/sha}}",
            # Only clone_url reaches the git repository: code that clones any other url fails here.
            "git_url": f"git://127.0.0.1/{repo.full_name}.git",
            "ssh_url": f"git@127.0.0.1:{repo.full_name}.git",
            "clone_url": repo.clone_url,
            "svn_url": html,
            "mirror_url": None,
            "hooks_url": f"{url}/hooks",
            "issue_comment_url": f"{url}/issues/comments{{/number}}",
            "issue_events_url": f"{url}/issues/events{{/number}}",
            "issues_url": f"{url}/issues{{/number}}",
            "keys_url": f"{url}/keys{{/key_id}}",
            "labels_url": f"{url}/labels{{/name}}",
            "languages_url": f"{url}/languages",
            "merges_url": f"{url}/merges",
            "milestones_url": f"{url}/milestones{{/number}}",
            "notifications_url": f"{url}/notifications{{?since,all,participating}}",
            "pulls_url": f"{url}/pulls{{/number}}",
            "releases_url": f"{url}/releases{{/id}}",
            "stargazers_url": f"{url}/stargazers",
            "statuses_url": f"{url}/statuses/{{sha}}",
            "subscribers_url": f"{url}/subscribers",
            "subscription_url": f"{url}/subscription",
            "tags_url": f"{url}/tags",
            "teams_url": f"{url}/teams",
            "trees_url": f"{url}/git/trees{{/sha}}",
            "homepage": None,
            "language": "HCL",
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "size": 1,
            "default_branch": repo.default_branch,
            "open_issues_count": sum(
                1 for i in self.state.issues.values() if i.repo == repo.full_name and i.state == "open"
            ),
            "is_template": False,
            "topics": [],
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": True,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "pushed_at": iso(repo.created_at),
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.created_at),
            "allow_forking": True,
            "web_commit_signoff_required": False,
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
        }
        data["open_issues"] = data["open_issues_count"]
        if full:
            data["network_count"] = 0
            data["subscribers_count"] = 0
            parent = self.state.repo(repo.parent) if repo.parent else None
            if parent is not None:
                data["parent"] = self.repo(parent, full=False)
                data["source"] = data["parent"]
        return data

    # ---- issues and pull requests ------------------------------------------

    def _issue_base(self, repo: Repo, number: int) -> str:
        return f"{self.repo_url(repo)}/issues/{number}"

    def author_association(self, repo: Repo, login: str) -> str:
        """How GitHub labels `login` on `repo`: OWNER, COLLABORATOR, MEMBER or NONE."""
        if login.lower() == repo.owner.lower():
            return "OWNER"
        if login in repo.collaborators:
            return "COLLABORATOR"
        return "NONE"

    def reactions_summary(self, url: str, subject: tuple) -> dict[str, Any]:
        counts = {content: 0 for content in REACTION_CONTENTS}
        for reaction in self.state.reactions.values():
            if reaction.subject == subject:
                counts[reaction.content] += 1
        return {"url": url, "total_count": sum(counts.values()), **counts}

    def _repo_of(self, full_name: str) -> Repo:
        repo = self.state.repo(full_name)
        assert repo is not None, f"fake GitHub has no repository {full_name}"
        return repo
