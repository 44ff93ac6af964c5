"""A merge and the files it brings: the lock of an applied PR is released without planning the merge commit, and a
reviewed plan is applied as it is on merge, only when the merge commit's files are exactly those the plan was made
from (bot/lifecycle/targets.py `same_tree`); otherwise the merge commit is planned and the PR asked, even when the
change is a file outside the project's dir that it reads (declared in `when_modified` or not). Real git, real
Terraform, fake GitHub, `tfbot serve`."""
from __future__ import annotations

import pytest

from tests.support.scenario import REPO
from tests.support.scenario_fixtures import network_files

pytestmark = pytest.mark.e2e


@pytest.fixture
def sc(network_scenario):
    return network_scenario


def runs_of(sc, pr: int) -> list[str]:
    """The audit trail's plan and apply runs of PR `pr`, oldest first."""
    from bot.state import audit
    return [e.action for e in reversed(list(audit.entries(sc.redis(), REPO))) if e.pull == pr
            and e.action in ("plan", "apply")]


def applied_pr(sc) -> int:
    """A PR growing the network by a subnet, planned and applied; its lock stays "applied, awaiting merge"."""
    sc.start()
    pr = sc.open_pr("grow", network_files(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.comment(pr, "mo", "tfbot apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    sc.wait_idle()
    return pr


def test_a_merge_holding_what_was_applied_releases_the_lock_without_planning_main(sc):
    pr = applied_pr(sc)
    head = sc.head(pr)
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "exactly those this PR's apply was planned from" in b)
    assert "already matches the default branch" in body
    sc.wait_idle()
    assert sc.lock("network") is None
    assert runs_of(sc, pr) == ["plan", "apply"]  # no plan of the merge commit
    # The merged head's checks gate nothing now: no check run or status says "nothing to apply" on it.
    assert [c["status"] for c in sc.check_runs(head, "tfbot/apply: network")] == ["completed"]  # the apply's
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}


def test_a_merge_after_main_moved_elsewhere_plans_main_to_prove_it(sc):
    """A root may read any file: once main holds anything the apply was not planned from, only a plan proves the
    infrastructure matches it."""
    pr = applied_pr(sc)
    sc.remote.push_direct("main", {"README.md": "Network of acme.\n"})
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "already matches the default branch" in b)
    assert "planned from" not in body
    sc.wait_idle()
    assert sc.lock("network") is None
    assert runs_of(sc, pr) == ["plan", "apply", "plan"]


def test_a_merge_bringing_more_of_the_project_than_was_applied_plans_main_and_asks(sc):
    pr = applied_pr(sc)
    # main gains a resource in the project after the apply: the merge holds more than what was applied.
    sc.remote.push_direct("main", {"network/extra.tf": 'resource "terraform_data" "extra" {\n  input = "x"\n}\n'})
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "the default branch holds more than what this pr applied" in b.lower())
    assert "Plan: 1 to add" in body
    sc.wait_idle()
    lock = sc.lock("network")
    assert lock is not None and lock.pull == pr and lock.diverged
    assert runs_of(sc, pr) == ["plan", "apply", "plan"]
    assert "extra" not in sc.state_resources("network")


# The project reads a file outside its dir: Terraform sees its content, the project's dir and modules do not.
READS_SHARED = 'resource "terraform_data" "cidrs" {\n  input = trimspace(file("${path.module}/../shared/cidrs.txt"))\n}\n'

TFBOT_YAML = """\
projects:
  - name: network
    dir: network
    when_modified: ["*.tf", "../shared/*.txt"]
"""


def files(sc, *, cidrs: str = "10.0.0.0/8", **resources: str) -> dict[str, str]:
    return {"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16", **resources}, READS_SHARED),
            "shared/cidrs.txt": cidrs + "\n"}


def applied_reading_shared(sc) -> int:
    pr = sc.open_pr("grow", {"network/main.tf": files(sc, subnet="a")["network/main.tf"]})
    sc.wait_comment(pr, lambda b: "Plan: 3 to add" in b)
    sc.comment(pr, "mo", "tfbot apply")
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    sc.wait_idle()
    assert sc.state_resources("network")["cidrs"] == "10.0.0.0/8"
    return pr


def asked_to_apply(sc, pr: int) -> None:
    """The promise: main's shared/cidrs.txt is not in the infrastructure, so the lock stays and the PR says why."""
    body = sc.wait_comment(pr, lambda b: "Nothing was applied" in b)
    sc.wait_idle()
    assert "the default branch holds more than what this pr applied" in body.lower(), body
    lock = sc.lock("network")
    assert lock is not None and lock.pull == pr, "lock released while the infrastructure differs from main"


@pytest.fixture
def people(make_scenario):
    def make(with_yaml: bool):
        scenario = make_scenario()
        scenario.init_main({**files(scenario), **({"tfbot.yaml": TFBOT_YAML} if with_yaml else {})})
        for user, role in (("alice", "write"), ("mo", "maintain")):
            scenario.fake.set_permission(REPO, user, role)
        scenario.start()
        return scenario
    return make


def test_a_declared_input_outside_the_dir_changed_on_main_is_planned_and_asked(people):
    """`when_modified: ../shared/*.txt` says the project reads shared/; main changes it after the apply."""
    sc = people(with_yaml=True)
    pr = applied_reading_shared(sc)
    sc.remote.push_direct("main", {"shared/cidrs.txt": "172.16.0.0/12\n"})
    sc.merge(pr)
    asked_to_apply(sc, pr)


def test_an_undeclared_read_changed_by_another_merged_pr_is_planned_and_asked(people):
    """Autodiscovery: a PR changing only shared/cidrs.txt plans nothing and merges; before the change, the applied
    PR's merge planned main and asked ("the default branch holds more than what this PR applied")."""
    sc = people(with_yaml=False)
    pr = applied_reading_shared(sc)
    other = sc.open_pr("cidrs", {"shared/cidrs.txt": "172.16.0.0/12\n"})
    sc.wait_idle()
    sc.merge(other)
    sc.wait_idle()
    sc.merge(pr)
    asked_to_apply(sc, pr)


def test_a_reviewed_plan_is_not_applied_on_merge_when_main_changed_a_file_it_reads(people):
    """Planned, not applied; main changes shared/cidrs.txt, which the root reads with file(); then the merge. The
    reviewed plan still holds the old value: applying it and releasing the lock would leave main unapplied."""
    sc = people(with_yaml=False)
    pr = sc.open_pr("grow", {"network/main.tf": files(sc, subnet="a")["network/main.tf"]})
    sc.wait_comment(pr, lambda b: "Plan: 3 to add" in b)
    sc.wait_idle()
    sc.remote.push_direct("main", {"shared/cidrs.txt": "172.16.0.0/12\n"})
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "Apply complete!" in b or "Nothing was applied" in b)
    sc.wait_idle()
    # The merge commit was planned: its plan reads main's cidrs, so it is not the reviewed one and is shown to apply.
    assert "Apply complete!" not in body, body
    assert "the plan of the default branch differs from the reviewed plan" in body.lower(), body
    lock = sc.lock("network")
    assert lock is not None and lock.pull == pr
    assert sc.state_resources("network") == {}  # nothing applied
