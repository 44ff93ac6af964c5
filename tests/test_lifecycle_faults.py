"""The lifecycle off the straight path, one handler or executor call at a time (issue: the promise holds off the
happy path). Real Redis, real git, the fake GitHub; Terraform is faked only where the run itself is not the point.

Each test is a kind of fault tfbot once had: a fork head approved with the arrival time of an earlier push of the
same commit; a deferred job that gave up marking its PR's running apply as failed; an apply stopped before its
`apply` step leaving the lock `applying` for good; a retargeted PR handed a lock it then held for good.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from rq import Callback

from bot import jobs as jobs_module
from bot.adapters.plan_store import plan_key
from bot.compose import worker_services
from bot.config import parse_config
from bot.intake.webhooks import Delivery
from bot.lifecycle.handlers.comments import on_comment
from bot.lifecycle.handlers.pull_requests import FORK_APPROVED, autoplan, closed
from bot.lifecycle import runner
from bot.lifecycle.interrupted import report_interrupted
from bot.models import LockState, Outcome, Project
from bot.lifecycle.targets import Target
from bot.lifecycle.steps import ApplyOutcome, PlanOutcome
from bot.services import WorkerServices
from bot.state.records import PlanRecord, project_to_dict
from bot.web.unlocking import UnlockRefused, release
from tests.support import webhook_payloads as wp
from tests.support.services_fixtures import INSTALLATION, REPO, real_pull, run_jobs

pytestmark = pytest.mark.redis


# --- a fork PR: only the head a writer saw, as it stood when they commented ------------------------------------


@pytest.fixture
def fork_services(fake_github, app_keys, redis_conn, tmp_path, services_remote) -> WorkerServices:
    config = parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path),
        "repos": [{"name": "acme/*", "allow_fork_prs": True, "projects": [{"dir": "network"}]}],
    }, base_dir=tmp_path)
    fake_github.add_repo(REPO, services_remote.clone_url, installation_id=INSTALLATION)
    fake_github.set_permission(REPO, "mo", "write")
    return worker_services(config, redis_conn)


def _push(svc, fake, remote, number: int, sha: str, at: str) -> None:
    """Mallory force-pushes `sha` to the fork PR; GitHub says it arrived at `at`; tfbot handles the event."""
    remote.create_pull_ref(number, sha)
    fake.update_pull(REPO, number, head_sha=sha)
    event = wp.pull_request_event("synchronize", fake.repo_payload(REPO), fake.pull_payload(REPO, number),
                                  INSTALLATION, "mallory", before="0" * 40)
    event["pull_request"]["updated_at"] = at
    autoplan(Delivery(f"sync-{at}", "pull_request", event), svc)


def _plan_comment(svc, fake, number: int, at: str, delivery: str = "c1") -> None:
    comment = fake.add_comment(REPO, number, "mo", "tfbot plan")
    event = wp.issue_comment_event("created", fake.repo_payload(REPO), number,
                                   {"body": "tfbot plan", "id": comment["id"], "created_at": at}, INSTALLATION, "mo")
    on_comment(Delivery(delivery, "issue_comment", event), svc)


def test_a_fork_head_pushed_again_after_the_comment_is_not_approved(fork_services, fake_github, services_remote):
    svc, fake, remote = fork_services, fake_github, services_remote
    evil = remote.commit("f", {"network/main.tf": "# evil\n"}, "evil", parent_branch="main")
    good = remote.commit("g", {"network/main.tf": "# benign\n"}, "benign", parent_branch="main")
    remote.create_pull_ref(7, evil)
    fake.add_pull(REPO, 7, head_ref="f", user="mallory", head_sha=evil, fork=True)
    _push(svc, fake, remote, 7, evil, "2030-01-01T10:00:00Z")
    _push(svc, fake, remote, 7, good, "2030-01-01T10:05:00Z")  # the writer reviews this one
    # The evil head comes back after the comment; its push event is still queued behind the comment's job.
    remote.create_pull_ref(7, evil)
    fake.update_pull(REPO, 7, head_sha=evil)
    _plan_comment(svc, fake, 7, "2030-01-01T10:30:00Z")
    assert svc.records.pull_field(REPO, 7, FORK_APPROVED) != evil
    assert not [j for j in svc.runs_queue.jobs if j.func_name == "bot.jobs.run_project"]
    assert any("was pushed after your comment" in c["body"] for c in fake.comments(REPO, 7))


def test_a_fork_head_seen_before_the_comment_is_approved(fork_services, fake_github, services_remote):
    svc, fake, remote = fork_services, fake_github, services_remote
    good = remote.commit("g", {"network/main.tf": "# benign\n"}, "benign", parent_branch="main")
    remote.create_pull_ref(7, good)
    fake.add_pull(REPO, 7, head_ref="g", user="mallory", head_sha=good, fork=True)
    _push(svc, fake, remote, 7, good, "2030-01-01T10:05:00Z")
    _plan_comment(svc, fake, 7, "2030-01-01T10:30:00Z")
    assert svc.records.pull_field(REPO, 7, FORK_APPROVED) == good
    assert [j.func_name for j in svc.runs_queue.jobs] == ["bot.jobs.run_project"]


# --- a job that gives up on a busy project is not an interruption of the run that keeps it busy ------------------


NET = Project(repo=REPO, name="network", dir="network")


def planned_lock(svc, number: int = 1) -> int:
    """PR `number` holds NET's lock, planned; returns the lock's token."""
    lock = svc.locks.try_acquire(NET, number, "alice", waiter={"installation": INSTALLATION}).lock
    assert svc.locks.set_state(NET, number, lock.token, LockState.PLANNED, run_id="run-plan")
    return lock.token


def work_runs(svc) -> None:
    """Run every job on the runs queue in this process, as a worker would (callbacks included)."""
    run_jobs(svc, svc.runs_queue)


def test_a_job_that_gives_up_on_a_busy_project_leaves_the_running_apply_alone(worker_services, fake_github,
                                                                                services_remote):
    svc = worker_services
    head = real_pull(fake_github, services_remote, 1)
    token = planned_lock(svc)
    # The apply of #1 runs: it holds the run guard and set the lock `applying`.
    with svc.locks.run_guard(NET, holder="the-apply-command"):
        svc.locks.set_state(NET, 1, token, LockState.APPLYING, run_id="run-apply", diverged=True)
        # A plan of #1 queued meanwhile was deferred until it gave up (its last attempt).
        plan = svc.records.new_command("plan", REPO, 1, head, INSTALLATION, "mo", total=1,
                                       info={"state": "open", "applies": True, "base_ref": "main"})
        svc.records.set_head(REPO, 1, head)
        svc.runs_queue.enqueue_call(jobs_module.run_project, args=(plan.id, project_to_dict(NET), 1000),
                                    on_failure=Callback(jobs_module.run_failed))
        work_runs(svc)
        lock = svc.locks.get(NET)
        assert (lock.state, lock.run_id, lock.diverged) == (LockState.APPLYING, "run-apply", True)
        [told] = svc.records.results(plan.id)
        assert "could not start" in told.message and "interrupted" not in told.message
        assert "busy" in told.summary
        # Nobody unlocks a workspace while a run holds its guard: not a writer, not an admin with a reason.
        with pytest.raises(UnlockRefused, match="run"):
            release(svc, REPO, "network", "default", by="admin", via="from the lock page", reason="stuck?")
        assert svc.locks.release(NET, 1, None, mode="unlock").refused == "running"
    assert svc.locks.get(NET).state is LockState.APPLYING


def test_an_interrupted_report_marks_failed_only_the_lock_its_own_run_set(worker_services):
    svc = worker_services
    token = planned_lock(svc)
    apply = svc.records.new_command("apply", REPO, 1, "a" * 40, INSTALLATION, "mo", total=1,
                                    info={"state": "open", "applies": True})
    plan = svc.records.new_command("plan", REPO, 1, "a" * 40, INSTALLATION, "mo", total=1,
                                   info={"state": "open", "applies": True})
    svc.locks.set_state(NET, 1, token, LockState.APPLYING, run_id="run-apply", diverged=True, command_id=apply.id)
    report_interrupted(svc, plan.id, project_to_dict(NET), "its worker stopped")  # another run of the same PR
    assert svc.locks.get(NET).state is LockState.APPLYING
    report_interrupted(svc, apply.id, project_to_dict(NET), "its worker stopped")  # the apply's own run
    lock = svc.locks.get(NET)
    assert (lock.state, lock.diverged) == (LockState.APPLY_FAILED, True)


# --- an apply that does not reach its end never leaves the lock `applying` ----------------------------------------


def reviewed_plan(svc, tmp_path, number: int = 1, head: str = "a" * 40) -> int:
    """PR `number` holds NET's lock with a posted (reviewed) plan of `head`; returns the lock's token."""
    token = planned_lock(svc, number)
    plan_file = tmp_path / "reviewed.tfplan"
    plan_file.write_bytes(b"a saved plan")
    key = plan_key(NET, number, head, "run-plan")
    svc.records.save_plan(PlanRecord(project=project_to_dict(NET), pull=number, head_sha=head, base_sha="", key=key,
                                     sha256=svc.plans.put(key, plan_file), summary="Plan: 1 to add",
                                     changes=[["create", "terraform_data.x"]], run_id="run-plan", user="alice",
                                     plan_sha=head, digest="d", has_changes=True))
    svc.records.mark_plan_posted(NET, number, "run-plan")
    return token


def apply_command(svc, number: int = 1, head: str = "a" * 40):
    return svc.records.new_command("apply", REPO, number, head, INSTALLATION, "mo", total=1,
                                   info={"state": "open", "merged": False, "applies": True, "base_ref": "main"})


@pytest.fixture
def apply_without_terraform(monkeypatch, tmp_path):
    """The executor's apply path with git and Terraform left out: the reviewed plan matches, the working copy is a
    temporary directory; the test gives the apply steps. Returns the run guards the runs held."""
    guards = []
    real_guard = runner._guard

    @contextmanager
    def recording_guard(svc, cmd, project):
        with real_guard(svc, cmd, project) as guard:
            guards.append(guard)
            yield guard

    monkeypatch.setattr(runner, "_guard", recording_guard)
    monkeypatch.setattr(runner, "_target_sha", lambda *a, **k: "t" * 40)
    monkeypatch.setattr(runner, "_matches", lambda *a, **k: True)
    monkeypatch.setattr(runner, "_working_dir", lambda *a, **k: tmp_path)
    return guards


def test_a_guard_lost_before_the_apply_step_leaves_the_lock_planned(worker_services, tmp_path, monkeypatch,
                                                                    apply_without_terraform):
    svc, guards = worker_services, apply_without_terraform
    reviewed_plan(svc, tmp_path)

    def steps(tf, workflow, workdir, workspace, plan_file, before_step, run_env=None, root=None):
        before_step("init")
        guards[-1].lost = True  # the worker stalled past the guard's TTL during init
        before_step("apply")
        raise AssertionError("the fence lets no apply step run without the guard")

    monkeypatch.setattr(runner, "run_apply_steps", steps)
    first = runner.run_project(svc, apply_command(svc), NET)
    assert first.outcome is Outcome.ERROR and "applied nothing" in first.message
    lock = svc.locks.get(NET)
    assert (lock.state, lock.diverged) == (LockState.PLANNED, False)  # nothing ran that could change anything

    monkeypatch.setattr(runner, "run_apply_steps", lambda *a, **k: ApplyOutcome(True, [], "Apply complete!"))
    again = runner.run_project(svc, apply_command(svc), NET)  # what the PR was told to do
    assert again.outcome is Outcome.APPLIED
    assert svc.locks.get(NET).state is LockState.APPLIED


def test_an_apply_stopped_after_its_apply_step_began_is_marked_failed(worker_services, tmp_path, monkeypatch,
                                                                     apply_without_terraform):
    svc = worker_services
    reviewed_plan(svc, tmp_path)
    seen = []

    def steps(tf, workflow, workdir, workspace, plan_file, before_step, run_env=None, root=None):
        before_step("init")
        seen.append(svc.locks.get(NET).state)
        before_step("apply")
        seen.append(svc.locks.get(NET))
        raise OSError("the disk filled up under Terraform")

    monkeypatch.setattr(runner, "run_apply_steps", steps)
    first = runner.run_project(svc, apply_command(svc), NET)
    during_init, during_apply = seen
    assert during_init is LockState.PLANNED  # init changes nothing: not yet applying
    assert (during_apply.state, during_apply.diverged) == (LockState.APPLYING, True)
    lock = svc.locks.get(NET)
    assert (lock.state, lock.diverged) == (LockState.APPLY_FAILED, True)
    assert first.outcome is Outcome.ERROR and "apply failed" in first.message and "comment `apply`" in first.message
    assert svc.locks.release(NET, 1, lock.token, mode="unlock").refused == "flagged"  # it may have applied part

    monkeypatch.setattr(runner, "run_apply_steps", lambda *a, **k: ApplyOutcome(True, [], "Apply complete!"))
    assert runner.run_project(svc, apply_command(svc), NET).outcome is Outcome.APPLIED


# --- a PR retargeted to a branch tfbot does not apply takes no lock, not even one handed to it ------------------


def retarget(svc, fake, remote, number: int, base: str, send: bool = True) -> None:
    """Change PR `number`'s base to `base`; with `send`, tfbot handles the `edited` event."""
    fake.update_pull(REPO, number, base_ref=base, base_sha=remote.branch_sha(base))
    if send:
        event = wp.pull_request_event("edited", fake.repo_payload(REPO), fake.pull_payload(REPO, number),
                                      INSTALLATION, "alice", changes={"base": {"ref": {"from": "main"}}})
        autoplan(Delivery(f"edit-{number}", "pull_request", event), svc)


def close(svc, fake, number: int) -> None:
    fake.update_pull(REPO, number, state="closed")
    closed(Delivery(f"close-{number}", "pull_request", wp.pull_request_event(
        "closed", fake.repo_payload(REPO), fake.pull_payload(REPO, number), INSTALLATION, "alice")), svc)


def run_events(svc) -> None:
    for job in svc.events_queue.jobs:
        job.func(svc, *job.args)
        job.delete()


@pytest.fixture
def two_prs_in_line(worker_services, fake_github, services_remote):
    """#1 holds NET's lock, #2 waits in line; a branch `release` exists, which tfbot does not apply."""
    services_remote.commit("release", {"README.md": "release\n"}, "release", parent_branch="main")
    real_pull(fake_github, services_remote, 1)
    real_pull(fake_github, services_remote, 2)
    svc = worker_services
    svc.locks.try_acquire(NET, 1, "alice", waiter={"installation": INSTALLATION})
    svc.locks.try_acquire(NET, 2, "alice", waiter={"installation": INSTALLATION})
    return svc


def test_a_waiting_pr_retargeted_away_leaves_the_line(two_prs_in_line, fake_github, services_remote):
    svc = two_prs_in_line
    retarget(svc, fake_github, services_remote, 2, "release")
    assert svc.locks.position(NET, 2) is None
    [plan] = [svc.records.command(j.args[0]) for j in svc.runs_queue.jobs]  # planned without a lock, and told:
    assert "Left the waiting line of `network`" in plan.note and "not a branch tfbot applies" in plan.note
    close(svc, fake_github, 1)
    assert svc.locks.get(NET) is None  # nobody was waiting for it any more


def test_a_lock_handed_to_a_pr_whose_base_does_not_apply_is_passed_on(two_prs_in_line, fake_github,
                                                                       services_remote):
    svc = two_prs_in_line
    retarget(svc, fake_github, services_remote, 2, "release", send=False)  # its event not handled yet
    close(svc, fake_github, 1)
    assert svc.locks.get(NET).pull == 2  # handed over in line order
    run_events(svc)  # the hand-over job plans #2: it looks at #2 as it is now
    assert svc.locks.get(NET) is None
    assert not [j for j in svc.runs_queue.jobs if svc.records.command(j.args[0]).info.get("applies")]


def test_a_plan_without_a_lock_lets_go_of_a_lock_the_pr_holds(two_prs_in_line, fake_github, services_remote,
                                                              monkeypatch):
    svc = two_prs_in_line
    retarget(svc, fake_github, services_remote, 2, "release", send=False)
    close(svc, fake_github, 1)
    svc.events_queue.empty()  # the hand-over job is lost; the retarget's own plan comes first
    head = fake_github.pull_payload(REPO, 2)["head"]["sha"]
    cmd = svc.records.new_command("plan", REPO, 2, head, INSTALLATION, "alice", total=1,
                                  info={"state": "open", "applies": False, "base_ref": "release"})
    monkeypatch.setattr(runner, "merged_target", lambda svc, cmd, sha: Target(sha, sha, ""))
    monkeypatch.setattr(runner, "run_plan", lambda *a, **k: (
        PlanOutcome(ok=True, steps=[], summary="Plan: 1 to add", has_changes=True), "run-2"))
    result = runner.run_project(svc, cmd, NET)
    assert result.outcome is Outcome.PLANNED and "takes no lock" in result.message
    assert svc.locks.get(NET) is None


# --- an admin's unlock: a lock flagged between the page's read and the release needs a reason ------------------


@pytest.fixture
def flagged_after_the_read(worker_services, monkeypatch) -> int:
    """A planned lock of #1 whose apply records its end between the page's read and the release script."""
    svc = worker_services
    token = planned_lock(svc)
    real = svc.locks.force_release

    def apply_ends_meanwhile(target, by, **kw):
        # #1's apply (its guard already let go) records its end between the read and the release script
        assert svc.locks.set_state(NET, 1, token, LockState.APPLIED, diverged=True, run_id="r-apply")
        return real(target, by, **kw)

    monkeypatch.setattr(svc.locks, "force_release", apply_ends_meanwhile)
    return token


def test_a_lock_flagged_after_the_read_is_not_unlocked_without_a_reason(worker_services, flagged_after_the_read):
    svc, token = worker_services, flagged_after_the_read
    with pytest.raises(UnlockRefused, match="reason"):
        release(svc, REPO, "network", "default", by="admin", via="from the lock page", token=token, reason="")
    kept = svc.locks.get(NET)
    assert kept.pull == 1 and kept.state is LockState.APPLIED and kept.diverged


def test_the_unlock_audit_names_the_state_of_the_lock_released(worker_services, flagged_after_the_read):
    from bot.state import audit

    svc, token = worker_services, flagged_after_the_read
    held, _ = release(svc, REPO, "network", "default", by="admin", via="from the lock page", token=token,
                      reason="rolled back by hand")
    assert held is not None and held.state is LockState.APPLIED and held.diverged
    details = [e.detail for e in audit.entries(svc.redis)]
    assert any("state: applied, awaiting merge" in d for d in details), details


# --- a fork PR retargeted off an applying branch lets go of its locks and places -----------------------------------


def test_fork_pr_retargeted_off_applying_branch_releases_its_lock(fake_github, worker_services, services_remote):
    svc = worker_services
    net = Project(repo=REPO, name="network", dir="network")
    services_remote.commit("release", {"network/main.tf": "# network\n", "dns/main.tf": "# dns\n"}, "release",
                           parent_branch="main")
    head = services_remote.commit("f1", {"network/main.tf": "# fork\n"}, "fork change", parent_branch="main")
    services_remote.create_pull_ref(1, head)
    fake_github.add_pull(REPO, 1, head_ref="f1", user="mallory", head_sha=head, fork=True)
    svc.locks.try_acquire(net, 1, "mallory", waiter={"installation": 99})   # a writer's `plan` took it
    svc.locks.try_acquire(net, 2, "bob", waiter={"installation": 99})       # #2 waits
    fake_github.update_pull(REPO, 1, base_ref="release", base_sha=services_remote.branch_sha("release"))
    ev = wp.pull_request_event("edited", fake_github.repo_payload(REPO), fake_github.pull_payload(REPO, 1), 99,
                               "mallory", changes={"base": {"ref": {"from": "main"}, "sha": {"from": "0" * 40}}})
    autoplan(Delivery("e1", "pull_request", ev), svc)
    lock = svc.locks.get(net)
    assert lock is None or lock.pull != 1


# --- an apply whose `init` fails changed nothing: the lock is not flagged -----------------------------------------


def test_an_apply_whose_init_fails_leaves_the_lock_planned(worker_services, tmp_path, monkeypatch,
                                                           apply_without_terraform):
    svc = worker_services
    token = reviewed_plan(svc, tmp_path)

    def steps(tf, workflow, workdir, workspace, plan_file, before_step, run_env=None, root=None):
        before_step("init")
        return ApplyOutcome(False, [], "Error: Failed to query available provider packages", failed_step="init")

    monkeypatch.setattr(runner, "run_apply_steps", steps)
    result = runner.run_project(svc, apply_command(svc), NET)
    lock = svc.locks.get(NET)
    assert (lock.state, lock.diverged) == (LockState.PLANNED, False)
    assert "did not start" in result.message
    assert svc.locks.release(NET, 1, token, mode="unlock").released  # nothing changed: a writer may unlock


# --- a merged PR whose lock an open-PR apply left `apply failed` still has its merge handled ---------------------


def test_a_merge_missed_after_a_failed_open_apply_is_handed_to_tfbot(fake_github, worker_services, redis_conn,
                                                                     services_remote):
    import time

    from bot.ops.reconcile import Action, reconcile
    from bot.state import keys

    svc = worker_services
    redis_conn.set(keys.merges_watched_since(), str(time.time() - 3600))
    head = services_remote.commit("b1", {"network/main.tf": "# n1\n"}, "network", parent_branch="main")
    services_remote.create_pull_ref(1, head)
    fake_github.add_pull(REPO, 1, head_ref="b1", user="alice", head_sha=head)
    acq = svc.locks.try_acquire(NET, 1, "alice", waiter={"installation": INSTALLATION}, command_id="c-apply")
    assert svc.locks.set_state(NET, 1, acq.lock.token, LockState.APPLY_FAILED, command_id="c-apply")
    svc.records.set_pull_field(REPO, 1, "installation", str(INSTALLATION))
    sha = services_remote.merge("b1")
    fake_github.update_pull(REPO, 1, merged=True, merge_commit_sha=sha, merged_by="mo")

    results = reconcile(svc)
    assert [r.action for r in results if r.pull == 1] == [Action.QUEUED]
    assert [j.func_name for j in svc.events_queue.jobs]  # the missed closing event, for the closed handler


# --- a lock a merge took is diverged until the merge is applied: a writer's `unlock` is refused -------------------


def test_a_lock_taken_by_a_merge_whose_run_dies_refuses_a_writers_unlock(fake_github, worker_services, tmp_path,
                                                                        monkeypatch, apply_without_terraform):
    svc = worker_services
    fake_github.add_pull(REPO, 1, head_ref="b1", user="alice", head_sha="a" * 40)
    fake_github.update_pull(REPO, 1, merged=True, merge_commit_sha="m" * 40, merged_by="mo")
    merge = svc.records.new_command("merge", REPO, 1, "a" * 40, INSTALLATION, "mo", total=1,
                                    info={"state": "closed", "merged": True, "applies": True, "base_ref": "main",
                                          "author": "alice"})

    def dies(*a, **k):
        raise RuntimeError("the worker was killed while planning the merge")

    monkeypatch.setattr(runner, "run_plan", dies)
    result = runner.run_project(svc, merge, NET)  # merged without the lock: taken, then the run fails
    assert result.outcome is Outcome.ERROR
    lock = svc.locks.get(NET)
    assert (lock.pull, lock.diverged) == (1, True)

    fake_github.set_permission(REPO, "mo", "write")
    comment = fake_github.add_comment(REPO, 1, "mo", "tfbot unlock")
    event = wp.issue_comment_event("created", fake_github.repo_payload(REPO), 1,
                                   {"body": "tfbot unlock", "id": comment["id"]}, INSTALLATION, "mo")
    on_comment(Delivery("u1", "issue_comment", event), svc)
    assert svc.locks.get(NET).pull == 1  # kept: the merge was never applied
    said = " ".join(c["body"] for c in fake_github.comments(REPO, 1))
    assert "not unlocked" in said and "differ" in said


def test_a_plan_is_applied_with_the_workflow_it_was_made_with(worker_services, tmp_path, monkeypatch,
                                                               apply_without_terraform):
    """A tfbot.yaml merged after the plan switched the project's workflow: the reviewed plan still applies with
    the apply steps of the workflow that made it."""
    from dataclasses import replace

    svc = worker_services
    svc.workflows["gated"] = replace(svc.workflows["default"], name="gated")
    reviewed_plan(svc, tmp_path)
    record = svc.records.plan(NET, 1)
    svc.records.save_plan(replace(record, project={**record.project, "workflow": "gated"}))
    used = []

    def steps(tf, workflow, workdir, workspace, plan_file, before_step, run_env=None, root=None):
        used.append(workflow.name)
        return ApplyOutcome(True, [], "Apply complete!")

    monkeypatch.setattr(runner, "run_apply_steps", steps)
    assert runner.run_project(svc, apply_command(svc), NET).outcome is Outcome.APPLIED  # NET's workflow: default
    assert used == ["gated"]
