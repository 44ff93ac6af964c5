"""A model-based test of the PR lifecycle: random interleavings of what users and GitHub do, against the real
pieces, with the promise checked after every step.

Real: Redis, RQ (jobs run by `SimpleWorker` in this process, one at a time, in an order hypothesis picks, so
"two events at once" becomes "their jobs interleaved any way"), the handlers and the runner, Terraform on
`terraform_data`, git, and the fake GitHub over HTTP. Not modelled: a killed worker (tests/test_worker_crash_e2e.py
covers it) and GitHub faults (tests/test_github_faults_e2e.py).

Invariants, after every step:
- no run guard is left behind by a finished job (two runs never share a workspace);
- every value in a project's Terraform state was shown on the PR that brought it, in a plan tfbot posted
  there (nothing applied that was not posted on that PR);
and once every queued job has run:
- a project that a PR merged into the default branch changed matches the default branch, or its lock is held
  by a PR whose last comment about it says why (stale plan, failed run, waiting in line, kept flagged);
- no lock is held by a PR closed without merging unless the PR was told so;
- every open PR that changes a project has a final (not pending) plan status on its head.

`TFBOT_MODEL_EXAMPLES` and `TFBOT_MODEL_STEPS` make the run longer (see docs/development.md).
"""
from __future__ import annotations

import itertools
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from tests.support import webhook_payloads as wp
from tests.support.git_repos import GitError, RemoteRepo
from tests.support.tf_configs import backend_block, hcl_string
from tests.support.tfbot_process import write_config

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("TFBOT_MODEL_EXAMPLES", "3"))
STEPS = int(os.environ.get("TFBOT_MODEL_STEPS", "14"))
INSTALLATION = 99
PROJECTS = ("network", "app")
USERS = {"alice": "write", "rita": "read"}
STATS = {"examples": 0, "steps": 0, "jobs": 0, "comments": 0, "applies": 0}


def tf(state_dir: Path, values: dict[str, str]) -> str:
    body = "".join(f'resource "terraform_data" {hcl_string(k)} {{\n  input = {hcl_string(v)}\n}}\n'
                   for k, v in sorted(values.items()))
    return backend_block(state_dir) + body


class World:
    """What lives across examples: the fake GitHub, Redis, the private key, a temp root."""

    def __init__(self, fake: Any, conn: Any, key: bytes, root: Path):
        self.fake, self.conn, self.key, self.root = fake, conn, key, root
        self.count = itertools.count()


class Lifecycle(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        from bot import jobs
        from bot.config import load_config
        from bot.services import WorkerServices

        w = self.world
        n = next(w.count)
        STATS["examples"] += 1
        self.tmp = w.root / f"ex{n}"
        self.tmp.mkdir()
        self.repo = f"acme/model{n}"
        w.conn.flushdb()
        self.remote = RemoteRepo(self.tmp / "remote", self.repo)
        self.states = {p: self.tmp / "state" / p for p in PROJECTS}
        self.values: dict[str, dict[str, str]] = {p: {"base": f"seed-{p}"} for p in PROJECTS}
        self.remote.commit("main", {f"{p}/main.tf": tf(self.states[p], self.values[p]) for p in PROJECTS}, "seed")
        self.remote.commit("dev", {"README.md": "dev\n"}, "dev", parent_branch="main")
        w.fake.add_repo(self.repo, self.remote.clone_url, installation_id=INSTALLATION)
        for user, role in USERS.items():
            w.fake.set_permission(self.repo, user, role)
        path = write_config(self.tmp, {
            "github": {"api_url": w.fake.base_url, "app_id": w.fake.app_id, "private_key": w.key.decode(),
                       "webhook_secret": "s", "app_slug": w.fake.app_slug, "retries": 0, "write_interval": 0},
            "data_dir": str(self.tmp / "data"), "redis_url": "redis://unused", "terraform": {"timeout": 120},
            "repos": [{"name": "acme/*"}],
        })
        self.svc = WorkerServices(load_config(path), w.conn)
        jobs.set_services(self.svc)
        self.queues = [Queue(name, connection=w.conn, serializer=JSONSerializer) for name in ("tfbot-events",
                                                                                               "tfbot-runs")]
        self.pulls: dict[int, dict[str, Any]] = {}  # number -> branch, base, state, touched projects
        self.origin: dict[str, int] = {}  # value -> the PR that brought it (0: the seed)
        for p in PROJECTS:
            self.origin[f"seed-{p}"] = 0
        self.serial = itertools.count(1)

    # --- what GitHub and users do ---------------------------------------------------------------------

    def send(self, event: str, payload: dict[str, Any]) -> None:
        self.svc.events_queue.enqueue_call("bot.jobs.handle_delivery", args=(uuid.uuid4().hex, event, payload),
                                           result_ttl=60, failure_ttl=600)

    def pr_event(self, action: str, number: int, **extra: Any) -> None:
        fake = self.world.fake
        self.send("pull_request", wp.pull_request_event(action, fake.repo_payload(self.repo),
                                                        fake.pull_payload(self.repo, number), INSTALLATION, "alice",
                                                        **extra))

    def change(self, number: int, project: str) -> dict[str, str]:
        value = f"v{next(self.serial)}"
        self.origin[value] = number
        pull = self.pulls[number]
        current = dict(pull["files"].get(project, self.values_on(pull["base"], project)))
        current[f"r{len(current) % 2}"] = value
        pull["files"][project] = current
        pull["touched"].add(project)
        return {f"{project}/main.tf": tf(self.states[project], current)}

    def values_on(self, branch: str, project: str) -> dict[str, str]:
        text = self.remote.read_file(branch, f"{project}/main.tf") or ""
        found: dict[str, str] = {}
        name = None
        for line in text.splitlines():
            if line.startswith('resource "terraform_data"'):
                name = line.split('"')[3]
            elif line.strip().startswith("input =") and name:
                found[name] = line.split('"')[1]
        return found

    @rule(projects=st.sets(st.sampled_from(PROJECTS), min_size=1), into_dev=st.sampled_from([False, False, True]))
    def open_pr(self, projects: set[str], into_dev: bool) -> None:
        number = len(self.pulls) + 1
        base = "dev" if into_dev else "main"
        branch = f"pr{number}"
        self.pulls[number] = {"branch": branch, "base": base, "state": "open", "touched": set(), "files": {}}
        files: dict[str, str] = {}
        for project in sorted(projects):
            files.update(self.change(number, project))
        sha = self.remote.commit(branch, files, f"PR {number}", parent_branch=base)
        self.world.fake.add_pull(self.repo, number=number, head_ref=branch, user="alice", head_sha=sha,
                                 base_ref=base)
        self.remote.create_pull_ref(number, sha)
        self.pr_event("opened", number)

    def open_numbers(self) -> list[int]:
        return [n for n, p in self.pulls.items() if p["state"] == "open"]

    @precondition(lambda self: self.open_numbers())
    @rule(data=st.data())
    def push(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(self.open_numbers()))
        project = data.draw(st.sampled_from(PROJECTS))
        before = str(self.world.fake.pull_payload(self.repo, number)["head"]["sha"])
        sha = self.remote.commit(self.pulls[number]["branch"], self.change(number, project), "push")
        self.remote.create_pull_ref(number, sha)
        self.world.fake.update_pull(self.repo, number, head_sha=sha)
        self.pr_event("synchronize", number, before=before)

    @precondition(lambda self: self.pulls)
    @rule(data=st.data(), user=st.sampled_from(sorted(USERS)), body=st.sampled_from(["plan", "apply", "unlock"]))
    def comment(self, data: st.DataObject, user: str, body: str) -> None:
        number = data.draw(st.sampled_from(sorted(self.pulls)))
        fake = self.world.fake
        made = fake.add_comment(self.repo, number, user, body)
        self.send("issue_comment", wp.issue_comment_event("created", fake.repo_payload(self.repo), number, made,
                                                          INSTALLATION, user,
                                                          issue=fake.issue_payload(self.repo, number)))

    @precondition(lambda self: self.open_numbers())
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(self.open_numbers()))
        pull = self.pulls[number]
        try:
            sha = self.remote.merge(pull["branch"], into=pull["base"])
        except GitError:
            return  # a conflict: GitHub would not merge it either
        pull["state"] = "merged"
        self.world.fake.update_pull(self.repo, number, merged=True, merge_commit_sha=sha, merged_by="alice")
        self.pr_event("closed", number)

    @precondition(lambda self: self.open_numbers())
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(self.open_numbers()))
        self.pulls[number]["state"] = "closed"
        self.world.fake.update_pull(self.repo, number, state="closed")
        self.pr_event("closed", number)

    @precondition(lambda self: any(p["state"] == "closed" for p in self.pulls.values()))
    @rule(data=st.data())
    def reopen(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from([n for n, p in self.pulls.items() if p["state"] == "closed"]))
        self.pulls[number]["state"] = "open"
        self.world.fake.update_pull(self.repo, number, state="open")
        self.pr_event("reopened", number)

    @precondition(lambda self: self.pulls)
    @rule(data=st.data())
    def duplicate_delivery(self, data: st.DataObject) -> None:
        """GitHub redelivers a comment event (a new delivery id, the same content)."""
        number = data.draw(st.sampled_from(sorted(self.pulls)))
        mine = [c for c in self.world.fake.comments(self.repo, number) if c["user"] != self.world.fake.bot_login]
        if not mine:
            return
        fake = self.world.fake
        made = mine[-1]
        self.send("issue_comment", wp.issue_comment_event(
            "created", fake.repo_payload(self.repo), number, {"id": made["id"], "body": made["body"]},
            INSTALLATION, made["user"], issue=fake.issue_payload(self.repo, number)))

    @precondition(lambda self: any(p["base"] == "main" and p["state"] != "closed" for p in self.pulls.values()))
    @rule(data=st.data())
    def writer_applies(self, data: st.DataObject) -> None:
        """The common path, made likelier than a random comment: a writer applies a PR into main."""
        number = data.draw(st.sampled_from(sorted(n for n, p in self.pulls.items()
                                                  if p["base"] == "main" and p["state"] != "closed")))
        fake = self.world.fake
        made = fake.add_comment(self.repo, number, "alice", "tfbot apply")
        self.send("issue_comment", wp.issue_comment_event("created", fake.repo_payload(self.repo), number, made,
                                                          INSTALLATION, "alice",
                                                          issue=fake.issue_payload(self.repo, number)))

    @precondition(lambda self: self.pending())
    @rule(pick=st.integers(min_value=0, max_value=20))
    def run_a_job(self, pick: int) -> None:
        self.run_one(pick)

    @precondition(lambda self: self.pending())
    @rule(picks=st.lists(st.integers(min_value=0, max_value=20), min_size=2, max_size=8))
    def run_some_jobs(self, picks: list[int]) -> None:
        for pick in picks:
            if self.pending():
                self.run_one(pick)

    @precondition(lambda self: self.pulls)
    @rule()
    def settle(self) -> None:
        """Every queued job runs (in queue order): the promise is checked at rest, then the story goes on."""
        self.drain()
        self.no_job_failed()
        self.check_quiescent()

    # --- running jobs in an order of our choosing ----------------------------------------------------

    def pending(self) -> list[tuple[Queue, str]]:
        self.release_scheduled()
        return [(q, job_id) for q in self.queues for job_id in q.get_job_ids()]

    def release_scheduled(self) -> None:
        """Deferred jobs and retries are due at once: the model skips the waiting, not the job."""
        for q in self.queues:
            registry = ScheduledJobRegistry(queue=q)
            for job_id in registry.get_job_ids():
                job = Job.fetch(job_id, connection=self.world.conn, serializer=JSONSerializer)
                registry.remove(job)
                q.enqueue_job(job)

    def run_one(self, pick: int) -> None:
        pending = self.pending()
        queue, job_id = pending[pick % len(pending)]
        queue.remove(job_id)
        queue.push_job_id(job_id, at_front=True)
        others = [q for q in self.queues if q is not queue]
        SimpleWorker([queue, *others], connection=self.world.conn, serializer=JSONSerializer).work(
            burst=True, max_jobs=1, logging_level="WARNING")
        STATS["jobs"] += 1

    def drain(self) -> None:
        for _ in range(400):
            if not self.pending():
                return
            self.run_one(0)
        raise AssertionError("the queues never drained: a job keeps queueing jobs")

    # --- the promise -----------------------------------------------------------------------------------

    @invariant()
    def no_job_failed(self) -> None:
        from rq.registry import FailedJobRegistry

        for q in self.queues:
            failed = FailedJobRegistry(queue=q).get_job_ids()
            if failed:
                job = Job.fetch(failed[0], connection=self.world.conn, serializer=JSONSerializer)
                raise AssertionError(f"job {job.description} failed:\n{job.latest_result().exc_string}")

    @invariant()
    def no_guard_left_behind(self) -> None:
        STATS["steps"] += 1
        leftover = [k for k in self.world.conn.scan_iter("tfbot:guard:*")]
        assert not leftover, f"run guards left by finished jobs: {leftover}"

    @invariant()
    def nothing_applied_that_was_not_posted_on_its_pr(self) -> None:
        for project in PROJECTS:
            for name, value in self.state(project).items():
                pr = self.origin.get(value)
                assert pr is not None, f"{project}.{name} = {value!r} came from nowhere"
                shown_on = [pr] if pr else sorted(self.pulls)
                assert any(value in b for n in shown_on for b in self.bot_comments(n)), (
                    f"{project}.{name} = {value!r} reached the state but no plan showing it was posted on #{pr}\n"
                    + self.story())

    def teardown(self) -> None:
        try:
            self.drain()
            self.no_job_failed()
            self.check_quiescent()
            STATS["comments"] += sum(len(self.bot_comments(n)) for n in self.pulls)
            if os.environ.get("TFBOT_MODEL_DEBUG"):
                for n, pull in self.pulls.items():
                    print(f"#{n} {pull['state']} into {pull['base']} touched {sorted(pull['touched'])}")
                    for b in self.bot_comments(n):
                        print("    ", " | ".join(line for line in b.splitlines()[1:6] if line.strip())[:300])
            STATS["applies"] += sum(sum("Apply complete!" in b for b in self.bot_comments(n)) for n in self.pulls)
        finally:
            from bot import jobs

            jobs.set_services(None)

    def check_quiescent(self) -> None:
        self.nothing_applied_that_was_not_posted_on_its_pr()
        for project in PROJECTS:
            merged = [n for n, p in self.pulls.items() if p["state"] == "merged" and p["base"] == "main"
                      and project in p["touched"]]
            if not merged:
                continue
            if self.state(project) == self.values_on("main", project):
                continue
            lock = self.lock(project)
            assert lock is not None, (f"{project}: merged by {merged} into main but the state differs from main "
                                      f"({self.state(project)} vs {self.values_on('main', project)}) and no PR "
                                      "holds its lock\n" + self.story())
            said = " ".join(self.bot_comments(lock.pull)[-3:])
            assert any(w in said for w in ("Nothing was applied", "lock stays", "stays with", "in line",
                                           "failed", "locked by", "Plan:")), (
                f"{project}: held by #{lock.pull} with the state unlike main, and the PR was not told why: {said}")
        for project in PROJECTS:
            lock = self.lock(project)
            if lock is not None and self.pulls.get(lock.pull, {}).get("state") == "closed":
                said = " ".join(self.bot_comments(lock.pull))
                assert "closed without merging, but it applied" in said, (
                    f"{project}: held by closed #{lock.pull} and nobody was told\n" + self.story())
        for number, pull in self.pulls.items():
            if pull["state"] != "open" or not pull["touched"]:
                continue
            head = str(self.world.fake.pull_payload(self.repo, number)["head"]["sha"])
            status = self.world.fake.latest_status(self.repo, head, "tfbot/plan")
            assert status is not None and status["state"] != "pending", (
                f"#{number} changes {pull['touched']} but its head has no final plan status: {status}")

    def story(self) -> str:
        """What happened, for a failure message: each PR's comments (first lines) and the audit trail."""
        from bot.state import audit

        lines = []
        for n, pull in self.pulls.items():
            lines.append(f"#{n} {pull['state']} into {pull['base']}, touched {sorted(pull['touched'])}, "
                         f"files {pull['files']}")
            for c in self.world.fake.comments(self.repo, n):
                text = " | ".join(x for x in c["body"].splitlines()[1:9] if x.strip() and not x.startswith("<"))
                lines.append(f"    {c['user']}: {text[:400]}")
        for e in reversed(audit.entries(self.world.conn, self.repo)):
            lines.append(f"  audit: {e.action} #{e.pull} {e.project} {e.sha[:8]} {e.outcome} {e.detail[:100]}")
        for p in PROJECTS:
            lines.append(f"  state {p}: {self.state(p)}; main: {self.values_on('main', p)}; lock: {self.lock(p)}")
        return "\n".join(lines)

    # --- reading what users see ------------------------------------------------------------------------

    def bot_comments(self, number: int) -> list[str]:
        fake = self.world.fake
        return [c["body"] for c in fake.comments(self.repo, number) if c["user"] == fake.bot_login]

    def state(self, project: str) -> dict[str, str]:
        path = self.states[project] / "terraform.tfstate"
        if not path.exists():
            return {}
        data = json.loads(path.read_text())
        return {r["name"]: r["instances"][0]["attributes"]["input"]["value"]
                for r in data.get("resources", []) if r["type"] == "terraform_data"}

    def lock(self, project: str) -> Any:
        from bot.models import Project

        return self.svc.locks.get(Project(repo=self.repo, name=project, dir=project))


def test_the_lifecycle_keeps_its_promise_under_random_interleavings(fake_github, redis_conn, app_keys, tmp_path):
    Lifecycle.world = World(fake_github, redis_conn, app_keys[0], tmp_path)
    run_state_machine_as_test(Lifecycle, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize="TFBOT_MODEL_SEED" not in os.environ,
        suppress_health_check=list(HealthCheck), print_blob=True))
    print(f"model: {STATS['examples']} examples, {STATS['steps']} steps, {STATS['jobs']} jobs run, "
          f"{STATS['comments']} comments posted, {STATS['applies']} applies")
