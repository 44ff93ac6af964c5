"""A model-based test of the PR lifecycle: random interleavings of what users and GitHub do, against the real
pieces, with the promise checked after every step.

Real: Redis, RQ, the handlers and the runner, Terraform on `terraform_data`, git, and the fake GitHub over HTTP.
Every story starts with a PR into main, planned; then hypothesis picks steps: opens (into main or another
branch), pushes, `plan`/`apply`/`unlock` comments by a writer and a reader, merges, closes, reopens,
redeliveries, two writers acting on one PR at the same moment, and when and how queued jobs run. Applying or
merging a planned PR (and running what follows) has rules of its own, so it happens often.

Queued jobs run one at a time (`SimpleWorker` in this process, in an order hypothesis picks), or two at once by
two workers: threads, each with its own Redis connection and services, as two RQ workers would. Two at once are
made deterministic, so hypothesis can replay and shrink them: the first job runs until it is about to make its
n-th adapter call (a project run: its n-th Terraform call; any other job: its n-th git call; n is drawn) and
waits there while the second job runs to its end, then the first goes on. A second job that needs the run
guard the first holds waits `GUARD_WAIT` (shortened here) and is deferred, which is the product's own answer to
a busy project; deferred jobs and retries are due at once and run later like any queued job.

Not modelled: a killed worker (tests/test_worker_crash_e2e.py covers it) and GitHub faults
(tests/test_github_faults_e2e.py).

Invariants, after every step:
- never two runs in one workspace at once: every Terraform call of every worker is written (enter and exit
  times, job, project) to a log file; the span of one job's calls in a project (first enter to last exit)
  overlaps no other job's span in that project; no run guard is left by a finished job;
- what was reviewed is what was applied: when a step changes a project's Terraform state, a `terraform apply` of
  that project ran in that step, and one plan of that project shown on the applying PR before that apply
  started shows every value the state gained and every resource it lost, as whole tokens (`v1` is not shown by
  `v12`);
- every value in a project's state is one a PR brought, shown in a plan of that project on some PR;
- no job failed; a job run in the middle of another ends within `PAIR_TIMEOUT` (no worker waits behind a run);
and once every queued job has run:
- a project that PRs merged into main changed, whose state differs from main: each such PR's last outcome for
  it since its merge (refusals aside) says it was applied ("Applied", "Nothing to apply"), or says that nothing
  was applied and why, in exactly the words tfbot uses for these cases (`NOT_APPLIED`: the plan of main is
  stale and waits for `apply`, or failed, or the apply failed, and the PR holds the lock; or it was merged
  while another PR held the lock, and it is in line). If every merge was applied, the difference is an apply of
  a PR not merged, which holds the lock and said it keeps it until merged (or was closed and told so);
- no lock is held by a PR closed without merging unless the PR was told so;
- every open PR that changes a project has a final (not pending) plan status on its head.

The suite replays the examples of one fixed seed (`DEFAULT_SEED`), so CI is reproducible. `TFBOT_MODEL_SEED`
(a number, or `random`) picks others, `TFBOT_MODEL_EXAMPLES` and `TFBOT_MODEL_STEPS` make the run longer,
`TFBOT_MODEL_DEBUG=1` prints each PR's comments and each pair of jobs, `=2` every step. The seed is printed
first and the figures last (with `-s`). See docs/development.md.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, get_state_machine_test, initialize, invariant,
                                 precondition, rule)
from rq import Queue, get_current_job
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from bot.adapters.redis_server import connect
from bot.compose import worker_services
from bot.jobs import ServicedJob
from bot.ops.worker import TfbotSimpleWorker
from bot.render.comments import marker_of
from tests.support import webhook_payloads as wp
from tests.support.git_repos import GitError, RemoteRepo
from tests.support.tf_configs import backend_block, hcl_string
from tests.support.tfbot_process import write_config

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("TFBOT_MODEL_EXAMPLES", "3"))
STEPS = int(os.environ.get("TFBOT_MODEL_STEPS", "16"))
# The seed the suite replays: its examples merge, apply, and run two runs of one project at once (see the README).
DEFAULT_SEED = 13
INSTALLATION = 99
PROJECTS = ("network", "app")
USERS = {"alice": "write", "rita": "read"}
# How long a job waits for a busy project's run guard before it is deferred: the product waits 3 s to ride out a
# short run; the model, which skips waiting, makes it short. Only a job run in the middle of another ever waits.
GUARD_WAIT = 0.3
# A job run in the middle of another must end within this; longer means it waits behind the paused one.
PAIR_TIMEOUT = 60.0
STATS: Counter[str] = Counter()

# Plan sections: what a reviewer saw. Both show the plan's output (bot/render/templates/planned.md.j2, stale.md.j2).
PLAN_TITLES = ("Planned", "Plan is stale")
# Outcomes after a merge that carried it out (applied.md.j2, other.md.j2).
APPLIED_TITLES = ("Applied", "Nothing to apply")
# What a PR is told when its merge into the default branch did not reach the infrastructure, as
# bot/lifecycle/runner.py words it in stale.md.j2, failed.md.j2 and locked.md.j2; and where its lock must be then.
NOT_APPLIED = (
    # ASK: the branch's plan is not the reviewed one; shown, waiting for `apply`.
    ("Plan is stale", r"\*\*The plan is stale\.\*\*.* Nothing was applied; the lock stays with this PR\. "
                      r"Review this plan and comment `apply` here to apply it\.", "holds"),
    # The plan of what the branch holds failed.
    ("Plan failed", r"what `main` holds, failed, so nothing was applied\. The lock stays with this PR;", "holds"),
    # The apply failed.
    ("Apply failed", r"The lock stays with this PR, so nobody else plans on a half-applied state\.", "holds"),
    # Merged while another PR held the lock: in line.
    ("Locked", r"\*\*This workspace is locked by another pull request\.\*\* This PR was merged while #\d+ holds "
               r"the lock of `(?P<project>[^`]+)`: nothing was applied yet\.", "waits"),
)
_SECTION = re.compile(r"^#### (?P<title>[^\n]+?): `(?P<name>[^`\n]+)`[ \t]*$", re.MULTILINE)
_NEXT_STEPS = "\n---\n**Next steps**"


def tf(state_dir: Path, values: dict[str, str]) -> str:
    body = "".join(f'resource "terraform_data" {hcl_string(k)} {{\n  input = {hcl_string(v)}\n}}\n'
                   for k, v in sorted(values.items()))
    return backend_block(state_dir) + body


def shows(text: str, token: str) -> bool:
    """`token` appears in `text` as a whole token: `v1` is not shown by `v12`, nor `r1` by `r10`."""
    return re.search(rf"(?<![\w.-]){re.escape(token)}(?![\w.-])", text) is not None


def plain(text: str) -> str:
    """Section text as one line: block-quote marks and line breaks gone, whitespace collapsed."""
    return " ".join(re.sub(r"^>[ \t]?", "", text, flags=re.MULTILINE).split())


def sections(body: str) -> list[tuple[str, str, str]]:
    """(title, project, text) of every project section of a tfbot command comment, in order."""
    found = list(_SECTION.finditer(body))
    out = []
    for m, following in zip(found, [*found[1:], None]):
        text = body[m.end(): following.start() if following else len(body)]
        out.append((m["title"], m["name"], text.split(_NEXT_STEPS, 1)[0]))
    return out


def model_seed() -> tuple[int, str]:
    """The seed of this run, and where it came from: TFBOT_MODEL_SEED (a number, or `random` for a fresh one),
    else the suite's fixed seed."""
    raw = os.environ.get("TFBOT_MODEL_SEED", "").strip()
    if not raw:
        return DEFAULT_SEED, "the suite's fixed seed; TFBOT_MODEL_SEED=random picks others"
    if raw.lower() == "random":
        return random.SystemRandom().randrange(2 ** 32), "TFBOT_MODEL_SEED=random"
    return int(raw), "TFBOT_MODEL_SEED"


class World:
    """What lives across examples: the fake GitHub, Redis, the private key, a temp root."""

    def __init__(self, fake: Any, conn: Any, url: str, key: bytes, root: Path):
        self.fake, self.conn, self.url, self.key, self.root = fake, conn, url, key, root
        self.count = itertools.count()


# --- workers: what one RQ worker process owns ------------------------------------------------------------

class ThreadWorker(TfbotSimpleWorker):
    """An RQ worker that runs in a thread: no signal handlers, job timeouts by timer."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


class Worker:
    """One worker's Redis connection and services. It may pause before its n-th call of one adapter (`pause_on`:
    "terraform" or "git"), until the model resumes it."""

    def __init__(self, machine: "Lifecycle", name: str, conn: Any, pause_at: int | None = None,
                 pause_on: str = "terraform"):
        self.name, self.conn, self.pause_at, self.pause_on = name, conn, pause_at, pause_on
        self.calls: Counter[str] = Counter()
        self.paused, self.resume = threading.Event(), threading.Event()
        self.svc = worker_services(machine.config, conn)
        self.svc.terraform = RecordingTerraform(self.svc.terraform, self, "terraform", machine)
        self.svc.checkouts = PausingAdapter(self.svc.checkouts, self, "git")

    def step(self, adapter: str) -> None:
        """Called on entering every adapter call."""
        if adapter == self.pause_on and self.calls[adapter] == self.pause_at:
            self.paused.set()
            if not self.resume.wait(PAIR_TIMEOUT * 2):
                raise RuntimeError(f"worker {self.name} paused and never resumed")
        self.calls[adapter] += 1


class PausingAdapter:
    """An adapter whose public methods count as steps of their worker (and may pause it)."""

    def __init__(self, real: Any, worker: Worker, adapter: str):
        self._real, self._worker, self._adapter = real, worker, adapter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name.startswith("_") or not callable(attr) or name.endswith("_path"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._worker.step(self._adapter)
            return attr(*args, **kwargs)
        return call


class RecordingTerraform(PausingAdapter):
    """The real Terraform adapter; each call that touches a workspace is logged (enter, exit, job, project)."""

    TOUCHING = frozenset({"init", "select_workspace", "plan", "show_plan", "show_json", "apply", "state_pull",
                          "run_custom"})

    def __init__(self, real: Any, worker: Worker, adapter: str, machine: "Lifecycle"):
        super().__init__(real, worker, adapter)
        self._machine = machine

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self.TOUCHING:
            return attr

        def call(workdir: Path, *args: Any, **kwargs: Any) -> Any:
            self._worker.step(self._adapter)
            job = get_current_job()
            entry = {"worker": self._worker.name, "job": job.id if job else "", "project": Path(workdir).name,
                     "call": name, "id": uuid.uuid4().hex}
            if name == "apply":
                self._machine.before_apply(job, Path(workdir).name)
            self._machine.log_terraform({**entry, "at": "enter", "t": time.monotonic_ns()})
            try:
                return attr(workdir, *args, **kwargs)
            finally:
                self._machine.log_terraform({**entry, "at": "exit", "t": time.monotonic_ns()})
        return call


class Lifecycle(RuleBasedStateMachine):
    world: World

    def __init__(self) -> None:
        super().__init__()
        from bot.config import load_config

        w = self.world
        n = next(w.count)
        self.tmp = w.root / f"ex{n}"
        self.tmp.mkdir()
        self.repo = f"acme/model{n}"
        w.conn.flushdb()
        self.remote = RemoteRepo(self.tmp / "remote", self.repo)
        self.states = {p: self.tmp / "state" / p for p in PROJECTS}
        (self.tmp / "state").mkdir(parents=True, exist_ok=True)
        self.values: dict[str, dict[str, str]] = {p: {"base": f"seed-{p}"} for p in PROJECTS}
        self.remote.commit("main", {f"{p}/main.tf": tf(self.states[p], self.values[p]) for p in PROJECTS}, "seed")
        self.remote.commit("dev", {"README.md": "dev\n"}, "dev", parent_branch="main")
        w.fake.add_repo(self.repo, self.remote.clone_url, installation_id=INSTALLATION)
        for user, role in USERS.items():
            w.fake.set_permission(self.repo, user, role)
        path = write_config(self.tmp, {
            "github": {"api_url": w.fake.base_url, "app_id": w.fake.app_id, "private_key": w.key.decode(),
                       "webhook_secret": "s", "app_slug": w.fake.app_slug, "retries": 0, "write_interval": 0},
            "data_dir": str(self.tmp / "data"), "redis_url": "redis://unused",
            "terraform": {"timeout": 120, "sandbox": {"writable_paths": [str(self.tmp / "state")]}},
            "repos": [{"name": "acme/*"}],
        })
        self.config = load_config(path)
        self.tf_log = self.tmp / "terraform-calls.jsonl"
        self.tf_log_lock = threading.Lock()
        self.applies_seen: list[dict[str, Any]] = []  # every `terraform apply`: PR, project, plans shown before it
        self.main = Worker(self, "main", w.conn)  # runs the jobs run one at a time; never pauses
        self.svc = self.main.svc
        self.queues = [Queue(name, connection=w.conn, serializer=JSONSerializer) for name in ("tfbot-events",
                                                                                               "tfbot-runs")]
        self.pulls: dict[int, dict[str, Any]] = {}  # number -> branch, base, state, touched projects
        self.origin: dict[str, int] = {}  # value -> the PR that brought it (0: the seed)
        for p in PROJECTS:
            self.origin[f"seed-{p}"] = 0
        self.serial = itertools.count(1)
        self.pairs = 0
        self.merges = 0

    # --- what GitHub and users do ---------------------------------------------------------------------

    def send(self, event: str, payload: dict[str, Any]) -> None:
        self.svc.events_queue.enqueue_call("bot.jobs.handle_delivery", args=(uuid.uuid4().hex, event, payload),
                                           result_ttl=60, failure_ttl=600)

    def pr_event(self, action: str, number: int, **extra: Any) -> None:
        fake = self.world.fake
        self.send("pull_request", wp.pull_request_event(action, fake.repo_payload(self.repo),
                                                        fake.pull_payload(self.repo, number), INSTALLATION, "alice",
                                                        **extra))

    def say(self, number: int, user: str, body: str) -> None:
        fake = self.world.fake
        made = fake.add_comment(self.repo, number, user, body)
        self.send("issue_comment", wp.issue_comment_event("created", fake.repo_payload(self.repo), number, made,
                                                          INSTALLATION, user,
                                                          issue=fake.issue_payload(self.repo, number)))

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

    @initialize(projects=st.sets(st.sampled_from(PROJECTS), min_size=1))
    def a_planned_pr(self, projects: set[str]) -> None:
        """Every story starts with a PR into main, planned: the usual state of a repository, and the first
        steps can apply it, merge it, or race it."""
        self.open_pr(projects, into_dev=False)
        self.drain()

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

    def planned_numbers(self) -> list[int]:
        """Open PRs into main whose head has a successful plan status: reviewed, ready to apply or merge."""
        fake = self.world.fake
        found = []
        for n in self.open_numbers():
            if self.pulls[n]["base"] != "main" or not self.pulls[n]["touched"]:
                continue
            head = str(fake.pull_payload(self.repo, n)["head"]["sha"])
            status = fake.latest_status(self.repo, head, "tfbot/plan")
            if status is not None and status["state"] == "success":
                found.append(n)
        return found

    @precondition(lambda self: self.open_numbers())
    @rule(data=st.data())
    def push(self, data: st.DataObject) -> None:
        self.push_to(data.draw(st.sampled_from(self.open_numbers())), data.draw(st.sampled_from(PROJECTS)))

    def push_to(self, number: int, project: str) -> None:
        before = str(self.world.fake.pull_payload(self.repo, number)["head"]["sha"])
        sha = self.remote.commit(self.pulls[number]["branch"], self.change(number, project), "push")
        self.remote.create_pull_ref(number, sha)
        self.world.fake.update_pull(self.repo, number, head_sha=sha)
        self.pr_event("synchronize", number, before=before)

    @precondition(lambda self: self.pulls)
    @rule(data=st.data(), user=st.sampled_from(sorted(USERS)), body=st.sampled_from(["plan", "apply", "unlock"]))
    def comment(self, data: st.DataObject, user: str, body: str) -> None:
        self.say(data.draw(st.sampled_from(sorted(self.pulls))), user, body)

    def merge_pull(self, number: int) -> None:
        pull = self.pulls[number]
        try:
            sha = self.remote.merge(pull["branch"], into=pull["base"])
        except GitError:
            return  # a conflict: GitHub would not merge it either
        pull["state"] = "merged"
        pull["comments_at_merge"] = len(self.world.fake.comments(self.repo, number))
        self.merges += 1
        self.world.fake.update_pull(self.repo, number, merged=True, merge_commit_sha=sha, merged_by="alice")
        self.pr_event("closed", number)

    @precondition(lambda self: self.open_numbers())
    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        self.merge_pull(data.draw(st.sampled_from(self.open_numbers())))

    @precondition(lambda self: self.planned_numbers())
    @rule(pick=st.integers(min_value=0, max_value=20), two_workers=st.booleans(),
          pause=st.integers(min_value=0, max_value=7))
    def merge_planned(self, pick: int, two_workers: bool, pause: int) -> None:
        """The common path, made likelier: a PR whose plan of its head is shown is merged into main, and every
        queued job runs."""
        candidates = self.planned_numbers()
        self.merge_pull(candidates[pick % len(candidates)])
        self.settle(two_workers, pause)

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
        """A writer comments `apply` on a PR into main, open or merged, planned or not."""
        number = data.draw(st.sampled_from(sorted(n for n, p in self.pulls.items()
                                                  if p["base"] == "main" and p["state"] != "closed")))
        self.say(number, "alice", "tfbot apply")

    @precondition(lambda self: self.planned_numbers())
    @rule(pick=st.integers(min_value=0, max_value=20), two_workers=st.booleans(),
          pause=st.integers(min_value=0, max_value=7))
    def writer_applies_planned(self, pick: int, two_workers: bool, pause: int) -> None:
        """The common path, made likelier: a writer applies a PR whose plan of its head is shown, and every queued
        job runs."""
        candidates = self.planned_numbers()
        self.say(candidates[pick % len(candidates)], "alice", "tfbot apply")
        self.settle(two_workers, pause)

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

    @precondition(lambda self: self.planned_numbers())
    @rule(pick=st.integers(min_value=0, max_value=20),
          bodies=st.sampled_from([("plan", "plan"), ("apply", "apply"), ("plan", "apply"), ("apply", "plan"),
                                  ("apply", "merge"), ("plan", "merge"), ("push", "apply"), ("apply", "push")]))
    def two_writers_at_once(self, pick: int, bodies: tuple[str, str]) -> None:
        """Two writers act on one planned PR at the same moment: comments, the merge button, a push."""
        candidates = self.planned_numbers()
        number = candidates[pick % len(candidates)]
        for body in bodies:
            if body == "merge":
                self.merge_pull(number)
            elif body == "push":
                self.push_to(number, sorted(self.pulls[number]["touched"])[pick % len(self.pulls[number]["touched"])])
            elif self.pulls[number]["state"] == "open":
                self.say(number, "alice", f"tfbot {body}")

    @precondition(lambda self: self.pending_events())
    @rule()
    def run_events(self) -> None:
        """Every queued event job runs (in queue order); the runs they queue wait."""
        for _ in range(100):
            if not self.pending_events():
                return
            self.run_one(0)

    @precondition(lambda self: len(self.pending()) >= 2)
    @rule(first=st.integers(min_value=0, max_value=20), second=st.integers(min_value=0, max_value=20),
          pause=st.integers(min_value=0, max_value=7))
    def run_two_at_once(self, first: int, second: int, pause: int) -> None:
        """Two queued jobs run by two workers at once: the second runs while the first waits before an adapter
        call (see run_pair; a project run comes first when there is one)."""
        self.run_pair(*self.choose_pair(first, second, same_project=False), pause)

    @precondition(lambda self: len(self.pending_runs()) >= 2)
    @rule(first=st.integers(min_value=0, max_value=20), second=st.integers(min_value=0, max_value=20),
          pause=st.integers(min_value=0, max_value=7))
    def run_two_runs_at_once(self, first: int, second: int, pause: int) -> None:
        """Two queued project runs at once, of one project when two of them are queued (see run_two_at_once)."""
        self.run_pair(*self.choose_pair(first, second, same_project=True), pause)

    @precondition(lambda self: self.pulls)
    @rule(two_workers=st.booleans(), pause=st.integers(min_value=0, max_value=7))
    def settle(self, two_workers: bool = False, pause: int = 0) -> None:
        """Every queued job runs, by one worker in queue order, or by two at once (as in run_two_runs_at_once,
        with this `pause`): the promise is checked at rest, then the story goes on."""
        self.drain(two_workers, pause)
        self.no_job_failed()
        self.check_quiescent()

    # --- running jobs in an order of our choosing ----------------------------------------------------

    def pending(self) -> list[tuple[Queue, str]]:
        self.release_scheduled()
        return [(q, job_id) for q in self.queues for job_id in q.get_job_ids()]

    def pending_jobs(self) -> list[tuple[Queue, str, Job]]:
        return [(q, job_id, Job.fetch(job_id, connection=self.world.conn, serializer=JSONSerializer))
                for q, job_id in self.pending()]

    def pending_events(self) -> list[str]:
        self.release_scheduled()
        return self.queues[0].get_job_ids()

    def pending_runs(self) -> list[tuple[Queue, str, str]]:
        """Queued project runs: queue, job id, project name."""
        return [(q, job_id, str(job.args[1].get("name"))) for q, job_id, job in self.pending_jobs()
                if job.func_name == "bot.jobs.run_project"]

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
        before, mark = self.states_now(), len(self.applies_seen)
        TfbotSimpleWorker([queue, *others], self.svc, connection=self.world.conn, serializer=JSONSerializer).work(
            burst=True, max_jobs=1, logging_level="WARNING")
        STATS["jobs"] += 1
        self.applied_what_was_shown(before, mark)

    def run_pair(self, a: tuple[Queue, str], b: tuple[Queue, str], pause: int) -> None:
        """Run job `a` until it is about to make a call, all of job `b` meanwhile, then the rest of `a`.

        A project run pauses before its Terraform call number `(pause + 1) % 4`: 1 to 3 in the middle of its
        Terraform calls, 0 before init with its working copy made. Any other job pauses before its git call
        number `pause`.
        A job that makes fewer calls runs to its end first.
        """
        for queue, job_id in (a, b):
            queue.remove(job_id)
        self.pairs += 1
        run = Job.fetch(a[1], connection=self.world.conn, serializer=JSONSerializer).func_name == "bot.jobs.run_project"
        first = Worker(self, f"pair{self.pairs}a", connect(self.world.url), pause_at=(pause + 1) % 4 if run else pause,
                       pause_on="terraform" if run else "git")
        second = Worker(self, f"pair{self.pairs}b", connect(self.world.url))
        errors: list[BaseException] = []
        threads = [threading.Thread(target=self.work_in_thread, args=(worker, queue.name, job_id, errors),
                                    name=worker.name, daemon=True)
                   for worker, (queue, job_id) in ((first, a), (second, b))]
        before, mark = self.states_now(), len(self.applies_seen)
        overlapped = stuck = False
        try:
            threads[0].start()
            deadline = time.monotonic() + PAIR_TIMEOUT
            while threads[0].is_alive() and not first.paused.wait(0.005):
                assert time.monotonic() < deadline, f"{self.describe(a[1])} ran {PAIR_TIMEOUT} s alone"
            overlapped = first.paused.is_set()
            threads[1].start()
            threads[1].join(PAIR_TIMEOUT)
            stuck = threads[1].is_alive()
        finally:
            first.resume.set()
            for thread in threads:
                if thread.ident is not None:
                    thread.join(PAIR_TIMEOUT)
            for worker in (first, second):
                worker.conn.close()
        assert not stuck, (f"{self.describe(b[1])} was still running {PAIR_TIMEOUT} s after it started, while "
                           f"{self.describe(a[1])} waited before its {first.pause_on} call {first.pause_at}: a worker "
                           "waited behind another job\n" + self.story())
        if errors:
            raise errors[0]
        if os.environ.get("TFBOT_MODEL_DEBUG"):
            print(f"pair: {self.describe(a[1])} ({dict(first.calls)} calls, paused before {first.pause_on} call "
                  f"{first.pause_at}: {overlapped}) and {self.describe(b[1])} ({dict(second.calls)} calls)")
        STATS["jobs"] += 2
        STATS["pairs"] += 1
        STATS["overlapping pairs"] += overlapped
        for _, job_id in (a, b):
            job = Job.fetch(job_id, connection=self.world.conn, serializer=JSONSerializer)
            if job.func_name == "bot.jobs.run_project" and job.return_value() == "deferred":
                STATS["runs deferred (project busy)"] += 1
        self.applied_what_was_shown(before, mark)

    def work_in_thread(self, worker: Worker, queue_name: str, job_id: str, errors: list[BaseException]) -> None:
        try:
            queue = Queue(queue_name, connection=worker.conn, serializer=JSONSerializer)
            job = ServicedJob.fetch(job_id, connection=worker.conn, serializer=JSONSerializer)
            rq_worker = ThreadWorker([queue], worker.svc, connection=worker.conn, serializer=JSONSerializer)
            rq_worker.register_birth()
            try:
                rq_worker.execute_job(job, queue)
            finally:
                rq_worker.register_death()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            errors.append(exc)

    def drain(self, two_workers: bool = False, pause: int = 0) -> None:
        for _ in range(400):
            pending = self.pending()
            if not pending:
                return
            if two_workers and len(pending) >= 2:
                self.run_pair(*self.choose_pair(0, 0, same_project=True), pause)
            else:
                self.run_one(0)
        raise AssertionError("the queues never drained: a job keeps queueing jobs")

    def choose_pair(self, first: int, second: int, same_project: bool) -> tuple[tuple[Queue, str], tuple[Queue, str]]:
        """Two queued jobs: two runs of one project if `same_project` and there are such, else a project run (when
        one is queued) and any other job."""
        runs = self.pending_runs()
        if same_project:
            by_project: dict[str, list[tuple[Queue, str]]] = {}
            for queue, job_id, project in runs:
                by_project.setdefault(project, []).append((queue, job_id))
            groups = [jobs for _, jobs in sorted(by_project.items()) if len(jobs) >= 2]
            if groups:
                group = groups[first % len(groups)]
                a = second % len(group)
                return group[a], group[(a + 1) % len(group)]
        run_ids = {job_id for _, job_id, _ in runs}
        pending = [*((q, j) for q, j, _ in runs), *((q, j) for q, j in self.pending() if j not in run_ids)]
        a = first % len(runs) if runs else first % len(pending)
        rest = pending[:a] + pending[a + 1:]
        return pending[a], rest[second % len(rest)]

    def describe(self, job_id: str) -> str:
        job = Job.fetch(job_id, connection=self.world.conn, serializer=JSONSerializer)
        return f"job {job.description or job.func_name} ({job_id[:8]})"

    # --- what the workers report to the model ------------------------------------------------------------

    def log_terraform(self, entry: dict[str, Any]) -> None:
        with self.tf_log_lock, open(self.tf_log, "a") as out:
            out.write(json.dumps(entry) + "\n")

    def before_apply(self, job: Any, project: str) -> None:
        """A `terraform apply` is about to start: note the PR and the plans of the project shown on it now."""
        from bot.state.records import Records

        pull = None
        if job is not None and job.func_name == "bot.jobs.run_project":
            pull = Records(self.world.conn).command(job.args[0]).pull
        self.applies_seen.append({"pull": pull, "project": project, "job": job.id if job else "",
                                  "shown": self.plan_texts(pull, project) if pull else []})

    def states_now(self) -> dict[str, dict[str, str]]:
        return {p: self.state(p) for p in PROJECTS}

    # --- the promise -----------------------------------------------------------------------------------

    @invariant()
    def no_job_failed(self) -> None:
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
    def never_two_runs_in_one_workspace_at_once(self) -> None:
        """The span of each job's Terraform calls in a project overlaps no other job's span in that project."""
        if not self.tf_log.exists():
            return
        spans: dict[tuple[str, str], list[int]] = {}
        for line in self.tf_log.read_text().splitlines():
            e = json.loads(line)
            span = spans.setdefault((e["project"], e["job"] or e["worker"]), [e["t"], e["t"]])
            span[0], span[1] = min(span[0], e["t"]), max(span[1], e["t"])
        for project in sorted({p for p, _ in spans}):
            latest: tuple[int, int, str] | None = None  # the span seen so far that ends last
            for start, end, job in sorted((s, t, job) for (p, job), (s, t) in spans.items() if p == project):
                if latest is not None:
                    s1, t1, job1 = latest
                    assert t1 <= start, (
                        f"two runs touched `{project}` at once: {self.describe_id(job1)} "
                        f"[{(s1 - start) / 1e6:+.0f} ms .. {(t1 - start) / 1e6:+.0f} ms] and {self.describe_id(job)} "
                        f"[0 ms .. {(end - start) / 1e6:+.0f} ms]\n" + self.story())
                if latest is None or end > latest[1]:
                    latest = (start, end, job)

    def describe_id(self, job_id: str) -> str:
        try:
            return self.describe(job_id)
        except Exception:  # noqa: BLE001 - the job record expired
            return f"job {job_id}"

    def applied_what_was_shown(self, before: dict[str, dict[str, str]], mark: int) -> None:
        """A state that changed in a step was changed by an apply of a plan shown, before it, on the applying PR."""
        for project in PROJECTS:
            old, new = before[project], self.state(project)
            if old == new:
                continue
            gained = sorted({v for r, v in new.items() if old.get(r) != v})
            lost = sorted(f"terraform_data.{r}" for r in old.keys() - new.keys())
            applies = [a for a in self.applies_seen[mark:] if a["project"] == project]
            assert applies, (f"`{project}` changed from {old} to {new} in a step in which no `terraform apply` of it "
                             "ran\n" + self.story())
            assert any(all(shows(text, token) for token in [*gained, *lost])
                       for a in applies for text in a["shown"]), (
                f"`{project}` gained {gained} and lost {lost} by an apply of "
                f"{', '.join('#' + str(a['pull']) for a in applies)}, but no plan of `{project}` shown on that PR "
                "before the apply started shows all of it (what was reviewed is not what was applied)\n" + self.story())

    @invariant()
    def every_value_in_the_state_was_shown(self) -> None:
        """Every value in a project's state is one a PR brought, and a plan of that project showing it was posted.

        (On the PR that applied it: see `applied_what_was_shown`. That need not be the PR that brought it: a PR
        merged while another held the lock reaches the state through the other's plan of the default branch.)
        """
        for project in PROJECTS:
            for name, value in self.state(project).items():
                pr = self.origin.get(value)
                assert pr is not None, f"{project}.{name} = {value!r} came from nowhere"
                assert any(shows(text, value) for n in sorted(self.pulls) for text in self.plan_texts(n, project)), (
                    f"{project}.{name} = {value!r} (brought by #{pr}) reached the state but no plan of `{project}` "
                    "showing it was posted on any PR\n" + self.story())

    def teardown(self) -> None:
        from bot.state import audit

        self.drain()
        self.no_job_failed()
        self.check_quiescent()
        STATS["examples"] += 1
        STATS["comments"] += sum(len(self.bot_comments(n)) for n in self.pulls)
        STATS["merges"] += self.merges
        STATS["applies"] += sum(1 for e in audit.entries(self.world.conn, self.repo)
                                if e.action == "apply" and e.outcome == "ok")
        if os.environ.get("TFBOT_MODEL_DEBUG"):
            for n, pull in self.pulls.items():
                print(f"#{n} {pull['state']} into {pull['base']} touched {sorted(pull['touched'])}")
                for b in self.bot_comments(n):
                    print("    ", " | ".join(line for line in b.splitlines()[1:6] if line.strip())[:300])

    def check_quiescent(self) -> None:
        self.every_value_in_the_state_was_shown()
        for project in PROJECTS:
            merged = [n for n, p in self.pulls.items() if p["state"] == "merged" and p["base"] == "main"
                      and project in p["touched"]]
            if not merged or self.state(project) == self.values_on("main", project):
                continue
            lock = self.lock(project)
            told = [n for n in merged if self.merge_verdict(n, project, lock) == "told"]
            if told:
                continue
            # Every merge was carried out: what differs is an apply of a PR not merged, which keeps the lock.
            assert lock is not None, (f"{project}: merged by {merged} into main, each merge applied, but the state "
                                      f"differs from main ({self.state(project)} vs "
                                      f"{self.values_on('main', project)}) and no PR holds its lock\n" + self.story())
            holder = self.pulls.get(lock.pull, {})
            last = [o for o in self.outcomes(lock.pull, project) if o[0] != "Refused"][-1:]
            if holder.get("state") == "closed":
                continue  # told by the check below
            assert last and last[0][0] == "Applied" and "The lock stays with this PR until it is merged" in \
                plain(last[0][1]), (f"{project}: the state differs from main and #{lock.pull} holds the lock, but "
                                    f"its last word on it is not an apply that keeps it until merged: {last}\n"
                                    + self.story())
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

    def merge_verdict(self, number: int, project: str, lock: Any) -> str:
        """'applied' or 'told': what PR `number`, merged into main, last said about `project` since its merge.

        Fails unless it is an applied outcome, or one of the NOT_APPLIED texts with the lock where that text says.
        """
        since = self.pulls[number]["comments_at_merge"]
        said = [o for o in self.outcomes(number, project, since) if o[0] != "Refused"]  # refusals change nothing
        assert said, (f"#{number} was merged into main and changed `{project}`, whose state differs from main, and "
                      f"since the merge tfbot said nothing about `{project}` on it\n" + self.story())
        title, text = said[-1]
        if title in APPLIED_TITLES:
            return "applied"
        for expected, words, where in NOT_APPLIED:
            m = re.search(words, plain(text))
            if title != expected or m is None or m.groupdict().get("project", project) != project:
                continue
            if where == "holds":
                assert lock is not None and lock.pull == number, (
                    f"#{number} was told the lock of `{project}` stays with it, but the lock is {lock}\n"
                    + self.story())
            else:
                assert self.svc.locks.position(self.project_of(project), number) is not None, (
                    f"#{number} was told it is in line for `{project}`, but it is not: lock {lock}, line "
                    f"{self.svc.locks.queue(self.project_of(project))}\n" + self.story())
            return "told"
        raise AssertionError(f"#{number} was merged into main and `{project}` differs from main; its last word on "
                             f"`{project}` since the merge neither says it was applied nor that nothing was and "
                             f"why: {title}: {plain(text)[:500]}\n" + self.story())

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
        for e in reversed(list(audit.entries(self.world.conn, self.repo))):
            lines.append(f"  audit: {e.action} #{e.pull} {e.project} {e.sha[:8]} {e.outcome} {e.detail[:100]}")
        for p in PROJECTS:
            lines.append(f"  state {p}: {self.state(p)}; main: {self.values_on('main', p)}; lock: {self.lock(p)}")
        return "\n".join(lines)

    # --- reading what users see ------------------------------------------------------------------------

    def bot_comments(self, number: int, since: int = 0) -> list[str]:
        fake = self.world.fake
        return [c["body"] for c in fake.comments(self.repo, number)[since:] if c["user"] == fake.bot_login]

    def plan_texts(self, number: int, project: str) -> list[str]:
        """Every plan of `project` tfbot showed on PR `number` (outdated ones included: they were shown)."""
        return [text for body in self.bot_comments(number) for title, name, text in sections(body)
                if name == project and title in PLAN_TITLES]

    def outcomes(self, number: int, project: str, since: int = 0) -> list[tuple[str, str]]:
        """(title, text) of each outcome for `project` in tfbot's apply comments (apply, merge, hand-over) on PR
        `number`, oldest first, from its `since`-th comment on."""
        found = []
        for body in self.bot_comments(number, since):
            mark = marker_of(body)
            if mark is None or mark["kind"] != "apply":
                continue
            found += [(title, text) for title, name, text in sections(body) if name == project]
        return found

    def state(self, project: str) -> dict[str, str]:
        path = self.states[project] / "terraform.tfstate"
        if not path.exists():
            return {}
        data = json.loads(path.read_text())
        return {r["name"]: r["instances"][0]["attributes"]["input"]["value"]
                for r in data.get("resources", []) if r["type"] == "terraform_data"}

    def project_of(self, project: str) -> Any:
        from bot.models import Project

        return Project(repo=self.repo, name=project, dir=project)

    def lock(self, project: str) -> Any:
        return self.svc.locks.get(self.project_of(project))


def test_the_lifecycle_keeps_its_promise_under_random_interleavings(fake_github, redis_conn, redis_url, app_keys,
                                                                    tmp_path, monkeypatch):
    from bot.lifecycle import runner

    monkeypatch.setattr(runner, "GUARD_WAIT", GUARD_WAIT)
    Lifecycle.world = World(fake_github, redis_conn, redis_url, app_keys[0], tmp_path)
    STATS.clear()
    chosen, source = model_seed()
    where = f"seed {chosen}"
    print(f"model: {where} ({source}), up to {EXAMPLES} examples of up to {STEPS} steps")
    debug = os.environ.get("TFBOT_MODEL_DEBUG") == "2"
    test = seed(chosen)(get_state_machine_test(Lifecycle, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), print_blob=True,
        verbosity=Verbosity.debug if debug else Verbosity.normal,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])))
    try:
        test()
    finally:
        print(f"model: {where}: {STATS['examples']} examples, {STATS['steps']} steps, {STATS['jobs']} jobs run, "
              f"{STATS['pairs']} pairs of jobs run at once ({STATS['overlapping pairs']} overlapping, "
              f"{STATS['runs deferred (project busy)']} runs deferred as their project was busy), "
              f"{STATS['merges']} merges, {STATS['applies']} applies, {STATS['comments']} comments posted")
