"""An interrupted-run report: a real result that comes after it replaces it, and the state-lock evidence is read
without running Terraform. Real Redis; real POSIX locks held by a real other process; a real `terraform init`."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.lifecycle.interrupted import local_state_file, report_interrupted, state_lock_holder, state_lock_note
from bot.models import Outcome, Project, ProjectResult
from bot.state.records import Records, project_to_dict
from bot.lifecycle.runner import project_slug
from tests.support.services_fixtures import INSTALLATION, REPO
from tests.support.tf_configs import write_config

NET = Project(repo=REPO, name="network", dir="network")
DNS = Project(repo=REPO, name="dns", dir="dns")


def command(records: Records, *projects: Project):
    return records.new_command("plan", REPO, 1, "a" * 40, INSTALLATION, "alice", total=len(projects))


def result(project: Project, outcome: Outcome, summary: str = "") -> ProjectResult:
    return ProjectResult(project, outcome, summary=summary, head_sha="a" * 40)


# --- a real result replaces an interrupted report ----------------------------------------------------------------


def test_a_real_result_replaces_the_interrupted_report_and_is_reported_anew(redis_conn):
    records = Records(redis_conn)
    cmd = command(records, NET)
    assert records.add_interrupted_result(cmd.id, result(NET, Outcome.ERROR, "interrupted")) is True
    records.set_posted_comments(cmd.id, [(11, "IC_11")])
    assert records.add_result(cmd.id, result(NET, Outcome.PLANNED, "Plan: 1 to add")) is False  # first one stays
    assert records.replace_interrupted_result(cmd.id, result(NET, Outcome.PLANNED, "Plan: 1 to add")) is True
    [now] = records.results(cmd.id)
    assert (now.outcome, now.summary) == (Outcome.PLANNED, "Plan: 1 to add")
    assert records.posted_comments(cmd.id) == []  # so its report is a new comment, not an edit of nothing
    # Once only: a second (duplicate) result changes nothing and reports nothing.
    assert records.replace_interrupted_result(cmd.id, result(NET, Outcome.PLAN_FAILED)) is False
    assert records.results(cmd.id)[0].outcome == Outcome.PLANNED


def test_only_an_interrupted_report_is_ever_replaced(redis_conn):
    records = Records(redis_conn)
    cmd = command(records, NET)
    records.add_result(cmd.id, result(NET, Outcome.APPLIED))
    assert records.replace_interrupted_result(cmd.id, result(NET, Outcome.APPLY_FAILED)) is False
    assert records.results(cmd.id)[0].outcome == Outcome.APPLIED


def test_a_replacement_waits_for_the_other_projects_before_reporting(redis_conn):
    records = Records(redis_conn)
    cmd = command(records, NET, DNS)
    assert records.add_interrupted_result(cmd.id, result(NET, Outcome.ERROR)) is False
    assert records.replace_interrupted_result(cmd.id, result(NET, Outcome.PLANNED)) is False  # DNS still runs
    assert records.add_result(cmd.id, result(DNS, Outcome.PLANNED)) is True  # the last one reports both
    assert [r.outcome for r in records.results(cmd.id)] == [Outcome.PLANNED, Outcome.PLANNED]


def test_the_interrupted_report_is_replaceable(worker_services):
    svc = worker_services
    cmd = command(svc.records, NET)
    report_interrupted(svc, cmd.id, project_to_dict(NET), "its worker stopped")
    [told] = svc.records.results(cmd.id)
    assert told.outcome == Outcome.ERROR and "replaces this report" in told.message
    assert svc.records.replace_interrupted_result(cmd.id, result(NET, Outcome.PLANNED)) is True


# --- Terraform's state lock, read not taken ------------------------------------------------------------------------


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding a POSIX write lock on `path`, as Terraform's local backend does while it runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    proc = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(path)!r}, 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_the_holder_of_a_local_state_lock_is_named_without_taking_it(tmp_path):
    state = tmp_path / "terraform.tfstate"
    assert state_lock_holder(state) is None  # no state yet
    holder = hold_lock(state)
    try:
        assert state_lock_holder(state) == holder.pid
        assert state_lock_holder(state) == holder.pid  # asking took nothing
    finally:
        holder.kill()
        holder.wait()
    assert state_lock_holder(state) is None  # a dead process's lock is gone with it


def test_the_local_state_file_follows_terraforms_backend_record(tmp_path, terraform_binary):
    workdir = tmp_path / "work"
    write_config(workdir, {"a": "1"}, backend_path=tmp_path / "state")
    subprocess.run([terraform_binary, "init", "-input=false", "-no-color"], cwd=workdir, check=True, capture_output=True)
    assert local_state_file(workdir, "default") == ("local", tmp_path / "state" / "terraform.tfstate")
    assert local_state_file(workdir, "staging") == ("local", tmp_path / "state" / "workspaces" / "staging" /
                                                    "terraform.tfstate")
    plain = tmp_path / "plain"
    (plain / ".terraform").mkdir(parents=True)
    assert local_state_file(plain, "default") == ("local", plain / "terraform.tfstate")
    assert local_state_file(plain, "x") == ("local", plain / "terraform.tfstate.d" / "x" / "terraform.tfstate")
    (plain / ".terraform" / "terraform.tfstate").write_text(json.dumps({"backend": {"type": "s3", "config": {}}}))
    assert local_state_file(plain, "default") == ("s3", None)


def test_the_note_names_a_running_terraform_and_never_runs_one(worker_services, tmp_path, monkeypatch):
    svc = worker_services
    monkeypatch.setattr(svc.terraform, "_run", lambda *a, **k: pytest.fail("Terraform was run"))
    cmd = command(svc.records, NET)
    copy = svc.checkouts.working_copy_path(REPO, 1, project_slug(NET)) / "network"
    (copy / ".terraform").mkdir(parents=True)
    assert "free" in state_lock_note(svc, cmd, NET).message
    holder = hold_lock(copy / "terraform.tfstate")
    try:
        note = state_lock_note(svc, cmd, NET)
        assert f"held by process {holder.pid}" in note.message
    finally:
        holder.kill()
        holder.wait()
    (copy / ".terraform" / "terraform.tfstate").write_text(json.dumps({"backend": {"type": "s3", "config": {}}}))
    note = state_lock_note(svc, cmd, NET)
    assert "`s3` backend" in note.message and "terraform force-unlock" in note.message
