"""Applies in order, end to end: a merge applies `network` before `dns`, which depends on it, and leaves `dns`
out when `network` fails. Real git, real Terraform (a `local-exec` provisioner makes one apply slow or fail),
fake GitHub, `tfbot serve` as a subprocess."""
from __future__ import annotations

import pytest

from bot.state import audit
from tests.support.scenario import REPO

pytestmark = pytest.mark.e2e

PROVISIONER = 'resource "terraform_data" "step" {{\n  input = {input!r}\n  provisioner "local-exec" {{\n' \
              '    command = "{command}"\n  }}\n}}\n'


def files(sc, network_command: str = "true", value: str = "a") -> dict[str, str]:
    """network (its apply runs `network_command`), dns (fast) and a change to both (`value`)."""
    step = PROVISIONER.format(input=value, command=network_command).replace("'", '"')
    return {"network/main.tf": sc.config_for("network", {"vpc": value}, extra=step),
            "dns/main.tf": sc.config_for("dns", {"zone": value})}


@pytest.fixture
def sc(make_scenario):
    scenario = make_scenario(repo_settings={"projects": [{"dir": "network"}, {"dir": "dns", "depends_on": "network"}]})
    scenario.init_main(files(scenario, value="seed"))
    scenario.fake.set_permission(REPO, "alice", "write")
    return scenario


def applies(sc) -> list[tuple[str, str]]:
    """(project, outcome) of each apply, oldest first."""
    return [(e.project, e.outcome) for e in reversed(list(audit.entries(sc.redis(), REPO))) if e.action == "apply"]


def test_a_merge_applies_what_a_project_depends_on_first(sc):
    sc.start()
    # network's apply takes seconds; dns's is instant: run at once, dns would finish first.
    pr = sc.open_pr("both", files(sc, network_command="sleep 3", value="b"))
    plan = sc.wait_comment(pr, lambda b: "Planned: `dns`" in b and "Planned: `network`" in b)
    assert "Applied in order" not in plan  # plans run in parallel
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "Applied: `dns`" in b and "Applied: `network`" in b)
    assert "Applied in order: `network`, then `dns`" in body
    assert applies(sc) == [("network", "ok"), ("dns", "ok")]
    assert sc.state_resources("dns")["zone"] == "b"


def test_a_failed_apply_leaves_what_depends_on_it_unapplied_and_says_why(sc):
    sc.start()
    pr = sc.open_pr("break", files(sc, network_command="exit 3", value="c"))
    sc.wait_comment(pr, lambda b: "Planned: `dns`" in b)
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "Apply failed: `network`" in b and "Not applied: `dns`" in b)
    assert "`dns` depends on `network`, whose result was \"apply failed\"" in body
    assert sc.wait_status(sc.head(pr), "tfbot/apply")["state"] == "failure"
    assert [p for p, _ in applies(sc)] == ["network"]  # dns never ran
    assert sc.state_resources("dns").get("zone") != "c"
    assert sc.lock("dns").pull == pr  # kept: the merge is not applied there yet


def test_one_at_a_time_applies_each_project_after_the_one_before_it_even_when_that_one_failed(make_scenario):
    """tfbot.yaml says `parallel_apply: false`: `a` (slow, then failing) applies before `b` (instant), which does
    not depend on it and so is applied all the same. Run at once, `b` would finish first."""
    sc = make_scenario(repo_settings={"projects": [{"dir": "a"}, {"dir": "b"}]})

    def both(command: str, value: str) -> dict[str, str]:
        step = PROVISIONER.format(input=value, command=command).replace("'", '"')
        return {"a/main.tf": sc.config_for("a", {"x": value}, extra=step), "b/main.tf": sc.config_for("b", {"y": value})}

    sc.init_main({**both("true", "seed"), "tfbot.yaml": "parallel_plan: false\nparallel_apply: false\n"})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("both", both("sleep 2; exit 3", "new"))
    plan = sc.wait_comment(pr, lambda b: "Planned: `a`" in b and "Planned: `b`" in b)
    assert "Planned one at a time (`parallel_plan: false`)" in plan
    sc.merge(pr)
    body = sc.wait_comment(pr, lambda b: "Apply failed: `a`" in b and "Applied: `b`" in b)
    assert "Applied one at a time (`parallel_apply: false`)" in body
    assert applies(sc) == [("a", "failed"), ("b", "ok")]
    assert sc.state_resources("b")["y"] == "new"
