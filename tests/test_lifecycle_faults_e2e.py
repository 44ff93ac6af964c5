"""The lifecycle off the straight path, end to end (issue: the promise holds off the happy path).

Each test is one kind of fault that tfbot once had: closing an applied PR, merging before the first plan,
merging into another branch, a no-op plan holding a lock, a push that stops touching a project. Real
tfbot serve, real Terraform on `terraform_data`, real git, the fake GitHub.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from bot.models import LockState
from tests.support.scenario import REPO
from tests.support.scenario_fixtures import network_files as net
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def sc(network_scenario):
    return network_scenario


def test_closing_an_applied_pr_keeps_its_lock_flagged_and_tells_both_prs(sc):
    sc.start()
    first = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(first, lambda b: "Plan: 2 to add" in b)
    second = sc.open_pr("other", net(sc, nat="b"), author="bob")
    sc.wait_comment(second, lambda b: "is locked by #1" in b)
    sc.comment(first, "mo", "tfbot apply")
    sc.wait_comment(first, lambda b: "Apply complete!" in b)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}

    sc.close(first)
    sc.wait_comment(first, lambda b: "closed without merging, but it applied changes" in b)
    sc.wait_comment(second, lambda b: "stays with #1" in b)
    sc.wait_idle()
    lock = sc.lock("network")
    assert lock is not None and lock.pull == first and lock.diverged  # kept, not handed to #2
    assert not any("Plan: " in b and "destroy" in b for b in sc.bot_comments(second))

    # A writer's unlock is refused; an admin's unlock needs a reason, which goes to the audit trail.
    sc.comment(first, "alice", "tfbot unlock")
    sc.wait_comment(first, lambda b: "not unlocked" in b and "default branch differ because of this PR" in b)
    assert sc.lock("network").pull == first
    cli = [sys.executable, "-m", "bot", "unlock", REPO, "network", "--config", str(sc.tmp / "config.yaml")]
    refused = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "reason" in refused.stderr + refused.stdout
    assert sc.lock("network").pull == first
    done = subprocess.run([*cli, "--reason", "reverted by hand in the console"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout
    wait_for(lambda: (sc.lock("network") or None) and sc.lock("network").pull == second, timeout=60,
             message="the lock handed to #2")
    audit = subprocess.run([sys.executable, "-m", "bot", "audit", "--config", str(sc.tmp / "config.yaml")],
                           capture_output=True, text=True, timeout=60)
    assert "reverted by hand in the console" in audit.stdout


def test_a_pr_merged_before_its_first_plan_is_planned_and_asks_for_apply(sc):
    sc.start()
    pr = sc.open_pr("quick", net(sc, subnet="a"), send=False)  # opened while tfbot did not hear of it
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "Plan is stale" in b or "comment `apply`" in b, what="the ask")
    assert "no plan of this pr's final head was shown" in body.lower() and "Plan: 2 to add" in body
    lock = sc.lock("network")
    assert lock is not None and lock.pull == pr and lock.state == LockState.PLAN_STALE
    assert sc.state_resources("network") == {}  # nothing applied unreviewed
    sc.comment(pr, "alice", "tfbot apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}
    wait_for(lambda: sc.lock("network") is None, timeout=30, message="the lock released")


def test_a_merge_into_another_branch_applies_nothing_and_takes_no_lock(sc):
    sc.remote.commit("dev", {"README.md": "dev branch\n"}, "Start dev", parent_branch="main")
    sc.start()
    pr = sc.open_pr("feature", net(sc, subnet="dev"), base="dev")
    body = sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b or "Plan: 1 to add" in b)
    assert "not a branch tfbot applies" in body and "tfbot apply" not in body.split("not a branch")[1]
    assert sc.lock("network") is None
    sc.comment(pr, "alice", "tfbot apply")
    sc.wait_idle()
    sc.merge(pr)
    sc.wait_idle()
    assert sc.state_resources("network") == {}
    assert sc.lock("network") is None


def test_a_plan_without_changes_does_not_hold_the_lock(make_scenario):
    sc = make_scenario()
    empty = sc.config_for("network", {})  # a root with nothing in it yet: its plan changes nothing
    sc.init_main({"network/main.tf": empty})
    sc.start()
    noop = sc.open_pr("comment", {"network/main.tf": empty + "# a comment\n"})
    body = sc.wait_comment(noop, lambda b: "No changes." in b)
    assert "the lock is not kept" in body
    assert sc.lock("network") is None
    real = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"subnet": "a"})}, author="bob")
    sc.wait_comment(real, lambda b: "Plan: 1 to add" in b)  # not blocked behind the no-op
    assert sc.lock("network").pull == real
    sc.merge(noop)  # merged without a lock while #2 holds it: it waits in line, and says so
    sc.wait_comment(noop, lambda b: "merged while #2 holds the lock" in b)
    sc.close(real)  # the lock comes to #1: the default branch is planned, nothing to apply, the lock is let go
    sc.wait_comment(noop, lambda b: "Nothing to apply" in b)
    wait_for(lambda: sc.lock("network") is None, timeout=30, message="the lock released")
    assert sc.state_resources("network") == {}


def test_a_push_that_stops_touching_a_project_releases_its_lock(sc):
    files = {**net(sc), "app/main.tf": sc.config_for("app", {"svc": "v1"})}
    sc.remote.commit("main", files, "Add app")
    sc.start()
    pr = sc.open_pr("both", {**net(sc, subnet="a"), "app/main.tf": sc.config_for("app", {"svc": "v2"})})
    sc.wait_comment(pr, lambda b: "network" in b and "app" in b and "Plan:" in b)
    assert sc.lock("app").pull == pr and sc.lock("network").pull == pr
    sc.push(pr, {"app/main.tf": sc.config_for("app", {"svc": "v1"})})  # back to what main holds
    body = sc.wait_comment(pr, lambda b: "Released the lock of `app`" in b)
    assert "no longer changes it" in body
    assert sc.lock("app") is None and sc.lock("network").pull == pr


def test_a_busy_project_does_not_hold_a_worker(make_scenario, tmp_path):
    """Two workers, one project's plan stuck at a gate and a second plan of it queued: other repos' projects
    are still planned at once, because the queued job is deferred instead of waiting inside a worker."""
    from tests.support.gated import gated_workflow

    workflows, waiting, gate = gated_workflow(tmp_path)
    sc = make_scenario(workers=2, extra_settings={"workflows_dir": str(workflows)},
                       repo_settings={"projects": [{"dir": "network", "workflow": "gated"}, {"dir": "app"}]})
    sc.init_main({**net(sc), "app/main.tf": sc.config_for("app", {"svc": "v1"})})
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="1"))
    wait_for(waiting.exists, message="the first plan to wait at the gate")
    second = sc.push(pr, net(sc, subnet="2"))  # a second plan of the busy project
    wait_for(lambda: sc.plan_jobs(pr) >= 2, message="the second plan to be queued")
    other = sc.open_pr("app", {"app/main.tf": sc.config_for("app", {"svc": "v2"})}, author="bob")
    sc.wait_comment(other, lambda b: "Plan: 1 to add" in b, timeout=60)  # not stuck behind `network`
    assert not gate.exists()
    gate.touch()
    sc.wait_comment(pr, lambda b: (b.find(second[:7]) >= 0) and "Plan: 2 to add" in b)
    assert "deferred" in sc.logs()


def test_retargeting_a_pr_replans_it_against_its_new_base_and_lets_go_of_the_lock(sc):
    sc.remote.commit("dev", {"README.md": "dev branch\n"}, "Start dev", parent_branch="main")
    sc.start()
    pr = sc.open_pr("grow", net(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    assert sc.lock("network").pull == pr
    sc.retarget(pr, "dev")
    body = sc.wait_comment(pr, lambda b: "base branch changed to `dev`" in b)
    assert "Released the lock of `network`" in body and "not a branch tfbot applies" in body
    assert sc.lock("network") is None


def test_a_pr_that_deletes_a_root_is_told_that_nothing_is_destroyed(sc):
    sc.start()
    pr = sc.open_pr("drop", {"network/main.tf": None})
    body = sc.wait_comment(pr, lambda b: "deletes the Terraform root `network`" in b)
    assert "destroys nothing" in body
    sc.wait_idle()
    assert sc.lock("network") is None


def test_a_fork_pr_is_only_ever_planned_on_the_commit_a_writer_approved(make_scenario):
    import time

    from tests.support import webhook_payloads as wp
    from tests.support.scenario import INSTALLATION

    sc = make_scenario(repo_settings={"allow_fork_prs": True})
    sc.init_main(net(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("fork", net(sc, subnet="ok"), author="mallory", fork=True)
    sc.wait_comment(pr, lambda b: "write access" in b)
    time.sleep(1.1)
    sc.comment(pr, "alice", "plan")  # approves the head as it is now
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b and '"ok"' in b)

    # A comment written before a push, delivered after it, does not approve the pushed code.
    early = sc.fake.add_comment(REPO, pr, "alice", "plan")
    time.sleep(1.1)
    evil = sc.push(pr, net(sc, subnet="evil"), author="mallory")
    sc.wait_idle()
    sc.send("issue_comment", wp.issue_comment_event("created", sc.fake.repo_payload(REPO), pr, early, INSTALLATION,
                                                    "alice", issue=sc.fake.issue_payload(REPO, pr)))
    sc.wait_comment(pr, lambda b: "was pushed after your comment" in b)
    # `apply` on the moved head asks for a plan; the re-plan refuses the unapproved head.
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "not the commit a writer approved" in b)
    sc.wait_idle()
    assert not any('"evil"' in b for b in sc.bot_comments(pr))
    assert sc.state_resources("network") == {}
    assert evil
