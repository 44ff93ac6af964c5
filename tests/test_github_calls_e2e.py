"""How many requests tfbot makes of GitHub, counted by the fake GitHub's request log (REST and GraphQL).

A real `tfbot serve` plans and applies one single-project PR. The counts are ceilings (issue 16, part 5): the day a
change adds a call, these tests fail and print every request tfbot made, so the new one can be seen and justified.
"""
from __future__ import annotations

import pytest

from tests.support.fake_github_state import RecordedRequest
from tests.support.scenario import SUMMARY_RE
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e

# One plan, from `pull_request opened` to the plan comment, its check run and its status: the check run made
# in_progress (REST), the comment and the completed check run (one GraphQL request), the status (REST).
PLAN_CEILING = 3
# A whole PR: open -> plan -> `apply` comment -> applied -> merge -> lock released: the target, 10. What they
# are: the plan (3); the apply comment's reaction, GitHub's view of the PR (its head, draft and mergeability, which a
# comment event does not carry) and the commenter's permission (3); the apply's check run made in_progress, its
# comment with the completed check run in one GraphQL request, and its status (3); the merge's comment (1): the
# merge commit holds the project as it was applied, so no plan of the default branch is needed to prove the state
# matches it, and a merged head's checks gate nothing, so no check run or status is written for it. No pending
# status anywhere: check runs show every run in progress, and no commit had an earlier status of the same context.
LIFECYCLE_CEILING = 10


def started(sc):
    """`sc` started, its startup recovery pass (redelivery, reconciliation: requests no PR causes) over, and the
    request log emptied. That pass mints the installation token the workers then share through Redis: a PR that
    mints another shows up in the count."""
    sc.start()
    wait_for(lambda: "reconciliation:" in sc.logs(), timeout=60, message="serve's startup recovery pass")
    sc.fake.reset_requests()
    return sc


def listing(requests: list[RecordedRequest]) -> str:
    return "\n".join(f"  {i + 1:2}. {r.method:6} {r.path} -> {r.status}"
                     + (f"  {summary(r)}" if summary(r) else "") for i, r in enumerate(requests))


def summary(r: RecordedRequest) -> str:
    """What a write said, in a few words: a check run's status, a status's state, a GraphQL mutation's name."""
    body = r.body if isinstance(r.body, dict) else {}
    if r.path == "/graphql":
        return str(body.get("query", ""))[:60].replace("\n", " ")
    return " ".join(f"{k}={body[k]}" for k in ("status", "conclusion", "state", "content") if k in body)


def assert_at_most(requests: list[RecordedRequest], ceiling: int, what: str) -> None:
    assert len(requests) <= ceiling, (
        f"{what}: {len(requests)} GitHub requests, more than {ceiling}:\n{listing(requests)}")


def test_one_plan_costs_at_most_three_requests(network_scenario):
    sc = started(network_scenario)
    number = sc.open_pr("subnet", {"network/main.tf": sc.config_for(
        "network", {"vpc": "10.0.0.0/16", "subnet": "10.0.1.0/24"})})
    plan = sc.wait_comment(number, lambda b: bool(SUMMARY_RE.search(b)), what="the plan")
    assert "Plan: 2 to add" in plan  # main was never applied: vpc and subnet
    head = sc.head(number)
    assert sc.wait_check_run(head, "tfbot/plan: network")["conclusion"] == "success"
    assert sc.wait_status(head, "tfbot/plan")["state"] == "success"
    sc.wait_idle()
    made = sc.fake.requests
    assert_at_most(made, PLAN_CEILING, "one single-project plan")


def test_a_whole_pull_request_costs_at_most_ten_requests(network_scenario):
    sc = started(network_scenario)
    number = sc.open_pr("subnet", {"network/main.tf": sc.config_for(
        "network", {"vpc": "10.0.0.0/16", "subnet": "10.0.1.0/24"})})
    sc.wait_comment(number, lambda b: bool(SUMMARY_RE.search(b)), what="the plan")
    sc.wait_idle()
    sc.comment(number, "alice", "apply")
    sc.wait_comment(number, lambda b: "Apply complete!" in b, what="the apply")
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "10.0.1.0/24"}
    sc.wait_idle()
    sc.merge(number)
    sc.wait_comment(number, lambda b: "already matches the default branch" in b, what="the merge's check of main")
    sc.wait_idle()
    made = sc.fake.requests
    assert sc.lock("network") is None
    assert_at_most(made, LIFECYCLE_CEILING, "a whole single-project PR")
