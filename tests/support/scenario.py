"""A whole tfbot installation for end-to-end tests: fake GitHub, a real git remote, real Terraform
configs with state outside the checkout, and `tfbot serve` as a subprocess. Tests act as GitHub and
its users would (open a PR, push, comment, merge) and read the outcome where users see it."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from tests.support import webhook_payloads as wp
from tests.support.fake_github import FakeGitHub
from tests.support.git_repos import RemoteRepo
from tests.support.tf_configs import backend_block, hcl_string
from tests.support.tfbot_process import TfbotServer, free_port, wait_for, write_config

SECRET = "scenario-webhook-secret"
INSTALLATION = 99
REPO = "acme/infra"


def tf_config(state_dir: Path, resources: dict[str, str], extra: str = "") -> str:
    """main.tf text: `terraform_data` resources with their inputs, state kept in `state_dir`."""
    body = "".join(
        f'resource "terraform_data" {hcl_string(name)} {{\n  input = {hcl_string(value)}\n}}\n'
        for name, value in resources.items()
    )
    return backend_block(state_dir) + body + extra


class Scenario:
    """One running tfbot against one fake GitHub and one repository."""

    def __init__(self, tmp_path: Path, fake: FakeGitHub, private_key_pem: bytes, *, workers: int = 2,
                 repo_settings: dict[str, Any] | None = None, extra_settings: dict[str, Any] | None = None,
                 github_settings: dict[str, Any] | None = None):
        self.tmp = tmp_path
        self.fake = fake
        self.remote = RemoteRepo(tmp_path / "remote", REPO)
        self.state_root = tmp_path / "state"
        self.state_root.mkdir(exist_ok=True)
        # Files a test's run steps and provisioners share with the test (gates, markers): runs may write here.
        self.host_dir = tmp_path / "host"
        self.host_dir.mkdir(exist_ok=True)
        self.port = free_port()
        extra = dict(extra_settings or {})
        # State lives outside the checkout, like a remote backend's: the one directory runs may write besides it.
        terraform = {"timeout": 300, "sandbox": {"writable_paths": [str(self.state_root), str(self.host_dir)]}, **extra.pop("terraform", {})}
        self.settings = {
            "github": {"api_url": fake.base_url, "app_id": fake.app_id, "private_key": private_key_pem.decode(),
                       "webhook_secret": SECRET, "app_slug": fake.app_slug, "retries": 0, "write_interval": 0,
                       **(github_settings or {})},
            # One web process: the suite starts many servers on few cores (tests of several set it).
            "server": {"host": "127.0.0.1", "port": self.port, "processes": 1},
            "data_dir": str(tmp_path / "data"),
            "workers": workers,
            "terraform": terraform,
            "repos": [{"name": "acme/*", **(repo_settings or {})}],
            "log_level": "INFO",
            **extra,
        }
        self.server: TfbotServer | None = None
        self._branches: dict[int, str] = {}
        self._bases: dict[int, str] = {}

    # --- setup ---
    def state_dir(self, project: str) -> Path:
        return self.state_root / project

    def config_for(self, project: str, resources: dict[str, str], extra: str = "") -> str:
        return tf_config(self.state_dir(project), resources, extra)

    def init_main(self, files: dict[str, str]) -> str:
        sha = self.remote.commit("main", files, "Initial infrastructure")
        self.fake.add_repo(REPO, self.remote.clone_url, installation_id=INSTALLATION)
        return sha

    def start(self) -> "Scenario":
        path = write_config(self.tmp, self.settings)
        self.server = TfbotServer(path, self.port).start()
        self.server.wait_healthy()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def logs(self) -> str:
        return self.server.logs() if self.server else ""

    # --- GitHub users' actions ---
    def send(self, event: str, payload: dict[str, Any]) -> None:
        assert self.server is not None
        r = self.server.post_event(event, payload, SECRET)
        assert r.status_code in (200, 202), (r.status_code, r.text)

    def open_pr(self, branch: str, files: dict[str, str | None], author: str = "alice", title: str | None = None,
                draft: bool = False, send: bool = True, fork: bool = False, base: str = "main") -> int:
        sha = self.remote.commit(branch, files, f"Change on {branch}", parent_branch=base)
        pull = self.fake.add_pull(REPO, head_ref=branch, user=author, head_sha=sha, title=title, draft=draft,
                                  fork=fork, base_ref=base)
        number = pull["number"]
        self.remote.create_pull_ref(number, sha)
        self._branches[number] = branch
        self._bases[number] = base
        if send:
            self.send("pull_request", wp.pull_request_event("opened", self.fake.repo_payload(REPO),
                                                            self.fake.pull_payload(REPO, number), INSTALLATION, author))
        return number

    def push(self, number: int, files: dict[str, str | None], author: str = "alice") -> str:
        before = self.head(number)
        sha = self.remote.commit(self._branches[number], files, "Another change")
        self.remote.create_pull_ref(number, sha)
        self.fake.update_pull(REPO, number, head_sha=sha)
        self.send("pull_request", wp.pull_request_event("synchronize", self.fake.repo_payload(REPO),
                                                        self.fake.pull_payload(REPO, number), INSTALLATION, author,
                                                        before=before))
        return sha

    def comment(self, number: int, user: str, body: str) -> dict[str, Any]:
        comment = self.fake.add_comment(REPO, number, user, body)
        self.send("issue_comment", wp.issue_comment_event("created", self.fake.repo_payload(REPO), number, comment,
                                                          INSTALLATION, user,
                                                          issue=self.fake.issue_payload(REPO, number)))
        return comment

    def comment_on_issue(self, number: int, user: str, body: str) -> dict[str, Any]:
        """`user` comments on the plain issue #`number`: the event's issue has no `pull_request` key, as GitHub sends
        it for an issue."""
        comment = self.fake.add_comment(REPO, number, user, body)
        self.send("issue_comment", wp.issue_comment_event("created", self.fake.repo_payload(REPO), number, comment,
                                                          INSTALLATION, user, is_pull=False,
                                                          issue=self.fake.issue_payload(REPO, number)))
        return comment

    def merge(self, number: int, by: str = "alice") -> str:
        merge_sha = self.remote.merge(self._branches[number], into=self._bases.get(number))
        self.fake.update_pull(REPO, number, merged=True, merge_commit_sha=merge_sha, merged_by=by)
        self.send("pull_request", wp.pull_request_event("closed", self.fake.repo_payload(REPO),
                                                        self.fake.pull_payload(REPO, number), INSTALLATION, by))
        return merge_sha

    def retarget(self, number: int, base: str, by: str = "alice") -> None:
        """Change the PR's base branch, as the "Edit" button does."""
        old = self._bases.get(number, "main")
        self.fake.update_pull(REPO, number, base_ref=base, base_sha=self.remote.branch_sha(base))
        self._bases[number] = base
        self.send("pull_request", wp.pull_request_event(
            "edited", self.fake.repo_payload(REPO), self.fake.pull_payload(REPO, number), INSTALLATION, by,
            changes={"base": {"ref": {"from": old}, "sha": {"from": self.remote.branch_sha(old)}}}))

    def ready_for_review(self, number: int, by: str = "alice") -> None:
        self.fake.update_pull(REPO, number, draft=False)
        self.send("pull_request", wp.pull_request_event("ready_for_review", self.fake.repo_payload(REPO),
                                                        self.fake.pull_payload(REPO, number), INSTALLATION, by))

    def reopen(self, number: int, by: str = "alice") -> None:
        self.fake.update_pull(REPO, number, state="open")
        self.send("pull_request", wp.pull_request_event("reopened", self.fake.repo_payload(REPO),
                                                        self.fake.pull_payload(REPO, number), INSTALLATION, by))

    def close(self, number: int, by: str = "alice") -> None:
        self.fake.update_pull(REPO, number, state="closed")
        self.send("pull_request", wp.pull_request_event("closed", self.fake.repo_payload(REPO),
                                                        self.fake.pull_payload(REPO, number), INSTALLATION, by))

    def press(self, check_run_id: int, user: str, identifier: str = "apply") -> None:
        """`user` presses a button of a check run: GitHub's `check_run` `requested_action` event, carrying the
        check run as it is now."""
        self.send("check_run", wp.check_run_event("requested_action", self.fake.repo_payload(REPO),
                                                  self.fake.check_run(REPO, check_run_id), INSTALLATION, user,
                                                  identifier=identifier))

    # --- what users see ---
    def head(self, number: int) -> str:
        return str(self.fake.pull_payload(REPO, number)["head"]["sha"])

    def bot_comments(self, number: int) -> list[str]:
        return [c["body"] for c in self.fake.comments(REPO, number) if c["user"] == self.fake.bot_login]

    def wait_comment(self, number: int, predicate: Callable[[str], bool], timeout: float = 120,
                     what: str = "a comment") -> str:
        def found() -> str | None:
            return next((b for b in reversed(self.bot_comments(number)) if predicate(b)), None)

        try:
            return wait_for(found, timeout=timeout, interval=0.2, message=f"{what} on #{number}")
        except AssertionError:
            raise AssertionError(f"no {what} on #{number}; bot comments: {self.bot_comments(number)}\n"
                                 f"--- tfbot log ---\n{self.logs()[-8000:]}") from None

    def wait_status(self, sha: str, context: str, states: tuple[str, ...] = ("success", "failure", "error"),
                    timeout: float = 120) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            status = self.fake.latest_status(REPO, sha, context)
            return status if status and status["state"] in states else None

        try:
            return wait_for(final, timeout=timeout, interval=0.2, message=f"status {context} on {sha[:8]}")
        except AssertionError:
            raise AssertionError(f"status {context} never reached {states}: "
                                 f"{self.fake.statuses(REPO, sha)}\n--- tfbot log ---\n{self.logs()[-8000:]}") from None

    def check_runs(self, sha: str, name: str) -> list[dict[str, Any]]:
        """The check runs called `name` on `sha`, oldest first, with their actions and annotations."""
        return [self.fake.check_run(REPO, r["id"]) for r in self.fake.check_runs(REPO, sha) if r["name"] == name]

    def wait_check_run(self, sha: str, name: str, timeout: float = 120) -> dict[str, Any]:
        """The newest check run called `name` on `sha`, once it is completed."""
        def done() -> dict[str, Any] | None:
            runs = self.check_runs(sha, name)
            return runs[-1] if runs and runs[-1]["status"] == "completed" else None

        try:
            return wait_for(done, timeout=timeout, interval=0.2, message=f"check run {name} on {sha[:8]}")
        except AssertionError:
            raise AssertionError(f"check run {name} never completed: {self.fake.check_runs(REPO, sha)}\n"
                                 f"--- tfbot log ---\n{self.logs()[-8000:]}") from None

    def state_resources(self, project: str, workspace: str = "default") -> dict[str, Any]:
        """Resource name -> input value, read from the real state file Terraform wrote."""
        path = self.state_dir(project) / ("terraform.tfstate" if workspace == "default"
                                          else f"workspaces/{workspace}/terraform.tfstate")
        if not path.exists():
            return {}
        state = json.loads(path.read_text())
        return {r["name"]: r["instances"][0]["attributes"]["input"]["value"]
                for r in state.get("resources", []) if r["type"] == "terraform_data"}

    def lock(self, dir_: str, workspace: str = "default") -> Any:
        """The workspace lock of (dir, workspace) in this repository, from the real lock store, or None."""
        from bot.state.locks import LockStore
        from bot.models import Project

        return LockStore(self.redis()).get(Project(repo=REPO, name=dir_, dir=dir_, workspace=workspace))

    def redis(self) -> Any:
        from bot.adapters.redis_server import EmbeddedRedis, connect

        return connect(EmbeddedRedis(Path(self.settings["data_dir"])).url)

    def redis_texts(self) -> dict[str, str]:
        """Every tfbot key in Redis and its value as text (strings, hashes as JSON, lists line by line): where a leaked
        secret would land."""
        conn, texts = self.redis(), {}
        for key in conn.scan_iter("tfbot:*"):
            kind = conn.type(key).decode()
            if kind == "string":
                texts[key.decode()] = conn.get(key).decode(errors="replace")
            elif kind == "hash":
                texts[key.decode()] = json.dumps({k.decode(): v.decode(errors="replace")
                                                  for k, v in conn.hgetall(key).items()})
            elif kind == "list":
                texts[key.decode()] = "\n".join(v.decode(errors="replace") for v in conn.lrange(key, 0, -1))
        return texts

    def plan_jobs(self, number: int) -> int:
        """How many plan jobs of PR `number` were queued so far (RQ's job records: queued, running or done). A push's
        plan shows no pending status while check runs are on, so tests that wait for it to be queued count these."""
        conn = self.redis()
        prefix = f"plan {REPO}#{number} ".encode()
        return sum(1 for key in conn.scan_iter("rq:job:*") if (conn.hget(key, "description") or b"").startswith(prefix))

    def wait_idle(self, timeout: float = 120) -> None:
        """Until no job is queued, running or waiting to run again (a run deferred behind a busy project, a retry):
        tests that check that nothing happened wait for this first."""
        from rq import Queue
        from rq.registry import ScheduledJobRegistry, StartedJobRegistry

        conn = self.redis()

        def idle() -> bool:
            for name in ("tfbot-events", "tfbot-runs"):
                queue = Queue(name, connection=conn)
                # A job a worker has just taken sits in RQ's intermediate list until it is in the started registry.
                if queue.count or conn.llen(queue.intermediate_queue_key) \
                        or StartedJobRegistry(name, connection=conn).count \
                        or ScheduledJobRegistry(name, connection=conn).count:
                    return False
            return True

        wait_for(idle, timeout=timeout, message="the queues to drain")
        time.sleep(0.3)


SUMMARY_RE = re.compile(r"Plan: \d+ to add, \d+ to change, \d+ to destroy\.")
