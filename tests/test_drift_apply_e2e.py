"""`apply` commented on a drift issue, end to end: `tfbot serve` as a subprocess, real Terraform, git and Redis, the
fake GitHub. The drift is real: the test applies the default branch with Terraform, then edits the state out of
band; the drift issue and its check are written the way drift detection writes them (the marker first, the digest
of the drifted plan computed from a real `terraform show -json`)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from bot.drift.apply import RECHECK_APPLIED, RECHECK_CHANGED, RECHECK_FAILED
from bot.drift.marker import DriftSubject, marker
from bot.drift.transitions import plan_marker
from bot.lifecycle.runner import changes_digest
from bot.queue import runs_queue
from bot.models import Project
from bot.state import audit, keys
from bot.state.drift_checks import DriftCheck, DriftChecks, DriftState
from bot.state.locks import LockStore
from tests.support.gated import gated_workflow
from tests.support.scenario import REPO, Scenario
from tests.support.scenario_fixtures import network_files
from tests.support.tf_configs import hcl_string
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e


def terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(["terraform", *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


class Drift:
    """The `network` project of main, applied by the test with Terraform, then drifted by editing its state."""

    def __init__(self, sc: Scenario, tmp: Path, files: dict[str, str] | None = None, *apply_args: str):
        """`files`: main's (default: the network scenario's); `apply_args` narrow the test's first apply."""
        self.sc = sc
        self.copy = tmp / "main-copy"
        shutil.rmtree(self.copy, ignore_errors=True)
        self.copy.mkdir()
        for path, text in (files or network_files(sc)).items():
            (self.copy / path).parent.mkdir(parents=True, exist_ok=True)
            (self.copy / path).write_text(text)
        self.dir = self.copy / "network"
        assert terraform(self.dir, "init").returncode == 0
        applied = terraform(self.dir, "apply", "-auto-approve", *apply_args)
        assert applied.returncode == 0, applied.stdout + applied.stderr

    def edit_state(self, vpc: str) -> None:
        """Change the vpc's value in the state, as someone changing the resource outside Terraform would."""
        path = self.sc.state_dir("network") / "terraform.tfstate"
        state = json.loads(path.read_text())
        for resource in state["resources"]:
            if resource["name"] == "vpc":
                for key in ("input", "output"):
                    resource["instances"][0]["attributes"][key]["value"] = vpc
        state["serial"] += 1
        path.write_text(json.dumps(state))

    def digest(self) -> str:
        """The changes digest of the plan of main against the state as it is now (what the issue shows)."""
        planned = terraform(self.dir, "plan", "-out=drift.tfplan")
        assert planned.returncode == 0, planned.stdout + planned.stderr
        shown = terraform(self.dir, "show", "-json", "drift.tfplan")
        return changes_digest(json.loads(shown.stdout))

    def in_sync(self) -> bool:
        """`terraform plan -detailed-exitcode` of main is 0: the infrastructure is what main holds."""
        return terraform(self.dir, "plan", "-detailed-exitcode").returncode == 0


# Drift on (`apply` on a drift issue is refused when it is off), but the scheduler selects no project: these tests
# write the drift issue and its check themselves, and look at the checks `apply` queues.
DRIFT_ON = {"enabled": True, "projects": ["no-project-is-scheduled"]}


def drift_issue(sc: Scenario, digest: str) -> int:
    """Open the drift issue of `network` and record the check that found the drift, as drift detection does."""
    subject = DriftSubject(repo=REPO, dir="network", workspace="default", name="network")
    issue = sc.fake.add_issue(REPO, title=f"Drift: {REPO} network", user=sc.fake.bot_login, via_app=True,
                              body=marker(subject) + "\n**Drift** in `network`: `update terraform_data.vpc`\n"
                              + plan_marker(digest) + "\n")
    DriftChecks(sc.redis()).record(DriftCheck(
        repo=REPO, project="network", dir="network", workspace="default", state=DriftState.DRIFTED,
        sha=sc.remote.branch_sha("main"), summary="Plan: 0 to add, 1 to change, 0 to destroy.",
        resources=("update terraform_data.vpc",), digest=digest, issue=issue["number"],
        issue_url=issue["html_url"]))
    return int(issue["number"])


def drift_checks_queued(sc: Scenario) -> list[tuple[str, str]]:
    """(reason, link) of every `check_drift` job queued on the runs queue, whatever has become of it since."""
    conn = sc.redis()
    queue = runs_queue(conn)
    ids = set(queue.job_ids)
    for registry in (FinishedJobRegistry, FailedJobRegistry, StartedJobRegistry):
        ids |= set(registry(queue=queue).get_job_ids())
    found = []
    for job_id in ids:
        job = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
        if job.func_name == "bot.jobs.check_drift":
            found.append((str(job.args[1]), str(job.args[2])))
    return found


def issue_comments(sc: Scenario, number: int) -> list[str]:
    return [c["body"] for c in sc.fake.comments(REPO, number) if c["user"] == sc.fake.bot_login]


def wait_reply(sc: Scenario, number: int, words: str, timeout: float = 120) -> str:
    try:
        return wait_for(lambda: next((b for b in issue_comments(sc, number) if words in b), None), timeout=timeout,
                        interval=0.2, message=f"a reply with {words!r}")
    except AssertionError:
        raise AssertionError(f"no reply with {words!r} on #{number}: {issue_comments(sc, number)}\n"
                             f"--- tfbot log ---\n{sc.logs()[-8000:]}") from None


def drift_audit(sc: Scenario) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(sc.redis()) if e.action == "drift-apply"]


@pytest.fixture
def drifted(network_scenario: Scenario, tmp_path: Path) -> tuple[Scenario, Drift]:
    """The network scenario with rita (read), its `network` project applied, then drifted (vpc edited)."""
    sc = network_scenario
    sc.settings["repos"][0]["drift"] = DRIFT_ON
    sc.fake.set_permission(REPO, "rita", "read")
    drift = Drift(sc, tmp_path)
    assert drift.in_sync()
    drift.edit_state("10.9.0.0/16")
    assert not drift.in_sync()
    return sc, drift


def vpc(sc: Scenario) -> Any:
    return sc.state_resources("network")["vpc"]


def test_a_writers_apply_removes_the_drift_and_a_readers_is_refused(drifted):
    sc, drift = drifted
    sc.start()
    number = drift_issue(sc, drift.digest())
    plain = int(sc.fake.add_issue(REPO, title="Question about the VPC", user="rita", body="Can we apply?")["number"])

    sc.comment_on_issue(plain, "alice", "apply")  # an ordinary issue: no marker, nothing happens
    sc.comment_on_issue(number, "alice", "plan")  # a drift issue knows `apply` only
    assert "tfbot knows one command: `apply`" in wait_reply(sc, number, "knows one command")
    sc.comment_on_issue(number, "rita", "apply")
    reply = wait_reply(sc, number, "apply refused")
    assert "@rita has `read` permission" in reply and "Nothing was run" in reply
    sc.wait_idle()
    assert issue_comments(sc, plain) == [] and sc.fake.reactions(REPO, sc.fake.comments(REPO, plain)[0]["id"]) == []
    assert vpc(sc) == "10.9.0.0/16" and sc.lock("network") is None and drift_checks_queued(sc) == []
    assert [(e.user, e.outcome, e.pull) for e in drift_audit(sc)] == [("rita", "refused", number)]

    comment = sc.comment_on_issue(number, "alice", "apply")
    reply = wait_reply(sc, number, "applied the plan")
    assert "@alice applied the plan of `network`" in reply and "Apply complete!" in reply
    assert "1 changed" in reply and "closes this issue when it is clean" in reply
    sc.wait_idle()
    assert vpc(sc) == "10.0.0.0/16" and drift.in_sync()  # the state matches main again
    assert sc.lock("network") is None  # released after the apply
    assert drift_checks_queued(sc) == [(RECHECK_APPLIED, comment["html_url"])]
    applied = drift_audit(sc)[0]
    assert (applied.user, applied.outcome, applied.pull, applied.sha) == (
        "alice", "ok", number, sc.remote.branch_sha("main"))
    assert applied.run_id and sc.redis().exists(f"tfbot:run:{applied.run_id}")
    run = requests.get(f"{sc.server.url}/api/runs/{applied.run_id}", timeout=10).json()
    assert run["pull_kind"] == "drift" and run["pull_url"].endswith(f"/acme/infra/issues/{number}")
    # The runs are tfbot's ordinary ones: a plan and an apply of the issue's number, in the audit trail too.
    kinds = [(e.action, e.outcome) for e in audit.entries(sc.redis()) if e.pull == number and e.action != "drift-apply"]
    assert kinds == [("apply", "ok"), ("plan", "ok")]


def test_a_pr_holding_the_lock_is_named_and_nothing_runs(drifted):
    sc, drift = drifted
    sc.start()
    number = drift_issue(sc, drift.digest())
    pull = sc.open_pr("subnet", network_files(sc, subnet="10.0.1.0/24"), author="bob")
    sc.wait_comment(pull, lambda b: "Plan:" in b, what="the PR's plan")
    assert sc.lock("network").pull == pull

    sc.comment_on_issue(number, "alice", "apply")
    reply = wait_reply(sc, number, "apply refused")
    assert f"{REPO}#{pull} by @bob holds `network`" in reply
    sc.wait_idle()
    assert vpc(sc) == "10.9.0.0/16" and "subnet" not in sc.state_resources("network")
    assert sc.lock("network").pull == pull and sc.lock("network").kind == "pull"
    assert sc.fake.pull_payload(REPO, pull)["state"] == "open"
    assert drift_checks_queued(sc) == []
    assert [(e.outcome, e.user) for e in drift_audit(sc)] == [("refused", "alice")]


def test_a_drift_that_changed_since_the_issue_applies_nothing_and_is_checked_again(drifted):
    sc, drift = drifted
    shown = drift.digest()  # the issue shows vpc 10.9.0.0/16 -> 10.0.0.0/16 ...
    drift.edit_state("10.7.0.0/16")  # ... but the infrastructure moved again since
    sc.start()
    number = drift_issue(sc, shown)

    comment = sc.comment_on_issue(number, "mo", "apply")
    reply = wait_reply(sc, number, "nothing was applied")
    assert "differs from the one this issue shows" in reply and "comment `apply` again" in reply
    sc.wait_idle()
    assert vpc(sc) == "10.7.0.0/16" and not drift.in_sync()
    assert sc.lock("network") is None
    assert drift_checks_queued(sc) == [(RECHECK_CHANGED, comment["html_url"])]
    assert [(e.outcome, e.user) for e in drift_audit(sc)] == [("changed", "mo")]


def test_a_drift_issue_holding_the_lock_is_shown_as_one(drifted, tmp_path):
    """While the apply runs, the lock names the drift issue: its kind, number, author and title, in /api/locks too."""
    sc, drift = drifted
    workflows, waiting, gate = gated_workflow(tmp_path)  # the plan waits at a gate the test opens
    sc.settings["workflows_dir"] = str(workflows)
    sc.settings["repos"][0]["workflow"] = "gated"
    sc.start()
    number = drift_issue(sc, drift.digest())

    sc.comment_on_issue(number, "alice", "apply")
    wait_for(waiting.exists, timeout=120, message="the plan to wait at the gate")
    held = sc.lock("network")
    assert (held.kind, held.pull, held.user, held.pull_title) == ("drift", number, "alice", f"Drift: {REPO} network")
    locks = requests.get(sc.server.url + "/api/locks", timeout=10).json()["locks"]
    assert [(d["kind"], d["pull_number"], d["pull_title"]) for d in locks] == [
        ("drift", number, f"Drift: {REPO} network")]
    # A PR asking for the lock meanwhile waits in line, told a drift issue holds it; it is planned once released.
    pull = sc.open_pr("subnet", network_files(sc, subnet="10.0.1.0/24"), author="bob")
    told = sc.wait_comment(pull, lambda b: "locked by drift issue" in b, what="the locked notice")
    assert f"locked by drift issue #{number} (@alice's `apply` of the default branch)" in told
    gate.touch()
    wait_reply(sc, number, "applied the plan")
    sc.wait_comment(pull, lambda b: "Plan: 1 to add, 0 to change, 0 to destroy." in b, what="the PR's plan")
    sc.wait_idle()
    assert sc.lock("network").pull == pull and sc.lock("network").kind == "pull"
    assert vpc(sc) == "10.0.0.0/16" and drift.in_sync()


def test_the_apply_runs_the_workflow_the_default_branchs_tfbot_yaml_gives_the_project(drifted, tmp_path):
    """The drift check planned the project as main's `tfbot.yaml` makes it; the apply from its issue must too, not
    as the server's entry alone would (another workflow: other steps, other arguments)."""
    sc, drift = drifted
    workflows, waiting, gate = gated_workflow(tmp_path)  # the plan of the `gated` workflow waits at a gate
    sc.settings["workflows_dir"] = str(workflows)
    sc.settings["repos"][0]["allowed_workflows"] = ["gated"]
    sc.remote.push_direct("main", {"tfbot.yaml": "projects:\n  - dir: network\n    workflow: gated\n"})
    sc.start()
    number = drift_issue(sc, drift.digest())

    sc.comment_on_issue(number, "alice", "apply")
    wait_for(waiting.exists, timeout=60, message="the apply's plan to run main's workflow for the project (gated)")
    gate.touch()
    wait_reply(sc, number, "applied the plan")
    sc.wait_idle()
    assert vpc(sc) == "10.0.0.0/16" and drift.in_sync()


def test_a_failed_apply_releases_the_lock_and_checks_again(make_scenario, tmp_path):
    """Unlike a PR's failed apply, a drift apply's leaves nothing the default branch lacks: the lock is released."""
    sc = make_scenario(repo_settings={"drift": DRIFT_ON})
    fails = ('resource "terraform_data" "fails" {\n  provisioner "local-exec" {\n'
             f"    command = {hcl_string('false')}\n  }}\n}}\n")
    files = {"network/main.tf": sc.config_for("network", {"vpc": "10.0.0.0/16"}, extra=fails)}
    sc.init_main(files)
    sc.fake.set_permission(REPO, "alice", "write")
    drift = Drift(sc, tmp_path, files, "-target=terraform_data.vpc")  # main's `fails` never made it: drift
    assert not drift.in_sync()
    sc.start()
    number = drift_issue(sc, drift.digest())

    comment = sc.comment_on_issue(number, "alice", "apply")
    reply = wait_reply(sc, number, "failed:")
    assert "the apply of `network`" in reply and "Part of it may be applied; the lock is released" in reply
    sc.wait_idle()
    assert sc.lock("network") is None and not drift.in_sync()
    assert drift_checks_queued(sc) == [(RECHECK_FAILED, comment["html_url"])]
    assert [(e.outcome, e.user) for e in drift_audit(sc)] == [("failed", "alice")]


def test_an_apply_whose_process_is_killed_tells_the_issue_which_lock_it_still_holds(drifted, tmp_path):
    """No `finally` runs in a killed process: the worker's report says so on the issue, and the lock it kept is named
    there and shown on the lock page, never left unseen."""
    sc, drift = drifted
    pid_file = tmp_path / "host" / "horse.pid"
    pid_file.parent.mkdir(exist_ok=True)
    script = tmp_path / "host" / "hang.py"
    script.write_text(f"import os, pathlib, time\npathlib.Path({str(pid_file)!r}).write_text(str(os.getppid()))\n"
                      "time.sleep(300)\n")
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "hang.yaml").write_text(
        f"plan:\n  steps: [init, workspace, {{run: [{sys.executable!r}, {str(script)!r}]}}, plan, show]\n"
        "apply:\n  steps: [init, apply]\n")
    sc.settings["workflows_dir"] = str(workflows)
    sc.settings["repos"][0]["workflow"] = "hang"
    # Unsandboxed: the step records its parent's pid (the job's process), which a sandbox's PID namespace hides.
    sc.settings.setdefault("terraform", {})["sandbox"] = {"mode": "none"}
    sc.start()
    number = drift_issue(sc, drift.digest())
    sc.comment_on_issue(number, "alice", "apply")
    horse = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=120, message="the run to start"))
    os.kill(horse, signal.SIGKILL)
    reply = wait_reply(sc, number, "stopped before it finished")
    assert "signal 9" in reply and "still holds the lock of `network`" in reply and "tfbot unlock" in reply
    held = sc.lock("network")
    assert held is not None and (held.kind, held.pull) == ("drift", number)  # kept, and said where
    assert [(e.outcome, e.project) for e in drift_audit(sc)] == [("interrupted", "network")]


def test_apply_on_a_persons_issue_carrying_a_copied_marker_is_refused(drifted):
    """A reader may open an issue whose first line copies the marker (and edit it at will): only the issue tfbot's App
    opened, and its last check keeps, carries an `apply`."""
    sc, drift = drifted
    sc.start()
    real = drift_issue(sc, drift.digest())
    subject = DriftSubject(repo=REPO, dir="network", workspace="default", name="network")
    forged = int(sc.fake.add_issue(REPO, title="Drift: tag cleanup (harmless)", user="rita",
                                   body=marker(subject) + "\nOnly a tag differs; safe to apply.\n"
                                   + plan_marker(drift.digest()) + "\n")["number"])
    assert forged != real
    sc.comment_on_issue(forged, "alice", "apply")  # a writer trusts the text she sees
    reply = wait_reply(sc, forged, "apply refused")
    assert f"not tfbot's drift issue of `network` (#{real} is)" in reply
    # A person acting through the App with a user token: GitHub names the App, but the author is a person.
    via_app = int(sc.fake.add_issue(REPO, title=f"Drift: {REPO} network", user="rita", via_app=True,
                                    body=marker(subject) + "\n" + plan_marker(drift.digest()) + "\n")["number"])
    sc.comment_on_issue(via_app, "alice", "apply")
    assert f"not tfbot's drift issue of `network` (#{real} is)" in wait_reply(sc, via_app, "apply refused")
    sc.wait_idle()
    assert vpc(sc) == "10.9.0.0/16" and sc.lock("network") is None


def test_apply_applies_only_the_plan_the_issue_showed_when_the_writer_commented(drifted):
    """The apply waits behind another run; meanwhile the infrastructure moves and a check rewrites the issue. The
    plan alice reviewed is no longer the one on record: nothing is applied on her word."""
    sc, drift = drifted
    sc.start()
    shown = drift.digest()
    number = drift_issue(sc, shown)
    conn = sc.redis()
    guard = keys.run_guard(REPO, "network", "default")
    conn.set(guard, "a PR's plan 0000", px=30_000)  # another run of the project is under way: the apply is deferred
    sc.comment_on_issue(number, "alice", "apply")
    wait_for(lambda: "deferred (attempt 1)" in sc.logs(), timeout=60, message="the apply to be deferred")
    drift.edit_state("10.66.0.0/16")
    newer = drift.digest()
    assert newer != shown
    last = DriftChecks(conn).last(REPO, "network", "default")
    DriftChecks(conn).record(replace(last, digest=newer))  # what the next scheduled check records
    conn.delete(guard)  # the other run ends: the deferred apply goes on
    reply = wait_reply(sc, number, "apply refused", timeout=180)
    assert "changed after your comment" in reply
    sc.wait_idle()
    assert vpc(sc) == "10.66.0.0/16" and sc.lock("network") is None


def test_a_lock_left_by_a_dead_apply_is_not_said_to_be_running(drifted):
    """What a killed apply leaves (its lock, no run guard, no job): the next `apply` says so, never "running"."""
    sc, drift = drifted
    sc.start()
    number = drift_issue(sc, drift.digest())
    held = LockStore(sc.redis()).try_acquire(Project(repo=REPO, name="network", dir="network"), number, "alice",
                                             kind="drift", wait=False, pull_title=f"Drift: {REPO} network")
    assert held.acquired
    sc.comment_on_issue(number, "alice", "apply")
    reply = wait_reply(sc, number, "@alice")
    assert "stopped without finishing" in reply and "tfbot unlock" in reply and "already running" not in reply
