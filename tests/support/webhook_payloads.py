"""Webhook deliveries shaped and signed as GitHub sends them to a GitHub App.

Event builders accept plain dicts for the repository and the pull request (for
instance the fake GitHub's `repo_payload()` / `pull_payload()`): whatever keys
the caller gives win, every key GitHub would also send is filled in, so the bot
under test sees GitHub's full shape. tests/test_webhook_payloads.py holds the
builders to the key structure of GitHub's own examples (@octokit/webhooks-examples).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import uuid
import zlib
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

API = "https://api.github.com"
WEB = "https://github.com"
ZERO_SHA = "0" * 40
DEFAULT_APP_ID = 1
DEFAULT_HOOK_ID = 1
USER_AGENT = "GitHub-Hookshot/5f1ad4e"

PULL_ACTIONS = ("opened", "synchronize", "reopened", "closed", "ready_for_review", "edited")

# GitHub leaves the PR's computed fields out of pull_request_review payloads.
_PULL_KEYS_ABSENT_IN_REVIEWS = (
    "additions", "changed_files", "comments", "commits", "deletions", "maintainer_can_modify",
    "mergeable", "mergeable_state", "merged", "merged_by", "rebaseable", "review_comments",
)

_REPO_API_PATHS = {
    "forks_url": "/forks", "keys_url": "/keys{/key_id}",
    "collaborators_url": "/collaborators{/collaborator}", "teams_url": "/teams", "hooks_url": "/hooks",
    "issue_events_url": "/issues/events{/number}", "events_url": "/events",
    "assignees_url": "/assignees{/user}", "branches_url": "/branches{/branch}", "tags_url": "/tags",
    "blobs_url": "/git/blobs{/sha}", "git_tags_url": "/git/tags{/sha}", "git_refs_url": "/git/refs{/sha}",
    "trees_url": "/git/trees{/sha}", "statuses_url": "/statuses/{sha}", "languages_url": "/languages",
    "stargazers_url": "/stargazers", "contributors_url": "/contributors",
    "subscribers_url": "/subscribers", "subscription_url": "/subscription",
    "commits_url": "/commits{/sha}", "git_commits_url": "/git/commits{/sha}",
    "comments_url": "/comments{/number}", "issue_comment_url": "/issues/comments{/number}",
    "contents_url": "/contents/{+path}", "compare_url": "/compare/{base}...{head}", "merges_url": "/merges",
    "archive_url": "/{archive_format}{/ref}", "downloads_url": "/downloads", "issues_url": "/issues{/number}",
    "pulls_url": "/pulls{/number}", "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}", "labels_url": "/labels{/name}",
    "releases_url": "/releases{/id}", "deployments_url": "/deployments",
}

_ids = itertools.count(3_000_000_000)


# ---- signing and headers ---------------------------------------------------

def sign(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: Mapping[str, Any]) -> bytes:
    """The body as GitHub sends it: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def headers(
    event: str,
    body: bytes,
    secret: str | None,
    delivery: str | None = None,
    hook_id: int = DEFAULT_HOOK_ID,
    app_id: int = DEFAULT_APP_ID,
) -> dict[str, str]:
    """The HTTP headers of one delivery of a GitHub App webhook; no signatures when `secret` is None."""
    result = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": str(hook_id),
        # An App's webhook is installed on the App itself, which GitHub calls an integration.
        "X-GitHub-Hook-Installation-Target-ID": str(app_id),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
    }
    if secret is not None:
        # GitHub still sends the legacy SHA-1 signature next to the SHA-256 one.
        result["X-Hub-Signature"] = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        result["X-Hub-Signature-256"] = sign(body, secret)
    return result


def signed_request(
    event: str, payload: Mapping[str, Any], secret: str | None, delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers ready to POST: `requests.post(url, data=body, headers=hdrs)`."""
    body = encode(payload)
    return body, headers(event, body, secret, delivery)


# ---- GitHub objects ----------------------------------------------------------

def user(login: str, type: str = "User", id: int | None = None) -> dict[str, Any]:
    """A user (or organization/bot account) object as embedded in payloads."""
    uid = id if id is not None else _stable_id(login)
    api = f"{API}/users/{login}"
    return {
        "login": login, "id": uid, "node_id": _node_id(type, uid),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "gravatar_id": "",
        "url": api, "html_url": f"{WEB}/{login}",
        "followers_url": f"{api}/followers", "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}", "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions", "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos", "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events", "type": type, "site_admin": False,
    }


def repository(
    full_name: str,
    id: int | None = None,
    default_branch: str = "main",
    clone_url: str | None = None,
    private: bool = True,
    owner_type: str = "User",
) -> dict[str, Any]:
    """A repository object as in pull_request / issue_comment payloads."""
    owner, _, name = full_name.partition("/")
    rid = id if id is not None else _stable_id(full_name)
    api = f"{API}/repos/{full_name}"
    html = f"{WEB}/{full_name}"
    now = _now()
    repo: dict[str, Any] = {
        "id": rid, "node_id": _node_id("Repository", rid), "name": name, "full_name": full_name,
        "private": private, "owner": user(owner, owner_type), "html_url": html, "description": None,
        "fork": False, "url": api,
    }
    repo.update({key: api + path for key, path in _REPO_API_PATHS.items()})
    repo.update({
        "created_at": now, "updated_at": now, "pushed_at": now,
        "git_url": f"git://github.com/{full_name}.git", "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": clone_url or f"{html}.git", "svn_url": html, "homepage": None, "size": 0,
        "stargazers_count": 0, "watchers_count": 0, "language": "HCL", "has_issues": True,
        "has_projects": True, "has_downloads": True, "has_wiki": True, "has_pages": False,
        "forks_count": 0, "mirror_url": None, "archived": False, "disabled": False,
        "open_issues_count": 0, "license": None, "forks": 0, "open_issues": 0, "watchers": 0,
        "default_branch": default_branch, "is_template": False, "topics": [],
        "visibility": "private" if private else "public", "web_commit_signoff_required": False,
        "custom_properties": {},
    })
    return repo


def pull_request(
    repo: Mapping[str, Any],
    number: int,
    head_sha: str,
    head_ref: str,
    base_sha: str,
    base_ref: str | None = None,
    title: str = "Change infrastructure",
    body: str | None = None,
    author: str = "octocat",
    state: str = "open",
    draft: bool = False,
    merged: bool = False,
    merge_commit_sha: str | None = None,
    merged_by: str | None = None,
) -> dict[str, Any]:
    """A pull request object as in pull_request payloads, head and base in `repo` (no forks)."""
    repo = complete_repository(repo)
    full = repo["full_name"]
    api, html = f"{API}/repos/{full}", f"{WEB}/{full}"
    pid = _stable_id(f"{full}#{number}")
    now = _now()
    closed = state == "closed"
    links = {
        "self": f"{api}/pulls/{number}", "html": f"{html}/pull/{number}", "issue": f"{api}/issues/{number}",
        "comments": f"{api}/issues/{number}/comments", "review_comments": f"{api}/pulls/{number}/comments",
        "review_comment": f"{api}/pulls/comments{{/number}}", "commits": f"{api}/pulls/{number}/commits",
        "statuses": f"{api}/statuses/{head_sha}",
    }
    return {
        "url": links["self"], "id": pid, "node_id": _node_id("PullRequest", pid), "html_url": links["html"],
        "diff_url": f"{html}/pull/{number}.diff", "patch_url": f"{html}/pull/{number}.patch",
        "issue_url": links["issue"], "number": number, "state": state, "locked": False, "title": title,
        "user": user(author), "body": body, "created_at": now, "updated_at": now,
        "closed_at": now if closed else None, "merged_at": now if merged else None,
        "merge_commit_sha": merge_commit_sha, "assignee": None, "assignees": [], "requested_reviewers": [],
        "requested_teams": [], "labels": [], "milestone": None, "draft": draft,
        "commits_url": links["commits"], "review_comments_url": links["review_comments"],
        "review_comment_url": links["review_comment"], "comments_url": links["comments"],
        "statuses_url": links["statuses"],
        "head": _branch_end(repo, head_ref, head_sha),
        "base": _branch_end(repo, base_ref or repo["default_branch"], base_sha),
        "_links": {name: {"href": href} for name, href in links.items()},
        "author_association": "MEMBER", "auto_merge": None, "active_lock_reason": None,
        "merged": merged, "mergeable": None, "rebaseable": None, "mergeable_state": "unknown",
        "merged_by": user(merged_by) if merged_by else None, "comments": 0, "review_comments": 0,
        "maintainer_can_modify": False, "commits": 1, "additions": 1, "deletions": 0, "changed_files": 1,
    }


def check_run(
    repo: Mapping[str, Any],
    id: int,
    name: str,
    head_sha: str,
    status: str = "completed",
    conclusion: str | None = "success",
    external_id: str = "",
    pulls: Iterable[Mapping[str, Any]] = (),
    app_id: int = DEFAULT_APP_ID,
) -> dict[str, Any]:
    """A check run as the REST API returns it (what the fake GitHub's `check_run()` gives): made by App `app_id`,
    listing `pulls` (pull request dicts) as its `pull_requests`."""
    repo = complete_repository(repo)
    url = f"{repo['url']}/check-runs/{id}"
    now = _now()
    return {
        "id": id, "head_sha": head_sha, "node_id": _node_id("CheckRun", id), "external_id": external_id,
        "url": url, "html_url": f"{repo['html_url']}/runs/{id}", "details_url": None, "status": status,
        "conclusion": conclusion, "started_at": now, "completed_at": now if status == "completed" else None,
        "output": {"title": name, "summary": "", "text": None, "annotations_count": 0,
                   "annotations_url": f"{url}/annotations"},
        "name": name, "check_suite": {"id": _stable_id(f"{repo['full_name']}@{head_sha}")},
        "app": {"id": app_id, "slug": "tfbot", "node_id": _node_id("App", app_id), "owner": repo["owner"],
                "name": "tfbot", "description": "", "external_url": WEB, "html_url": f"{WEB}/apps/tfbot",
                "created_at": now, "updated_at": now, "permissions": {"checks": "write", "metadata": "read"},
                "events": ["check_run"]},
        "pull_requests": [
            {"url": p["url"], "id": p["id"], "number": p["number"],
             "head": {"ref": p["head"]["ref"], "sha": p["head"]["sha"], "repo": {"id": repo["id"]}},
             "base": {"ref": p["base"]["ref"], "sha": p["base"]["sha"], "repo": {"id": repo["id"]}}}
            for p in pulls],
    }


def complete_repository(repo: Mapping[str, Any]) -> dict[str, Any]:
    """`repo` with every key GitHub sends filled in; needs at least `full_name`."""
    if "full_name" not in repo:
        raise ValueError(f"a repository dict needs 'full_name', got keys {sorted(repo)}")
    owner_type = (repo.get("owner") or {}).get("type", "User")
    defaults = repository(
        repo["full_name"], id=repo.get("id"), default_branch=repo.get("default_branch", "main"),
        clone_url=repo.get("clone_url"), private=repo.get("private", True), owner_type=owner_type,
    )
    return _overlay(defaults, repo)


def complete_pull(pull: Mapping[str, Any], repo: Mapping[str, Any], state: str = "open") -> dict[str, Any]:
    """`pull` with every key GitHub sends filled in; needs number, head.sha, head.ref and base.sha."""
    try:
        number, head, base = pull["number"], pull["head"], pull["base"]
        head_sha, head_ref, base_sha = head["sha"], head["ref"], base["sha"]
    except (KeyError, TypeError) as missing:
        raise ValueError(f"a pull dict needs number, head.sha, head.ref, base.sha (missing {missing})") from None
    defaults = pull_request(
        repo, number, head_sha, head_ref, base_sha, base.get("ref"), state=state,
        merged=bool(pull.get("merged")), merge_commit_sha=pull.get("merge_commit_sha"),
    )
    return _overlay(defaults, pull)


def installation(installation_id: int) -> dict[str, Any]:
    """The short installation object every event to a GitHub App carries."""
    return {"id": installation_id, "node_id": _node_id("Installation", installation_id)}


# ---- events ------------------------------------------------------------------

def pull_request_event(
    action: str,
    repo: Mapping[str, Any],
    pull: Mapping[str, Any],
    installation_id: int,
    sender: str,
    before: str | None = None,
    changes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `pull_request` event; `synchronize` needs `before` (the previous head sha), `after` is the head;
    `edited` carries `changes` as GitHub sends them (`{"base": {"ref": {"from": "main"}, "sha": {"from": ...}}}`)."""
    if action not in PULL_ACTIONS:
        raise ValueError(f"unsupported pull_request action {action!r}; expected one of {PULL_ACTIONS}")
    expected_state = "closed" if action == "closed" else "open"
    full_pull = complete_pull(pull, repo, state=expected_state)
    if full_pull["state"] != expected_state:
        raise ValueError(f"a {action!r} event needs a pull in state {expected_state!r}, got {full_pull['state']!r}")
    if action == "ready_for_review" and full_pull["draft"]:
        raise ValueError("a ready_for_review event needs a pull with draft=False")
    if full_pull["merged"] and not full_pull["merge_commit_sha"]:
        raise ValueError("a merged pull needs its merge_commit_sha")
    payload: dict[str, Any] = {"action": action, "number": full_pull["number"], "pull_request": full_pull}
    if action == "synchronize":
        if before is None:
            raise ValueError("a synchronize event needs before= (the previous head sha)")
        payload["before"] = before
        payload["after"] = full_pull["head"]["sha"]
    if action == "edited":
        payload["changes"] = dict(changes or {})
    return _with_context(payload, repo, installation_id, sender)


def issue_comment_event(
    action: str,
    repo: Mapping[str, Any],
    issue_number: int,
    comment: Mapping[str, Any],
    installation_id: int,
    sender: str,
    is_pull: bool = True,
    issue: Mapping[str, Any] | None = None,
    previous_body: str | None = None,
) -> dict[str, Any]:
    """An `issue_comment` event (created/edited/deleted); `comment` needs at least `body`."""
    if action not in ("created", "edited", "deleted"):
        raise ValueError(f"unsupported issue_comment action {action!r}")
    if "body" not in comment:
        raise ValueError("a comment dict needs 'body'")
    full_repo = complete_repository(repo)
    full_issue = _overlay(_issue(full_repo, issue_number, sender, is_pull), issue or {})
    payload: dict[str, Any] = {"action": action}
    if action == "edited":
        payload["changes"] = {"body": {"from": previous_body or ""}}
    payload["issue"] = full_issue
    payload["comment"] = _overlay(_comment(full_issue, sender), comment)
    return _with_context(payload, full_repo, installation_id, sender)


def pull_request_review_event(
    action: str,
    repo: Mapping[str, Any],
    pull: Mapping[str, Any],
    installation_id: int,
    sender: str,
    state: str = "approved",
    body: str | None = None,
    review: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `pull_request_review` event (submitted/edited/dismissed); `state` is approved, commented, changes_requested."""
    if action not in ("submitted", "edited", "dismissed"):
        raise ValueError(f"unsupported pull_request_review action {action!r}")
    full_pull = complete_pull(pull, repo)
    for key in _PULL_KEYS_ABSENT_IN_REVIEWS:
        full_pull.pop(key, None)
    rid = next(_ids)
    html = f"{full_pull['html_url']}#pullrequestreview-{rid}"
    defaults = {
        "id": rid, "node_id": _node_id("PullRequestReview", rid), "user": user(sender), "body": body,
        "commit_id": full_pull["head"]["sha"], "submitted_at": _now(),
        "state": "dismissed" if action == "dismissed" else state, "html_url": html,
        "pull_request_url": full_pull["url"], "author_association": "MEMBER",
        "_links": {"html": {"href": html}, "pull_request": {"href": full_pull["url"]}},
    }
    payload = {"action": action, "review": _overlay(defaults, review or {}), "pull_request": full_pull}
    return _with_context(payload, repo, installation_id, sender)


CHECK_RUN_ACTIONS = ("created", "completed", "rerequested", "requested_action")
# The App object as check_run events embed it: the REST API's has more (client_id, installations_count).
_EVENT_APP_KEYS = ("id", "slug", "node_id", "owner", "name", "description", "external_url", "html_url",
                   "created_at", "updated_at", "permissions", "events")


def check_run_event(
    action: str,
    repo: Mapping[str, Any],
    run: Mapping[str, Any],
    installation_id: int,
    sender: str,
    identifier: str | None = None,
) -> dict[str, Any]:
    """A `check_run` event about check run `run` as the REST API returns it (the fake's `check_run()`, or
    `check_run()` here), completed to the shape GitHub's events carry it; `requested_action` (a button pressed by
    `sender`) needs the button's `identifier`. `pull_requests` stays as given: GitHub lists none for a fork's PR."""
    if action not in CHECK_RUN_ACTIONS:
        raise ValueError(f"unsupported check_run action {action!r}; expected one of {CHECK_RUN_ACTIONS}")
    if (action == "requested_action") != (identifier is not None):
        raise ValueError("identifier= goes with requested_action, and only with it")
    full_repo = complete_repository(repo)
    event_run = {k: copy.deepcopy(v) for k, v in run.items() if k not in ("actions", "annotations")}
    app = {k: event_run["app"][k] for k in _EVENT_APP_KEYS if k in event_run.get("app", {})}
    if isinstance(app.get("owner"), Mapping):  # as every builder here embeds a user
        app["owner"] = user(app["owner"]["login"], app["owner"].get("type", "User"), id=app["owner"].get("id"))
    pulls = [_check_run_pull(p, full_repo) for p in event_run.get("pull_requests", [])]
    suite_id = int((event_run.get("check_suite") or {}).get("id") or next(_ids))
    now = _now()
    event_run.update(app=app, pull_requests=pulls, check_suite={
        "id": suite_id, "node_id": _node_id("CheckSuite", suite_id),
        "head_branch": pulls[0]["head"]["ref"] if pulls else None, "head_sha": event_run["head_sha"],
        "status": event_run["status"], "conclusion": event_run["conclusion"],
        "url": f"{full_repo['url']}/check-suites/{suite_id}", "before": None, "after": event_run["head_sha"],
        "pull_requests": copy.deepcopy(pulls), "app": copy.deepcopy(app),
        "created_at": event_run.get("started_at") or now, "updated_at": now,
    })
    payload: dict[str, Any] = {"action": action, "check_run": event_run}
    if identifier is not None:
        payload["requested_action"] = {"identifier": identifier}
    return _with_context(payload, full_repo, installation_id, sender)


def _check_run_pull(pull: Mapping[str, Any], repo: Mapping[str, Any]) -> dict[str, Any]:
    """A PR as check runs list it: its ends' repositories as {id, url, name}."""
    ends = {}
    for end in ("head", "base"):
        given = dict(pull[end])
        repo_id = (given.get("repo") or {}).get("id", repo["id"])
        same = repo_id == repo["id"]
        given["repo"] = {"id": repo_id, "url": repo["url"] if same else f"{API}/repositories/{repo_id}",
                         "name": repo["name"] if same else f"repo-{repo_id}"}
        ends[end] = given
    return {"url": pull["url"], "id": pull["id"], "number": pull["number"], **ends}


def push_event(
    repo: Mapping[str, Any],
    ref: str,
    before: str,
    after: str,
    installation_id: int,
    sender: str,
    commits: Iterable[Mapping[str, Any]] = (),
    forced: bool = False,
) -> dict[str, Any]:
    """A `push` event; `commits` may be RemoteRepo.commits_between() dicts (id, message, added, ...)."""
    full_repo = _push_repository(complete_repository(repo))
    ref = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
    full_commits = [_push_commit(full_repo, c, sender) for c in commits]
    created, deleted = before == ZERO_SHA, after == ZERO_SHA
    html = full_repo["html_url"]
    compare = f"{html}/commit/{after}" if created else f"{html}/compare/{before[:12]}...{after[:12]}"
    payload = {
        "ref": ref, "before": before, "after": after, "repository": full_repo,
        "pusher": {"name": sender, "email": f"{sender}@users.noreply.github.com"},
        "created": created, "deleted": deleted, "forced": forced, "base_ref": None, "compare": compare,
        "commits": full_commits, "head_commit": full_commits[-1] if full_commits else None,
    }
    return _with_context(payload, full_repo, installation_id, sender, complete=False)


def ping_event(hook_id: int = DEFAULT_HOOK_ID, app_id: int = DEFAULT_APP_ID, sender: str = "octocat") -> dict[str, Any]:
    """The `ping` GitHub sends to an App's webhook when the App is created or its hook changed."""
    now = _now()
    url = f"{API}/app/hook"
    hook = {
        "type": "App", "id": hook_id, "name": "web", "active": True, "events": ["pull_request", "issue_comment"],
        "config": {"content_type": "json", "insecure_ssl": "0", "url": "http://127.0.0.1/events"},
        "updated_at": now, "created_at": now, "app_id": app_id, "url": url,
        "ping_url": f"{url}/pings", "deliveries_url": f"{url}/deliveries",
    }
    return {"zen": "Keep it logically awesome.", "hook_id": hook_id, "hook": hook, "sender": user(sender)}


def installation_event(
    action: str,
    installation_id: int,
    account: str,
    repositories: Iterable[str | Mapping[str, Any]] = (),
    sender: str | None = None,
    app_id: int = DEFAULT_APP_ID,
    account_type: str = "User",
) -> dict[str, Any]:
    """An `installation` event (created, deleted, suspend, unsuspend, new_permissions_accepted)."""
    if action not in ("created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"):
        raise ValueError(f"unsupported installation action {action!r}")
    acct = user(account, account_type)
    stamp = int(datetime.now(timezone.utc).timestamp())
    suspended = action == "suspend"
    inst = {
        "id": installation_id, "account": acct, "repository_selection": "selected",
        "access_tokens_url": f"{API}/app/installations/{installation_id}/access_tokens",
        "repositories_url": f"{API}/installation/repositories",
        "html_url": f"{WEB}/settings/installations/{installation_id}", "app_id": app_id, "app_slug": "tfbot",
        "target_id": acct["id"], "target_type": account_type,
        "permissions": {"contents": "read", "issues": "write", "metadata": "read",
                        "pull_requests": "write", "statuses": "write"},
        "events": ["issue_comment", "pull_request", "pull_request_review", "push"],
        "created_at": stamp, "updated_at": stamp, "single_file_name": None,
        "has_multiple_single_files": False, "single_file_paths": [],
        "suspended_by": user(sender or account) if suspended else None,
        "suspended_at": _now() if suspended else None,
    }
    payload: dict[str, Any] = {"action": action, "installation": inst}
    # Suspension events carry no repository list.
    if action not in ("suspend", "unsuspend"):
        payload["repositories"] = [_short_repo(r) for r in repositories]
    payload["sender"] = user(sender or account)
    return payload


# ---- helpers -----------------------------------------------------------------

def _with_context(
    payload: dict[str, Any], repo: Mapping[str, Any], installation_id: int, sender: str, complete: bool = True
) -> dict[str, Any]:
    full_repo = complete_repository(repo) if complete else dict(repo)
    payload["repository"] = full_repo
    owner = full_repo["owner"]
    # GitHub adds the organization when the repository belongs to one.
    if owner.get("type") == "Organization":
        payload["organization"] = _organization(owner["login"], owner["id"])
    payload["sender"] = user(sender)
    payload["installation"] = installation(installation_id)
    return payload


def _branch_end(repo: dict[str, Any], ref: str, sha: str) -> dict[str, Any]:
    owner = repo["owner"]
    return {"label": f"{owner['login']}:{ref}", "ref": ref, "sha": sha, "user": dict(owner), "repo": dict(repo)}


def _issue(repo: dict[str, Any], number: int, author: str, is_pull: bool) -> dict[str, Any]:
    full = repo["full_name"]
    api, html = f"{API}/repos/{full}/issues/{number}", f"{WEB}/{full}/{'pull' if is_pull else 'issues'}/{number}"
    iid = _stable_id(f"{full}#{number}:issue")
    now = _now()
    issue = {
        "url": api, "repository_url": f"{API}/repos/{full}", "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments", "events_url": f"{api}/events", "html_url": html, "id": iid,
        "node_id": _node_id("PullRequest" if is_pull else "Issue", iid), "number": number,
        "title": "Change infrastructure", "user": user(author), "labels": [], "state": "open", "locked": False,
        "assignee": None, "assignees": [], "milestone": None, "comments": 1, "created_at": now,
        "updated_at": now, "closed_at": None, "author_association": "MEMBER", "active_lock_reason": None,
        "draft": False, "body": None, "reactions": _reactions(f"{api}/reactions"),
        "performed_via_github_app": None,
    }
    if is_pull:
        # Only comments on PRs carry this; it is how a bot tells PR comments from issue comments.
        issue["pull_request"] = {
            "url": f"{API}/repos/{full}/pulls/{number}", "html_url": html,
            "diff_url": f"{html}.diff", "patch_url": f"{html}.patch", "merged_at": None,
        }
    return issue


def _comment(issue: dict[str, Any], author: str) -> dict[str, Any]:
    cid = next(_ids)
    repo_api = issue["repository_url"]
    now = _now()
    return {
        "url": f"{repo_api}/issues/comments/{cid}", "html_url": f"{issue['html_url']}#issuecomment-{cid}",
        "issue_url": issue["url"], "id": cid, "node_id": _node_id("IssueComment", cid), "user": user(author),
        "created_at": now, "updated_at": now, "author_association": "MEMBER", "performed_via_github_app": None,
        "body": "", "reactions": _reactions(f"{repo_api}/issues/comments/{cid}/reactions"),
    }


def _push_repository(repo: dict[str, Any]) -> dict[str, Any]:
    # Push payloads keep an older repository shape: integer timestamps and a few legacy keys.
    pushed = dict(repo)
    stamp = int(datetime.now(timezone.utc).timestamp())
    pushed["created_at"] = stamp
    pushed["pushed_at"] = stamp
    pushed["master_branch"] = repo["default_branch"]
    pushed["stargazers"] = repo["stargazers_count"]
    owner = repo["owner"]
    pushed["owner"] = {"name": owner["login"], "email": None, **owner}
    if repo["owner"].get("type") == "Organization":
        pushed["organization"] = repo["owner"]["login"]
    return pushed


def _push_commit(repo: dict[str, Any], commit: Mapping[str, Any], sender: str) -> dict[str, Any]:
    sha = commit["id"]
    author = {
        "name": commit.get("author_name", sender),
        "email": commit.get("author_email", f"{sender}@users.noreply.github.com"),
        "username": sender,
    }
    stamp = commit.get("timestamp")
    if isinstance(stamp, int):
        stamp = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": sha, "tree_id": commit.get("tree_id", ZERO_SHA), "distinct": True,
        "message": commit.get("message", ""), "timestamp": stamp or _now(),
        "url": f"{repo['html_url']}/commit/{sha}", "author": author, "committer": dict(author),
        "added": list(commit.get("added", [])), "removed": list(commit.get("removed", [])),
        "modified": list(commit.get("modified", [])),
    }


def _short_repo(repo: str | Mapping[str, Any]) -> dict[str, Any]:
    full = complete_repository({"full_name": repo} if isinstance(repo, str) else repo)
    return {key: full[key] for key in ("id", "node_id", "name", "full_name", "private")}


def _organization(login: str, oid: int) -> dict[str, Any]:
    api = f"{API}/orgs/{login}"
    return {
        "login": login, "id": oid, "node_id": _node_id("Organization", oid), "url": api,
        "repos_url": f"{api}/repos", "events_url": f"{api}/events", "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues", "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{oid}?v=4", "description": "",
    }


def _reactions(url: str) -> dict[str, Any]:
    counts = dict.fromkeys(("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes"), 0)
    return {"url": url, "total_count": 0, **counts}


def _overlay(defaults: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """`defaults` with `given` laid over it, merging nested dicts so partial dicts keep defaults below."""
    result = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = _overlay(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _stable_id(name: str) -> int:
    # Same name, same id on every run; spread out so distinct names rarely collide.
    return 10_000_000 + zlib.crc32(name.encode()) % 900_000_000


def _node_id(kind: str, number: int) -> str:
    # GitHub's legacy global ids: base64 of "<len(kind) zero-padded>:<kind><id>".
    return base64.b64encode(f"{len(kind):02d}:{kind}{number}".encode()).decode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
