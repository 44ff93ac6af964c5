"""The page, the run view, the JSON and the metrics agree with the lock store during a real PR scenario
(`tfbot serve` with workers, real Terraform, the fake GitHub), read over HTTP as a browser or script would, from the
web process of `tfbot serve` and from a second `tfbot web` on the same Redis: each keeps its own copy of the locks."""
from __future__ import annotations

import re

import pytest
import requests

from bot.state.locks import LockStore
from bot.models import LockState
from tests.support.browser import ADMIN, ADMIN_HASH, ADMIN_PASSWORD
from tests.support.scenario import REPO
from tests.support.tfbot_process import TfbotProcess, free_port, wait_for, write_config

pytestmark = pytest.mark.e2e


def signed_in(base: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base}/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)[1]
    answer = session.post(f"{base}/login", data={"csrf_token": token, "name": ADMIN, "password": ADMIN_PASSWORD},
                          allow_redirects=False)
    assert answer.status_code == 303
    return session


def test_page_run_view_json_and_metrics_follow_the_lock_store(make_scenario):
    sc = make_scenario()
    sc.settings["server"]["admins"] = [{"name": ADMIN, "password_hash": ADMIN_HASH}]
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "1"}),
                  "dns/main.tf": sc.config_for("dns", {"zone": "1"})})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    base = sc.server.url
    other_dir = sc.tmp / "second-web"
    other_dir.mkdir()
    other_port = free_port()
    other = TfbotProcess("web", write_config(other_dir, {**sc.settings, "server": {**sc.settings["server"],
                                                                                  "port": other_port}})).start()
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{other_port}/healthz"), message="the second web process")
        _follow_the_lock_store(sc, base, f"http://127.0.0.1:{other_port}")
    finally:
        other.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except requests.ConnectionError:
        return False


def _follow_the_lock_store(sc, base: str, other_base: str) -> None:
    a = sc.open_pr("a", {"network/main.tf": sc.config_for("network", {"vpc": "1", "subnet": "2"})})
    b = sc.open_pr("b", {"dns/main.tf": sc.config_for("dns", {"zone": "1", "record": "2"})}, author="bob")
    sc.wait_comment(a, lambda body: "Plan:" in body)
    sc.wait_comment(b, lambda body: "Plan:" in body)
    sc.wait_idle()

    store = LockStore(sc.redis())

    def agree() -> list[dict]:
        locks = {(lk.repo, lk.dir, lk.workspace): lk for lk in store.list()}
        for web in (base, other_base):
            api = requests.get(f"{web}/api/locks").json()["locks"]
            assert {(d["repo"], d["dir"], d["workspace"]) for d in api} == set(locks), web
            for item in api:
                lock = locks[(item["repo"], item["dir"], item["workspace"])]
                assert (item["pull_number"], item["user"], item["state"], item["summary"], item["run_id"]) == (
                    lock.pull, lock.user, lock.state.value, lock.summary, lock.run_id), web
            page = requests.get(f"{web}/locks").text
            assert sorted(re.findall(r'data-dir="([^"]+)" data-workspace', page)) == sorted(d for _, d, _ in locks)
            metrics = requests.get(f"{web}/metrics").text
            assert f"tfbot_locks_held {float(len(locks))}" in metrics, web
        return requests.get(f"{base}/api/locks").json()["locks"]

    api = agree()
    network = next(item for item in api if item["dir"] == "network")
    assert network["state"] == "planned" and network["summary"].startswith("Plan: 2 to add")
    assert network["pull_url"].endswith(f"/{REPO}/pull/{a}")

    anonymous = requests.get(f"{base}/api/runs/{network['run_id']}").json()
    assert anonymous["output"] is None and anonymous["kind"] == "plan" and anonymous["pull_number"] == a
    admin = signed_in(base)
    plan_run = admin.get(f"{base}/api/runs/{network['run_id']}").json()
    assert "terraform_data.subnet will be created" in plan_run["output"] and "\x1b[" not in plan_run["output"]
    assert plan_run["sha"] == sc.head(a) and plan_run["ok"] is True
    page = admin.get(f"{base}/runs/{network['run_id']}").text
    assert "terraform_data.subnet will be created" in page and sc.head(a)[:10] in page

    sc.comment(a, "alice", "tfbot apply")
    sc.wait_comment(a, lambda body: "Apply complete!" in body)
    sc.wait_idle()
    api = agree()
    network = next(item for item in api if item["dir"] == "network")
    assert network["state"] == LockState.APPLIED.value
    apply_run = admin.get(f"{base}/api/runs/{network['run_id']}").json()
    assert apply_run["kind"] == "apply" and "Apply complete! Resources: 2 added" in apply_run["output"]
    assert 'class="badge done">applied, awaiting merge<' in requests.get(f"{base}/locks").text

    sc.merge(a)
    sc.wait_comment(a, lambda body: "already matches the default branch" in body)
    sc.wait_idle()
    assert [item["dir"] for item in agree()] == ["dns"]
    metrics = requests.get(f"{base}/metrics").text
    assert re.search(r'tfbot_webhooks_received_total\{event="pull_request",outcome="queued"\} [1-9]', metrics)
    assert re.search(r'tfbot_recent_runs\{kind="apply",outcome="ok"\} 1\.0', metrics)
