"""Module-aware autoplan end to end: `tfbot serve`, signed webhooks, the fake GitHub, real git, real Terraform.

A local module is not a project: a change to it plans (and on merge applies) every root that calls it, and
never the module as a root with a throwaway state in the working copy; a file linked into a root is followed;
an unparsable file that may hide a caller is said on the PR."""
from __future__ import annotations

import pytest

from tests.support.git_repos import Symlink
from tests.support.scenario import REPO
from tests.support.tf_configs import backend_block

pytestmark = pytest.mark.e2e

MODULE = 'variable "name" {}\nresource "terraform_data" "vpc" {\n  input = "${var.name}:%s"\n}\n'


def caller(sc, env: str, source: str = "../../modules/net") -> str:
    """A root of `env` (state outside the checkout) calling the net module."""
    return backend_block(sc.state_dir(env)) + f'module "net" {{\n  source = "{source}"\n  name   = "{env}"\n}}\n'


def test_a_module_change_plans_and_applies_both_callers_and_never_the_module(make_scenario):
    sc = make_scenario()
    sc.init_main({
        "envs/prod/main.tf": caller(sc, "prod"),
        "envs/dev/main.tf": caller(sc, "dev"),
        "envs/other/main.tf": sc.config_for("other", {"x": "1"}),
        "modules/net/main.tf": MODULE % "10.0.0.0/16",
    })
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()

    pr = sc.open_pr("wider-net", {"modules/net/main.tf": MODULE % "10.0.0.0/8"})
    plan = sc.wait_comment(pr, lambda b: "Plan:" in b and "envs/prod" in b and "envs/dev" in b,
                           what="the plan of both callers")
    assert plan.count("\n#### ") == 2, plan  # two projects: the callers
    assert "modules/net" not in plan.replace("../../modules/net", "")  # the module is no project
    assert "`envs/other`" not in plan
    assert plan.count("module.net.terraform_data.vpc") >= 2
    assert sc.wait_status(sc.head(pr), "tfbot/plan")["state"] == "success"
    assert sc.lock("modules/net") is None
    assert sc.lock("envs/prod") is not None and sc.lock("envs/dev") is not None

    sc.merge(pr)
    applied = sc.wait_comment(pr, lambda b: b.count("Apply complete!") >= 2, what="both callers applied")
    assert "modules/net" not in applied.replace("../../modules/net", "")
    assert sc.state_resources("prod") == {"vpc": "prod:10.0.0.0/8"}
    assert sc.state_resources("dev") == {"vpc": "dev:10.0.0.0/8"}
    assert sc.wait_status(sc.head(pr), "tfbot/apply")["state"] == "success"


def test_a_linked_file_plans_its_root_and_an_unparsable_file_is_said(make_scenario):
    sc = make_scenario()
    sc.init_main({
        "envs/prod/main.tf": backend_block(sc.state_dir("prod")),
        "envs/prod/shared.tf": Symlink("../../shared/tags.tf"),
        "shared/tags.tf": 'resource "terraform_data" "tags" {\n  input = "v1"\n}\n',
        "envs/dev/main.tf": caller(sc, "dev"),
        "modules/net/main.tf": MODULE % "10.0.0.0/16",
    })
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()

    pr = sc.open_pr("tags-v2", {
        "shared/tags.tf": 'resource "terraform_data" "tags" {\n  input = "v2"\n}\n',
        "modules/net/broken.tf": 'module "half" {\n  source = \n',
    })
    plan = sc.wait_comment(pr, lambda b: "envs/prod" in b and "envs/dev" in b and ("Plan:" in b or "Error" in b),
                           what="the plans of both roots")
    assert "terraform_data.tags" in plan  # prod reads shared/tags.tf through its link
    assert "`shared`" not in plan  # linked into a root: not a root of its own
    assert "`modules/net/broken.tf` cannot be parsed (line 2, column 12" in plan  # said, not a crash
    assert "Traceback" not in sc.logs()
