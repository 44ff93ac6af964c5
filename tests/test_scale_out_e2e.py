"""Several hosts, one Redis, plans in S3 (issue 5, items 1 and 3): two "hosts" on this machine, each with its
own config and data_dir, run `tfbot serve` (and host B one more `tfbot worker`) against a shared Redis on a
TCP port and a moto S3 bucket. Webhooks alternate between the two web servers."""
from __future__ import annotations

import re
import time
import uuid
from typing import Iterator

import pytest
from rq.registry import FailedJobRegistry

from bot.state import keys
from bot.state.locks import LockStore
from bot.models import LockState, Project
from bot.state.records import Records
from bot.render.comments import marker_of
from tests.support.cluster import (Cluster, overlaps, shared_redis, witness_workflows,  # noqa: F401 - a fixture
                                   witnessed_runs)
from tests.support.scenario import REPO, SUMMARY_RE
from tests.support.tf_configs import hcl_string

pytestmark = pytest.mark.e2e

PROJECTS = [f"p{i}" for i in range(5)]
PRS = 20


@pytest.fixture
def make_cluster(tmp_path, fake_github, app_keys, shared_redis, moto_server_url) -> Iterator:
    made: list[Cluster] = []

    def make(**kwargs) -> Cluster:
        cluster = Cluster(tmp_path, fake_github, app_keys[0], redis_url=shared_redis, s3_url=moto_server_url,
                          bucket=f"tfbot-plans-{uuid.uuid4().hex[:8]}", **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


def resource(name: str, value: str) -> str:
    return f'resource "terraform_data" {hcl_string(name)} {{\n  input = {hcl_string(value)}\n}}\n'


def run_metas(conn) -> list[dict]:
    """Every run record tfbot wrote (plan and apply), oldest first."""
    records = Records(conn)
    metas = [records.run(raw.decode())[0] for raw in conn.lrange(keys.runs(), 0, -1)]
    return sorted(metas, key=lambda m: m["started_at"])


def run_ids_in(text: str) -> set[str]:
    return set(re.findall(r"\(run (\d{14}-[0-9a-f]{8})\)", text))


class Driver:
    """Acts as the PRs' authors would: merge a PR once it holds its project's lock with a plan; when tfbot says
    main moved since the reviewed plan, review the new plan and comment `apply`, as the comment asks."""

    def __init__(self, cluster: Cluster, prs: dict[int, str]):
        self.cl = cluster
        self.prs = prs  # PR number -> project dir
        self.phase = {n: "waiting" for n in prs}
        self.seen = {n: 0 for n in prs}
        self.stale_at_merge: list[int] = []
        self.applied_on_merge: list[int] = []
        self.locks = LockStore(cluster.redis())

    def run(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(p != "applied" for p in self.phase.values()):
            if time.monotonic() > deadline:
                raise AssertionError(f"PRs not applied within {timeout}s: "
                                     f"{ {n: p for n, p in self.phase.items() if p != 'applied'} }\n{self.cl.logs()}")
            for number in self.prs:
                self.step(number)
            time.sleep(0.2)

    def step(self, number: int) -> None:
        phase = self.phase[number]
        if phase == "waiting":
            comments = self.cl.bot_comments(number)
            # As its author would: merge once the PR holds the lock and its plan is on the PR.
            if (self.lock_state(number) == LockState.PLANNED and comments
                    and (marker_of(comments[-1]) or {}).get("kind") == "plan" and SUMMARY_RE.search(comments[-1])):
                self.seen[number] = len(comments)
                self.cl.merge(number)
                self.phase[number] = "merged"
            return
        if phase == "applied":
            return
        comments = self.cl.bot_comments(number)
        new, self.seen[number] = comments[self.seen[number]:], len(comments)
        for body in new:
            if "Apply complete!" in body:
                (self.applied_on_merge if phase == "merged" else []).append(number)
                self.phase[number] = "applied"
            elif phase == "merged" and self.lock_state(number) == LockState.PLAN_STALE:
                assert "Nothing was applied" in body, body
                self.stale_at_merge.append(number)
                self.cl.comment(number, "alice", "tfbot apply")
                self.phase[number] = "apply asked"
            else:
                raise AssertionError(f"#{number} ({phase}): unexpected comment:\n{body}\n{self.cl.logs()}")

    def lock_state(self, number: int) -> LockState | None:
        project = self.prs[number]
        lock = self.locks.get(Project(repo=REPO, name=project, dir=project))
        return lock.state if lock is not None and lock.pull == number else None


@pytest.mark.timeout(330)
def test_runs_of_one_project_never_overlap_across_hosts(make_cluster, tmp_path):
    workflows, witness_log = witness_workflows(tmp_path / "host" / "workflows")
    cl = make_cluster(repo_settings={"projects": [{"dir": p, "workflow": "witness"} for p in PROJECTS]},
                      extra_settings={"workflows_dir": str(workflows)})
    cl.init_main({f"{p}/main.tf": cl.config_for(p, {"base": p}) for p in PROJECTS})
    cl.fake.set_permission(REPO, "alice", "write")
    host_a, host_b = cl.add_host("a"), cl.add_host("b", extra_workers=1)
    cl.start_hosts()

    # Every PR adds its own resource in a new file, so a merge never undoes an earlier PR's resource. Each
    # PR's `opened` event and a `plan` comment go to different hosts at once: 8 events race for each lock.
    prs: dict[int, str] = {}
    names: dict[int, str] = {}
    for i in range(PRS):
        project, name = PROJECTS[i % len(PROJECTS)], f"r{i:02d}"
        number = cl.open_pr(f"change-{i:02d}", {f"{project}/{name}.tf": resource(name, f"{project}-{i}")})
        cl.comment(number, "alice", "tfbot plan")
        prs[number], names[number] = project, name
    cl.wait_idle()
    conn = cl.redis()
    locks = LockStore(conn)
    holders = {lock.dir: lock.pull for lock in locks.list()}
    assert sorted(holders) == PROJECTS and all(prs[pull] == project for project, pull in holders.items())
    for project, holder in holders.items():
        waiting = [entry["pull"] for entry in locks.queue(Project(repo=REPO, name=project, dir=project))]
        assert sorted(waiting) == sorted(n for n, p in prs.items() if p == project and n != holder)
    # Only the holders ran Terraform: twice each (autoplan and comment), one after the other.
    assert sorted((m["dir"], m["pull"]) for m in run_metas(conn)) == sorted(
        (project, pull) for project, pull in holders.items() for _ in range(2))

    driver = Driver(cl, prs)
    driver.run(timeout=270)
    cl.wait_idle()

    # Every PR ends as its events call for: merged, applied, and its apply status green.
    for number in prs:
        assert cl.fake.pull_payload(REPO, number)["merged"]
        assert cl.fake.latest_status(REPO, cl.head(number), "tfbot/apply")["state"] == "success", number
    for project in PROJECTS:
        expected = {"base": project} | {names[n]: f"{project}-{int(names[n][1:])}" for n, p in prs.items()
                                        if p == project}
        assert cl.state_resources(project) == expected

    metas = run_metas(conn)
    # (a) No two runs of one project overlap: by the run records (times taken inside the run guard) ...
    by_project: dict[tuple[str, str, str], list[dict]] = {}
    for meta in metas:
        by_project.setdefault((meta["repo"], meta["dir"], meta["workspace"]), []).append(meta)
    assert sorted(d for _, d, _ in by_project) == PROJECTS
    for project_runs in by_project.values():
        for before, after in zip(project_runs, project_runs[1:]):
            assert after["started_at"] >= before["started_at"] + before["duration"], (before, after)
    # ... and by the witness steps that bracket Terraform in every plan and apply pipeline, on every host.
    witnessed = witnessed_runs(witness_log)
    assert overlaps(witnessed) == []
    assert len(witnessed) == len(metas), "a run did not go through the project's workflow"
    assert sum(m["kind"] == "apply" and m["ok"] for m in metas) == PRS
    assert all(m["ok"] for m in metas)

    # (c) Nothing left behind: no lock, nobody in line, no guard, no failed job.
    assert LockStore(conn).list() == []
    assert conn.keys("tfbot:lockq:*") == [] and conn.keys("tfbot:guard:*") == []
    for queue in ("tfbot-events", "tfbot-runs"):
        assert FailedJobRegistry(queue, connection=conn).get_job_ids() == [], queue

    # The work was really spread: both web servers took events, and workers on both hosts ran Terraform.
    ran_on_a, ran_on_b = run_ids_in(host_a.logs(tail=10**7)), run_ids_in(host_b.logs(tail=10**7))
    assert ran_on_a and ran_on_b and ran_on_a | ran_on_b == {m["id"] for m in metas}
    assert cl.sent_to["a"] > 10 and cl.sent_to["b"] > 10
    print(f"\n{len(metas)} runs ({len(ran_on_a)} on host a, {len(ran_on_b)} on host b); "
          f"applied on merge: {sorted(driver.applied_on_merge)}; stale at merge, applied after `apply`: "
          f"{sorted(driver.stale_at_merge)}")


def test_a_plan_made_on_one_host_is_applied_on_another(make_cluster):
    cl = make_cluster()
    cl.init_main({"network/main.tf": cl.config_for("network", {"vpc": "a"}),
                  "dns/main.tf": cl.config_for("dns", {"zone": "z"})})
    host_a, host_b = cl.add_host("a"), cl.add_host("b")
    cl.start_hosts("a")
    grow = cl.open_pr("grow", {"network/main.tf": cl.config_for("network", {"vpc": "a", "subnet": "s"})})
    zone = cl.open_pr("zone", {"dns/main.tf": cl.config_for("dns", {"zone": "z", "record": "r"})})
    cl.wait_comment(grow, lambda b: "Plan: 2 to add" in b)
    cl.wait_comment(zone, lambda b: "Plan: 2 to add" in b)

    # The plan files are in S3, encrypted, and nowhere on host A's disk.
    stored = {o["Key"] for o in cl.s3.list_objects_v2(Bucket=cl.bucket, Prefix="tfbot/plans/")["Contents"]}
    # One file per plan run: <repo>/<pull>/<workspace>/<dir>/<head sha>-<run id>.tfplan
    assert len(stored) == 2, stored
    assert {k.rsplit("-", 2)[0] for k in stored} == {f"tfbot/plans/{REPO}/{grow}/default/network/{cl.head(grow)}",
                                                     f"tfbot/plans/{REPO}/{zone}/default/dns/{cl.head(zone)}"}
    for key in stored:
        assert cl.s3.head_object(Bucket=cl.bucket, Key=key)["ServerSideEncryption"] == "AES256"
    assert list(host_a.data_dir.rglob("*.tfplan")) == []
    assert host_a.stop() == [0]

    # Someone changes one plan file at rest: its recorded SHA-256 no longer matches.
    zone_key = next(k for k in stored if "/dns/" in k)
    cl.s3.put_object(Bucket=cl.bucket, Key=zone_key, Body=b"not the reviewed plan")

    cl.start_hosts("b")
    cl.merge(grow)
    applied = cl.wait_comment(grow, lambda b: "Apply complete!" in b)
    assert "Resources: 2 added" in applied
    assert cl.state_resources("network") == {"vpc": "a", "subnet": "s"}
    assert LockStore(cl.redis()).get(Project(repo=REPO, name="network", dir="network")) is None

    # `apply` on the open PR reads the reviewed plan's file (main moved since, but not in dns: the plan still
    # describes the PR; a merge now would plan main again, main having moved, and never read the file).
    cl.fake.set_permission(REPO, "alice", "write")
    cl.comment(zone, "alice", "tfbot apply")
    refused = cl.wait_comment(zone, lambda b: "SHA-256" in b)
    assert "refusing it" in refused
    assert cl.state_resources("dns") == {}  # nothing of the changed file was applied
    lock = LockStore(cl.redis()).get(Project(repo=REPO, name="dns", dir="dns"))
    assert lock is not None and lock.pull == zone

    # The plan run happened on host A and the apply on host B.
    metas = run_metas(cl.redis())
    plan_run = next(m["id"] for m in metas if m["kind"] == "plan" and m["pull"] == grow)
    apply_run = next(m["id"] for m in metas if m["kind"] == "apply" and m["pull"] == grow)
    assert plan_run in run_ids_in(host_a.logs(tail=10**7))
    assert apply_run in run_ids_in(host_b.logs(tail=10**7))


def test_runs_started_from_a_lock_use_the_repos_workflow(make_cluster, tmp_path):
    """A repo-level `workflow` applies to auto-detected projects in every run: the autoplan, and also the
    apply on merge and the plan of the next PR in line, which start from the lock rather than from the diff."""
    workflows, witness_log = witness_workflows(tmp_path / "host" / "workflows")
    cl = make_cluster(repo_settings={"workflow": "witness"}, extra_settings={"workflows_dir": str(workflows)})
    cl.init_main({"network/main.tf": cl.config_for("network", {"vpc": "a"})})
    cl.add_host("a")
    cl.start_hosts()
    first = cl.open_pr("first", {"network/subnet.tf": resource("subnet", "s")})
    cl.wait_comment(first, lambda b: "Plan: 2 to add" in b)
    second = cl.open_pr("second", {"network/nat.tf": resource("nat", "n")})
    cl.wait_comment(second, lambda b: f"locked by #{first}" in b)
    cl.merge(first)
    cl.wait_comment(first, lambda b: "Apply complete!" in b)
    cl.wait_comment(second, lambda b: "Plan:" in b and "handed to this PR" in b)
    cl.wait_idle()
    kinds = [(m["kind"], m["pull"]) for m in run_metas(cl.redis())]
    assert kinds == [("plan", first), ("apply", first), ("plan", second)]
    assert len(witnessed_runs(witness_log)) == 3, "a run did not go through the repo's workflow"
