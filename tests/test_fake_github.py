"""The fake GitHub, driven only through the real PyGithub client as the bot drives GitHub."""
from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import github
import pytest
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry

from tests.support.fake_github import FakeGitHub, make_app_keypair
from tests.support.github_fixtures import (
    APP_ID,
    INSTALLATION_ID,
    github_client_for,
    github_integration_for,
)

REPO = "acme/infra"
HEAD = "1" * 40
BASE = "2" * 40


@pytest.fixture
def repo(fake_github: FakeGitHub) -> str:
    """acme/infra with PR #1 (alice, head HEAD on feature) and no local git repository behind it."""
    fake_github.add_repo(REPO, "file:///nonexistent/acme/infra.git")
    fake_github.add_pull(REPO, head_ref="feature", head_sha=HEAD, base_sha=BASE, user="alice", title="Add vpc")
    return REPO


@pytest.fixture
def gh(fake_github: FakeGitHub) -> Github:
    return github_client_for(fake_github)


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _bare_repo_with_branch(tmp_path: Path) -> tuple[str, str, str]:
    """A bare repo whose `feature` branch modifies, adds, removes and renames files; (url, base, head)."""
    work, bare = tmp_path / "work", tmp_path / "infra.git"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "main.tf").write_text("a\nb\n")
    (work / "old.tf").write_text("x\n" * 20)
    (work / "gone.tf").write_text("bye\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "base")
    base = _git(work, "rev-parse", "HEAD").strip()
    _git(work, "checkout", "-q", "-b", "feature")
    (work / "main.tf").write_text("a\nc\nd\n")
    (work / "new.tf").write_text("n\n")
    (work / "gone.tf").unlink()
    (work / "old.tf").rename(work / "renamed.tf")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "feature")
    head = _git(work, "rev-parse", "HEAD").strip()
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return bare.as_uri(), base, head


def _merge_feature(tmp_path: Path) -> str:
    """Merge `feature` into main (a merge commit) in the work tree and push it; returns the merge sha."""
    work = tmp_path / "work"
    _git(work, "checkout", "-q", "main")
    _git(work, "merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
    _git(work, "push", "-q", str(tmp_path / "infra.git"), "main")
    return _git(work, "rev-parse", "HEAD").strip()


# ---- app authentication -------------------------------------------------------------

def test_app_jwt_buys_an_installation_token_and_reads_the_app(fake_github: FakeGitHub) -> None:
    integration = github_integration_for(fake_github)
    authorization = integration.get_access_token(INSTALLATION_ID)
    assert authorization.token.startswith("ghs_")
    assert authorization.permissions["pull_requests"] == "write"
    assert integration.get_app().slug == "tfbot"
    installation = integration.get_app_installation(INSTALLATION_ID)
    assert (installation.id, installation.account.login) == (INSTALLATION_ID, "acme")
    assert fake_github.requests[0].path == f"/app/installations/{INSTALLATION_ID}/access_tokens"
    assert fake_github.requests[0].auth == "jwt"


def test_token_calls_are_recorded_with_their_installation(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    gh.get_repo(repo)
    token_call, repo_call = fake_github.requests
    assert (token_call.method, token_call.status) == ("POST", 201)
    assert (repo_call.path, repo_call.status, repo_call.installation_id) == (f"/repos/{repo}", 200, INSTALLATION_ID)
    fake_github.reset_requests()
    assert fake_github.requests == []


def test_jwt_signed_with_another_key_is_refused_with_401(fake_github: FakeGitHub) -> None:
    other_private, _ = make_app_keypair()
    integration = github_integration_for(fake_github, private_key_pem=other_private)
    with pytest.raises(GithubException) as raised:
        integration.get_access_token(INSTALLATION_ID)
    assert raised.value.status == 401
    assert raised.value.data["message"] == "A JSON web token could not be decoded"


def test_jwt_with_wrong_app_id_or_too_long_life_is_refused(fake_github: FakeGitHub) -> None:
    pem = fake_github.private_key_pem.decode()
    wrong_app = GithubIntegration(auth=Auth.AppAuth(APP_ID + 1, pem), base_url=fake_github.base_url,
                                  seconds_between_requests=None, seconds_between_writes=None)
    with pytest.raises(GithubException) as raised:
        wrong_app.get_app()
    assert raised.value.status == 401
    # An expiry 11 minutes out: PyGithub refuses to make one, so sign it by hand.
    import time

    import jwt

    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 660, "iss": str(APP_ID)}, pem, algorithm="RS256")
    too_long = Github(auth=Auth.AppAuthToken(token), base_url=fake_github.base_url, retry=None,
                      seconds_between_requests=None, seconds_between_writes=None)
    with pytest.raises(GithubException) as raised:
        too_long.requester.requestJsonAndCheck("GET", "/app")
    assert (raised.value.status, raised.value.data["message"]) == (
        401, "'Expiration time' claim ('exp') is too far in the future")


def test_expired_installation_token_gets_401_bad_credentials(fake_github: FakeGitHub, repo: str) -> None:
    # The plain PEM route, as the bot configures PyGithub.
    integration = GithubIntegration(auth=Auth.AppAuth(APP_ID, fake_github.private_key_pem.decode()),
                                    base_url=fake_github.base_url, seconds_between_requests=None,
                                    seconds_between_writes=None)
    token = integration.get_access_token(INSTALLATION_ID).token
    client = Github(auth=Auth.Token(token), base_url=fake_github.base_url, retry=None,
                    seconds_between_requests=None, seconds_between_writes=None)
    assert client.get_repo(repo).full_name == repo
    fake_github.expire_tokens()
    with pytest.raises(github.BadCredentialsException) as raised:
        client.get_repo(repo)
    assert raised.value.status == 401


@pytest.mark.io
def test_token_lifetime_is_configurable(app_keys: tuple[bytes, bytes]) -> None:
    private_pem, public_pem = app_keys
    with FakeGitHub(APP_ID, public_pem, private_key_pem=private_pem, token_lifetime=120) as fake:
        fake.add_installation(7, "acme")
        authorization = github_integration_for(fake).get_access_token(7)
        import datetime

        left = authorization.expires_at - datetime.datetime.now(datetime.timezone.utc)
        assert datetime.timedelta(seconds=100) < left <= datetime.timedelta(seconds=120)


def test_jwt_cannot_call_repository_endpoints_nor_token_the_app_endpoints(
        fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    as_app = Github(auth=github_integration_for(fake_github).auth, base_url=fake_github.base_url, retry=None,
                    seconds_between_requests=None, seconds_between_writes=None)
    with pytest.raises(GithubException) as raised:
        as_app.get_repo(repo)
    assert raised.value.status == 403
    with pytest.raises(GithubException) as raised:
        gh.requester.requestJsonAndCheck("GET", "/app")
    assert raised.value.status == 401


def test_repository_outside_the_installation_is_hidden(fake_github: FakeGitHub, gh: Github) -> None:
    fake_github.add_installation(100, "globex")
    fake_github.add_repo("globex/secret", "file:///nonexistent/secret.git")
    with pytest.raises(github.UnknownObjectException):
        gh.get_repo("globex/secret")


def test_narrowed_token_cannot_write(fake_github: FakeGitHub, repo: str) -> None:
    auth = github_integration_for(fake_github).auth.get_installation_auth(
        INSTALLATION_ID, token_permissions={"issues": "read", "pull_requests": "read"})
    client = Github(auth=auth, base_url=fake_github.base_url, retry=None,
                    seconds_between_requests=None, seconds_between_writes=None)
    pull = client.get_repo(repo).get_pull(1)
    with pytest.raises(GithubException) as raised:
        pull.create_issue_comment("hi")
    assert raised.value.status == 403


# ---- repositories and pull requests -----------------------------------------------------

def test_repository_fields(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    found = gh.get_repo(repo)
    assert (found.full_name, found.default_branch, found.private) == (repo, "main", True)
    assert found.clone_url == "file:///nonexistent/acme/infra.git"
    assert found.owner.login == "acme" and found.owner.type == "Organization"
    assert found.raw_data == fake_github.repo_payload(repo)
    assert gh.get_repo(found.id).full_name == repo  # GET /repositories/{id}


def _urls(value: object, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [u for k, v in value.items() for u in _urls(v, k)]
    if isinstance(value, list):
        return [u for v in value for u in _urls(v, key)]
    if isinstance(value, str) and (key == "url" or key.endswith("_url") or key == "href"):
        return [(key, value)]
    return []


def test_every_url_points_back_at_the_fake(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pull = gh.get_repo(repo).get_pull(1)
    comment = pull.create_issue_comment("plan")
    commit = gh.get_repo(repo).get_commit(HEAD)
    objects = [pull.raw_data, pull.as_issue().raw_data, comment.raw_data,
               commit.create_status("success", target_url="http://bot/run", context="c").raw_data,
               pull.create_review(body="ok", event="COMMENT").raw_data,
               gh.get_repo(repo).create_check_run("c", HEAD, details_url="http://bot/run").raw_data,
               fake_github.installation_payload(INSTALLATION_ID), fake_github.app_payload()]
    # Only what the test or the bot supplied may point elsewhere.
    supplied = {"clone_url", "target_url", "details_url", "documentation_url"}
    elsewhere = [(k, u) for obj in objects for k, u in _urls(obj)
                 if k not in supplied and not u.startswith(fake_github.web_url + "/")
                 and not u.startswith(("git://127.0.0.1/", "git@127.0.0.1:"))]
    assert elsewhere == []
    assert len([u for obj in objects for u in _urls(obj)]) > 100


def test_pull_fields_and_follow_up_urls(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pull = gh.get_repo(repo).get_pull(1)
    assert (pull.number, pull.state, pull.title, pull.user.login) == (1, "open", "Add vpc", "alice")
    assert (pull.head.ref, pull.head.sha, pull.base.ref, pull.base.sha) == ("feature", HEAD, "main", BASE)
    assert (pull.merged, pull.draft, pull.mergeable) == (False, False, True)
    assert pull.head.repo.clone_url == "file:///nonexistent/acme/infra.git"
    assert pull.url.startswith(fake_github.base_url) and pull.issue_url.startswith(fake_github.base_url)
    assert pull.raw_data == fake_github.pull_payload(repo, 1)
    issue = pull.as_issue()
    assert issue.pull_request is not None and issue.number == 1


def test_fork_pull_has_head_in_the_fork(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    fake_github.add_pull(repo, head_ref="patch", head_sha="3" * 40, base_sha=BASE, user="mallory", fork=True)
    pull = gh.get_repo(repo).get_pull(2)
    assert pull.head.repo.full_name == "mallory/infra" and pull.head.repo.fork is True
    assert pull.head.label == "mallory:patch"
    assert pull.base.repo.full_name == repo


def test_update_pull_to_new_head_then_merged(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    fake_github.update_pull(repo, 1, head_sha="4" * 40)
    assert gh.get_repo(repo).get_pull(1).head.sha == "4" * 40
    fake_github.update_pull(repo, 1, merged=True, merge_commit_sha="5" * 40, merged_by="bob")
    pull = gh.get_repo(repo).get_pull(1)
    assert (pull.state, pull.merged, pull.merge_commit_sha, pull.merged_by.login) == (
        "closed", True, "5" * 40, "bob")
    assert pull.merged_at is not None and pull.is_merged()


def test_list_pulls_filters_by_state(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    fake_github.add_pull(repo, head_ref="two", head_sha="6" * 40, base_sha=BASE, user="bob")
    fake_github.update_pull(repo, 1, state="closed")
    found = gh.get_repo(repo)
    assert [p.number for p in found.get_pulls()] == [2]
    assert [p.number for p in found.get_pulls(state="closed")] == [1]
    assert [p.number for p in found.get_pulls(state="all")] == [2, 1]


def test_pull_files_come_from_git_with_renames(fake_github: FakeGitHub, gh: Github, tmp_path: Path) -> None:
    url, base, head = _bare_repo_with_branch(tmp_path)
    fake_github.add_repo(REPO, url)
    fake_github.add_pull(REPO, head_ref="feature", user="alice")  # shas read from the branches
    pull = gh.get_repo(REPO).get_pull(1)
    assert (pull.base.sha, pull.head.sha) == (base, head)
    files = {f.filename: f for f in pull.get_files()}
    assert {name: f.status for name, f in files.items()} == {
        "main.tf": "modified", "new.tf": "added", "gone.tf": "removed", "renamed.tf": "renamed"}
    assert files["renamed.tf"].previous_filename == "old.tf"
    assert (files["main.tf"].additions, files["main.tf"].deletions) == (2, 1)
    assert pull.changed_files == 4
    # Merged with the base moved to the merge commit: GitHub still lists what the PR changed.
    merge_sha = _merge_feature(tmp_path)
    fake_github.update_pull(REPO, 1, merged=True, merge_commit_sha=merge_sha, base_sha=merge_sha)
    merged = gh.get_repo(REPO).get_pull(1)
    assert sorted(f.filename for f in merged.get_files()) == sorted(files)
    assert [p.number for p in gh.get_repo(REPO).get_commit(merge_sha).get_pulls()] == [1]


def test_pull_files_are_paged_and_capped_at_3000(fake_github: FakeGitHub, repo: str) -> None:
    fake_github.add_pull(repo, head_ref="big", head_sha="7" * 40, base_sha=BASE, user="alice",
                         files=[f"stacks/{i}/main.tf" for i in range(3100)])
    client = github_client_for(fake_github, per_page=100)
    files = list(client.get_repo(repo).get_pull(2).get_files())
    assert len(files) == 3000 and files[-1].filename == "stacks/2999/main.tf"


def test_collaborator_permissions(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    for login, role in [("root", "admin"), ("maya", "maintain"), ("wes", "write"), ("tia", "triage"),
                        ("rita", "read")]:
        fake_github.set_permission(repo, login, role)
    fake_github.add_user("stranger")
    found = gh.get_repo(repo)
    assert [found.get_collaborator_permission(u) for u in ("root", "maya", "wes", "tia", "rita", "stranger")] == [
        "admin", "write", "write", "read", "read", "none"]
    assert found.get_collaborator_role_name("maya") == "maintain"
    with pytest.raises(github.UnknownObjectException):
        found.get_collaborator_permission("nobody-at-all")


def test_reviews_human_and_bot(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    fake_github.add_review(repo, 1, "bob", "APPROVED")
    pull = gh.get_repo(repo).get_pull(1)
    pull.create_review(body="plan looks fine", event="COMMENT")
    reviews = list(pull.get_reviews())
    assert [(r.user.login, r.state, r.commit_id) for r in reviews] == [
        ("bob", "APPROVED", HEAD), ("tfbot[bot]", "COMMENTED", HEAD)]
    with pytest.raises(GithubException) as raised:
        pull.create_review(event="REQUEST_CHANGES")
    assert raised.value.status == 422


# ---- comments and reactions --------------------------------------------------------------

def test_bot_comment_create_edit_delete(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pull = gh.get_repo(repo).get_pull(1)
    comment = pull.create_issue_comment("plan: 1 to add")
    assert (comment.user.login, comment.user.type) == ("tfbot[bot]", "Bot")
    comment.edit("plan: 2 to add")
    assert [(c["user"], c["body"]) for c in fake_github.comments(repo, 1)] == [("tfbot[bot]", "plan: 2 to add")]
    assert pull.get_issue_comment(comment.id).body == "plan: 2 to add"
    comment.delete()
    assert fake_github.comments(repo, 1) == []
    with pytest.raises(github.UnknownObjectException):
        pull.get_issue_comment(comment.id)


def test_an_issue_opened_with_a_label_the_repository_lacks_gets_it_created_then_edited(
        fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    """POST /repos/{o}/{r}/issues creates a missing label (colour ededed, as GitHub does); PATCH edits title and
    body and leaves labels and state alone; a title over 256 characters or missing is a 422."""
    issue = gh.get_repo(repo).create_issue(title="AWS change", body="who", labels=["change-record"])
    assert (issue.number, issue.user.login, issue.state) == (2, "tfbot[bot]", "open")  # #1 is the PR
    assert [(label.name, label.color) for label in issue.labels] == [("change-record", "ededed")]
    issue.edit(title="AWS change: 2 calls", body="who, twice")
    [seen] = fake_github.issues(repo, label="change-record")
    assert (seen["title"], seen["body"], [label["name"] for label in seen["labels"]]) == (
        "AWS change: 2 calls", "who, twice", ["change-record"])
    assert gh.get_repo(repo).get_issue(2).raw_data == seen
    assert fake_github.close_issue(repo, 2)["state"] == "closed"
    with pytest.raises(GithubException) as refused:
        gh.get_repo(repo).create_issue(title="x" * 257)
    assert refused.value.status == 422
    with pytest.raises(GithubException) as untitled:  # PyGithub asserts a title: asked without it
        gh.requester.requestJsonAndCheck("POST", f"/repos/{repo}/issues", input={"body": "no title"})
    assert untitled.value.status == 422 and untitled.value.data["errors"][0]["code"] == "missing_field"


def test_issues_are_listed_by_state_and_labels_with_pulls_among_them(
        fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    """GET /repos/{o}/{r}/issues: open by default, newest first unless `direction=asc`, `labels` all required (any
    case), pull requests included and marked by `pull_request`; a bad `state` is a 422."""
    api = gh.get_repo(repo)
    api.create_issue(title="Drift: acme/infra app", body="a", labels=["drift"])
    api.create_issue(title="Other", body="b", labels=["drift", "infra"])
    closed = api.create_issue(title="Old drift", body="c", labels=["Drift"])
    closed.edit(state="closed", state_reason="not_planned")
    listed = list(api.get_issues())
    assert [i.number for i in listed] == [3, 2, 1]
    assert [i.pull_request is not None for i in listed] == [False, False, True]
    assert [i.number for i in api.get_issues(state="open", labels=["DRIFT"], direction="asc")] == [2, 3]
    assert [i.number for i in api.get_issues(labels=["drift", "infra"])] == [3]
    assert [(i.number, i.state_reason) for i in api.get_issues(state="closed")] == [(4, "not_planned")]
    assert [i.number for i in api.get_issues(state="all", labels=["drift"])] == [4, 3, 2]
    with pytest.raises(GithubException) as refused:
        gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}/issues", parameters={"state": "shut"})
    assert refused.value.status == 422
    closed.edit(state="open")
    assert gh.get_repo(repo).get_issue(4).state_reason == "reopened"


def test_labels_are_read_and_created_as_github_documents(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    """GET /repos/{o}/{r}/labels/{name} (404 when missing, any case found), POST creates with colour and description
    (201), and a name taken in any case is a 422 `already_exists`."""
    api = gh.get_repo(repo)
    with pytest.raises(GithubException) as missing:
        api.get_label("drift").color
    assert missing.value.status == 404
    made = api.create_label("drift", "d93f0b", "infrastructure differs")
    assert (made.name, made.color, made.description) == ("drift", "d93f0b", "infrastructure differs")
    assert api.get_label("Drift").color == "d93f0b"
    with pytest.raises(GithubException) as taken:
        api.create_label("DRIFT", "000000")
    assert taken.value.status == 422 and taken.value.data["errors"][0]["code"] == "already_exists"
    assert [label.name for label in api.get_labels()] == ["drift"]
    issue = api.create_issue(title="Drift", labels=["drift"])
    assert [(label.name, label.color) for label in issue.labels] == [("drift", "d93f0b")]  # the label it has


def test_human_comment_matches_the_api_shape(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    fake_github.set_permission(repo, "alice", "write")
    posted = fake_github.add_comment(repo, 1, "alice", "tfbot plan")
    [seen] = gh.get_repo(repo).get_pull(1).get_issue_comments()
    assert seen.raw_data == posted
    assert (seen.user.login, seen.user.type, seen.author_association) == ("alice", "User", "COLLABORATOR")


def test_comment_pages_follow_link_headers_past_100(fake_github: FakeGitHub, repo: str) -> None:
    for i in range(250):
        fake_github.add_comment(repo, 1, "alice", f"comment {i}")
    client = github_client_for(fake_github, per_page=100)
    pull = client.get_repo(repo).get_pull(1)
    headers, _ = client.requester.requestJsonAndCheck("GET", f"{pull.issue_url}/comments",
                                                      parameters={"per_page": 100})
    repo_id = fake_github.repo_payload(repo)["id"]
    page_url = f"{fake_github.base_url}/repositories/{repo_id}/issues/1/comments?per_page=100&page="
    assert headers["link"] == f'<{page_url}2>; rel="next", <{page_url}3>; rel="last"'
    fake_github.reset_requests()
    bodies = [c.body for c in pull.get_issue_comments()]
    assert bodies == [f"comment {i}" for i in range(250)]
    pages = fake_github.requests
    assert [r.query.get("page") for r in pages] == [None, "2", "3"]
    assert {r.path for r in pages} == {f"/repos/{repo}/issues/1/comments"}
    assert pages[1].raw_path == f"/repositories/{repo_id}/issues/1/comments"
    assert pull.get_issue_comments().totalCount == 250


def test_default_page_size_is_30(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    for i in range(31):
        fake_github.add_comment(repo, 1, "alice", str(i))
    fake_github.reset_requests()
    assert len(list(gh.get_repo(repo).get_pull(1).get_issue_comments())) == 31
    assert [r.query.get("page") for r in fake_github.requests if r.path.endswith("/comments")] == [None, "2"]


def test_comment_longer_than_65536_is_refused_with_422(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    pull = gh.get_repo(repo).get_pull(1)
    with pytest.raises(GithubException) as raised:
        pull.create_issue_comment("x" * 65537)
    assert raised.value.status == 422
    assert raised.value.data["message"] == "Validation Failed"
    assert raised.value.data["errors"][0]["message"] == "Body is too long (maximum is 65536 characters)"
    assert len(pull.create_issue_comment("x" * 65536).body) == 65536


def test_reactions_created_once_per_content(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    posted = fake_github.add_comment(repo, 1, "alice", "tfbot apply")
    comment = gh.get_repo(repo).get_pull(1).get_issue_comment(posted["id"])
    first = comment.create_reaction("eyes")
    again = comment.create_reaction("eyes")
    assert first.id == again.id
    assert [r.status for r in fake_github.requests if r.path.endswith("/reactions")] == [201, 200]
    assert [(r["content"], r["user"]) for r in fake_github.reactions(repo, posted["id"])] == [("eyes", "tfbot[bot]")]
    assert [r.content for r in comment.get_reactions()] == ["eyes"]
    with pytest.raises(GithubException) as raised:
        comment.create_reaction("thumbs")
    assert raised.value.status == 422


def test_minimize_marks_the_comment_outdated(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    comment = gh.get_repo(repo).get_pull(1).create_issue_comment("old plan")
    assert comment.minimize() is True
    [seen] = fake_github.comments(repo, 1)
    assert (seen["minimized"], seen["minimized_reason"]) == (True, "OUTDATED")


# ---- statuses and checks -------------------------------------------------------------------

def test_statuses_newest_first_and_combined(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    commit = gh.get_repo(repo).get_commit(HEAD)
    commit.create_status("pending", description="planning", context="tfbot/plan")
    commit.create_status("success", target_url="http://bot/runs/1", description="1 to add", context="tfbot/plan")
    commit.create_status("failure", context="tfbot/apply")
    assert [(s.state, s.context) for s in commit.get_statuses()] == [
        ("failure", "tfbot/apply"), ("success", "tfbot/plan"), ("pending", "tfbot/plan")]
    combined = commit.get_combined_status()
    assert (combined.state, combined.total_count) == ("failure", 2)
    latest = fake_github.latest_status(repo, HEAD, "tfbot/plan")
    assert (latest["state"], latest["creator"], latest["target_url"]) == ("success", "tfbot[bot]", "http://bot/runs/1")
    assert [s["state"] for s in fake_github.statuses(repo, HEAD)] == ["failure", "success", "pending"]


@pytest.mark.parametrize("state, description", [("done", None), ("success", "d" * 141)])
def test_invalid_status_is_refused_with_422(fake_github: FakeGitHub, repo: str, gh: Github,
                                             state: str, description: str) -> None:
    commit = gh.get_repo(repo).get_commit(HEAD)
    with pytest.raises(GithubException) as raised:
        commit.create_status(state, description=description or github.GithubObject.NotSet, context="tfbot/plan")
    assert raised.value.status == 422
    assert fake_github.statuses(repo, HEAD) == []


def test_status_on_unknown_commit_is_refused(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    with pytest.raises(GithubException) as raised:
        gh.get_repo(repo).get_commit("9" * 40)
    assert raised.value.status == 422


def test_check_run_lifecycle(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    found = gh.get_repo(repo)
    run = found.create_check_run("tfbot/plan", HEAD, status="in_progress")
    run.edit(conclusion="success", output={"title": "Plan", "summary": "1 to add"})
    [seen] = found.get_commit(HEAD).get_check_runs()
    assert (seen.id, seen.status, seen.conclusion, seen.output.summary) == (run.id, "completed", "success",
                                                                            "1 to add")
    assert seen.pull_requests[0].number == 1


def test_check_run_annotations_are_appended_and_actions_replaced(fake_github: FakeGitHub, repo: str,
                                                                 gh: Github) -> None:
    note = {"path": "network/main.tf", "start_line": 2, "end_line": 2, "annotation_level": "failure",
            "title": "Reference to undeclared input variable", "message": "not declared"}
    button = {"label": "Apply", "identifier": "apply", "description": "Apply this project's plan"}
    run = gh.get_repo(repo).create_check_run(
        "tfbot/plan: network", HEAD, status="in_progress", external_id="e1", actions=[button],
        output={"title": "Planning", "summary": "s", "annotations": [note]})
    run.edit(conclusion="failure", output={"title": "Error", "summary": "s2", "annotations": [note]}, actions=[])
    seen = fake_github.check_run(repo, run.id)
    assert (seen["status"], seen["conclusion"], seen["external_id"]) == ("completed", "failure", "e1")
    assert seen["annotations"] == [note, note] and seen["actions"] == []
    assert seen["output"]["annotations_count"] == 2
    [listed, _] = gh.get_repo(repo).get_check_run(run.id).get_annotations()
    assert (listed.path, listed.start_line, listed.annotation_level, listed.title) == (
        "network/main.tf", 2, "failure", "Reference to undeclared input variable")


_NOTE = {"path": "a.tf", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "m"}
_BUTTON = {"label": "Apply", "identifier": "apply", "description": "d"}


@pytest.mark.parametrize("fields", [
    {"output": {"title": "t", "summary": "s" * 65536}},
    {"output": {"title": "t", "summary": "s", "text": "x" * 65536}},
    {"output": {"summary": "s"}},
    {"output": {"title": "t", "summary": "s", "annotations": [_NOTE] * 51}},
    {"output": {"title": "t", "summary": "s", "annotations": [{**_NOTE, "annotation_level": "error"}]}},
    {"output": {"title": "t", "summary": "s", "annotations": [{**_NOTE, "title": "t" * 256}]}},
    {"output": {"title": "t", "summary": "s", "annotations": [{**_NOTE, "message": "m" * (64 * 1024 + 1)}]}},
    {"output": {"title": "t", "summary": "s", "annotations": [{**_NOTE, "end_line": 3, "start_column": 1}]}},
    {"output": {"title": "t", "summary": "s", "annotations": [{k: v for k, v in _NOTE.items() if k != "path"}]}},
    {"actions": [_BUTTON] * 4},
    {"actions": [{**_BUTTON, "label": "L" * 21}]},
    {"actions": [{**_BUTTON, "identifier": "i" * 21}]},
    {"actions": [{**_BUTTON, "description": "d" * 41}]},
    {"actions": [{"label": "Apply", "identifier": "apply"}]},
    {"status": "completed"},
    {"conclusion": "stale-ish"},
])
def test_a_check_run_github_would_refuse_is_refused_with_422(fake_github: FakeGitHub, repo: str, gh: Github,
                                                             fields: dict) -> None:
    with pytest.raises(GithubException) as raised:
        gh.get_repo(repo).create_check_run("tfbot/plan: x", HEAD, **fields)
    assert raised.value.status == 422
    assert fake_github.check_runs(repo) == []
    run = gh.get_repo(repo).create_check_run("tfbot/plan: x", HEAD, status="in_progress")
    with pytest.raises(GithubException) as raised:
        run.edit(**fields)
    assert raised.value.status == 422
    assert fake_github.check_run(repo, run.id)["status"] == "in_progress"  # a refused update changes nothing


def test_limits_themselves_are_accepted(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    gh.get_repo(repo).create_check_run(
        "tfbot/plan: x", HEAD, conclusion="success", actions=[{"label": "L" * 20, "identifier": "i" * 20,
                                                               "description": "d" * 40}] * 3,
        output={"title": "t", "summary": "s" * 65535, "text": "x" * 65535, "annotations": [
            {**_NOTE, "title": "t" * 255, "message": "é" * (32 * 1024)}] * 50})
    [run] = fake_github.check_runs(repo)
    assert run["output"]["annotations_count"] == 50


def test_a_forks_pull_request_is_not_listed_on_its_check_runs(fake_github: FakeGitHub, repo: str,
                                                             gh: Github) -> None:
    fake_github.add_pull(REPO, head_ref="fork-branch", head_sha="3" * 40, base_sha=BASE, user="mallory", fork=True)
    run = gh.get_repo(repo).create_check_run("tfbot/plan: x", "3" * 40, status="in_progress")
    assert fake_github.check_run(repo, run.id)["pull_requests"] == []


# ---- faults ----------------------------------------------------------------------------------

def test_502_then_success_with_a_retrying_client(fake_github: FakeGitHub, repo: str) -> None:
    client = github_client_for(fake_github, retry=GithubRetry(total=3, backoff_factor=0))
    fake_github.fail_next(2, status=502, path_contains="/pulls/1")
    assert client.get_repo(repo).get_pull(1).number == 1
    assert [r.status for r in fake_github.requests if r.path.endswith("/pulls/1")] == [502, 502, 200]


def test_502_surfaces_without_retry(fake_github: FakeGitHub, repo: str, gh: Github) -> None:
    fake_github.fail_next(1, status=502, path_contains=f"/repos/{repo}")
    with pytest.raises(GithubException) as raised:
        gh.get_repo(repo)
    assert raised.value.status == 502
    assert gh.get_repo(repo).full_name == repo


def test_secondary_rate_limit_with_retry_after_is_retried(fake_github: FakeGitHub, repo: str) -> None:
    client = github_client_for(fake_github, retry=GithubRetry(total=3, backoff_factor=0))
    fake_github.fail_next(1, status=403, path_contains="/comments", method="POST", headers={"Retry-After": "0"})
    client.get_repo(repo).get_pull(1).create_issue_comment("plan")
    assert [r.status for r in fake_github.requests if r.method == "POST" and r.path.endswith("/comments")] == [
        403, 201]
    assert len(fake_github.comments(repo, 1)) == 1


def test_unknown_route_gets_github_404(fake_github: FakeGitHub, gh: Github) -> None:
    with pytest.raises(github.UnknownObjectException) as raised:
        gh.requester.requestJsonAndCheck("GET", "/no/such/route")
    assert raised.value.data["message"] == "Not Found" and "documentation_url" in raised.value.data


# ---- deliveries, prefixes, threads -------------------------------------------------------------

def test_hook_deliveries_page_and_redeliver(fake_github: FakeGitHub) -> None:
    for i in range(3):
        fake_github.add_hook_delivery("pull_request", {"action": "opened", "number": i}, status_code=500)
    redelivered = []
    fake_github.set_redeliver_hook(lambda delivery: redelivered.append(delivery["guid"]) or 200)
    requester = github_integration_for(fake_github).requester
    headers, first = requester.requestJsonAndCheck("GET", "/app/hook/deliveries", parameters={"per_page": 2})
    assert [d["status_code"] for d in first] == [500, 500] and 'rel="next"' in headers["link"]
    _, rest = requester.requestJsonAndCheck("GET", headers["link"].split(">")[0][1:])
    assert len(rest) == 1
    status, _, _ = requester.requestJson("POST", f"/app/hook/deliveries/{rest[0]['id']}/attempts")
    assert status == 202 and redelivered == [rest[0]["guid"]]
    _, after = requester.requestJsonAndCheck("GET", "/app/hook/deliveries")
    assert (after[0]["redelivery"], after[0]["status_code"]) == (True, 200)


@pytest.mark.io
def test_enterprise_prefix(app_keys: tuple[bytes, bytes]) -> None:
    private_pem, public_pem = app_keys
    with FakeGitHub(APP_ID, public_pem, private_key_pem=private_pem, api_prefix="/api/v3") as fake:
        assert fake.base_url.endswith("/api/v3")
        fake.add_installation(INSTALLATION_ID, "acme")
        fake.add_repo(REPO, "file:///nonexistent/infra.git")
        fake.add_pull(REPO, head_ref="f", head_sha=HEAD, base_sha=BASE, user="alice")
        for i in range(3):
            fake.add_comment(REPO, 1, "alice", str(i))
        pull = github_client_for(fake, per_page=2).get_repo(REPO).get_pull(1)
        assert [c.body for c in pull.get_issue_comments()] == ["0", "1", "2"]
        assert pull.create_issue_comment("bot").minimize() is True


def test_concurrent_comments_get_distinct_ids(fake_github: FakeGitHub, repo: str) -> None:
    errors: list[BaseException] = []

    def post(worker: int) -> None:
        try:
            pull = github_client_for(fake_github).get_repo(repo).get_pull(1)
            for i in range(5):
                pull.create_issue_comment(f"{worker}-{i}")
        except BaseException as error:  # surfaced below: a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    comments = fake_github.comments(repo, 1)
    assert len({c["id"] for c in comments}) == 30
    assert sorted(c["body"] for c in comments) == sorted(f"{w}-{i}" for w in range(6) for i in range(5))


# ---- the OAuth web flow (Sign in with GitHub), driven by PyGithub's ApplicationOAuth ----------------------------

CALLBACK = "https://tfbot.example/auth/github/callback"


def _oauth_app(fake: FakeGitHub, secret: str | None = None) -> github.ApplicationOAuth.ApplicationOAuth:
    client = Github(base_url=fake.base_url, retry=None, seconds_between_requests=None)
    return client.get_oauth_application(fake.client_id, secret or fake.client_secret)


def _authorize(login_url: str) -> dict[str, str]:
    """Follow GitHub's authorize page as the browser would: the query it redirects back with."""
    import requests
    from urllib.parse import parse_qsl, urlsplit

    answer = requests.get(login_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return dict(parse_qsl(location.query))


def test_oauth_code_buys_a_user_token_once(fake_github: FakeGitHub) -> None:
    fake_github.authorize_as("bob")
    oauth = _oauth_app(fake_github)
    back = _authorize(oauth.get_login_url(redirect_uri=CALLBACK, state="s1"))
    assert back["state"] == "s1" and len(back["code"]) == 20
    token = oauth.get_access_token(back["code"])
    assert token.token.startswith("ghu_") and token.type == "bearer" and token.expires_in == 28800
    assert Github(auth=Auth.Token(token.token), base_url=fake_github.base_url).get_user().login == "bob"
    assert fake_github.user_tokens() == {token.token: "bob"}
    assert [r.auth for r in fake_github.requests if r.path == "/user"] == ["user"]
    with pytest.raises(GithubException) as replayed:  # a code works once
        oauth.get_access_token(back["code"])
    assert replayed.value.status == 200 and replayed.value.data["error"] == "bad_verification_code"


def test_oauth_error_answers_come_with_200(fake_github: FakeGitHub) -> None:
    import requests

    fake_github.authorize_as("bob")
    code = _authorize(_oauth_app(fake_github).get_login_url(redirect_uri=CALLBACK, state="s"))["code"]
    with pytest.raises(GithubException) as wrong_secret:
        _oauth_app(fake_github, secret="not-the-secret").get_access_token(code)
    assert wrong_secret.value.data["error"] == "incorrect_client_credentials"
    url = f"{fake_github.web_url}/login/oauth/access_token"
    params = {"client_id": fake_github.client_id, "client_secret": fake_github.client_secret, "code": code}
    mismatch = requests.post(url, data={**params, "redirect_uri": "https://evil.example/cb"},
                             headers={"Accept": "application/json"}, timeout=10)
    assert (mismatch.status_code, mismatch.json()["error"]) == (200, "redirect_uri_mismatch")
    # Without `Accept: application/json` GitHub answers form-encoded; the code still works once.
    form = requests.post(url, data={**params, "redirect_uri": CALLBACK}, timeout=10)
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form.text.startswith("access_token=ghu_") and "token_type=bearer" in form.text


def test_oauth_cancel_unknown_client_and_the_wrong_token_on_user(fake_github: FakeGitHub, gh: Github) -> None:
    import requests

    fake_github.authorize_as(None)  # the user presses Cancel
    back = _authorize(_oauth_app(fake_github).get_login_url(redirect_uri=CALLBACK, state="s"))
    assert back == {"error": "access_denied", "error_description": "The user has denied your application access.",
                    "error_uri": back["error_uri"], "state": "s"}
    other = requests.get(f"{fake_github.web_url}/login/oauth/authorize?client_id=Iv1.other&state=s",
                         allow_redirects=False, timeout=10)
    assert other.status_code == 404
    with pytest.raises(GithubException) as installation:  # an installation token is no user
        gh.get_user().login
    assert installation.value.status == 403
    with pytest.raises(GithubException) as unknown:
        Github(auth=Auth.Token("ghu_unknown"), base_url=fake_github.base_url).get_user().login
    assert unknown.value.status == 401


@pytest.mark.io
def test_oauth_lives_on_the_web_host_with_an_enterprise_prefix(app_keys: tuple[bytes, bytes]) -> None:
    private_pem, public_pem = app_keys
    with FakeGitHub(APP_ID, public_pem, private_key_pem=private_pem, api_prefix="/api/v3") as fake:
        fake.authorize_as("bob", callback_url=CALLBACK)
        oauth = _oauth_app(fake)
        assert oauth.get_login_url(state="s").startswith(f"{fake.web_url}/login/oauth/authorize?")
        token = oauth.get_access_token(_authorize(oauth.get_login_url(state="s"))["code"])  # the registered URL
        assert Github(auth=Auth.Token(token.token), base_url=fake.base_url).get_user().login == "bob"


def test_a_user_token_lists_the_installations_and_repositories_the_user_reaches(fake_github: FakeGitHub) -> None:
    """`GET /user/installations` and `GET /user/installations/{id}/repositories`, as GitHub documents them: only
    the App's installations where the user has explicit access, each repository with the user's `permissions`."""
    import requests

    fake_github.add_installation(7, "globex")
    for name, inst in (("acme/infra", 99), ("acme/site", 99), ("globex/ops", 7), ("acme/open", 99)):
        fake_github.add_repo(name, "file:///nowhere", installation_id=inst, private=name != "acme/open")
    fake_github.set_permission("acme/infra", "bob", "maintain")
    fake_github.set_permission("acme/site", "bob", "triage")
    fake_github.authorize_as("bob")
    oauth = _oauth_app(fake_github)
    token = oauth.get_access_token(_authorize(oauth.get_login_url(redirect_uri=CALLBACK, state="s"))["code"]).token
    user = Github(auth=Auth.Token(token), base_url=fake_github.base_url).get_user()
    assert [(i.id, i.app_id) for i in user.get_installations()] == [(99, APP_ID)]  # not globex's 7
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    listed = requests.get(f"{fake_github.base_url}/user/installations/99/repositories", headers=headers,
                          params={"per_page": 1}, timeout=10)
    body = listed.json()
    assert listed.status_code == 200 and body["total_count"] == 2 and body["repository_selection"] == "all"
    [first] = body["repositories"]  # acme/open is public but no explicit access: not listed
    assert first["full_name"] == "acme/infra" and first["permissions"] == {
        "pull": True, "triage": True, "push": True, "maintain": True, "admin": False}
    assert 'rel="next"' in listed.headers["Link"]
    for path in ("/user/installations/7/repositories", "/user/installations/12345/repositories"):
        assert requests.get(fake_github.base_url + path, headers=headers, timeout=10).status_code == 404
    fake_github.authorize_as("eve")  # a stranger to every installation
    other = oauth.get_access_token(_authorize(oauth.get_login_url(redirect_uri=CALLBACK, state="t"))["code"]).token
    nobody = requests.get(f"{fake_github.base_url}/user/installations",
                          headers={**headers, "Authorization": f"Bearer {other}"}, timeout=10)
    assert nobody.status_code == 200 and nobody.json() == {"total_count": 0, "installations": []}
    assert [r.auth for r in fake_github.requests if r.path.startswith("/user/installations")] == ["user"] * 5
