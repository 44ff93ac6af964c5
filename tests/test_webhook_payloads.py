"""Our webhook builders match GitHub's own examples in shape, and sign as GitHub documents."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import webhook_payloads as wp
from tests.support.git_repos import ZERO_SHA, RemoteRepo
from tests.support.octokit_examples import event_definition, load_examples

# GitHub's examples are fetched with npm on first use (a process): these tests are io, never unit.
pytestmark = pytest.mark.io

HEAD = "a" * 40
BASE = "b" * 40
INSTALLATION = 4242

# Keys GitHub sends that none of the package's examples happen to show. Each is
# in @octokit/webhooks-types (schema.d.ts): `issue.pull_request` is present
# exactly when the commented issue is a pull request.
KNOWN_EXTRA_KEYS = {("issue_comment", "issue"): {"pull_request"}}
# Present only for repositories an organization owns (the package's `properties`
# say so), so one example from an organization does not make it required.
CONDITIONAL_TOP_KEYS = {"organization"}
# Maps whose keys are data (permission names), not structure: an App asks for
# the permissions it needs, so only names GitHub knows are checked, none required.
DATA_MAPS = {"installation.permissions", "check_run.app.permissions", "check_run.check_suite.app.permissions"}

Shape = dict[str, set[str]]
Types = dict[str, set[type]]


def shape_of(obj: Any, path: str = "", keys: Shape | None = None, types: Types | None = None) -> tuple[Shape, Types]:
    """Every dict in `obj` by dotted path (`[]` for list items): its keys, and the types of its values."""
    keys = {} if keys is None else keys
    types = {} if types is None else types
    if isinstance(obj, dict):
        keys.setdefault(path, set()).update(obj)
        for key, value in obj.items():
            child = f"{path}.{key}" if path else key
            types.setdefault(child, set()).add(type(value))
            shape_of(value, child, keys, types)
    elif isinstance(obj, list):
        for item in obj:
            shape_of(item, f"{path}[]", keys, types)
    return keys, types


def shape_mismatches(event: str, action: str | None, payload: dict[str, Any]) -> list[str]:
    """How `payload` differs in key structure from GitHub's examples of the same event and action.

    At each dict both have: keys every example of this action has must be there,
    and no key may appear that no example of the event has (top level: nor the
    documented properties). Value types must be ones the examples show.
    """
    definition = event_definition(event)
    same_action = [e for e in definition["examples"] if e.get("action") == action]
    assert same_action, f"GitHub has no example of {event}.{action}: nothing to compare with"
    per_example = [shape_of(e)[0] for e in same_action]
    all_keys: Shape = {}
    all_types: Types = {}
    for example in definition["examples"]:
        shape_of(example, keys=all_keys, types=all_types)
    documented_roots = {name.split("[")[0] for name in definition["properties"]}

    ours, our_types = shape_of(payload)
    problems = []
    for path, keys in ours.items():
        having = [shape[path] for shape in per_example if path in shape]
        if not having:
            continue
        required = set() if path in DATA_MAPS else set.intersection(*having)
        if path == "":
            required -= CONDITIONAL_TOP_KEYS
            allowed = set().union(*having) | documented_roots
        else:
            allowed = all_keys.get(path, set())
        allowed = allowed | KNOWN_EXTRA_KEYS.get((event, path), set())
        if missing := required - keys:
            problems.append(f"{path or '<top>'}: missing {sorted(missing)}")
        if unknown := keys - allowed:
            problems.append(f"{path or '<top>'}: keys GitHub never sends {sorted(unknown)}")
    for path, seen in our_types.items():
        theirs = all_types.get(path, set()) - {type(None)}
        ours_set = seen - {type(None)}
        if theirs and ours_set - theirs:
            problems.append(f"{path}: type {sorted(t.__name__ for t in ours_set)} vs GitHub's {sorted(t.__name__ for t in theirs)}")
    return problems


def fake_like_repo(owner_type: str = "User") -> dict[str, Any]:
    """A partial repository dict such as a fake GitHub might produce."""
    return {"id": 99, "full_name": "acme/infra", "name": "infra", "default_branch": "main",
            "clone_url": "file:///tmp/acme/infra.git", "owner": {"login": "acme", "type": owner_type}}


def fake_like_pull(**overrides: Any) -> dict[str, Any]:
    pull = {"number": 7, "title": "Grow the fleet", "state": "open", "draft": False,
            "head": {"ref": "feature", "sha": HEAD}, "base": {"ref": "main", "sha": BASE}}
    pull.update(overrides)
    return pull


# ---- signing ------------------------------------------------------------------

def test_sign_matches_githubs_documented_example() -> None:
    # From GitHub's docs, "Validating webhook deliveries".
    assert wp.sign(b"Hello, World!", "It's a Secret to Everybody") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_sign_depends_on_every_byte_and_the_secret() -> None:
    body = wp.encode({"action": "opened"})
    assert wp.sign(body, "s") != wp.sign(body + b" ", "s")
    assert wp.sign(body, "s") != wp.sign(body, "t")


def test_headers_carry_what_github_sends() -> None:
    body = wp.encode(wp.ping_event())
    hdrs = wp.headers("ping", body, "topsecret", hook_id=12, app_id=34)

    assert hdrs["X-GitHub-Event"] == "ping"
    assert uuid.UUID(hdrs["X-GitHub-Delivery"]).version == 4
    assert hdrs["User-Agent"].startswith("GitHub-Hookshot/")
    assert hdrs["Content-Type"] == "application/json"
    assert hdrs["X-GitHub-Hook-ID"] == "12"
    assert hdrs["X-GitHub-Hook-Installation-Target-ID"] == "34"
    assert hdrs["X-GitHub-Hook-Installation-Target-Type"] == "integration"
    expected = "sha256=" + hmac.new(b"topsecret", body, hashlib.sha256).hexdigest()
    assert hdrs["X-Hub-Signature-256"] == expected
    assert hdrs["X-Hub-Signature"] == "sha1=" + hmac.new(b"topsecret", body, hashlib.sha1).hexdigest()


def test_headers_without_secret_have_no_signature_and_keep_given_delivery() -> None:
    hdrs = wp.headers("ping", b"{}", None, delivery="fixed-id")
    assert hdrs["X-GitHub-Delivery"] == "fixed-id"
    assert "X-Hub-Signature-256" not in hdrs and "X-Hub-Signature" not in hdrs


def test_each_delivery_gets_a_new_id() -> None:
    assert wp.headers("ping", b"{}", None)["X-GitHub-Delivery"] != wp.headers("ping", b"{}", None)["X-GitHub-Delivery"]


def test_signed_request_signs_the_exact_body_it_returns() -> None:
    body, hdrs = wp.signed_request("ping", {"zen": "é"}, "k")
    assert json.loads(body) == {"zen": "é"}
    assert hdrs["X-Hub-Signature-256"] == wp.sign(body, "k")


# ---- shapes against GitHub's examples --------------------------------------------

PULL_CASES: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
    ("opened", lambda o: wp.pull_request_event("opened", fake_like_repo(o), fake_like_pull(), INSTALLATION, "alice")),
    ("reopened", lambda o: wp.pull_request_event("reopened", fake_like_repo(o), fake_like_pull(), INSTALLATION, "alice")),
    ("synchronize", lambda o: wp.pull_request_event(
        "synchronize", fake_like_repo(o), fake_like_pull(), INSTALLATION, "alice", before=BASE)),
    ("ready_for_review", lambda o: wp.pull_request_event(
        "ready_for_review", fake_like_repo(o), fake_like_pull(), INSTALLATION, "alice")),
    ("closed", lambda o: wp.pull_request_event(
        "closed", fake_like_repo(o), fake_like_pull(state="closed", merged=True, merge_commit_sha="c" * 40),
        INSTALLATION, "alice")),
    ("closed", lambda o: wp.pull_request_event(
        "closed", fake_like_repo(o), fake_like_pull(state="closed"), INSTALLATION, "alice")),
]


@pytest.mark.parametrize("owner_type", ["User", "Organization"])
@pytest.mark.parametrize(("action", "build"), PULL_CASES)
def test_pull_request_events_have_githubs_shape(action: str, build: Callable, owner_type: str) -> None:
    assert shape_mismatches("pull_request", action, build(owner_type)) == []


@pytest.mark.parametrize("owner_type", ["User", "Organization"])
@pytest.mark.parametrize("is_pull", [True, False])
@pytest.mark.parametrize("action", ["created", "edited", "deleted"])
def test_issue_comment_events_have_githubs_shape(action: str, is_pull: bool, owner_type: str) -> None:
    payload = wp.issue_comment_event(
        action, fake_like_repo(owner_type), 7, {"id": 5, "body": "tfbot plan"}, INSTALLATION, "alice",
        is_pull=is_pull, previous_body="tfbot plna",
    )
    assert shape_mismatches("issue_comment", action, payload) == []


@pytest.mark.parametrize("action", ["submitted", "dismissed"])
def test_pull_request_review_events_have_githubs_shape(action: str) -> None:
    payload = wp.pull_request_review_event(action, fake_like_repo(), fake_like_pull(), INSTALLATION, "bob")
    assert shape_mismatches("pull_request_review", action, payload) == []


def test_push_event_from_real_commits_has_githubs_shape(remote_repo: RemoteRepo) -> None:
    before = remote_repo.commit("main", {"main.tf": "# v1\n"}, "Initial")
    after = remote_repo.push_direct("main", {"main.tf": "# v2\n", "extra.tf": "\n"}, "Second")
    commits = remote_repo.commits_between(before, after)

    payload = wp.push_event(fake_like_repo("Organization"), "main", before, after, INSTALLATION, "alice", commits)

    assert shape_mismatches("push", None, payload) == []
    assert payload["ref"] == "refs/heads/main"
    assert payload["head_commit"]["id"] == after
    assert payload["head_commit"]["modified"] == ["main.tf"] and payload["head_commit"]["added"] == ["extra.tf"]
    assert payload["created"] is False and payload["deleted"] is False


def test_push_event_creating_a_branch_has_githubs_shape() -> None:
    payload = wp.push_event(fake_like_repo(), "refs/heads/new", ZERO_SHA, HEAD, INSTALLATION, "alice",
                            [{"id": HEAD, "message": "Start", "added": ["a.tf"]}])
    assert shape_mismatches("push", None, payload) == []
    assert payload["created"] is True and payload["compare"].endswith(f"/commit/{HEAD}")


def test_ping_event_has_githubs_shape() -> None:
    assert shape_mismatches("ping", None, wp.ping_event(hook_id=12, app_id=34)) == []


@pytest.mark.parametrize("action", ["created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"])
def test_installation_events_have_githubs_shape(action: str) -> None:
    payload = wp.installation_event(action, INSTALLATION, "acme", ["acme/infra", fake_like_repo()], sender="alice")
    assert shape_mismatches("installation", action, payload) == []


@pytest.mark.parametrize("owner_type", ["User", "Organization"])
@pytest.mark.parametrize("action", ["created", "completed", "rerequested", "requested_action"])
def test_check_run_events_have_githubs_shape(action: str, owner_type: str) -> None:
    repo = fake_like_repo(owner_type)
    pull = wp.pull_request(repo, 7, HEAD, "feature", BASE)
    run = wp.check_run(repo, 8_000_001, "tfbot/plan: network", HEAD, external_id="e1", pulls=[pull])
    payload = wp.check_run_event(action, repo, run, INSTALLATION, "bob",
                                 identifier="apply" if action == "requested_action" else None)
    assert shape_mismatches("check_run", action, payload) == []
    assert payload["check_run"]["pull_requests"][0]["number"] == 7
    if action == "requested_action":
        assert payload["requested_action"] == {"identifier": "apply"} and payload["sender"]["login"] == "bob"


def test_a_check_run_event_about_a_fake_check_run_has_githubs_shape(fake_github) -> None:
    from tests.support.github_fixtures import github_client_for

    fake_github.add_repo("acme/infra", "file:///nonexistent/acme/infra.git")
    fake_github.add_pull("acme/infra", head_ref="feature", head_sha=HEAD, base_sha=BASE, user="alice")
    made = github_client_for(fake_github).get_repo("acme/infra").create_check_run(
        "tfbot/plan: network", HEAD, conclusion="success", external_id="e1",
        actions=[{"label": "Apply", "identifier": "apply", "description": "Apply this project's plan"}])
    run = fake_github.check_run("acme/infra", made.id)
    # The repository as the other shape tests have it: the REST API's carries keys no event does.
    payload = wp.check_run_event("requested_action", fake_like_repo(), run, INSTALLATION, "bob", identifier="apply")
    assert shape_mismatches("check_run", "requested_action", payload) == []
    assert (payload["check_run"]["id"], payload["check_run"]["external_id"]) == (made.id, "e1")
    assert "actions" not in payload["check_run"]  # GitHub's events do not carry the buttons


def test_a_button_press_needs_its_identifier_and_only_it_has_one() -> None:
    run = wp.check_run(fake_like_repo(), 1, "n", HEAD)
    with pytest.raises(ValueError):
        wp.check_run_event("requested_action", fake_like_repo(), run, INSTALLATION, "bob")
    with pytest.raises(ValueError):
        wp.check_run_event("created", fake_like_repo(), run, INSTALLATION, "bob", identifier="apply")


def test_the_shape_check_catches_a_missing_and_an_invented_key() -> None:
    payload = wp.pull_request_event("opened", fake_like_repo(), fake_like_pull(), INSTALLATION, "alice")
    del payload["pull_request"]["head"]
    payload["repository"]["invented"] = True

    problems = shape_mismatches("pull_request", "opened", payload)

    assert "pull_request: missing ['head']" in problems
    assert "repository: keys GitHub never sends ['invented']" in problems


def test_the_shape_check_catches_a_wrong_value_type() -> None:
    payload = wp.pull_request_event("opened", fake_like_repo(), fake_like_pull(), INSTALLATION, "alice")
    payload["number"] = "7"
    assert any(p.startswith("number: type") for p in shape_mismatches("pull_request", "opened", payload))


def test_examples_load_for_the_events_the_bot_handles() -> None:
    for event in ("pull_request", "issue_comment", "ping", "installation", "pull_request_review", "push",
                  "check_run"):
        assert load_examples(event), event
    assert {e["action"] for e in load_examples("pull_request", "synchronize")} == {"synchronize"}


# ---- builder behaviour -------------------------------------------------------------

def test_caller_values_win_and_missing_keys_are_filled() -> None:
    repo = fake_like_repo()
    payload = wp.pull_request_event("opened", repo, fake_like_pull(), INSTALLATION, "alice")

    assert payload["repository"]["clone_url"] == repo["clone_url"]
    assert payload["repository"]["id"] == 99
    assert payload["repository"]["owner"]["login"] == "acme"
    assert payload["repository"]["owner"]["url"] == "https://api.github.com/users/acme"
    pull = payload["pull_request"]
    assert (pull["number"], pull["title"], pull["head"]["sha"], pull["base"]["sha"]) == (7, "Grow the fleet", HEAD, BASE)
    assert pull["head"]["repo"]["full_name"] == "acme/infra"
    assert payload["installation"]["id"] == INSTALLATION
    assert payload["sender"]["login"] == "alice"
    assert payload["number"] == 7


def test_synchronize_carries_before_and_after() -> None:
    payload = wp.pull_request_event("synchronize", fake_like_repo(), fake_like_pull(), INSTALLATION, "a", before=BASE)
    assert (payload["before"], payload["after"]) == (BASE, HEAD)


def test_synchronize_without_before_is_refused() -> None:
    with pytest.raises(ValueError, match="before"):
        wp.pull_request_event("synchronize", fake_like_repo(), fake_like_pull(), INSTALLATION, "a")


def test_inconsistent_pull_state_is_refused() -> None:
    with pytest.raises(ValueError, match="state 'closed'"):
        wp.pull_request_event("closed", fake_like_repo(), fake_like_pull(state="open"), INSTALLATION, "a")
    with pytest.raises(ValueError, match="merge_commit_sha"):
        wp.pull_request_event("closed", fake_like_repo(), fake_like_pull(state="closed", merged=True), INSTALLATION, "a")


def test_closed_without_state_defaults_to_closed() -> None:
    pull = fake_like_pull()
    del pull["state"]
    payload = wp.pull_request_event("closed", fake_like_repo(), pull, INSTALLATION, "a")
    assert payload["pull_request"]["state"] == "closed" and payload["pull_request"]["merged"] is False


def test_pull_without_head_sha_is_refused() -> None:
    with pytest.raises(ValueError, match="head.sha"):
        wp.pull_request_event("opened", fake_like_repo(), {"number": 1, "head": {"ref": "x"}, "base": {"sha": BASE}},
                              INSTALLATION, "a")


def test_pr_comment_is_told_apart_from_issue_comment() -> None:
    on_pr = wp.issue_comment_event("created", fake_like_repo(), 7, {"body": "tfbot apply"}, INSTALLATION, "alice")
    on_issue = wp.issue_comment_event("created", fake_like_repo(), 8, {"body": "x"}, INSTALLATION, "alice", is_pull=False)

    assert on_pr["issue"]["pull_request"]["url"].endswith("/repos/acme/infra/pulls/7")
    assert "pull_request" not in on_issue["issue"]
    assert on_pr["comment"]["body"] == "tfbot apply"
    assert on_pr["comment"]["user"]["login"] == "alice"
    assert on_pr["issue"]["number"] == 7


def test_edited_comment_carries_the_previous_body() -> None:
    payload = wp.issue_comment_event("edited", fake_like_repo(), 7, {"body": "new"}, INSTALLATION, "a", previous_body="old")
    assert payload["changes"] == {"body": {"from": "old"}}


def test_organization_is_added_only_for_organization_repositories() -> None:
    org = wp.pull_request_event("opened", fake_like_repo("Organization"), fake_like_pull(), INSTALLATION, "a")
    personal = wp.pull_request_event("opened", fake_like_repo("User"), fake_like_pull(), INSTALLATION, "a")
    assert org["organization"]["login"] == "acme"
    assert "organization" not in personal


def test_review_event_reviews_the_head_commit() -> None:
    payload = wp.pull_request_review_event("submitted", fake_like_repo(), fake_like_pull(), INSTALLATION, "bob")
    assert payload["review"]["commit_id"] == HEAD
    assert payload["review"]["state"] == "approved"
    assert payload["review"]["user"]["login"] == "bob"


def test_builders_do_not_alter_the_dicts_given() -> None:
    repo, pull = fake_like_repo(), fake_like_pull()
    before = json.dumps([repo, pull], sort_keys=True)
    wp.pull_request_event("opened", repo, pull, INSTALLATION, "a")
    assert json.dumps([repo, pull], sort_keys=True) == before
