"""Stopping and killing `tfbot serve` as an operator or an orchestrator would: SIGTERM in the middle of an
apply, `kill -9`, a second server on the same data_dir. Nothing may outlive serve, and nothing is lost."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bot.state.locks import LockStore
from bot.models import LockState, Project
from bot.adapters.procs import alive, descendants
from tests.support.scenario import REPO
from tests.support.tfbot_process import free_port, wait_for, write_config

pytestmark = pytest.mark.e2e
NETWORK = Project(repo=REPO, name="network", dir="network")
SLEEP = "59.37"  # a duration no other process on the machine sleeps for


def slow_resource(marker: Path) -> str:
    """HCL of a resource whose creation runs a long provisioner, after touching `marker`."""
    return ('resource "terraform_data" "slow" {\n  input = "x"\n  provisioner "local-exec" {\n'
            f'    command = "touch {marker} && sleep {SLEEP}"\n  }}\n}}\n')


def leftovers(data_dir: Path) -> list[str]:
    """Processes still running a run of this test: the provisioner's sleep, or anything working in data_dir.

    Only this test's: other test runs on the machine may be in the middle of the same scenario."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        ours = cwd.startswith(str(data_dir)) or (SLEEP in cmdline and str(data_dir.parent) in cmdline)
        if alive(int(proc.name)) and ours:
            found.append(f"{proc.name}: {cmdline.strip()} (in {cwd})")
    return found


@pytest.mark.timeout(240)
def test_sigterm_during_an_apply_interrupts_it_after_the_grace_and_the_pr_is_told(make_scenario, tmp_path):
    marker = tmp_path / "host" / "applying"  # the Scenario's directory runs may write
    sc = make_scenario(workers=1, extra_settings={"shutdown_grace": 2})
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "a"})})
    sc.fake.set_permission(REPO, "alice", "write")
    sc.start()
    pr = sc.open_pr("slow", {"network/main.tf": sc.config_for("network", {"vpc": "a"}, slow_resource(marker))})
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)  # main's own resources were never applied
    sc.merge(pr)
    wait_for(marker.exists, message="the apply to run its provisioner")

    assert sc.server.stop(timeout=90) == 0, sc.logs()[-4000:]
    data_dir = Path(sc.settings["data_dir"])
    assert leftovers(data_dir) == [], sc.logs()[-4000:]
    logs = sc.logs()
    assert "did not finish within shutdown_grace (2 s)" in logs
    assert logs.count("Traceback") == 0, logs[-4000:]

    sc.start()
    body = sc.wait_comment(pr, lambda b: "interrupted" in b, what="the interrupted-apply report")
    assert "did not finish within shutdown_grace (2 s)" in body
    assert "lock stays with this PR" in body
    assert "Terraform's state lock is free" in body, "Terraform got one SIGTERM and stopped cleanly"
    sc.wait_idle()
    assert sum("interrupted" in b for b in sc.bot_comments(pr)) == 1, "the PR is told once"
    lock = LockStore(sc.redis()).get(NETWORK)
    assert lock is not None and lock.pull == pr


def slow_to_stop_workflow(tmp_path: Path, seconds: float) -> tuple[Path, Path, Path]:
    """A workflow whose apply runs a stand-in for Terraform: on SIGTERM it needs `seconds` to finish what it
    started and save its state, then says so (on its output, which must still be read) and exits 1, as
    Terraform does. Returns (workflows dir, the file it touches once running, the file it touches once saved)."""
    shared = tmp_path / "host"  # a Scenario's directory that sandboxed runs may write
    shared.mkdir(exist_ok=True)
    running, saved = shared / "running", shared / "saved"
    script = shared / "slow_terraform.py"
    script.write_text(textwrap.dedent(f"""
        import pathlib, signal, sys, time
        def stop(*_):
            time.sleep({seconds})  # in-flight operations end, the state is written
            print("Stopped gracefully: state saved", flush=True)
            pathlib.Path({str(saved)!r}).touch()
            sys.exit(1)
        signal.signal(signal.SIGTERM, stop)
        print("Applying...", flush=True)
        pathlib.Path({str(running)!r}).touch()
        time.sleep({SLEEP})
    """))
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "slow.yaml").write_text(
        "plan:\n  steps: [init, workspace, plan, show]\n"
        f"apply:\n  steps: [init, {{run: [{sys.executable!r}, {str(script)!r}]}}, apply]\n")
    return workflows, running, saved


@pytest.mark.timeout(240)
def test_terraform_is_given_its_stop_grace_and_its_own_result_reaches_the_pr(make_scenario, tmp_path):
    workflows, running, saved = slow_to_stop_workflow(tmp_path, seconds=4)
    sc = make_scenario(workers=1, repo_settings={"workflow": "slow"},
                       extra_settings={"shutdown_grace": 0, "terraform_stop_grace": 30,
                                       "workflows_dir": str(workflows)})
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "a"})})
    sc.start()
    pr = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"vpc": "a", "subnet": "b"})})
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.merge(pr)
    wait_for(running.exists, message="the apply to be running")

    began = time.monotonic()
    assert sc.server.stop(timeout=90) == 0, sc.logs()[-4000:]
    assert saved.exists(), "asked to stop, it was let finish: " + sc.logs()[-4000:]
    assert time.monotonic() - began >= 4
    assert leftovers(Path(sc.settings["data_dir"])) == [], sc.logs()[-4000:]
    logs = sc.logs()
    assert f"in the run of merge {REPO}#{pr} network; waiting up to 30 s (terraform_stop_grace)" in logs, logs[-4000:]
    assert logs.count("Traceback") == 0, logs[-4000:]

    sc.start()
    body = sc.wait_comment(pr, lambda b: "interrupted" in b, what="the report of the stopped apply")
    assert "Stopped gracefully: state saved" in body  # its own output: the run was read to its end
    assert "did not finish within shutdown_grace (0 s)" in body and "lock stays with this PR" in body
    sc.wait_idle()
    assert sum("interrupted" in b for b in sc.bot_comments(pr)) == 1, "the PR is told once"
    assert sc.lock("network").state == LockState.APPLY_FAILED


@pytest.mark.timeout(180)
def test_kill_9_then_start_again_is_healthy_with_the_locks(make_scenario):
    sc = make_scenario(workers=1)
    sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "a"})})
    sc.start()
    pr = sc.open_pr("grow", {"network/main.tf": sc.config_for("network", {"vpc": "a", "subnet": "b"})})
    sc.wait_comment(pr, lambda b: "Plan: 2 to add" in b)
    sc.wait_idle()
    lock = sc.lock("network")
    assert lock is not None and lock.state == LockState.PLANNED

    # A second serve on this data_dir is refused, naming the one that runs.
    second_settings = {**sc.settings, "server": {"host": "127.0.0.1", "port": free_port()}}
    second_dir = sc.tmp / "second"
    second_dir.mkdir()
    second = subprocess.run([sys.executable, "-m", "bot", "serve", "--config",
                             str(write_config(second_dir, second_settings))], capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    assert f"for tfbot serve pid {sc.server.proc.pid}" in second.stderr, second.stderr

    tree = descendants(sc.server.proc.pid)
    assert tree
    sc.server.proc.send_signal(signal.SIGKILL)
    sc.server.proc.wait()
    # Every child stops with its supervisor (Redis saving first): none is left to block the next start.
    wait_for(lambda: not any(alive(pid) for pid in tree), timeout=60, message="serve's children to stop")

    sc.start()
    assert sc.lock("network") == lock
    # The killed worker's registration outlives it for minutes; health counts only the worker that runs.
    health = sc.server.wait_healthy()
    assert health["checks"]["workers"]["count"] == 1, health
    # And it works: a push is planned again.
    sc.push(pr, {"network/main.tf": sc.config_for("network", {"vpc": "a", "subnet": "b", "nat": "c"})})
    sc.wait_comment(pr, lambda b: "Plan: 3 to add" in b)
