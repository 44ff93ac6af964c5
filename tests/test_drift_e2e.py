"""Drift checks end to end: the real Terraform binary (in the sandbox when bubblewrap runs here), a real git
repository behind the fake GitHub (driven by real PyGithub), real Redis, and `tfbot drift` run as its entry point.

The project `app` keeps its state in a local backend outside every checkout, as a remote backend would. The
default branch is applied once; "the infrastructure" is then changed out of band by applying another config to the
same state from a directory of its own, as a person with a laptop would.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rq.job import Job
from rq.serializers import JSONSerializer

from bot.cli import main as tfbot
from bot.compose import worker_services as build_worker_services
from bot.config import parse_config
from bot.config.models import NotificationConfig
from bot.drift.check import check_project
from bot.drift.marker import subject_of
from bot.models import Project
from bot.queue import notify_queue
from bot.services import WorkerServices
from bot.state import audit, keys
from bot.state.drift_checks import DriftChecks, DriftState
from bot.state.locks import LockStore
from bot.state.records import project_to_dict
from tests.support.git_repos import RemoteRepo
from tests.support.services_fixtures import run_jobs
from tests.support.tf_configs import backend_block, hcl_string

REPO = "acme/infra"
INSTALLATION = 99
MAIN = {"a": "one", "b": "two"}  # what the default branch holds: terraform_data name -> input
PUBLIC = "https://tfbot.example.com"


def resources(values: dict[str, str]) -> str:
    return "".join(f'resource "terraform_data" {hcl_string(name)} {{\n  input = {hcl_string(value)}\n}}\n'
                   for name, value in values.items())


class Infrastructure:
    """The project's state, changed out of band: `terraform apply` of `values` from a directory outside tfbot."""

    def __init__(self, binary: str, where: Path, state: Path):
        self.binary, self.where, self.state = binary, where, state

    def apply(self, values: dict[str, str]) -> None:
        self.where.mkdir(parents=True, exist_ok=True)
        (self.where / "main.tf").write_text(backend_block(self.state) + resources(values))
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
        for args in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color"]):
            done = subprocess.run([self.binary, *args], cwd=self.where, env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr


@dataclass
class Drift:
    svc: WorkerServices
    infra: Infrastructure
    config_path: Path
    fake: object

    @property
    def project(self) -> Project:
        return Project(repo=REPO, name="app", dir="app")

    def issues(self, state: str = "all") -> list[dict]:
        return [i for i in self.fake.issues(REPO, label="drift") if state == "all" or i["state"] == state]

    def comments(self, number: int) -> list[str]:
        return [c["body"] for c in self.fake.comments(REPO, number)]

    def cli(self, capsys, *args: str) -> tuple[int, str]:
        code = tfbot(["drift", "--config", str(self.config_path), *args])
        return code, capsys.readouterr().out


@pytest.fixture
def drift(fake_github, app_keys, redis_conn, redis_url, tmp_path, terraform_binary) -> Drift:
    state = tmp_path / "state"
    state.mkdir()
    remote = RemoteRepo(tmp_path / "remote", REPO)
    remote.commit("main", {"app/main.tf": backend_block(state) + resources(MAIN)}, "The app")
    fake_github.add_repo(REPO, remote.clone_url, installation_id=INSTALLATION)
    raw = {
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path / "data"),
        "redis_url": redis_url,
        "server": {"public_url": PUBLIC},
        "terraform": {"binary": terraform_binary, "timeout": 120, "sandbox": {"writable_paths": [str(state)]}},
        "repos": [{"name": REPO, "projects": [{"dir": "app"}], "drift": {"enabled": True}}],
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    svc = build_worker_services(parse_config(raw, base_dir=tmp_path), redis_conn)
    infra = Infrastructure(terraform_binary, tmp_path / "laptop", state)
    infra.apply(MAIN)  # the default branch, applied
    return Drift(svc=svc, infra=infra, config_path=config_path, fake=fake_github)


def test_drift_opens_one_issue_updates_it_and_closes_it_when_the_state_is_restored(drift, capsys):
    code, out = drift.cli(capsys)
    assert code == 0, out
    assert out.startswith("acme/infra app (dir app, workspace default): clean: No changes.")
    assert drift.issues() == []

    drift.infra.apply({"a": "changed by hand", "b": "two"})
    code, out = drift.cli(capsys)
    assert code == 3, out  # drift found
    [issue] = drift.issues()
    assert issue["title"] == "Drift: acme/infra app" and issue["state"] == "open"
    assert [label["name"] for label in issue["labels"]] == ["drift"]
    assert issue["html_url"] in out and ": drifted: Plan: 0 to add, 1 to change, 0 to destroy." in out
    body = issue["body"]
    subject = subject_of(body)
    assert subject is not None and (subject.repo, subject.dir, subject.workspace, subject.name) == (
        REPO, "app", "default", "app")
    assert "- **update** (1): `terraform_data.a`" in body
    assert '-   input = "changed by hand"' in body or '"changed by hand" -> "one"' in body  # the folded plan
    assert "<details><summary>The plan</summary>" in body
    check = DriftChecks(drift.svc.redis).last(REPO, "app", "default")
    assert check is not None and check.state is DriftState.DRIFTED and check.issue == issue["number"]
    assert check.resources == ("update terraform_data.a",)
    assert f"{PUBLIC}/runs/{check.run_id}" in body
    meta, log = drift.svc.records.run(check.run_id)
    assert meta["kind"] == "drift" and meta["pull"] == 0 and "terraform_data.a will be updated" in log
    assert drift.comments(issue["number"]) == []
    label = drift.fake.issues(REPO, label="drift")[0]["labels"][0]
    assert label["color"] == "d93f0b"  # tfbot made the label before the issue

    # The same drift again: the body is rewritten, nothing is added.
    code, out = drift.cli(capsys)
    assert code == 3
    [again] = drift.issues()
    assert again["number"] == issue["number"] and drift.comments(issue["number"]) == []

    # Another resource drifts too: the set changed, so a comment says how.
    drift.infra.apply({"a": "changed by hand", "b": "also changed"})
    code, out = drift.cli(capsys)
    assert code == 3
    [again] = drift.issues()
    assert "- **update** (2): `terraform_data.a`, `terraform_data.b`" in again["body"]
    [comment] = drift.comments(issue["number"])
    assert comment.startswith("**The drift changed**") and "`terraform_data.b`" in comment
    assert "No longer drifted" not in comment

    # The same resources, other values: the plan an `apply` would apply changed, and the issue says so.
    drift.infra.apply({"a": "changed again", "b": "also changed"})
    assert drift.cli(capsys)[0] == 3
    [_, told] = drift.comments(issue["number"])
    assert told.startswith("**The plan changed**") and "same resources, other values" in told
    assert drift.cli(capsys)[0] == 3 and len(drift.comments(issue["number"])) == 2  # unchanged: nothing added

    # Restored: a closing comment, then closed.
    drift.infra.apply(MAIN)
    code, out = drift.cli(capsys)
    assert code == 0 and ": clean: No changes." in out
    [closed] = drift.issues()
    assert closed["state"] == "closed" and closed["state_reason"] == "completed"
    last = drift.comments(issue["number"])[-1]
    assert last.startswith("**No drift any more.**") and "found no changes" in last
    check = DriftChecks(drift.svc.redis).last(REPO, "app", "default")
    assert check.state is DriftState.CLEAN and check.issue == 0 and f"{PUBLIC}/runs/{check.run_id}" in last
    outcomes = [e.outcome for e in audit.entries(drift.svc.redis) if e.action == "drift-check"]
    assert outcomes == ["clean", "drifted", "drifted", "drifted", "drifted", "drifted", "clean"]  # newest first


def test_a_lost_redis_key_finds_the_open_issue_by_its_marker(drift, capsys):
    drift.infra.apply({"a": "changed by hand", "b": "two"})
    assert drift.cli(capsys)[0] == 3  # drift found
    [issue] = drift.issues()
    drift.svc.redis.delete(keys.drift_issues(), keys.drift_checks())  # tfbot's memory of the issue is gone

    assert drift.cli(capsys)[0] == 3  # drift found
    assert [i["number"] for i in drift.issues()] == [issue["number"]]  # no duplicate
    assert drift.comments(issue["number"]) == []  # the set it shows is in its body: unchanged, so no comment
    assert DriftChecks(drift.svc.redis).open_issue(REPO, "app", "default") == issue["number"]

    # A wrong number in Redis (an issue about something else) is not believed either.
    other = drift.fake.add_issue(REPO, title="Unrelated", user="alice", body="not a drift issue")
    drift.svc.redis.hset(keys.drift_issues(), keys.project_id(REPO, "app", "default"), other["number"])
    assert drift.cli(capsys)[0] == 3  # drift found
    assert [i["number"] for i in drift.issues()] == [issue["number"]]


def test_a_project_whose_lock_a_pr_holds_is_skipped_naming_the_pr(drift, capsys):
    drift.infra.apply({"a": "changed by hand", "b": "two"})
    LockStore(drift.svc.redis).try_acquire(drift.project, pull=12, user="alice")

    code, out = drift.cli(capsys)

    assert code == 0, out
    assert ": skipped: acme/infra#12 holds the lock" in out
    check = DriftChecks(drift.svc.redis).last(REPO, "app", "default")
    assert check.state is DriftState.SKIPPED and check.run_id == "" and "acme/infra#12" in check.detail
    assert drift.issues() == []


def test_a_failed_check_says_so_on_the_open_issue_once(drift, capsys):
    drift.infra.apply({"a": "changed by hand", "b": "two"})
    assert drift.cli(capsys)[0] == 3  # drift found
    [issue] = drift.issues()
    # The state becomes unreadable: the plan fails.
    (drift.infra.state / "terraform.tfstate").write_text("{ not a state")

    for _ in range(2):
        code, out = drift.cli(capsys)
        assert code == 1 and ": failed: " in out
    [comment] = drift.comments(issue["number"])
    assert comment.startswith("**The drift check of ") and "failed**" in comment
    [still] = drift.issues()
    assert still["state"] == "open" and still["body"] == issue["body"]


def test_the_check_drift_job_links_the_change_record_that_asked(drift):
    drift.infra.apply({"a": "changed by hand", "b": "two"})
    record = "https://github.com/acme/infra-changes/issues/7"

    drift.svc.jobs.check_drift(drift.project, "a change record names it", record)
    run_jobs(drift.svc, drift.svc.runs_queue)

    [issue] = drift.issues()
    assert record in issue["body"] and "Changes recorded that may explain it" in issue["body"]
    check = DriftChecks(drift.svc.redis).last(REPO, "app", "default")
    assert check.state is DriftState.DRIFTED and check.links == (record,)
    [entry] = [e for e in audit.entries(drift.svc.redis) if e.action == "drift-check"]
    assert entry.outcome == "drifted" and entry.detail.startswith("a change record names it")


def test_drift_found_and_resolved_reach_a_receiver(drift, make_receiver):
    hook = make_receiver()
    receivers = (NotificationConfig(kind="webhook", url=hook.url, secret="0123456789abcdef0123",
                                    events=("drift_found", "drift_resolved")),)
    svc = dataclasses.replace(drift.svc, config=drift.svc.config.model_copy(update={"notifications": receivers}))

    drift.infra.apply({"a": "changed by hand", "b": "two"})
    assert check_project(svc, drift.project).state is DriftState.DRIFTED
    assert check_project(svc, drift.project).state is DriftState.DRIFTED  # unchanged: told once
    drift.infra.apply(MAIN)
    assert check_project(svc, drift.project).state is DriftState.CLEAN
    run_jobs(svc, notify_queue(svc.redis))

    told = [r.json() for r in hook.wait(2)]
    assert [(n["event"], n["repo"], n["project"], n["pull"]) for n in told] == [
        ("drift_found", REPO, "app", 0), ("drift_resolved", REPO, "app", 0)]
    assert told[0]["summary"].startswith("Plan: 0 to add, 1 to change, 0 to destroy. (issue http")
    assert told[0]["run_url"].startswith(f"{PUBLIC}/runs/")


def test_a_project_busy_with_another_run_is_skipped_not_run_beside_it(drift, capsys):
    with LockStore(drift.svc.redis).run_guard(drift.project, holder="cmd-42"):
        code, out = drift.cli(capsys)
    assert code == 0 and ": skipped: the project is busy with another run (cmd-42)" in out
    assert DriftChecks(drift.svc.redis).last(REPO, "app", "default").run_id == ""


def test_a_check_drift_job_for_a_busy_project_is_deferred_then_runs(drift):
    drift.infra.apply({"a": "changed by hand", "b": "two"})
    record = "https://github.com/acme/infra-changes/issues/8"
    with LockStore(drift.svc.redis).run_guard(drift.project, holder="cmd-42"):
        drift.svc.jobs.check_drift(drift.project, "a change record names it", record)
        run_jobs(drift.svc, drift.svc.runs_queue)
    registry = drift.svc.runs_queue.scheduled_job_registry
    [job_id] = registry.get_job_ids()
    assert drift.issues() == []
    # A try that will be made again records nothing: one entry per check, not one per try.
    assert DriftChecks(drift.svc.redis).last(REPO, "app", "default") is None
    assert [e for e in audit.entries(drift.svc.redis, REPO) if e.action == "drift-check"] == []

    job = Job.fetch(job_id, connection=drift.svc.redis, serializer=JSONSerializer)
    assert job.args[-1] == 1  # its second attempt
    registry.remove(job)
    drift.svc.runs_queue.enqueue_job(job)  # what RQ's scheduler does when its time comes
    run_jobs(drift.svc, drift.svc.runs_queue)

    [issue] = drift.issues()
    assert record in issue["body"]
    assert DriftChecks(drift.svc.redis).last(REPO, "app", "default").state is DriftState.DRIFTED


def test_the_last_try_of_a_busy_check_records_it_skipped(drift):
    from bot.jobs import check_drift

    with LockStore(drift.svc.redis).run_guard(drift.project, holder="cmd-42"):
        assert check_drift(drift.svc, project_to_dict(drift.project), "scheduled", "", attempt=1000) == "skipped"
    last = DriftChecks(drift.svc.redis).last(REPO, "app", "default")
    assert last.state is DriftState.SKIPPED and "busy with another run (cmd-42)" in last.detail
    assert drift.svc.runs_queue.scheduled_job_registry.get_job_ids() == []
