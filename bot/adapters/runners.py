"""Runners: how every Terraform command and workflow `run` step of a run is started, and stopped.

A run executes pull-request code (providers, `external` data sources, `local-exec` provisioners, `run`
steps), so how it is started is a security boundary. The Terraform adapter hands a runner a `RunSpec`
(argv, cwd, the run's whole environment, the paths the run may write) and gets back a `Started` handle it
reads and stops; it never calls `subprocess` itself.

- `PlainRunner`: a child process in its own session (today's behaviour). HOME and TMPDIR are a private
  directory made for the command and removed after it; the filesystem is otherwise tfbot's own.
- `BubblewrapRunner`: the same child inside bubblewrap (`bwrap`): new user, pid, ipc, uts and cgroup
  namespaces (network kept: providers need it), a fresh /proc (tfbot's processes and their environments
  are not in it), the root filesystem read-only, the run's working copy and the paths in the spec
  writable, a private tmpfs /tmp and HOME, and `SandboxPolicy.hidden` paths (data_dir with the other
  working copies, plan files and the Redis socket; the config file; the App key; tfbot's own HOME)
  replaced by empty ones. The provider plugin cache is re-mounted read-only, or writable for `init`.

Stopping. bwrap's outer process dies of SIGTERM without passing it on, and `--die-with-parent` then
SIGKILLs the sandbox: Terraform would lose its state and keep its lock. So a bubblewrap run is started
under a small `sh` (`_FORWARDER`, a fixed script; the argv stays a list, never a shell string) that is the
process tfbot's stop logic signals: on SIGTERM or SIGINT it signals its process group once, in which both
bwrap processes ignore the signal (inherited SIG_IGN) and the command, whose dispositions `env
--default-signal` restored inside the sandbox, gets it as it would unsandboxed. The forwarder also gets
tfbot's stop-with-parent SIGTERM, so a worker that dies still asks Terraform to stop. SIGKILL goes to the
whole group; bwrap's `--die-with-parent` then takes the sandbox down with it.

A runner for Kubernetes Jobs would implement `Runner.start` by creating a Job (image, the spec's argv and
env as a Secret, the working copy as a volume) and return a `Started` whose `output` is a pipe fed by a
thread streaming the pod's log, `stop` deleting the pod with a grace period (SIGTERM in the container),
`kill` with none; nothing in `bot/lifecycle/` changes.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from bot.adapters.procs import stop_with_parent

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

# Inside the sandbox: HOME and TMPDIR live on the private tmpfs /tmp.
LEFTOVER_SETTLE_SECONDS = 0.5  # how long processes of a run that just exited may take to go
SANDBOX_HOME = "/tmp/home"
SANDBOX_TMP = "/tmp"
_MODES = ("auto", "bubblewrap", "none")
# Where tools keep credentials under a HOME: hidden from runs when tfbot's own HOME holds them.
HOME_CREDENTIALS = (".aws", ".ssh", ".gnupg", ".kube", ".docker", ".azure", ".config/gcloud", ".terraform.d",
                    ".terraformrc", ".netrc", ".git-credentials", ".gitconfig", ".config/gh", ".npmrc", ".pypirc")

# The forwarder (see the module docstring). "$@" is bwrap's argv; nothing is interpolated into the script.
_FORWARDER = (
    'forward() { trap "" "$1"; kill -"$1" 0; trap "forward $1" "$1"; }\n'
    "trap 'forward TERM' TERM\n"
    "trap 'forward INT' INT\n"
    '(trap "" TERM INT; exec "$@") &\n'
    "pid=$!\n"
    "while :; do\n"
    '  wait "$pid"; status=$?\n'
    '  kill -0 "$pid" 2>/dev/null || exit "$status"\n'
    "done\n"
)


class SandboxError(Exception):
    """bubblewrap was asked for and cannot run here; the message says what failed."""


@dataclass(frozen=True)
class RunSpec:
    """One command to start.

    `env` is the whole environment (the runner adds HOME and TMPDIR, nothing else); `writable` are paths the
    command may write besides its working copy (the run's plan file directory); `cache_writable` lets
    `terraform init` fill the shared provider plugin cache. `stdout` receives stdout (stderr is then the
    captured output); None: stdout and stderr share one pipe.
    """

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    writable: Sequence[Path] = ()
    cache_writable: bool = False
    stdout: IO[bytes] | None = None


class Started(Protocol):
    """A command a runner started. `output` is read to EOF by the caller; the methods never raise."""

    output: IO[bytes]

    def poll(self) -> int | None:
        """The exit code once it exited, else None (a command killed by signal N gives -N or 128+N)."""

    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds; the exit code, or None while it still runs."""

    def stop(self) -> None:
        """Ask the command to stop (SIGTERM to it and the processes it started): Terraform saves its state."""

    def kill(self) -> None:
        """Kill the command and everything it started (SIGKILL)."""

    def leftovers(self) -> bool:
        """Whether processes it started still run (after it exited); they are not killed by this call."""

    def close(self) -> None:
        """Release what the runner made for the command (its private HOME). Call once, after it ended."""


class Runner(Protocol):
    """Starts the commands of runs. `name` says which (for /healthz and logs)."""

    name: str

    def start(self, spec: RunSpec) -> Started:
        """Start `spec.argv`; OSError when it cannot be started at all."""


@dataclass(frozen=True)
class SandboxPolicy:
    """What a bubblewrap run may see, as absolute paths.

    `hidden`: directories replaced by an empty tmpfs and files by /dev/null. `plugin_cache` and `tf_config`
    are re-mounted (read-only, the cache writable for init) after `hidden`. `readable` and `writable` are the
    server's extra paths (`terraform.sandbox.readable_paths` / `writable_paths`). `tools`: directories under `/tmp`
    a run executes from (the Terraform binary's, PATH's, the Python tfbot runs on), shown again read-only
    over the private `/tmp` before anything is hidden, so nothing hidden inside them shows. `bin_dir`: the links to
    each binary a run may be given (`<data_dir>/terraform/bin`, first on its PATH), shown again read-only.
    """

    hidden: tuple[Path, ...] = ()
    plugin_cache: Path | None = None
    tf_config: Path | None = None
    readable: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    tools: tuple[Path, ...] = ()
    bin_dir: Path | None = None


class _Process:
    """A local child process in its own session (process group = its pid)."""

    def __init__(self, proc: subprocess.Popen[bytes], output: IO[bytes], private: Path | None, polite: str):
        self._proc, self.output, self._private, self._polite = proc, output, private, polite

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self._polite == "group":
            signal_group(self._proc.pid, signal.SIGTERM)
        else:  # the forwarder passes it on to the group once
            try:
                os.kill(self._proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        signal_group(self._proc.pid, signal.SIGKILL)
        if self._proc.poll() is None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def leftovers(self) -> bool:
        # Right after the command's exit is seen, processes of the run may still be on their way out (bubblewrap's
        # init inside the run's PID namespace tears the namespace down after its child exits; under load that
        # takes a moment): only processes still running after a short settle count as left behind.
        deadline = time.monotonic() + LEFTOVER_SETTLE_SECONDS
        while live_members(self._proc.pid):
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)


def _popen(argv: Sequence[str], spec: RunSpec, env: Mapping[str, str], cwd: Path,
           pass_fds: Sequence[int] = ()) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
        stdout=spec.stdout if spec.stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE if spec.stdout is not None else subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a timeout reaches provisioners too
        preexec_fn=stop_with_parent, close_fds=True, pass_fds=tuple(pass_fds),
    )
    pipe = proc.stderr if spec.stdout is not None else proc.stdout
    assert pipe is not None
    return proc, pipe


class PlainRunner:
    """Runs commands as tfbot's own user, with only a private HOME and TMPDIR (no sandbox)."""

    name = "none"

    def __init__(self, scratch: Path | None = None):
        self._scratch = scratch  # where private HOMEs are made; None: the system's temp dir

    def start(self, spec: RunSpec) -> Started:
        if self._scratch is not None:
            self._scratch.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix="tfbot-run-", dir=self._scratch))
        (private / "home").mkdir()
        (private / "tmp").mkdir()
        env = {**spec.env, "HOME": str(private / "home"), "TMPDIR": str(private / "tmp")}
        try:
            proc, pipe = _popen(spec.argv, spec, env, spec.cwd)
        except OSError:
            shutil.rmtree(private, ignore_errors=True)
            raise
        return _Process(proc, pipe, private, polite="group")


class BubblewrapRunner:
    """Runs commands inside bubblewrap under `policy` (see the module docstring)."""

    name = "bubblewrap"

    def __init__(self, policy: SandboxPolicy, bwrap: str = "bwrap"):
        self.policy = policy
        self.bwrap = shutil.which(bwrap) or bwrap
        self._env_binary = shutil.which("env") or "/usr/bin/env"
        self._sh = shutil.which("sh") or "/bin/sh"

    def argv(self, spec: RunSpec) -> list[str]:
        """The full argv (forwarder, bwrap, command) that runs `spec` (pure over the policy and spec)."""
        return [self._sh, "-c", _FORWARDER, "tfbot-sandbox",
                *bwrap_argv(self.bwrap, self.policy, spec), self._env_binary,
                "--default-signal=TERM,INT,HUP,PIPE", *spec.argv]

    def start(self, spec: RunSpec) -> Started:
        env = {**spec.env, "HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_TMP}
        # bwrap and the forwarder's subshell ignore TERM and INT (see the module docstring); the command gets
        # them back from `env --default-signal`. The forwarder itself starts with them at their defaults.
        proc, pipe = _popen(self.argv(spec), spec, env, Path("/"))
        return _Process(proc, pipe, None, polite="forwarder")


def checkout_root(cwd: Path) -> Path:
    """The git working copy holding `cwd` (the nearest directory with a `.git` entry), else `cwd` itself.

    A run may read and write its whole working copy (a project's `../modules`), never beyond it. git refuses
    to commit a path named `.git`, so a pull request cannot make a subdirectory look like the root.
    """
    cwd = Path(os.path.abspath(cwd))
    for candidate in (cwd, *cwd.parents):
        if (candidate / ".git").exists():
            return candidate
    return cwd


def bwrap_argv(bwrap: str, policy: SandboxPolicy, spec: RunSpec) -> list[str]:
    """bwrap's part of the argv, up to the command (pure: paths are not looked at, except which of `hidden`
    are files, and which `/run` entries exist). Later mounts cover earlier ones, so the order is: the
    read-only root, what is hidden, then what is shown again."""
    argv = [bwrap, "--unshare-all", "--share-net", "--die-with-parent",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
    # /run holds sockets (a container runtime's, D-Bus): a read-only mount does not stop connect(). Keep only
    # the resolver's directory, which /etc/resolv.conf may link into.
    argv += ["--tmpfs", "/run"]
    resolver = Path("/run/systemd/resolve")
    if resolver.is_dir():
        argv += ["--ro-bind", str(resolver), str(resolver)]
    for path in policy.tools:
        argv += ["--ro-bind-try", str(path), str(path)]
    for path in policy.hidden:
        if path.is_file():
            argv += ["--ro-bind", "/dev/null", str(path)]
        elif path.is_dir():
            argv += ["--tmpfs", str(path)]
    for path in policy.readable:
        argv += ["--ro-bind-try", str(path), str(path)]
    if policy.tf_config is not None:
        argv += ["--ro-bind-try", str(policy.tf_config), str(policy.tf_config)]
    if policy.bin_dir is not None:
        argv += ["--ro-bind-try", str(policy.bin_dir), str(policy.bin_dir)]
    if policy.plugin_cache is not None:
        mount = "--bind" if spec.cache_writable else "--ro-bind"
        argv += [mount, str(policy.plugin_cache), str(policy.plugin_cache)]
    root = checkout_root(spec.cwd)
    for path in (*policy.writable, root, *spec.writable):
        argv += ["--bind", str(path), str(path)]
    argv += ["--chdir", str(Path(os.path.abspath(spec.cwd)))]
    return argv


@dataclass
class RunnerChoice:
    """The runner a `terraform.sandbox.mode` resolved to, and the warning to log and show when `auto` fell back."""

    runner: Runner
    warning: str = ""
    detail: dict[str, str] = field(default_factory=dict)


def sandbox_policy(config: Config, home: Path | None = None) -> SandboxPolicy:
    """What runs under `config` may not see: data_dir, the config file, the App key file and the credential files
    of tfbot's HOME (`home`, default: the process's); the plugin cache and CLI config are shown again."""
    hidden: list[Path] = [config.data_dir]
    if config.source is not None:
        hidden.append(Path(os.path.abspath(config.source)))
    key_path = config.github.private_key_path
    if key_path:
        base = Path(os.path.abspath(config.source)).parent if config.source is not None else Path.cwd()
        hidden.append(base / Path(key_path).expanduser())
    home = home if home is not None else Path.home()
    hidden += [home / name for name in HOME_CREDENTIALS]
    terraform_home = config.data_dir / "terraform"
    binaries = (*config.terraform.binaries.values(), *config.tofu.binaries.values())
    return SandboxPolicy(tuple(hidden), terraform_home / "plugin-cache", terraform_home / "cli.tfrc",
                         tuple(config.terraform.sandbox.readable_paths), tuple(config.terraform.sandbox.writable_paths),
                         tools_under_tmp(config.terraform.binary, os.environ.get("PATH", ""), hidden, binaries),
                         terraform_home / "bin")


def tools_under_tmp(binary: str, path: str, hidden: Sequence[Path], more: Sequence[str] = ()) -> tuple[Path, ...]:
    """Directories under /tmp that runs execute from and the sandbox's private /tmp would take away: the Terraform
    binary's and each of `more` (`terraform.binaries`, `tofu.binaries`), with their link targets', each PATH entry (a
    virtualenv's `bin` with the virtualenv around it), and the Python tfbot runs on. Never /tmp itself nor a hidden
    directory."""
    wanted: list[Path] = []
    for found in filter(None, (shutil.which(b) for b in (binary, *more))):
        wanted += [Path(found).parent, Path(os.path.realpath(found)).parent]
    for entry in filter(None, path.split(os.pathsep)):
        folder = Path(os.path.abspath(entry))
        wanted.append(folder.parent if (folder.parent / "pyvenv.cfg").is_file() else folder)
    wanted += [Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent]
    tmp = Path("/tmp")
    out: list[Path] = []
    for folder in (Path(os.path.abspath(w)) for w in wanted):
        if folder == tmp or tmp not in folder.parents or folder in out:
            continue
        if any(folder == Path(os.path.abspath(h)) for h in hidden):
            continue
        out.append(folder)  # what is hidden inside it is mounted over it afterwards
    return tuple(out)


def runner_for(config: Config) -> RunnerChoice:
    """The runner `terraform.sandbox.mode` asks for, over `sandbox_policy(config)`; auto's fallback is logged as a
    WARNING (SandboxError: see choose_runner)."""
    choice = choose_runner(config.terraform.sandbox.mode, sandbox_policy(config), config.data_dir / "terraform" / "runs")
    if choice.warning:
        log.warning("%s", choice.warning)
    return choice


def probe_bubblewrap(bwrap: str = "bwrap") -> str:
    """Start `true` in the sandbox's namespaces; "" when it works, else why not (one line)."""
    path = shutil.which(bwrap)
    if path is None:
        return f"{bwrap!r} not found on PATH (install Debian's `bubblewrap` package)"
    true = shutil.which("true") or "/bin/true"
    try:
        done = subprocess.run([path, "--unshare-all", "--share-net", "--die-with-parent", "--ro-bind", "/", "/",
                               "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", true],
                              capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path} cannot run: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        return f"{path} failed: {reason[-1] if reason else f'exit code {done.returncode}'}"
    return ""


def choose_runner(mode: str, policy: SandboxPolicy, scratch: Path | None = None) -> RunnerChoice:
    """The runner for `terraform.sandbox.mode`: `none`, `bubblewrap` (SandboxError when it cannot run), or `auto`
    (bubblewrap when the probe works, else none with a warning)."""
    if mode not in _MODES:
        raise ValueError(f"unknown sandbox mode {mode!r} (one of {', '.join(_MODES)})")
    if mode == "none":
        return RunnerChoice(PlainRunner(scratch), detail={"sandbox": "none", "mode": mode})
    problem = probe_bubblewrap()
    if not problem:
        return RunnerChoice(BubblewrapRunner(policy), detail={"sandbox": "bubblewrap", "mode": mode})
    if mode == "bubblewrap":
        raise SandboxError(problem)
    warning = (f"terraform.sandbox.mode is auto and bubblewrap cannot run here ({problem}): Terraform and `run` "
               "steps run unsandboxed and can read tfbot's data_dir, config and App key")
    return RunnerChoice(PlainRunner(scratch), warning, {"sandbox": "none", "mode": mode, "warning": warning})


def live_members(pgid: int) -> list[int]:
    """Pids of running (not zombie) processes in group `pgid`, from /proc."""
    try:
        os.killpg(pgid, 0)  # cheap: an empty group (the usual case) needs no scan of every process on the host
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def signal_group(pgid: int, sig: int) -> bool:
    """Signal process group `pgid`; False if no process was left in it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
