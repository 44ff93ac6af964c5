"""Extra arguments for `plan` (`tfbot plan -- -target=...`), end to end: an allowed one changes the plan and says
so on the PR and the lock page, `apply` applies exactly that plan, a merge never applies it as it is, and a
disallowed one is refused with nothing planned or locked. Real git, real Terraform, fake GitHub, signed webhooks,
`tfbot serve` as a subprocess."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from bot.models import LockState
from bot.state import audit
from tests.support.scenario import REPO

pytestmark = pytest.mark.e2e

# `x` is set by a variable, so `-var=x=...` changes what is planned.
VARIABLE = 'variable "x" {\n  default = "0"\n}\nresource "terraform_data" "x" {\n  input = var.x\n}\n'


def files(sc, **resources: str) -> dict[str, str]:
    """The `network` project: vpc, the variable's resource, and `resources` (name -> input)."""
    return {"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16", **resources}, extra=VARIABLE)}


@pytest.fixture
def sc(make_scenario):
    scenario = make_scenario()
    scenario.init_main(files(scenario))
    scenario.fake.set_permission(REPO, "alice", "write")
    return scenario


def section(body: str, project: str = "network") -> str:
    start = body.index(f": `{project}`")
    return body[start:body.find("\n#### ", start) if "\n#### " in body[start:] else len(body)]


def entries(sc, action: str) -> list[audit.AuditEntry]:
    return [e for e in reversed(list(audit.entries(sc.redis(), REPO))) if e.action == action]


def test_a_targeted_plan_plans_only_its_target_and_apply_applies_exactly_it(sc):
    sc.start()
    pr = sc.open_pr("two", files(sc, a="alpha", b="beta"))
    assert "Plan: 4 to add" in sc.wait_comment(pr, lambda b: "Plan:" in b)

    # A reader may not choose what a writer's `apply` applies.
    sc.comment(pr, "bob", "tfbot plan -- -target=terraform_data.a")
    assert "needs write access" in sc.wait_comment(pr, lambda b: "plan refused" in b)
    sc.comment(pr, "alice", "tfbot plan -- -target=terraform_data.a")
    body = sc.wait_comment(pr, lambda b: "extra arguments" in b and "Plan:" in b)
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in body
    assert "* **create** (1): `terraform_data.a`\n" in body and "terraform_data.b" not in body
    assert "Planned with extra arguments: `-target=terraform_data.a`. `apply` applies exactly this plan" in body
    assert "Merging this pull request does not apply a plan made with extra arguments as it is" in body
    lock = sc.lock("network")
    assert lock.pull == pr and lock.extra_args == "-target=terraform_data.a" and lock.state is LockState.PLANNED
    api = {d["dir"]: d for d in requests.get(f"{sc.server.url}/api/locks", timeout=10).json()["locks"]}
    assert api["network"]["extra_args"] == ["-target=terraform_data.a"] and api["network"]["destroy"] is False
    page = requests.get(f"{sc.server.url}/locks", timeout=10).text
    assert "with <code>-target=terraform_data.a</code>" in page
    assert [e.detail for e in entries(sc, "plan")][-1] == \
        "planned with -target=terraform_data.a: Plan: 1 to add, 0 to change, 0 to destroy."

    sc.comment(pr, "alice", "apply")
    applied = sc.wait_comment(pr, lambda b: "Apply complete!" in b or "Apply failed" in b)
    assert "Applied exactly the reviewed plan, made with extra arguments: `-target=terraform_data.a`." in applied
    assert sc.state_resources("network") == {"a": "alpha"}  # only the target
    assert entries(sc, "apply")[-1].detail.startswith("planned with -target=terraform_data.a: Apply complete!")

    # The merge: what the branch holds is more than was applied. Nothing more is applied without a review.
    sc.merge(pr)
    stale = sc.wait_comment(pr, lambda b: "Plan is stale" in b)
    assert "the default branch holds more than what this pr applied" in stale.lower()
    assert "extra arguments" not in section(stale)  # the branch's plan is a plain one
    assert sc.state_resources("network") == {"a": "alpha"}
    lock = sc.lock("network")
    assert lock.pull == pr and lock.state is LockState.PLAN_STALE and lock.extra_args == ""
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "The lock is released" in b)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "x": "0", "a": "alpha", "b": "beta"}
    assert sc.lock("network") is None


def test_a_merge_plans_the_branch_without_the_extra_arguments_and_asks_when_it_differs(sc):
    sc.start()
    pr = sc.open_pr("var", files(sc, a="alpha"))
    plain = sc.wait_comment(pr, lambda b: "Plan:" in b)
    assert 'input  = "0"' in plain

    sc.comment(pr, "alice", "plan -- -var x=1")  # bare command; the value as the next word
    body = sc.wait_comment(pr, lambda b: "extra arguments" in b and "Plan:" in b)
    assert "Planned with extra arguments: `-var=x=1`" in body and 'input  = "1"' in body  # the plan changed
    assert "Plan: 3 to add" in body
    # Elsewhere than on the PR, a -var value (it may be a secret typed into the comment) shows as ***.
    assert sc.lock("network").extra_args == "-var=x=***"
    assert [e.detail for e in entries(sc, "plan")][-1].startswith("planned with -var=x=***:")

    sc.merge(pr)
    stale = sc.wait_comment(pr, lambda b: "Plan is stale" in b)
    assert "the reviewed plan was made with extra arguments, and the plan of the default branch without them " \
           "differs from it" in stale.lower()
    assert 'input  = "0"' in stale
    assert sc.state_resources("network") == {}  # the -var plan was never applied by the merge
    assert sc.lock("network").state is LockState.PLAN_STALE
    sc.comment(pr, "alice", "apply")
    sc.wait_comment(pr, lambda b: "The lock is released" in b)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "x": "0", "a": "alpha"}


def test_a_destroy_plan_is_marked_and_disallowed_arguments_are_refused_with_nothing_planned(sc, tmp_path):
    sc.start()
    first = sc.open_pr("seed", files(sc, a="alpha"))
    sc.wait_comment(first, lambda b: "Plan:" in b)
    sc.merge(first)
    sc.wait_comment(first, lambda b: "Apply complete!" in b)
    assert len(sc.state_resources("network")) == 3

    pr = sc.open_pr("teardown", files(sc, a="alpha", b="beta"))
    sc.wait_comment(pr, lambda b: "Plan: 1 to add" in b)
    sc.comment(pr, "alice", "/plan -d network -- -destroy")
    body = sc.wait_comment(pr, lambda b: "DESTROY" in b)
    net = section(body)
    assert net.split("\n")[3:5] == [
        "> [!CAUTION]", "> **DESTROY plan:** applying it destroys 3 resources of this workspace, whatever the code "
        "says (planned with `-destroy`)."]
    assert "Plan: 0 to add, 0 to change, 3 to destroy." in net
    assert "* **destroy** (3):" in net
    api = {d["dir"]: d for d in requests.get(f"{sc.server.url}/api/locks", timeout=10).json()["locks"]}
    assert api["network"]["destroy"] is True and api["network"]["extra_args"] == ["-destroy"]
    assert '<strong class="destroy">DESTROY plan</strong>' in requests.get(f"{sc.server.url}/locks", timeout=10).text

    # A plain plan replaces it as the reviewed one, and says so.
    sc.comment(pr, "alice", "plan")
    replaced = sc.wait_comment(pr, lambda b: "replaces the plan made with" in b)
    assert "It is made without extra arguments and replaces the plan made with `-destroy`: `apply` applies this " \
           "one." in replaced and "DESTROY" not in replaced
    assert sc.lock("network").extra_args == ""

    # Refused: a reply names the word and what the server allows; nothing is planned, locked or written.
    target = Path("/tmp") / f"tfbot-extra-args-{tmp_path.name}.tfplan"
    other = sc.open_pr("other", {"dns/main.tf": sc.config_for("dns", {"zone": "example.com"})}, send=False)
    refusals = {
        f"tfbot plan -- -out={target}": "`-out` is not an option tfbot passes to `terraform plan`",
        "tfbot plan -- -chdir=..": "`-chdir` is not an option tfbot passes to `terraform plan`",
        "plan -- -var-file=../../etc/passwd": "leads outside the repository from the project's directory `dns`",
        "tfbot plan -- -lock=false": "`-lock=false` is not allowed here",
        "tfbot apply -- -target=terraform_data.a": "it applies the saved plan exactly as it was reviewed",
    }
    for comment, reason in refusals.items():
        sc.comment(other, "alice", comment)
        reply = sc.wait_comment(other, lambda b, reason=reason: reason in b, what=f"the refusal of {comment!r}")
        if "apply" not in comment:
            assert "This server allows: `-target`" in reply or "leads outside" in reply
    sc.wait_idle()
    assert sc.lock("dns") is None
    assert not [b for b in sc.bot_comments(other) if "Plan:" in b]
    assert not target.exists()
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "x": "0", "a": "alpha"}
