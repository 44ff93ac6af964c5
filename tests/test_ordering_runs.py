"""Applies in order against real Redis and the fake GitHub: the command starts what waits for nothing, and every
way a result arrives (a refusal known up front, a run that recorded its result and died) moves the rest on."""
from __future__ import annotations

from bot.lifecycle.interrupted import report_interrupted
from bot.lifecycle.planning import start_command
from bot.models import Outcome, Project, ProjectResult
from bot.state.records import project_to_dict
from tests.support.services_fixtures import INSTALLATION, REPO

NETWORK = Project(repo=REPO, name="network", dir="network")
DNS = Project(repo=REPO, name="dns", dir="dns", depends_on=("network",))


def open_pull(fake, svc):
    fake.add_pull(REPO, 1, head_ref="grow", user="alice", head_sha="a" * 40, base_sha="b" * 40)
    return svc.github.repo(INSTALLATION, REPO).pull(1)


def queued_runs(svc) -> list[str]:
    return [job.args[1]["name"] for job in svc.runs_queue.jobs if job.func_name == "bot.jobs.run_project"]


def test_only_what_waits_for_nothing_starts(fake_github, worker_services):
    svc = worker_services
    cmd = start_command(svc, "apply", REPO, open_pull(fake_github, svc), INSTALLATION, "alice", [DNS, NETWORK])
    assert queued_runs(svc) == ["network"]
    assert "Applied in order: `network`, then `dns`" in cmd.note


def test_a_dependency_refused_up_front_holds_back_what_depends_on_it(fake_github, worker_services):
    svc = worker_services
    refused = ProjectResult(NETWORK, Outcome.REFUSED, head_sha="a" * 40, message="needs an approving review")
    cmd = start_command(svc, "apply", REPO, open_pull(fake_github, svc), INSTALLATION, "alice", [DNS],
                        prefilled=[refused])
    assert queued_runs(svc) == []  # dns never runs
    results = {r.project.name: r for r in svc.records.results(cmd.id)}
    assert results["dns"].outcome is Outcome.NOT_APPLIED and "`dns` depends on `network`" in results["dns"].message
    assert {job.func_name for job in svc.events_queue.jobs} == {"bot.jobs.report_command"}  # complete: reported


def test_a_run_that_recorded_its_result_and_died_still_starts_what_waits_for_it(fake_github, worker_services):
    svc = worker_services
    cmd = start_command(svc, "apply", REPO, open_pull(fake_github, svc), INSTALLATION, "alice", [NETWORK, DNS])
    svc.runs_queue.empty()
    # network's run added its result, then its process died before it moved the command on.
    svc.records.add_result(cmd.id, ProjectResult(NETWORK, Outcome.APPLIED, head_sha="a" * 40))
    report_interrupted(svc, cmd.id, project_to_dict(NETWORK), "the process running it died (signal 9)")
    assert queued_runs(svc) == ["dns"]


def test_apply_of_one_project_waits_for_this_prs_plan_of_what_it_depends_on(fake_github, app_keys, redis_conn,
                                                                             tmp_path, services_remote):
    from bot.compose import worker_services
    from bot.config import parse_config
    from bot.intake.webhooks import Delivery
    from bot.lifecycle.handlers.comments import on_comment
    from bot.models import LockState
    from tests.support import webhook_payloads as wp
    from tests.support.services_fixtures import real_pull

    svc = worker_services(parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path),
        "repos": [{"name": "acme/*", "projects": [{"dir": "network"}, {"dir": "dns", "depends_on": "network"}]}],
    }, base_dir=tmp_path), redis_conn)
    fake_github.add_repo(REPO, services_remote.clone_url, installation_id=INSTALLATION)
    fake_github.set_permission(REPO, "mo", "write")
    real_pull(fake_github, services_remote, 1)
    for project in (NETWORK, DNS):
        lock = svc.locks.try_acquire(project, 1, "alice", waiter={"installation": INSTALLATION}).lock
        svc.locks.set_state(project, 1, lock.token, LockState.PLANNED, run_id=f"run-{project.name}")
    comment = fake_github.add_comment(REPO, 1, "mo", "tfbot apply -p dns")
    on_comment(Delivery("c1", "issue_comment", wp.issue_comment_event(
        "created", fake_github.repo_payload(REPO), 1, {"body": "tfbot apply -p dns", "id": comment["id"]},
        INSTALLATION, "mo")), svc)
    assert queued_runs(svc) == []  # dns does not run before network
    [command] = {job.args[0] for job in svc.events_queue.jobs if job.func_name == "bot.jobs.report_command"}
    [result] = svc.records.results(command)
    assert result.outcome is Outcome.REFUSED and "apply `network` first" in result.message
