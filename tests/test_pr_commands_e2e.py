"""PR comments and PR events end to end: supersede, outdated comments, apply before merge, requirements,
unlock, close, drafts, forks. Same real parts as test_lifecycle_e2e."""
from __future__ import annotations

import pytest

from bot.models import LockState
from bot.render.comments import marker_of
from tests.support.gated import gated_workflow
from tests.support.scenario import REPO
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e


def lock_of(sc, dir_: str, workspace: str = "default"):
    return sc.lock(dir_, workspace)


def net(sc, **resources: str) -> dict[str, str]:
    return {"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16", **resources})}


@pytest.fixture
def sc(make_scenario):
    scenario = make_scenario()
    scenario.init_main(net(scenario))
    for user, role in (("alice", "write"), ("bob", "write"), ("rita", "read"), ("mo", "maintain")):
        scenario.fake.set_permission(REPO, user, role)
    return scenario


def test_a_push_replans_and_hides_the_previous_plan_as_outdated(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    second_sha = sc.push(pr, net(sc, subnet="a", nat="b"))
    sc.wait_comment(pr, lambda b: "Plan: 3 to add" in b)
    assert sc.wait_status(second_sha, "tfbot/plan")["state"] == "success"
    ours = [c for c in sc.fake.comments(REPO, pr) if c["user"] == sc.fake.bot_login]
    assert [(c["minimized"], c["minimized_reason"]) for c in ours] == [(True, "OUTDATED"), (False, None)]
    assert "Plan: 2 to add" in ours[0]["body"]  # hidden as it was, not rewritten


def test_with_hide_previous_off_the_previous_plan_stays_open_under_a_banner(make_scenario):
    sc = make_scenario(extra_settings={"comments": {"hide_previous": False}})
    sc.init_main(net(sc))
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    second_sha = sc.push(pr, net(sc, subnet="a", nat="b"))
    sc.wait_comment(pr, lambda b: "Plan: 3 to add" in b)
    comments = sc.bot_comments(pr)
    kinds = [(marker_of(b) or {}).get("kind") for b in comments]
    assert kinds == ["plan-outdated", "plan"], kinds
    assert second_sha[:7] in comments[0]  # the outdated note points at the newer plan
    assert not any(c["minimized"] for c in sc.fake.comments(REPO, pr))


def test_apply_before_merge_keeps_the_lock_until_merge(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    command = sc.comment(pr, "mo", "tfbot apply")
    body = sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    assert "Resources: 2 added" in body
    assert [r["content"] for r in sc.fake.reactions(REPO, command["id"])] == ["eyes"]
    assert sc.wait_status(sc.head(pr), "tfbot/apply")["state"] == "success"
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}
    lock = lock_of(sc, "network")
    assert lock.pull == pr and lock.state == LockState.APPLIED  # main does not have the change yet

    sc.merge(pr)
    # The merge holds what was applied: no plan of main needed to prove it.
    sc.wait_comment(pr, lambda b: "already matches the default branch" in b)
    assert lock_of(sc, "network") is None
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}


def test_apply_of_a_plan_older_than_the_head_is_refused_and_replanned(make_scenario):
    sc = make_scenario(repo_settings={"projects": [{"dir": "network", "autoplan": False}]})
    sc.init_main(net(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_idle()
    assert sc.bot_comments(pr) == []  # autoplan is off for this project
    sc.comment(pr, "alice", "plan")
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.push(pr, net(sc, subnet="b"))
    sc.wait_idle()
    sc.comment(pr, "alice", "apply")
    stale = sc.wait_comment(pr, lambda b: "nothing was applied" in b)
    assert "tfbot is planning the head now" in stale
    sc.wait_comment(pr, lambda b: (marker_of(b) or {}).get("sha") == sc.head(pr) and "Plan: 2 to add" in b)
    assert sc.state_resources("network") == {}
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "b"}


def test_apply_requirement_approved(make_scenario):
    sc = make_scenario(repo_settings={"apply_requirements": ["approved"]})
    sc.init_main(net(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.comment(pr, "alice", "apply")
    refused = sc.wait_comment(pr, lambda b: "approving review" in b)
    assert sc.head(pr)[:8] in refused
    assert sc.state_resources("network") == {}
    sc.fake.set_permission(REPO, "rita", "read")
    sc.fake.add_review(REPO, pr, "rita", "APPROVED", commit_id=sc.head(pr))  # read access: does not count
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "`rita`" in b and "do not count" in b)
    assert sc.state_resources("network") == {}
    sc.fake.set_permission(REPO, "bob", "write")
    sc.fake.add_review(REPO, pr, "bob", "APPROVED", commit_id=sc.head(pr))
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)


def test_apply_on_a_draft_is_refused_and_says_why(sc):
    sc.start()
    pr = sc.open_pr("wip", net(sc, subnet="a"), draft=True)
    sc.comment(pr, "alice", "plan")
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.comment(pr, "alice", "apply")
    refused = sc.wait_comment(pr, lambda b: "is a draft" in b)
    assert "ready for review" in refused
    assert sc.state_resources("network") == {}


def test_a_directory_with_a_space_is_named_with_quotes(sc):
    sc.start()
    files = {"core net/main.tf": sc.config_for("core net", {"vpc": "10.1.0.0/16"})}
    pr = sc.open_pr("spaced", files, draft=True)  # not autoplanned: only the comment plans it
    sc.comment(pr, "alice", 'plan -d "core net"')
    assert "`core net`" in sc.wait_comment(pr, lambda b: "Plan: 1 to add" in b)
    sc.comment(pr, "alice", "plan -d 'core  net'")
    assert "matches `-d 'core  net'`" in sc.wait_comment(pr, lambda b: "nothing to plan" in b)


def test_unlock_needs_write_and_hands_the_lock_to_the_next_pr(sc):
    sc.start()
    a = sc.open_pr("a", net(sc, subnet="a"))
    sc.wait_comment(a, lambda b: "Plan:" in b)
    b = sc.open_pr("b", net(sc, peering="p"), author="bob")
    sc.wait_comment(b, lambda body: f"locked by #{a}" in body)

    sc.comment(a, "rita", "unlock")
    assert "@rita" in sc.wait_comment(a, lambda body: "unlock refused" in body)
    assert lock_of(sc, "network").pull == a

    sc.comment(a, "bob", "unlock")
    assert "@bob unlocked `network`" in sc.wait_comment(a, lambda body: "unlocked" in body)
    sc.wait_comment(b, lambda body: "Plan:" in body and f"#{a}" in body)
    assert lock_of(sc, "network").pull == b


def test_closing_unmerged_releases_the_lock_and_plans_the_next(sc):
    sc.start()
    a = sc.open_pr("a", net(sc, subnet="a"))
    sc.wait_comment(a, lambda b: "Plan:" in b)
    b = sc.open_pr("b", net(sc, peering="p"), author="bob")
    sc.wait_comment(b, lambda body: "locked by" in body)
    sc.close(a)
    sc.wait_comment(b, lambda body: "Plan:" in body)
    assert lock_of(sc, "network").pull == b
    assert sc.state_resources("network") == {}  # nothing applied for a closed PR


def test_drafts_are_not_planned_and_forks_are_refused(sc):
    sc.start()
    draft = sc.open_pr("draft", net(sc, subnet="d"), draft=True)
    fork = sc.open_pr("fork", net(sc, subnet="f"), author="mallory", fork=True)
    refusal = sc.wait_comment(fork, lambda b: "fork" in b)
    assert "allow_fork_prs" in refusal
    sc.comment(fork, "alice", "plan")  # a writer cannot override the policy from a comment either
    sc.wait_idle()
    assert sc.bot_comments(draft) == []
    assert not any("Plan:" in b for b in sc.bot_comments(fork))
    assert lock_of(sc, "network") is None
    sc.ready_for_review(draft)  # out of draft: planned now
    sc.wait_comment(draft, lambda b: "Plan:" in b)


def test_a_reopened_pr_is_planned_again_and_takes_the_lock(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan:" in b)
    sc.close(pr)
    wait_for(lambda: lock_of(sc, "network") is None, message="the lock to be released")
    sc.reopen(pr)
    wait_for(lambda: sum("Plan:" in b for b in sc.bot_comments(pr)) == 2, message="a second plan")
    wait_for(lambda: lock_of(sc, "network") is not None, message="the lock to be taken again")


def test_help_and_unknown_commands_get_the_help_text(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan:" in b)
    sc.comment(pr, "rita", "tfbot help")
    assert "unlock" in sc.wait_comment(pr, lambda b: (marker_of(b) or {}).get("kind") == "help")
    sc.comment(pr, "rita", "tfbot apply; rm -rf /")
    sc.wait_comment(pr, lambda b: "could not run that" in b)
    sc.comment(pr, "rita", "plan looks good to me")  # conversation: ignored
    sc.wait_idle()
    assert sum(1 for b in sc.bot_comments(pr) if "could not run that" in b) == 1


def test_a_newer_push_supersedes_a_queued_plan(make_scenario, tmp_path):
    """Plans of one project queue behind each other; one whose head is no longer the PR's head is dropped."""
    workflows, _, gate = gated_workflow(tmp_path)
    sc = make_scenario(workers=3, extra_settings={"workflows_dir": str(workflows)},
                       repo_settings={"projects": [{"dir": "network", "workflow": "gated"}]})
    sc.init_main(net(sc))
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="1"))
    conn = sc.redis()
    guard = "tfbot:guard:acme/infra:default:network"
    wait_for(lambda: conn.exists(guard), message="the first plan to hold the run guard")
    second = sc.push(pr, net(sc, subnet="2"))
    wait_for(lambda: sc.plan_jobs(pr) >= 2, message="the second plan to be queued")
    third = sc.push(pr, net(sc, subnet="3"))
    wait_for(lambda: conn.hget(f"tfbot:pr:{REPO}:{pr}", "head_sha") == third.encode(), message="the third push")
    gate.touch()
    sc.wait_comment(pr, lambda b: (marker_of(b) or {}).get("sha") == third and "Plan:" in b)
    sc.wait_idle()
    shas = [(marker_of(b) or {}).get("sha") for b in sc.bot_comments(pr)]
    assert second not in shas, "the superseded plan of the second push was reported"
    assert sc.fake.latest_status(REPO, second, "tfbot/plan")["state"] == "error"
    assert sc.fake.latest_status(REPO, third, "tfbot/plan")["state"] == "success"


def test_a_pr_merged_while_waiting_is_planned_not_applied_when_the_lock_comes(sc):
    sc.start()
    a = sc.open_pr("a", net(sc, subnet="a"))
    sc.wait_comment(a, lambda b: "Plan:" in b)
    b = sc.open_pr("b", net(sc, peering="p"), author="bob")
    sc.wait_comment(b, lambda body: "locked by" in body)
    sc.merge(b)  # merged without a plan, e.g. no branch protection on tfbot/plan
    assert "nothing was applied yet" in sc.wait_comment(b, lambda body: "merged while #1 holds the lock" in body)
    sc.close(a)
    stale = sc.wait_comment(b, lambda body: "no plan of this pr's final head was shown" in body.lower())
    assert "terraform_data.peering" in stale
    assert sc.state_resources("network") == {}
    assert lock_of(sc, "network").pull == b
    sc.comment(b, "bob", "apply")
    sc.wait_comment(b, lambda body: "Apply complete!" in body)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "peering": "p"}
    assert lock_of(sc, "network") is None


def test_apply_is_refused_when_main_changed_the_project_since_the_plan(sc):
    sc.start()
    pr = sc.open_pr("grow", {"network/subnet.tf": 'resource "terraform_data" "subnet" {\n  input = "s"\n}\n'})
    assert "Plan: 2 to add" in sc.wait_comment(pr, lambda b: "Plan:" in b)
    # Someone changes the same project on main without a PR (the lock does not stop a direct push).
    sc.remote.push_direct("main", {"network/dns.tf": 'resource "terraform_data" "dns" {\n  input = "d"\n}\n'})
    sc.comment(pr, "alice", "apply")
    stale = sc.wait_comment(pr, lambda b: "changed this project since the plan" in b)
    assert "nothing was applied" in stale
    assert sc.state_resources("network") == {}
    replanned = sc.wait_comment(pr, lambda b: "Plan: 3 to add" in b)  # main's dns is part of the new plan
    assert "planned this again" in replanned
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "Apply complete! Resources: 3 added" in b)


def test_a_pr_that_conflicts_with_main_is_planned_on_its_head_and_says_so(sc):
    sc.start()
    a = sc.open_pr("a", net(sc, subnet="a"))
    sc.wait_comment(a, lambda b: "Plan:" in b)
    b = sc.open_pr("b", net(sc, other="o"), author="bob")  # branched before #a merged; same lines of main.tf
    sc.wait_comment(b, lambda body: "locked by" in body)
    sc.merge(a)
    body = sc.wait_comment(b, lambda x: "Plan:" in x)
    assert "conflicts with `main`" in body and "planned on its head alone" in body


def test_a_head_pushed_after_the_reviewed_plan_is_never_applied_at_merge(make_scenario):
    sc = make_scenario(repo_settings={"projects": [{"dir": "network", "autoplan": False}]})
    sc.init_main(net(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("size", net(sc, size="small"))
    sc.comment(pr, "alice", "plan")
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.push(pr, net(sc, size="huge"))  # same resources, another value; no plan of this head is shown
    sc.wait_idle()
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "Nothing was applied" in b)
    assert "no plan of this pr's final head was shown" in body.lower() and '"huge"' in body
    assert sc.state_resources("network") == {}


def test_two_apply_comments_apply_once_and_raise_no_false_alarm(sc):
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.comment(pr, "alice", "apply")
    sc.comment(pr, "alice", "tfbot apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    sc.wait_comment(pr, lambda b: "already applied" in b)
    sc.merge(pr)
    sc.wait_comment(pr, lambda b: "already matches the default branch" in b)
    bodies = sc.bot_comments(pr)
    assert sum("Apply complete!" in b for b in bodies) == 1
    assert not any("security event" in b for b in bodies)
    from bot.state import audit
    assert [e.outcome for e in audit.entries(sc.redis(), REPO) if e.action == "apply"] == ["ok"]
    assert lock_of(sc, "network") is None


def test_a_failure_inside_tfbot_is_told_on_the_pr(sc):
    from tests.support import webhook_payloads as wp
    from tests.support.scenario import INSTALLATION

    sc.start()
    sha = sc.remote.commit("ghost", net(sc, subnet="g"), "A head GitHub has no pull ref for", parent_branch="main")
    pull = sc.fake.add_pull(REPO, head_ref="ghost", user="alice", head_sha=sha)  # refs/pull/N/head is missing
    sc.send("pull_request", wp.pull_request_event("opened", sc.fake.repo_payload(REPO),
                                                  sc.fake.pull_payload(REPO, pull["number"]), INSTALLATION, "alice"))
    body = sc.wait_comment(pull["number"], lambda b: "tfbot could not" in b)
    assert "CheckoutError" in body and "Comment `plan` to try again" in body
