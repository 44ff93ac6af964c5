"""Apply requirements against the fake GitHub through real PyGithub: who counts as an approver, and drafts."""
from __future__ import annotations

import pytest

from bot.adapters.github import RepoAPI
from bot.models import Project
from bot.lifecycle.permissions import apply_refusals, writer_approvals
from tests.support.github_fixtures import github_client_for

REPO = "acme/infra"
HEAD, OLD, BASE = "a" * 40, "b" * 40, "c" * 40
APPROVED = Project(REPO, "network", "network", "default", "default", True, ("approved",))
FREE = Project(REPO, "dns", "dns", "default", "default", True, ())


@pytest.fixture
def gh(fake_github):
    fake_github.add_repo(REPO, "https://git.invalid/acme/infra.git", private=False)
    for sha in (HEAD, OLD, BASE):
        fake_github.add_commit(REPO, sha)
    fake_github.add_pull(REPO, 1, head_ref="grow", user="alice", head_sha=HEAD, base_sha=BASE)
    fake_github.add_pull(REPO, 2, head_ref="wip", user="alice", head_sha=HEAD, base_sha=BASE, draft=True)
    for login, role in (("wanda", "write"), ("mia", "maintain"), ("ada", "admin"), ("rita", "read"),
                        ("tess", "triage")):
        fake_github.set_permission(REPO, login, role)
    fake_github.add_user("stranger")  # no role at all: the repository is public, so GitHub says "read"
    return RepoAPI(github_client_for(fake_github), REPO, token="unused")


def refusal(gh, number=1, projects=(APPROVED,), **kw):
    return apply_refusals(gh, gh.pull(number), list(projects), **kw).get(APPROVED.id, "")


@pytest.mark.parametrize("login", ["rita", "tess", "stranger"])
def test_an_approval_without_write_access_does_not_count(fake_github, gh, login):
    fake_github.add_review(REPO, 1, login, "APPROVED", commit_id=HEAD)
    why = refusal(gh)
    assert "approving review" in why and "write access" in why and f"`{login}`" in why
    assert writer_approvals(gh, gh.pull(1)) == ([], [login])


@pytest.mark.parametrize("login", ["wanda", "mia", "ada"])
def test_an_approval_with_write_maintain_or_admin_counts(fake_github, gh, login):
    fake_github.add_review(REPO, 1, "rita", "APPROVED", commit_id=HEAD)
    fake_github.add_review(REPO, 1, login, "APPROVED", commit_id=HEAD)
    assert refusal(gh) == ""


def test_the_latest_review_of_each_writer_wins(fake_github, gh):
    fake_github.add_review(REPO, 1, "wanda", "APPROVED", commit_id=HEAD)
    fake_github.add_review(REPO, 1, "wanda", "CHANGES_REQUESTED", commit_id=HEAD)
    assert "approving review" in refusal(gh)
    fake_github.add_review(REPO, 1, "wanda", "COMMENTED", commit_id=HEAD)  # a comment changes no verdict
    assert "approving review" in refusal(gh)
    fake_github.add_review(REPO, 1, "wanda", "APPROVED", commit_id=HEAD)
    fake_github.add_review(REPO, 1, "wanda", "COMMENTED", commit_id=HEAD)
    assert refusal(gh) == ""


def test_a_dismissed_approval_does_not_count(fake_github, gh):
    review = fake_github.add_review(REPO, 1, "wanda", "APPROVED", commit_id=HEAD)
    assert refusal(gh) == ""
    fake_github.dismiss_review(REPO, 1, review["id"])
    assert "approving review" in refusal(gh)


def test_an_approval_of_an_older_head_does_not_count(fake_github, gh):
    fake_github.add_review(REPO, 1, "wanda", "APPROVED", commit_id=OLD)
    assert HEAD[:8] in refusal(gh)


def test_a_permission_removed_after_approving_is_gone(fake_github, gh):
    fake_github.add_review(REPO, 1, "wanda", "APPROVED", commit_id=HEAD)
    fake_github.set_permission(REPO, "wanda", "read")
    assert "approving review" in refusal(gh)


def test_apply_on_a_draft_is_refused_for_every_project_unless_allowed(fake_github, gh):
    fake_github.add_review(REPO, 2, "wanda", "APPROVED", commit_id=HEAD)
    refused = apply_refusals(gh, gh.pull(2), [APPROVED, FREE])
    assert set(refused) == {APPROVED.id, FREE.id}
    assert all("#2 is a draft" in why and "ready for review" in why and "allow_draft_apply" in why
               for why in refused.values())
    assert apply_refusals(gh, gh.pull(2), [APPROVED, FREE], allow_draft=True) == {}
    fake_github.update_pull(REPO, 2, draft=False)
    assert apply_refusals(gh, gh.pull(2), [APPROVED, FREE]) == {}
