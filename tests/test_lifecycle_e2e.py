"""The pull request lifecycle end to end: signed webhooks into `tfbot serve`, the fake GitHub, real git,
real Terraform and real Redis. Outcomes are read where users see them: comments, statuses, state files."""
from __future__ import annotations

import re
import textwrap

import pytest

from bot.models import LockState
from tests.support.scenario import REPO, SUMMARY_RE

pytestmark = pytest.mark.e2e


def lock_of(sc, dir_: str, workspace: str = "default"):
    return sc.lock(dir_, workspace)


def test_two_prs_lock_apply_on_merge_and_hand_over(make_scenario):
    sc = make_scenario()
    sc.init_main({
        "network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16"}),
        "dns/main.tf": sc.config_for("dns", {"zone": "example.com"}),
        "README.md": "infra\n",
    })
    for user, role in (("alice", "write"), ("bob", "write"), ("rita", "read")):
        sc.fake.set_permission(REPO, user, role)
    sc.start()

    # PR A changes network/: planned, status success, lock held.
    a = sc.open_pr("a-subnet", {"network/main.tf": sc.config_for(
        "network", {"vpc": "10.0.0.0/16", "subnet": "10.0.1.0/24"})}, author="alice", title="Add a subnet")
    plan_a = sc.wait_comment(a, lambda b: "Plan:" in b, what="A's plan")
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in plan_a
    assert "terraform_data.subnet" in plan_a and "network" in plan_a
    assert plan_a.count("\n#### ") == 1 and "`dns`" not in plan_a  # dns/ did not change: not a project of this PR
    assert sc.wait_status(sc.head(a), "tfbot/plan")["state"] == "success"
    lock = lock_of(sc, "network")
    assert lock is not None and lock.pull == a and lock.state == LockState.PLANNED

    # PR B changes network/ too: told it is locked by #A, and waits in line.
    b = sc.open_pr("b-peering", {"network/peering.tf": 'resource "terraform_data" "peering" {\n  input = "pcx-1"\n}\n'},
                   author="bob")
    locked = sc.wait_comment(b, lambda body: f"locked by #{a}" in body, what="B's locked notice")
    assert "@alice" in locked and "number 1 in line" in locked
    assert sc.wait_status(sc.head(b), "tfbot/plan")["state"] == "failure"
    assert lock_of(sc, "network").pull == a

    # A reader comments `apply` on A: refused, with who and why.
    sc.comment(a, "rita", "apply")
    refusal = sc.wait_comment(a, lambda body: "apply refused" in body, what="the refusal")
    assert "@rita" in refusal and "`read`" in refusal
    assert sc.state_resources("network") == {}

    # A is merged: applied, the state holds the new resources, A's lock is released and B is planned.
    sc.merge(a)
    applied = sc.wait_comment(a, lambda body: "Apply complete!" in body, what="A's apply")
    assert "Apply complete! Resources: 2 added, 0 changed, 0 destroyed." in applied
    assert sc.wait_status(sc.head(a), "tfbot/apply")["state"] == "success"
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "10.0.1.0/24"}

    plan_b = sc.wait_comment(b, lambda body: "Plan:" in body, what="B's automatic plan")
    assert f"#{a}" in plan_b  # the comment says why it was planned now
    # B is planned as it will merge: on top of main, which now holds A's subnet; so only the peering is added.
    assert "terraform_data.peering" in plan_b
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in plan_b
    assert "Planned as merged into `main`" in plan_b
    lock = lock_of(sc, "network")
    assert lock is not None and lock.pull == b and lock.state == LockState.PLANNED
    assert sc.wait_status(sc.head(b), "tfbot/plan")["state"] == "success"


def test_failed_apply_keeps_the_lock(make_scenario):
    sc = make_scenario()
    sc.init_main({"app/main.tf": sc.config_for("app", {"web": "v1"})})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    failing = textwrap.dedent("""
        resource "terraform_data" "migrate" {
          provisioner "local-exec" {
            command = "echo migration failed >&2; false"
          }
        }
    """)
    a = sc.open_pr("a-migrate", {"app/main.tf": sc.config_for("app", {"web": "v1"}, extra=failing)})
    sc.wait_comment(a, lambda b: "Plan:" in b)
    sc.merge(a)
    body = sc.wait_comment(a, lambda b: "apply" in b.lower() and "Error" in b, what="the failed apply")
    assert "migration failed" in body  # Terraform's error, verbatim
    assert "unlock" in body  # says what to do next
    assert sc.wait_status(sc.head(a), "tfbot/apply")["state"] == "failure"
    lock = lock_of(sc, "app")
    assert lock is not None and lock.pull == a and lock.state == LockState.APPLY_FAILED

    b = sc.open_pr("b-web", {"app/main.tf": sc.config_for("app", {"web": "v2"})}, author="bob")
    assert f"locked by #{a}" in sc.wait_comment(b, lambda body: "locked by" in body)


def test_stale_plan_at_merge_is_not_applied_blindly(make_scenario):
    sc = make_scenario()
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16"})})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    a = sc.open_pr("a-subnet", {"network/other.tf": 'resource "terraform_data" "subnet" {\n  input = "s1"\n}\n'})
    reviewed = sc.wait_comment(a, lambda b: "Plan:" in b)
    assert "Plan: 2 to add" in reviewed
    # Someone pushes straight to main in the same project after A's plan was reviewed.
    sc.remote.push_direct("main", {"network/dns.tf": 'resource "terraform_data" "resolver" {\n  input = "r1"\n}\n'})
    sc.merge(a)
    stale = sc.wait_comment(a, lambda b: "Nothing was applied" in b, what="the stale-plan notice")
    assert "terraform_data.resolver" in stale  # the merge commit's plan is shown
    assert sc.state_resources("network") == {}
    lock = lock_of(sc, "network")
    assert lock is not None and lock.pull == a and lock.state == LockState.PLAN_STALE

    # `apply` on the merged PR plans main's head for the project and applies it.
    sc.comment(a, "alice", "apply")
    done = sc.wait_comment(a, lambda b: "Apply complete!" in b, what="the apply of main")
    assert "Resources: 3 added" in done
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "s1", "resolver": "r1"}
    assert lock_of(sc, "network") is None


def test_a_fresh_plan_whose_outputs_differ_from_the_reviewed_plan_is_not_applied(make_scenario):
    """Outputs are part of what a plan applies: a plan of the merge commit that sets another output value is not
    the reviewed plan, even when its resource changes are the same."""
    sc = make_scenario()
    output = 'output "endpoint" {{\n  value = "{}"\n}}\n'
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16"}),
                  "network/outputs.tf": output.format("v1")})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    a = sc.open_pr("a-subnet", {"network/subnet.tf": 'resource "terraform_data" "subnet" {\n  input = "s1"\n}\n'})
    reviewed = sc.wait_comment(a, lambda b: "Plan:" in b)
    assert "Plan: 2 to add" in reviewed and '"v1"' in reviewed
    # Someone changes only the output's value straight on main after A's plan was reviewed.
    sc.remote.push_direct("main", {"network/outputs.tf": output.format("v2")})
    sc.merge(a)
    stale = sc.wait_comment(a, lambda b: "Nothing was applied" in b, what="the stale-plan notice")
    assert '"v2"' in stale  # the merge commit's plan is shown, with the output value it would set
    assert sc.state_resources("network") == {}
    lock = lock_of(sc, "network")
    assert lock is not None and lock.pull == a and lock.state == LockState.PLAN_STALE


def test_two_projects_plan_in_parallel(make_scenario, tmp_path):
    barrier = tmp_path / "host" / "barrier"  # the Scenario's directory that sandboxed runs may write
    barrier.mkdir(parents=True)
    rendezvous = tmp_path / "host" / "rendezvous.py"
    rendezvous.write_text(textwrap.dedent(f"""
        import os, pathlib, sys, time
        here = pathlib.Path({str(barrier)!r})
        me, other = sys.argv[1], sys.argv[2]
        (here / me).touch()
        deadline = time.monotonic() + 60
        while not (here / other).exists():
            if time.monotonic() > deadline:
                sys.exit(f"{{me}} never met {{other}}: the two plans did not run at the same time")
            time.sleep(0.05)
    """))
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    import sys

    for me, other in (("one", "two"), ("two", "one")):
        (workflows / f"meet-{me}.yaml").write_text(
            f"plan:\n  steps:\n    - init\n    - workspace\n    - run: [{sys.executable!r}, {str(rendezvous)!r}, {me}, {other}]\n"
            "    - plan\n    - show\napply:\n  steps: [init, apply]\n")
    sc = make_scenario(workers=2, extra_settings={"workflows_dir": str(workflows)}, repo_settings={"projects": [
        {"name": "one", "dir": "one", "workflow": "meet-one"}, {"name": "two", "dir": "two", "workflow": "meet-two"}]})
    sc.init_main({"one/main.tf": sc.config_for("one", {"a": "1"}), "two/main.tf": sc.config_for("two", {"b": "1"})})
    sc.start()
    pr = sc.open_pr("both", {"one/main.tf": sc.config_for("one", {"a": "2"}),
                             "two/main.tf": sc.config_for("two", {"b": "2"})})
    body = sc.wait_comment(pr, lambda b: "Plan:" in b or "failed" in b)
    assert "never met" not in body
    assert body.count("\n#### Planned") == 2, body
    assert sc.wait_status(sc.head(pr), "tfbot/plan")["description"].startswith("2 projects")


def test_a_70000_character_plan_is_split_into_valid_comments(make_scenario):
    sc = make_scenario()
    sc.init_main({"big/main.tf": sc.config_for("big", {"seed": "0"})})
    sc.start()
    resources = {f"r{i:03d}": f"{i:03d}-" + "x" * 1200 for i in range(60)}
    pr = sc.open_pr("big", {"big/main.tf": sc.config_for("big", resources)})
    sc.wait_status(sc.head(pr), "tfbot/plan")
    bodies = [b for b in sc.bot_comments(pr) if "tfbot:" in b]
    assert len(bodies) >= 2, [len(b) for b in bodies]
    assert sum(len(b) for b in bodies) > 70_000
    for body in bodies:
        assert len(body) <= 65_536
        fences = re.findall(r"^(`{3,})", body, flags=re.MULTILINE)
        assert len(fences) % 2 == 0, "a code fence was left open in one part"
    joined = "".join(bodies)
    for i in range(60):
        assert f"terraform_data.r{i:03d}" in joined
