"""A repository's own `tfbot.yaml`, end to end: read from the commit being planned, bounded by the server's
`allowed_overrides`, its problems listed on the PR with their lines. Real git, real Terraform, fake GitHub,
`tfbot serve` as a subprocess."""
from __future__ import annotations

import pytest

from tests.support.scenario import REPO

pytestmark = pytest.mark.e2e


def roots(sc, **values: str) -> dict[str, str]:
    """Two roots: `network` (reads ../shared/cidrs.txt through a when_modified pattern) and `dns`."""
    return {"network/main.tf": sc.config_for("network", {"vpc": values.get("vpc", "10.0.0.0/16")}),
            "dns/main.tf": sc.config_for("dns", {"zone": values.get("zone", "example.com")}),
            "shared/cidrs.txt": values.get("cidrs", "10.0.0.0/8\n")}


TFBOT_YAML = """\
projects:
  - name: net
    dir: network
    when_modified: ["*.tf", "../shared/*.txt"]
  - dir: dns
    autoplan: false
"""


@pytest.fixture
def sc(make_scenario):
    scenario = make_scenario()
    scenario.init_main({**roots(scenario), "tfbot.yaml": TFBOT_YAML})
    scenario.fake.set_permission(REPO, "alice", "write")
    return scenario


def test_a_project_declared_in_tfbot_yaml_is_planned_for_a_file_only_its_pattern_matches(sc):
    sc.start()
    pr = sc.open_pr("cidrs", {"shared/cidrs.txt": "10.0.0.0/8\n172.16.0.0/12\n"})
    body = sc.wait_comment(pr, lambda b: "Planned: `net`" in b)
    assert "dns" not in body
    assert sc.lock("network").project == "net"  # the repository's name for it, from tfbot.yaml
    # `dns` has autoplan: false in tfbot.yaml: a change to it is not planned until someone asks.
    other = sc.open_pr("zone", {"dns/main.tf": sc.config_for("dns", {"zone": "example.org"})})
    sc.wait_idle()
    assert sc.bot_comments(other) == []
    sc.comment(other, "alice", "plan")
    assert "Planned: `dns`" in sc.wait_comment(other, lambda b: "Plan:" in b)


def test_a_key_the_server_does_not_allow_is_refused_with_its_line_and_nothing_is_planned(sc):
    sc.start()
    pr = sc.open_pr("loosen", {
        "tfbot.yaml": TFBOT_YAML + "    apply_requirements: []\n    terraform: yes\n",
        "dns/main.tf": sc.config_for("dns", {"zone": "example.org"}),
    })
    body = sc.wait_comment(pr, lambda b: "problem(s)" in b)
    assert "This PR's version of `tfbot.yaml` has 2 problem(s)" in body
    assert "tfbot.yaml:7: projects[1].apply_requirements: the server does not let a repository set this" in body
    assert "tfbot.yaml:8: projects[1].terraform: unknown key" in body
    status = sc.wait_status(sc.head(pr), "tfbot/plan")
    assert status["state"] == "failure" and "tfbot.yaml has 2 problem(s)" in status["description"]
    sc.wait_idle()
    assert sc.lock("dns") is None and sc.lock("network") is None
    assert not [b for b in sc.bot_comments(pr) if "Plan:" in b]


def test_a_pr_that_changes_tfbot_yaml_is_planned_with_its_own_version_and_says_so(sc):
    sc.start()
    # The PR turns autoplan on for dns and changes dns: planned at once, under the PR's file.
    pr = sc.open_pr("autoplan-dns", {
        "tfbot.yaml": TFBOT_YAML.replace("    autoplan: false\n", ""),
        "dns/main.tf": sc.config_for("dns", {"zone": "example.org"}),
    })
    body = sc.wait_comment(pr, lambda b: "Plan:" in b)
    assert "This PR changes `tfbot.yaml`: it was planned with the PR's version of the file" in body
    assert "`dns`" in body and "`net`" not in body
