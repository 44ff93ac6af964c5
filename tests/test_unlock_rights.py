"""Who may unlock from the page, over values: GitHub's role order, `maintain` read from `role_name` (which
`permission` folds into `write`), custom roles by the base role they inherit, flagged locks kept for admins; the
unlock buttons offered from the roles listed at sign-in (all of them when that listing is unknown)."""
from __future__ import annotations

import dataclasses

import pytest

from bot.adapters.github_roles import effective_role, role_of_flags
from bot.models import REPO_ROLES, LockInfo, LockState
from bot.web.unlock_rights import at_least, may_unlock, offered, reason_problem, required_role

pytestmark = pytest.mark.unit

LOCK = LockInfo(repo="acme/infra", dir="network", workspace="default", project="network", pull=1, user="alice",
                locked_at=0.0, token=1, state=LockState.PLANNED)


def answer(permission: str, role_name: str, flags: dict[str, bool] | None = None) -> dict:
    """GitHub's answer to GET /repos/{o}/{r}/collaborators/{login}/permission."""
    user = {"login": "bob", "permissions": flags} if flags is not None else {"login": "bob"}
    return {"permission": permission, "role_name": role_name, "user": user}


@pytest.mark.parametrize("permission, role_name, flags, role", [
    ("admin", "admin", None, "admin"),
    ("write", "maintain", None, "maintain"),  # `permission` folds maintain into write
    ("read", "triage", None, "triage"),  # and triage into read
    ("write", "write", None, "write"),
    ("read", "read", None, "read"),
    ("none", "none", None, "none"),
    # An organization's custom role: its name says nothing, the flags give the base role it inherits.
    ("write", "deployer", {"pull": True, "triage": True, "push": True, "maintain": True, "admin": False}, "maintain"),
    ("write", "reviewer", {"pull": True, "triage": True, "push": True, "maintain": False, "admin": False}, "write"),
    ("read", "auditor", None, "read"),
    # Each field is a floor: the highest counts, never a lower one.
    ("write", "read", None, "write"),
    ("none", "none", {"pull": False, "admin": "yes"}, "none"),  # a flag that is not true grants nothing
    ("bogus", "bogus", None, "none"),
])
def test_the_role_counts_the_highest_of_what_github_reports(permission, role_name, flags, role):
    assert effective_role(answer(permission, role_name, flags)) == role


def test_a_malformed_answer_grants_nothing():
    assert effective_role({}) == "none"
    assert effective_role({"user": "not a dict", "role_name": None}) == "none"


def test_roles_are_ordered_weakest_first():
    assert REPO_ROLES == ("read", "triage", "write", "maintain", "admin")
    assert [at_least(role, "maintain") for role in REPO_ROLES] == [False, False, False, True, True]
    assert [at_least(role, "write") for role in REPO_ROLES] == [False, False, True, True, True]
    assert [at_least(role, "admin") for role in REPO_ROLES] == [False, False, False, False, True]
    assert not at_least("none", "write") and not at_least(None, "write") and not at_least("MAINTAIN", "write")


@pytest.mark.parametrize("needed, role, allowed", [
    ("maintain", "maintain", True), ("maintain", "write", False), ("maintain", "admin", True),
    ("write", "write", True), ("write", "triage", False), ("admin", "maintain", False), ("admin", "admin", True),
])
def test_unlock_permission_sets_the_role_a_plain_lock_takes(needed, role, allowed):
    assert required_role(LOCK, needed) == needed
    assert may_unlock(role, LOCK, needed) is allowed


@pytest.mark.parametrize("change", [
    {"diverged": True}, {"state": LockState.APPLYING}, {"state": LockState.APPLIED},
    {"state": LockState.APPLY_FAILED},
])
def test_a_flagged_lock_takes_admin_whatever_unlock_permission_says(change):
    lock = dataclasses.replace(LOCK, **change)
    for needed in ("write", "maintain", "admin"):
        assert required_role(lock, needed) == "admin"
        assert not may_unlock("maintain", lock, needed)
        assert may_unlock("admin", lock, needed)


def test_a_github_users_unlock_needs_a_bounded_reason():
    assert reason_problem("") and reason_problem("   ")
    assert "longer than 500" in reason_problem("x" * 501)
    assert reason_problem("x" * 500) is None and reason_problem("PR abandoned") is None


def test_the_flags_listed_with_a_repository_give_the_highest_role():
    flags = dict.fromkeys(("pull", "triage", "push", "maintain", "admin"), False)
    assert role_of_flags({**flags, "pull": True, "triage": True, "push": True}) == "write"
    assert role_of_flags({**flags, "pull": True, "triage": True, "push": True, "maintain": True}) == "maintain"
    assert role_of_flags({**flags, "admin": True}) == "admin"
    assert role_of_flags(flags) == "none" and role_of_flags(None) == "none" and role_of_flags({"admin": 1}) == "none"


def test_buttons_are_offered_from_the_roles_listed_at_sign_in():
    plain = LOCK
    other = dataclasses.replace(LOCK, repo="Acme/DNS", dir="zone")
    applied = dataclasses.replace(LOCK, dir="storage", state=LockState.APPLIED)
    locks = [plain, other, applied]
    key = lambda lk: (lk.repo, lk.dir, lk.workspace)  # noqa: E731
    # Listed names are lower-cased; a repository missing from the listing is one the user does not reach.
    assert offered({"acme/infra": "maintain"}, locks, "maintain") == {key(plain)}
    assert offered({"acme/infra": "admin", "acme/dns": "maintain"}, locks, "maintain") == {key(lk) for lk in locks}
    assert offered({"acme/infra": "write", "acme/dns": "write"}, locks, "write") == {key(plain), key(other)}
    assert offered({}, locks, "write") == set()
    # Nothing listed (the listing failed, was too long, or expired): every lock gets a button, GitHub decides.
    assert offered(None, locks, "admin") == {key(lk) for lk in locks}
