"""The bench's world: an App key pair, one fake GitHub per running tfbot, raw Terraform for baselines,
and what machine and commit a run was made on. Built on the test rig in tests/support, not a copy of it."""
from __future__ import annotations

import datetime
import os
import platform
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.proctree import children_of, cmdline
from tests.support.fake_github import FakeGitHub, make_app_keypair
from tests.support.scenario import INSTALLATION, Scenario
from tests.support.tfbot_process import REPO_ROOT

APP_ID = 4321


class World:
    """A temp root for one bench run; makes scenarios (a fake GitHub and a real `tfbot serve` each) and stops them."""

    def __init__(self, root: Path):
        self.root = root
        self.private_pem, self.public_pem = make_app_keypair()
        self._running: list[tuple[Scenario, FakeGitHub]] = []
        self.tf_cli_config = root / "terraform.tfrc"
        self.tf_cli_config.write_text("# the bench's own (empty) CLI config: this machine's may point nowhere\n")

    def scenario(self, name: str, workers: int, **kwargs: Any) -> Scenario:
        """A Scenario in `<root>/<name>`, not started. GitHub writes are not spaced out (write_interval 0)."""
        fake = FakeGitHub(APP_ID, self.public_pem, private_key_pem=self.private_pem)
        fake.start()
        fake.add_installation(INSTALLATION, "acme")
        directory = self.root / name
        directory.mkdir(parents=True)
        github = {"write_interval": 0, "retries": 0, **kwargs.pop("github_settings", {})}
        scenario = Scenario(directory, fake, self.private_pem, workers=workers, github_settings=github, **kwargs)
        self._running.append((scenario, fake))
        return scenario

    def stop(self, scenario: Scenario) -> None:
        for entry in list(self._running):
            if entry[0] is scenario:
                self._running.remove(entry)
                scenario.stop()
                entry[1].stop()

    def close(self) -> None:
        for scenario, _ in list(self._running):
            self.stop(scenario)

    def terraform_env(self) -> dict[str, str]:
        """What a person running Terraform by hand in automation would set; tfbot sets the same for its runs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CLI_ARGS", "TF_LOG", "TF_WORKSPACE",
                                                                        "TF_DATA_DIR"))}
        env.update(TF_CLI_CONFIG_FILE=str(self.tf_cli_config), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1",
                   TF_INPUT="0")
        return env

    def raw_plan(self, directory: Path) -> tuple[float, int]:
        """`terraform init && terraform plan` in `directory`, output read as tfbot reads it:
        (seconds, peak RSS of the plan process in KiB)."""
        return self._steps(directory, [["init", "-input=false", "-no-color"], ["plan", "-input=false", "-no-color"]])

    def raw_plans_at_once(self, directories: list[Path], at_once: int) -> float:
        """`terraform init && terraform plan` in every directory, `at_once` directories at a time (a pool of
        threads, each waiting on its own Terraform subprocesses): seconds from the first start to the last end."""
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            list(pool.map(self.raw_plan, directories))  # list(): a failed plan raises here
        return time.perf_counter() - start

    def tfbot_steps(self, directory: Path) -> float:
        """Seconds for the commands tfbot's default workflow runs, typed by hand: init -reconfigure, workspace
        select -or-create, plan -detailed-exitcode -out, show -json. Splits tfbot's overhead into Terraform's
        extra steps and tfbot's own machinery."""
        plan = str(directory / "bench.tfplan")
        return self._steps(directory, [
            ["init", "-input=false", "-no-color", "-reconfigure"],
            ["workspace", "select", "-or-create", "-no-color", "default"],
            ["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={plan}"],
            ["show", "-json", "-no-color", plan],
        ])[0]

    def _steps(self, directory: Path, commands: list[list[str]]) -> tuple[float, int]:
        env = self.terraform_env()
        start = time.perf_counter()
        peak = 0
        for args in commands:
            code, output, rss = run_measured(["terraform", *args], directory, env)
            if code not in (0, 2) or (code == 2 and "-detailed-exitcode" not in args):
                raise RuntimeError(f"terraform {' '.join(args)} failed in {directory}:\n{output}")
            if args[0] == "plan":
                peak = rss
        return time.perf_counter() - start, peak


def run_measured(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, int]:
    """Run a command to its end: (exit code, output, peak RSS in KiB from the kernel's rusage of that child)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    # wait4 instead of wait(): it hands back this child's own rusage, ru_maxrss included.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, output.decode(errors="replace"), usage.ru_maxrss


def worker_pids(scenario: Scenario) -> list[int]:
    """The `tfbot worker` processes `tfbot serve` started (not their work horses)."""
    assert scenario.server is not None and scenario.server.proc is not None
    kids = children_of(scenario.server.proc.pid)
    return [pid for pid in kids if "bot worker" in " ".join(cmdline(pid))]


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def pause_workers(scenario: Scenario) -> list[int]:
    """SIGSTOP the workers so a queue fills without being drained; returns their pids for `resume`."""
    pids = worker_pids(scenario)
    signal_all(pids, signal.SIGSTOP)
    return pids


def resume(pids: list[int]) -> None:
    signal_all(pids, signal.SIGCONT)


def machine() -> dict[str, Any]:
    """Where and when this run was made: cores, memory, CPU model, versions, commit."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    tf = subprocess.run(["terraform", "version"], capture_output=True, text=True).stdout.splitlines()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "terraform": tf[0] if tf else "",
        "commit": git("rev-parse", "--short=12", "HEAD") + (" (with uncommitted changes)" if dirty else ""),
    }
