"""Outages end to end: webhooks GitHub could not deliver while every tfbot process was down are redelivered
at start, and locks of PRs closed or merged meanwhile are reconciled. Real `tfbot serve`, real Redis under
data_dir (kept across the restart), real git and Terraform, the fake GitHub."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import webhook_payloads as wp
from tests.support.scenario import INSTALLATION, REPO, SECRET
from tests.support.tfbot_process import REPO_ROOT

pytestmark = pytest.mark.e2e


def lock_of(sc, dir_: str, workspace: str = "default"):
    return sc.lock(dir_, workspace)


def files(sc, project: str, **resources: str) -> dict[str, str]:
    return {f"{project}/main.tf": sc.config_for(project, {"base": "1", **resources})}


def redeliver_to(sc):
    """What GitHub does on `POST /app/hook/deliveries/{id}/attempts`: sign and send the stored payload again."""
    def send(delivery: dict) -> int:
        r = sc.server.post_event(delivery["event"], delivery["request"]["payload"], SECRET, delivery=delivery["guid"])
        return r.status_code

    return send


def test_events_that_failed_while_tfbot_was_down_are_redelivered_and_processed(make_scenario):
    sc = make_scenario()
    sc.init_main(files(sc, "network"))
    sc.start()
    sc.stop()  # every tfbot process is down from here on

    pr = sc.open_pr("grow", files(sc, "network", subnet="a"), send=False)
    repo_id = sc.fake.repo_payload(REPO)["id"]

    def delivery(action: str, status: int) -> dict:
        payload = wp.pull_request_event(action, sc.fake.repo_payload(REPO), sc.fake.pull_payload(REPO, pr),
                                        INSTALLATION, "alice")
        return sc.fake.add_hook_delivery("pull_request", payload, status_code=status, installation_id=INSTALLATION,
                                         repository_id=repo_id)

    missed = delivery("opened", 502)  # what GitHub records when nothing listens behind the proxy
    delivery("reopened", 401)  # refused for its signature: asking again would be refused again
    delivery("ready_for_review", 202)  # taken: nothing to redeliver
    sc.fake.set_redeliver_hook(redeliver_to(sc))

    sc.start()
    body = sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b, what="the plan of the redelivered opened event")
    assert sc.head(pr)[:7] in body
    assert sc.fake.redelivery_attempts() == [missed["id"]]
    assert lock_of(sc, "network").pull == pr
    assert sc.redis().exists(f"tfbot:delivery:{missed['guid']}")  # intake took the redelivery like any delivery
    assert "asked GitHub to redeliver webhook pull_request.opened" in sc.logs()


def test_locks_of_prs_closed_or_merged_while_tfbot_was_down_are_reconciled(make_scenario):
    sc = make_scenario(repo_settings={"projects": [{"dir": "network"}, {"dir": "dns"}]})
    sc.init_main({**files(sc, "network"), **files(sc, "dns")})
    sc.fake.set_permission(REPO, "bob", "write")
    sc.start()
    closed = sc.open_pr("closed", files(sc, "network", subnet="a"))
    sc.wait_comment(closed, lambda b: "Plan: 2 to add" in b)
    waiting = sc.open_pr("waiting", files(sc, "network", peering="p"), author="bob")
    sc.wait_comment(waiting, lambda b: f"locked by #{closed}" in b)
    merged = sc.open_pr("merged", files(sc, "dns", zone="z"))
    sc.wait_comment(merged, lambda b: "Plan: 2 to add" in b)
    sc.stop()

    # While tfbot is down one PR is closed and one merged; GitHub's webhooks about it are lost.
    sc.fake.update_pull(REPO, closed, state="closed")
    merge_sha = sc.remote.merge("merged")
    sc.fake.update_pull(REPO, merged, merged=True, merge_commit_sha=merge_sha, merged_by="alice")

    sc.start()
    applied = sc.wait_comment(merged, lambda b: "Apply complete!" in b, what="the apply of the merged PR")
    assert "tfbot was down when this PR was merged" in applied
    assert sc.state_resources("dns") == {"base": "1", "zone": "z"}
    sc.wait_comment(waiting, lambda b: "Plan:" in b and f"#{closed}" in b, what="the plan of the next in line")
    assert lock_of(sc, "network").pull == waiting
    assert lock_of(sc, "dns") is None
    assert sc.state_resources("network") == {}  # nothing applied for the closed PR
    sc.wait_idle()

    # By hand, against the running server: only the open PR holds a lock now, and it is left alone.
    run = subprocess.run([sys.executable, "-m", "bot", "reconcile", "--config", str(sc.tmp / "config.yaml")],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{REPO}#{waiting} (network): kept: the PR is open"
