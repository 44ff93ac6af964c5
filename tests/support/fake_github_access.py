"""Lookups every repository route needs: what a token may see, issue numbers, commits by ref."""
from __future__ import annotations

from typing import Optional

from tests.support import fake_github_git as git
from tests.support.fake_github_http import ApiError, Ctx, Request, error_body, fail, not_found
from tests.support.fake_github_state import Issue, Pull, Repo, State, User


def int_param(value: str) -> int:
    """A numeric path segment; 404 (as GitHub answers) when it is not a number."""
    if not value.isdigit():
        raise not_found()
    return int(value)


def visible_repo(ctx: Ctx, req: Request, owner: str, name: str, write: bool = False) -> Repo:
    """The repository if the request's token may reach it; GitHub hides the others behind a 404."""
    repo = ctx.state.repo(f"{owner}/{name}")
    token = req.token
    if repo is None or token is None:
        raise not_found()
    installed = repo.installation_id == token.installation_id and (
        token.repositories is None or repo.full_name.lower() in token.repositories
    )
    if installed:
        return repo
    if not repo.private:
        if write:
            raise fail(403, "Resource not accessible by integration")
        return repo
    raise not_found()


def explicit_role(repo: Repo, user: User) -> Optional[str]:
    """`user`'s role on `repo` that GitHub counts as explicit access (a collaborator's role, or `admin` for the
    user account that owns it); None for no role, even on a public repository anyone may read."""
    role = repo.collaborators.get(user.login)
    if role is None and user.login.lower() == repo.owner.lower() and user.type == "User":
        role = "admin"
    return role


def issue_of(ctx: Ctx, repo: Repo, number: str) -> Issue:
    """Issue or pull request `number` of `repo`, or 404."""
    issue = ctx.state.issues.get((repo.full_name, int_param(number)))
    if issue is None:
        raise not_found()
    return issue


def pull_of(ctx: Ctx, repo: Repo, number: str) -> Pull:
    """Pull request `number` of `repo`; 404 also for a plain issue, as GitHub answers."""
    issue = issue_of(ctx, repo, number)
    if not isinstance(issue, Pull):
        raise not_found()
    return issue


def find_commit(state: State, repo: Repo, ref: str) -> Optional[str]:
    """The full sha `ref` (sha, short sha, branch or tag) names in `repo`, or None."""
    if ref in repo.known_shas:
        return ref
    if ref in repo.branches:
        return repo.branches[ref]
    git_dir = git.local_git_dir(repo.clone_url)
    if git_dir is not None:
        return git.resolve_commit(git_dir, ref)
    return None


def commit_or_422(state: State, repo: Repo, ref: str) -> str:
    """Like `find_commit`, answering GitHub's 422 when no commit matches."""
    sha = find_commit(state, repo, ref)
    if sha is None:
        raise ApiError(422, error_body(422, f"No commit found for SHA: {ref}"))
    return sha
