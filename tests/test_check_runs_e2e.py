"""Check runs end to end: `tfbot/plan: <project>` in progress then completed with its summary, text and Apply
button; a configuration error's annotations on the right file and line; the Apply button pressed by a writer
(applied: `tfbot/apply: <project>`, the PR's reply, the audit trail) and by a reader (refused); a replayed press;
`github.statuses` and `github.check_runs` each off. tfbot serve, the fake GitHub, real git and real Terraform."""
from __future__ import annotations

import pytest

from bot.state import audit
from tests.support import webhook_payloads as wp
from tests.support.scenario import INSTALLATION, REPO, SUMMARY_RE
from tests.support.scenario_fixtures import network_files

pytestmark = pytest.mark.e2e

PLAN_CHECK = "tfbot/plan: network"
APPLY_BUTTON = [{"label": "Apply", "identifier": "apply", "description": "Apply this project's plan"}]


def created_check_runs(sc) -> list[dict]:
    """The bodies of every `POST .../check-runs` tfbot made, in order."""
    return [r.body for r in sc.fake.requests if r.method == "POST" and r.path.endswith("/check-runs")]


@pytest.fixture
def sc(network_scenario):
    network_scenario.fake.set_permission(REPO, "rita", "read")
    return network_scenario


def test_the_apply_button_applies_for_a_writer_and_is_refused_to_a_reader(sc):
    sc.start()
    pr = sc.open_pr("grow", network_files(sc, subnet="a"))
    head = sc.head(pr)
    plan = sc.wait_check_run(head, PLAN_CHECK)
    [made] = [b for b in created_check_runs(sc) if b["name"] == PLAN_CHECK]
    assert (made["head_sha"], made["status"], made["actions"]) == (head, "in_progress", [])  # while it ran
    assert (plan["conclusion"], plan["actions"]) == ("success", APPLY_BUTTON)
    assert SUMMARY_RE.fullmatch(plan["output"]["title"])
    assert "* **create** (2): `terraform_data.subnet`, `terraform_data.vpc`" in plan["output"]["summary"]
    assert "Press **Apply** above" in plan["output"]["summary"]
    assert plan["output"]["text"].startswith("```diff") and plan["output"]["title"] in plan["output"]["text"]
    assert sc.wait_status(head, "tfbot/plan")["state"] == "success"  # both are on by default: both written
    assert len(sc.check_runs(head, PLAN_CHECK)) == 1  # made once, then completed

    sc.press(plan["id"], "rita")
    refused = sc.wait_comment(pr, lambda b: "apply refused" in b)
    assert "@rita has `read` permission" in refused
    assert sc.state_resources("network") == {}
    renewed = sc.fake.check_run(REPO, plan["id"])["external_id"]
    assert renewed and renewed != plan["external_id"]  # a new press is told from a replay by it

    sc.press(plan["id"], "bob")
    reply = sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    assert "@bob pressed Apply on the check run tfbot/plan: network." in reply
    applied = sc.wait_check_run(head, "tfbot/apply: network")
    assert (applied["conclusion"], applied["actions"]) == ("success", [])
    assert applied["output"]["title"].startswith("Apply complete! Resources: 2 added")
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}
    [entry] = [e for e in audit.entries(sc.redis(), REPO) if e.action == "apply"]
    assert (entry.user, entry.pull, entry.project, entry.outcome) == ("bob", pr, "network", "ok")
    assert sc.wait_status(head, "tfbot/apply")["state"] == "success"


def test_a_configuration_error_fails_the_check_run_with_annotations_on_its_lines(sc):
    sc.start()
    broken = sc.config_for("network", {"vpc": "10.0.0.0/16"}, extra=(
        'resource "terraform_data" "subnet" {\n'
        "  input = var.undeclared\n"
        "}\n"))
    line = broken.split("\n").index("  input = var.undeclared") + 1
    pr = sc.open_pr("broken", {"network/main.tf": broken,
                               "network/outputs.tf": 'output "id" {\n  value = terraform_data.nope.id\n}\n'})
    check = sc.wait_check_run(sc.head(pr), PLAN_CHECK)
    assert (check["conclusion"], check["actions"]) == ("failure", [])
    assert check["output"]["title"].startswith("Error: Reference to undeclared")
    found = sorted((a["path"], a["start_line"], a["annotation_level"], a["title"]) for a in check["annotations"])
    assert found == [("network/main.tf", line, "failure", "Reference to undeclared input variable"),
                     ("network/outputs.tf", 2, "failure", "Reference to undeclared resource")]
    assert check["output"]["annotations_count"] == 2
    assert "undeclared" in next(a["message"] for a in check["annotations"] if a["path"] == "network/main.tf")
    assert sc.wait_status(sc.head(pr), "tfbot/plan")["state"] == "failure"


def test_a_replayed_press_is_not_acted_on_again(make_scenario):
    sc = make_scenario(repo_settings={"apply_requirements": ["approved"]})
    sc.init_main(network_files(sc))
    for user, role in (("alice", "write"), ("bob", "write")):
        sc.fake.set_permission(REPO, user, role)
    sc.start()
    pr = sc.open_pr("grow", network_files(sc, subnet="a"))
    plan = sc.wait_check_run(sc.head(pr), PLAN_CHECK)
    pressed = wp.check_run_event("requested_action", sc.fake.repo_payload(REPO), sc.fake.check_run(REPO, plan["id"]),
                                 INSTALLATION, "alice", identifier="apply")
    sc.send("check_run", pressed)
    sc.wait_comment(pr, lambda b: "approving review" in b)
    sc.send("check_run", pressed)  # the same signed body again, under a new delivery id
    sc.wait_idle()
    assert sum("approving review" in b for b in sc.bot_comments(pr)) == 1
    assert "the same event was already handled" in sc.logs()

    sc.fake.add_review(REPO, pr, "bob", "APPROVED", commit_id=sc.head(pr))
    sc.press(plan["id"], "alice")  # a new press of the same button: acted on
    sc.wait_comment(pr, lambda b: "Apply complete!" in b)
    assert sc.state_resources("network") == {"vpc": "10.0.0.0/16", "subnet": "a"}


@pytest.mark.parametrize("off", ["statuses", "check_runs"])
def test_either_kind_of_report_can_be_turned_off(make_scenario, off):
    sc = make_scenario(github_settings={off: False})
    sc.init_main(network_files(sc))
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("grow", network_files(sc, subnet="a"))
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.wait_idle()
    statuses, check_runs = sc.fake.statuses(REPO, sc.head(pr)), sc.fake.check_runs(REPO, sc.head(pr))
    if off == "statuses":
        assert statuses == []
        assert [(r["name"], r["conclusion"]) for r in check_runs] == [(PLAN_CHECK, "success")]
    else:
        assert check_runs == []
        assert [(s["context"], s["state"]) for s in statuses][0] == ("tfbot/plan", "success")
