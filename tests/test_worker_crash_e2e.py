"""A worker killed in the middle of a run: the PR is told, the lock stays, nothing waits forever."""
from __future__ import annotations

import fcntl
import os
import signal
import sys
import textwrap

import pytest

from bot.state.locks import LockStore
from bot.models import Project
from tests.support.scenario import REPO
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e


def hanging_workflow(tmp_path):
    """A plan workflow whose custom step records the pid of the process running the job, then hangs."""
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "hang.py"
    script.write_text(textwrap.dedent(f"""
        import os, pathlib, time
        (pathlib.Path({str(pids)!r}) / "job").write_text(str(os.getppid()))
        time.sleep(300)
    """))
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "hang.yaml").write_text(
        f"plan:\n  steps: [init, workspace, {{run: [{sys.executable!r}, {str(script)!r}]}}, plan, show]\n"
        "apply:\n  steps: [init, apply]\n")
    return workflows, pids / "job"


def start(make_scenario, tmp_path):
    workflows, pid_file = hanging_workflow(tmp_path)
    # Unsandboxed: the hanging step records its parent's pid, which a sandbox's fresh PID namespace hides.
    sc = make_scenario(workers=1, extra_settings={"workflows_dir": str(workflows), "terraform": {"sandbox": {"mode": "none"}}},
                       repo_settings={"projects": [{"dir": "network", "workflow": "hang"}]})
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "a"})})
    sc.start()
    pr = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"vpc": "a", "subnet": "b"})})
    job_pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), message="the run to start"))
    return sc, pr, job_pid


def test_killed_job_process_is_reported_and_keeps_the_lock(make_scenario, tmp_path):
    sc, pr, job_pid = start(make_scenario, tmp_path)
    # Another process holds the state lock, as an orphaned Terraform of the killed run would.
    state = sc.state_dir("network") / "terraform.tfstate"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.touch()
    with open(state, "r+") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.kill(job_pid, signal.SIGKILL)
        body = sc.wait_comment(pr, lambda b: "interrupted" in b, what="the interrupted-run report")
    assert "signal 9" in body
    assert f"Terraform's state lock is held by process {os.getpid()} on this host" in body  # read, not taken
    assert "lock stays with this PR" in body
    status = sc.wait_status(sc.head(pr), "tfbot/plan")
    assert status["state"] in ("failure", "error")
    lock = LockStore(sc.redis()).get(Project(repo=REPO, name="network", dir="network"))
    assert lock is not None and lock.pull == pr


@pytest.mark.timeout(240)
def test_killed_worker_is_found_by_its_expired_heartbeat(make_scenario, tmp_path):
    sc, pr, job_pid = start(make_scenario, tmp_path)
    worker_pid = int(open(f"/proc/{job_pid}/stat").read().split(") ")[1].split()[1])  # the job process's parent
    os.kill(worker_pid, signal.SIGKILL)
    os.kill(job_pid, signal.SIGKILL)
    # `tfbot serve` starts a new worker; its reaper finds the run whose heartbeat expired.
    body = sc.wait_comment(pr, lambda b: "interrupted" in b, timeout=200, what="the abandoned-run report")
    assert "worker stopped without finishing it (no heartbeat" in body
    assert "Terraform's state lock is free" in body
    lock = LockStore(sc.redis()).get(Project(repo=REPO, name="network", dir="network"))
    assert lock is not None and lock.pull == pr
