"""A command's report (bot/lifecycle/reporting.py finish_command) writing its comment and check runs as one GraphQL
request (bot/lifecycle/report_writes.py), on real Redis and the fake GitHub: what it sends, and a retry after a
partial answer writing only what GitHub has not got. REST stays where node ids are missing or check runs are off. A
merged PR's result is shown on its head unless nothing was left to apply or it waits for the lock."""
from __future__ import annotations

import pytest

from bot.adapters.github import GitHubError
from bot.lifecycle.checks import shown_on_commit, start_check
from bot.lifecycle.planning import pull_info_dict
from bot.lifecycle.reporting import finish_command
from bot.models import Diagnostic, Outcome, Project, ProjectResult
from bot.state import keys
from bot.state.check_runs import CheckRuns
from tests.support.services_fixtures import INSTALLATION, REPO, real_merge, real_pull

pytestmark = pytest.mark.redis

NET = Project(repo=REPO, name="network", dir="network")
DNS = Project(repo=REPO, name="dns", dir="dns")


def failed_plan(project: Project, head: str) -> ProjectResult:
    """A failed plan with one diagnostic: its check run carries an annotation, which GitHub appends per write."""
    return ProjectResult(project, Outcome.PLAN_FAILED, head_sha=head, output="Error: Unsupported argument",
                         diagnostics=[Diagnostic("error", "Unsupported argument", "No `x` here.", "main.tf", 2, 2)])


def plan_command(svc, fake, head: str, projects: list[Project], *, node_ids: bool = True):
    """A plan of PR 1 at `head` whose runs made their check runs `in_progress` and recorded a failed plan each."""
    pull = svc.github.repo(INSTALLATION, REPO).pull(1)
    info = {**pull_info_dict(pull), "applies": True}
    if not node_ids:  # a command recorded before tfbot kept node ids
        info = {k: v for k, v in info.items() if k not in ("node_id", "repo_node_id")}
    cmd = svc.records.new_command("plan", REPO, 1, head, INSTALLATION, "alice", total=len(projects), info=info)
    for project in projects:
        start_check(svc, cmd, project)
        svc.records.add_result(cmd.id, failed_plan(project, head))
    fake.reset_requests()
    return cmd


def requests(fake) -> list[str]:
    return [f"{r.method} {r.path.split('/')[-1] if r.path.startswith('/repos') else r.path}" for r in fake.requests]


@pytest.fixture
def head(worker_services, fake_github, services_remote) -> str:
    return real_pull(fake_github, services_remote, 1)


def test_the_comment_and_every_check_run_go_in_one_request(worker_services, fake_github, head) -> None:
    svc = worker_services
    cmd = plan_command(svc, fake_github, head, [NET, DNS])
    finish_command(svc, cmd)
    made = fake_github.requests
    assert [(r.method, r.path) for r in made] == [("POST", "/graphql"), ("POST", f"/repos/{REPO}/statuses/{head}")]
    query = made[0].body["query"]
    assert query.count("addComment(") == 1 and query.count("updateCheckRun(") == 2
    [comment] = fake_github.comments(REPO, 1)
    assert "Unsupported argument" in comment["body"]
    runs = fake_github.check_runs(REPO, head)
    assert sorted((r["name"], r["status"], r["conclusion"]) for r in runs) == [
        ("tfbot/plan: dns", "completed", "failure"), ("tfbot/plan: network", "completed", "failure")]
    assert [len(fake_github.check_run(REPO, r["id"])["annotations"]) for r in runs] == [1, 1]
    assert svc.records.posted_comments(cmd.id) == [(comment["id"], _node(fake_github, comment["id"]))]
    # The report is done: run again (a duplicate job), it writes neither comment nor check run again.
    fake_github.reset_requests()
    finish_command(svc, cmd)
    assert all(r.path != "/graphql" and "check-runs" not in r.path and "comments" not in r.path
               for r in fake_github.requests)
    assert len(fake_github.comments(REPO, 1)) == 1


def _node(fake, comment_id: int) -> str:
    return fake.comment_payload(comment_id)["node_id"]


def test_a_failed_check_run_mutation_is_retried_alone(worker_services, fake_github, head) -> None:
    svc = worker_services
    cmd = plan_command(svc, fake_github, head, [NET, DNS])
    fake_github.fail_mutation("updateCheckRun")  # the first of the two: network's (results are sorted by dir)
    with pytest.raises(GitHubError, match="check0: UNPROCESSABLE"):
        finish_command(svc, cmd)
    [comment] = fake_github.comments(REPO, 1)
    assert svc.records.posted_comments(cmd.id) == [(comment["id"], _node(fake_github, comment["id"]))]
    states = {r["name"]: r["status"] for r in fake_github.check_runs(REPO, head)}
    assert sorted(states.values()) == ["completed", "in_progress"]
    assert fake_github.latest_status(REPO, head, "tfbot/plan") is None  # the report stopped before the status
    # The report job's retry: the comment is posted, one check run written; only the other is left, over REST.
    fake_github.reset_requests()
    finish_command(svc, cmd)
    assert requests(fake_github) == [f"POST {head}", f"PATCH {_id_of(svc, cmd, states)}"]
    assert len(fake_github.comments(REPO, 1)) == 1
    runs = fake_github.check_runs(REPO, head)
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert [len(fake_github.check_run(REPO, r["id"])["annotations"]) for r in runs] == [1, 1]  # none twice
    assert fake_github.latest_status(REPO, head, "tfbot/plan")["state"] == "failure"


def _id_of(svc, cmd, states: dict[str, str]) -> int:
    """The check run left in progress by the partial answer."""
    name = next(n for n, s in states.items() if s == "in_progress")
    project = NET if name.endswith("network") else DNS
    check_run_id = CheckRuns(svc.redis).id_of(cmd.id, project)
    assert check_run_id is not None
    return check_run_id


def test_a_failed_comment_mutation_is_posted_again_and_the_check_run_not(worker_services, fake_github,
                                                                         head) -> None:
    svc = worker_services
    cmd = plan_command(svc, fake_github, head, [NET])
    fake_github.fail_mutation("addComment", kind="FORBIDDEN", message="Resource not accessible by integration")
    with pytest.raises(GitHubError, match="comment0: FORBIDDEN"):
        finish_command(svc, cmd)
    assert fake_github.comments(REPO, 1) == [] and svc.records.posted_comments(cmd.id) == []
    [run] = fake_github.check_runs(REPO, head)
    assert run["status"] == "completed"
    fake_github.reset_requests()
    finish_command(svc, cmd)
    assert requests(fake_github) == ["POST comments", f"POST {head}"]
    assert len(fake_github.comments(REPO, 1)) == 1
    assert len(fake_github.check_run(REPO, run["id"])["annotations"]) == 1


def test_a_command_without_node_ids_asks_for_them_once(worker_services, fake_github, head) -> None:
    svc = worker_services
    cmd = plan_command(svc, fake_github, head, [NET], node_ids=False)
    finish_command(svc, cmd)
    assert requests(fake_github) == ["GET 1", "POST /graphql", f"POST {head}"]
    assert fake_github.check_runs(REPO, head)[0]["status"] == "completed" and len(fake_github.comments(REPO, 1)) == 1


def test_a_check_run_made_before_node_ids_were_kept_goes_over_rest(worker_services, fake_github, head) -> None:
    svc = worker_services
    cmd = plan_command(svc, fake_github, head, [NET])
    svc.redis.hdel(keys.check_run(cmd.id, NET.id), "node_id")
    assert CheckRuns(svc.redis).node_id_of(cmd.id, NET) == "", "the test must reach the record's key"
    finish_command(svc, cmd)
    assert "POST /graphql" not in requests(fake_github)
    assert fake_github.check_runs(REPO, head)[0]["status"] == "completed" and len(fake_github.comments(REPO, 1)) == 1


def test_with_check_runs_off_the_comment_goes_over_rest(worker_services, fake_github, head) -> None:
    svc = worker_services
    cmd = plan_command(svc, fake_github, head, [NET])
    svc.config = svc.config.model_copy(update={"github": svc.config.github.model_copy(update={"check_runs": False})})
    finish_command(svc, cmd)
    assert requests(fake_github) == ["POST comments", f"POST {head}"]


def test_a_long_comment_sends_only_its_first_part_with_the_check_runs(worker_services, fake_github, head) -> None:
    """GitHub goes on past a mutation that fails, so a second part in the same document could land before the
    first: only the first part rides with the check runs, and the rest follow over REST, in order."""
    svc = worker_services
    pull = svc.github.repo(INSTALLATION, REPO).pull(1)
    cmd = svc.records.new_command("plan", REPO, 1, head, INSTALLATION, "alice", total=1,
                                  info={**pull_info_dict(pull), "applies": True})
    start_check(svc, cmd, NET)
    output = "\n".join(f"  + terraform_data.r{i:06d} {'x' * 60}" for i in range(3000))  # ~200,000 characters
    svc.records.add_result(cmd.id, ProjectResult(NET, Outcome.PLAN_FAILED, head_sha=head, output=output))
    fake_github.reset_requests()
    finish_command(svc, cmd)
    made = [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake_github.requests]
    comments = fake_github.comments(REPO, 1)
    assert len(comments) >= 2
    assert made[0] == ("POST", "graphql") and fake_github.requests[0].body["query"].count("addComment(") == 1
    assert made[1:len(comments)] == [("POST", "comments")] * (len(comments) - 1)
    assert "(continued, part" not in comments[0]["body"]
    assert [f"(continued, part {k} of {len(comments)})" in c["body"] for k, c in enumerate(comments[1:], 2)] == \
        [True] * (len(comments) - 1)
    assert [c["id"] for c in comments] == sorted(c["id"] for c in comments)
    assert [r["status"] for r in fake_github.check_runs(REPO, head)] == ["completed"]


def test_a_merge_that_failed_inside_tfbot_before_terraform_is_shown_on_the_commit(worker_services, fake_github,
                                                                                  services_remote) -> None:
    """Only a merged PR's results that needed no Terraform run go without a check run and status: an ERROR (here
    what a merge commit that cannot be fetched gives, before any check run was made) is shown."""
    svc = worker_services
    head = real_pull(fake_github, services_remote, 1)
    real_merge(fake_github, services_remote, 1)
    pull = svc.github.repo(INSTALLATION, REPO).pull(1)
    cmd = svc.records.new_command("merge", REPO, 1, head, INSTALLATION, "mo", total=2,
                                  info={**pull_info_dict(pull), "applies": True})
    error = ProjectResult(NET, Outcome.ERROR, summary="tfbot could not run merge: CheckoutError", head_sha=head,
                          message="This is a fault in tfbot or its surroundings")
    nothing = ProjectResult(DNS, Outcome.NOTHING_TO_APPLY, head_sha=head,
                            message="Nothing was applied: the infrastructure already matches the default branch.")
    svc.records.add_result(cmd.id, error)
    svc.records.add_result(cmd.id, nothing)
    assert shown_on_commit(svc, cmd, [error, nothing]) == [error]
    fake_github.reset_requests()
    finish_command(svc, cmd)
    runs = fake_github.check_runs(REPO, head)
    assert [(r["name"], r["conclusion"]) for r in runs] == [("tfbot/apply: network", "failure")]
    assert fake_github.latest_status(REPO, head, "tfbot/apply")["state"] in ("error", "failure")


def test_at_most_ten_check_runs_ride_in_one_request(worker_services, fake_github, head) -> None:
    """A smaller document is less likely to meet GitHub's GraphQL time limit: the eleventh check run goes over REST."""
    svc = worker_services
    projects = [Project(repo=REPO, name=f"p{i:02d}", dir=f"p{i:02d}") for i in range(11)]
    cmd = plan_command(svc, fake_github, head, projects)
    finish_command(svc, cmd)
    made = [f"{r.method} {'graphql' if r.path == '/graphql' else r.path.split('/')[4]}" for r in fake_github.requests]
    assert made == ["POST graphql", "POST statuses", "PATCH check-runs"]
    assert fake_github.requests[0].body["query"].count("updateCheckRun(") == 10
    assert sorted(r["status"] for r in fake_github.check_runs(REPO, head)) == ["completed"] * 11
