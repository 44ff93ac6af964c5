"""The Terraform adapter: every terraform subprocess tfbot starts goes through `Terraform`.

Why not python-terraform's own runner (evidence from the installed python_terraform 0.10.1,
`python_terraform/__init__.py`; we keep it only to build argument lists with `generate_cmd_string`):
- `cmd()` (line 247) starts the process with `subprocess.Popen(cmds, stdout=PIPE, stderr=PIPE, ...)`
  (line 292) and waits with `p.communicate()` (line 299): no timeout, no new session, so nothing can
  stop a hung run or the provisioner children it started, and the whole output is held in memory.
- stdout and stderr are separate pipes, so their order as a user would see it is lost.
- `plan()` (line 142) turns on `-detailed-exitcode` by default: a plan with changes exits 2.
- `destroy()` (line 130) passes `-force`, which Terraform 1.x rejects ("flag provided but not defined").
- `plan(dir_or_plan=...)` appends a directory argument, which Terraform >= 0.15 rejects ("Too many
  command line arguments"); the directory must be the process's cwd (or `-chdir`).
- `cmd(synchronous=False)` pops `synchronous` only after the argv was built (lines 283, 295), so
  `-synchronous=false` reaches Terraform, which rejects it; the caller gets a Popen nobody reads.
- `read_state_file()` (line 367) reads `.terraform/terraform.tfstate` (the backend settings, not a
  state) or `./terraform.tfstate`: never a non-default workspace's state, never a remote one.
- No way to pass an environment but `os.environ` (line 290), and `apply()`/`plan()` through
  `_generate_default_options` turn the empty `variables` dict into a temporary `-var-file` (line 227).
tests/test_terraform.py runs each of these quirks against the real binary.

Contract of `Terraform`:
- Every run inherits os.environ minus settings that would change what we asked for (TF_CLI_ARGS*,
  TF_WORKSPACE, TF_DATA_DIR, TF_LOG*), then `extra_env`, then our own TF_CLI_CONFIG_FILE (a machine may
  point it at a missing file), TF_PLUGIN_CACHE_DIR, TF_IN_AUTOMATION=1, CHECKPOINT_DISABLE=1, TF_INPUT=0.
  Every command gets `-input=false` and `-no-color` where Terraform accepts them.
- Each run has `timeout` seconds; then its process group gets SIGTERM (Terraform stops gracefully and
  writes its state), and SIGKILL `kill_grace` seconds later. The result says `timed_out=True`.
- Output is stdout and stderr interleaved through one pipe, kept in bounded memory (the first
  `output_head_bytes` and the last `output_tail_bytes`, with a note of what was cut), and masked.
- Results are values; a failed command is not an exception. `version`, `show_json` and `state_pull`,
  which return parsed data, raise `TerraformError` (carrying the result) when the command fails.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import ijson

from bot.adapters.procs import stop_with_parent
from python_terraform import IsFlagged
from python_terraform import Terraform as _ArgvBuilder

from bot.adapters.logs import MASK, SecretMasker
from bot.models import validate_workspace

# Terraform itself accepts any URL-safe name, including "..": with the local backend's workspace_dir
# that name resolves to `<workspace_dir>/../terraform.tfstate`, which is the default workspace's state
# (seen with 1.11.4). So: Terraform's characters, no leading '-' (it would read as a flag), not all dots.
_STRIPPED_PREFIXES = ("TF_CLI_ARGS", "TF_LOG")
_STRIPPED = {"TF_WORKSPACE", "TF_DATA_DIR"}
_READ_CHUNK = 64 * 1024


class TerraformError(Exception):
    """A command whose data we needed failed; `result` holds what it printed."""

    def __init__(self, message: str, result: TerraformResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class TerraformResult:
    args: list[str]
    exit_code: int
    output: str
    duration: float
    timed_out: bool = False
    omitted_bytes: int = 0
    # plan only: True for -detailed-exitcode 2, False for 0, None when the plan failed.
    has_changes: bool | None = None
    # show_plan only: the plan JSON (None if larger than max_json_bytes) and its (action, address) list.
    data: dict[str, Any] | None = None
    resource_changes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the command did what was asked (a plan with changes exits 2 and is ok)."""
        if self.timed_out:
            return False
        return self.exit_code == 0 or (self.exit_code == 2 and self.has_changes is True)

    @property
    def command(self) -> str:
        """What ran, as a user would name it: `terraform plan`, or a custom command's program."""
        return _describe(self.args) if self.args else ""


def action_name(actions: Sequence[str]) -> str:
    """Map a plan JSON `change.actions` list to one word: create, update, replace, destroy, read, no-op."""
    acts = list(actions)
    if sorted(acts) == ["create", "delete"]:
        return "replace"
    if acts == ["delete"]:
        return "destroy"
    return "+".join(acts) if acts else "no-op"


def read_resource_changes(stream: IO[bytes]) -> list[tuple[str, str]]:
    """Stream (action, address) pairs out of `terraform show -json` output, skipping no-ops.

    Streams, because a plan JSON holds every attribute value twice and can be far larger than the
    part we need; memory stays near the largest single value.
    """
    changes: list[tuple[str, str]] = []
    address, deposed = "", ""
    actions: list[str] = []
    for prefix, event, value in ijson.parse(stream, buf_size=1 << 20):
        if not prefix.startswith("resource_changes.item"):
            continue
        if prefix == "resource_changes.item" and event == "start_map":
            address, deposed, actions = "", "", []
        elif prefix == "resource_changes.item.address":
            address = value
        elif prefix == "resource_changes.item.deposed":
            deposed = value
        elif prefix == "resource_changes.item.change.actions.item":
            actions.append(value)
        elif prefix == "resource_changes.item" and event == "end_map":
            action = action_name(actions)
            if action != "no-op":
                changes.append((action, f"{address} (deposed object {deposed})" if deposed else address))
    return changes


class _BoundedOutput:
    """Keeps the first `head` and last `tail` bytes of a stream and counts the rest."""

    def __init__(self, head: int, tail: int):
        self._head_limit, self._tail_limit = head, tail
        self.head, self.tail = bytearray(), bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._tail_limit:
            self.tail += chunk
            # Trim in batches so a stream of small chunks costs amortised O(1) per byte.
            if len(self.tail) > 2 * self._tail_limit:
                del self.tail[: -self._tail_limit]

    def finish(self) -> tuple[bytes, bytes, int]:
        """(head, tail, omitted byte count) of everything fed."""
        tail = bytes(self.tail[-self._tail_limit:]) if self._tail_limit else b""
        return bytes(self.head), tail, self.total - len(self.head) - len(tail)


class Terraform:
    """Runs terraform commands for tfbot (see the module docstring for the contract)."""

    # After the command exits, how long a process it left behind may keep the output pipe open.
    drain_after_exit = 5.0

    def __init__(
        self,
        binary: str,
        data_dir: Path,
        timeout: float,
        extra_env: Mapping[str, str] | None = None,
        *,
        mask_values: Iterable[str] = (),
        mask_env: Iterable[str] = (),
        kill_grace: float = 10.0,
        output_head_bytes: int = 256 * 1024,
        output_tail_bytes: int = 256 * 1024,
        max_json_bytes: int = 16 * 1024 * 1024,
    ):
        self.binary = binary
        self.timeout = float(timeout)
        self.kill_grace = float(kill_grace)
        self._head_bytes, self._tail_bytes = output_head_bytes, output_tail_bytes
        self.max_json_bytes = max_json_bytes
        self._extra_env = dict(extra_env or {})
        self.home = Path(data_dir).resolve() / "terraform"
        self.plugin_cache_dir = self.home / "plugin-cache"
        self.cli_config_file = self.home / "cli.tfrc"
        self._init_lock_file = self.home / "plugin-cache.lock"
        self._write_cli_config()
        base_env = self._base_env()
        secrets = [v for v in mask_values if v] + [base_env[n] for n in mask_env if base_env.get(n)]
        self._masker = SecretMasker(secrets)
        self._longest_secret = max((len(s.encode()) for s in secrets), default=0)
        # python-terraform's argv builder only; its constructor reads a state file, so aim it at our dir.
        self._argv = _ArgvBuilder(working_dir=str(self.home), terraform_bin_path=binary)

    # -- setup -----------------------------------------------------------------------------------

    def _write_cli_config(self) -> None:
        text = str(self.plugin_cache_dir)
        # The CLI config is HCL with $VAR expansion in plugin_cache_dir: refuse what would be reinterpreted.
        if any(c in text for c in '"\\$') or any(ord(c) < 32 for c in text):
            raise ValueError(f"data_dir {self.home.parent} contains a character Terraform's CLI config cannot hold")
        self.plugin_cache_dir.mkdir(parents=True, exist_ok=True)  # Terraform will not create it.
        content = (
            "# Written by tfbot: its own CLI config, so a machine's ~/.terraformrc cannot change its runs.\n"
            f'plugin_cache_dir = "{text}"\n'
            "plugin_cache_may_break_dependency_lock_file = true\n"
        )
        if self.cli_config_file.exists() and self.cli_config_file.read_text() == content:
            return
        # Several processes may start at once: write aside, then rename, so none reads half a file.
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".cli.tfrc.")
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.replace(tmp, self.cli_config_file)

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _stripped(k)}
        # A deliberate TF_LOG in extra_env is kept; the rest would undo what the adapter asks for.
        env.update({k: v for k, v in self._extra_env.items() if not _stripped(k) or k.startswith("TF_LOG")})
        env.update(
            TF_CLI_CONFIG_FILE=str(self.cli_config_file),
            TF_PLUGIN_CACHE_DIR=str(self.plugin_cache_dir),
            TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE="true",
            TF_IN_AUTOMATION="1",
            CHECKPOINT_DISABLE="1",
            TF_INPUT="0",
        )
        return env

    def mask(self, text: str) -> str:
        """`text` with every configured secret value replaced by ***."""
        return self._masker.mask(text)

    # -- commands --------------------------------------------------------------------------------

    def version(self) -> tuple[int, int, int]:
        """The binary's version from `terraform version -json`."""
        result = self._run(self._cmd("version", json=IsFlagged), self.home)
        if not result.ok:
            raise TerraformError(f"terraform version failed: {result.output.strip()}", result)
        try:
            text = json.loads(result.output)["terraform_version"]
            major, minor, patch = re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups()  # type: ignore[union-attr]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            message = f"unexpected `terraform version -json` output: {result.output[:200]!r}"
            raise TerraformError(message, result) from exc
        return int(major), int(minor), int(patch)

    def init(self, workdir: Path) -> TerraformResult:
        """`terraform init -reconfigure`: the checkout's backend block is the truth, never a migration prompt."""
        args = self._cmd("init", input=False, no_color=IsFlagged, reconfigure=IsFlagged)
        # Terraform's docs: "the plugin cache directory is not guaranteed to be concurrency safe. The
        # provider installer's behavior in environments with multiple terraform init calls is
        # undefined" (two inits unpacking one provider race, hashicorp/terraform#31964). Workers share
        # the cache, so inits take turns under an flock: per open file, so it also orders threads of
        # one process (fcntl/lockf locks would not), and the kernel drops it if the holder dies.
        started = time.monotonic()
        with open(self._init_lock_file, "a") as lock:
            if not _flock(lock, deadline=started + self.timeout):
                waited = time.monotonic() - started
                return TerraformResult(
                    args, -1, f"[tfbot] timed out after {waited:.0f} s waiting for another terraform init "
                    f"to release the plugin cache lock {self._init_lock_file}", waited, timed_out=True)
            return self._run(args, workdir)

    def select_workspace(self, workdir: Path, name: str) -> TerraformResult:
        """Select workspace `name`, creating it if missing (`-or-create`, Terraform >= 1.4)."""
        args = self._cmd("workspace select", validate_workspace(name), or_create=True, no_color=IsFlagged)
        return self._run(args, workdir)

    def plan(self, workdir: Path, plan_file: Path, workspace: str) -> TerraformResult:
        """Plan into `plan_file`; exit 2 (changes) is success with `has_changes=True`."""
        plan_file = _absolute(plan_file)
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        args = self._cmd("plan", input=False, no_color=IsFlagged, detailed_exitcode=IsFlagged, out=str(plan_file))
        result = self._run(args, workdir, workspace=workspace)
        if result.timed_out or result.exit_code not in (0, 2):
            return result
        return replace(result, has_changes=result.exit_code == 2)

    def show_plan(self, workdir: Path, plan_file: Path) -> TerraformResult:
        """`terraform show -json` of a saved plan: `resource_changes` always, `data` if small enough."""
        args = self._cmd("show", str(_absolute(plan_file)), json=IsFlagged, no_color=IsFlagged)
        with tempfile.TemporaryFile(dir=self.home) as spool:
            result = self._run(args, workdir, stdout=spool)
            if not result.ok:
                return result
            spool.seek(0)
            try:
                changes = [(a, self.mask(addr)) for a, addr in read_resource_changes(spool)]
                data = None
                if os.fstat(spool.fileno()).st_size <= self.max_json_bytes:
                    spool.seek(0)
                    data = json.loads(self.mask(spool.read().decode("utf-8", "replace")))
            except (ijson.JSONError, ValueError) as exc:
                return replace(result, exit_code=1, output=result.output + f"\n[tfbot] unreadable plan JSON: {exc}")
        return replace(result, data=data, resource_changes=changes)

    def show_json(self, workdir: Path, plan_file: Path) -> dict[str, Any]:
        """The plan JSON as a dict; raises TerraformError if show fails or the JSON is over max_json_bytes."""
        result = self.show_plan(workdir, plan_file)
        if not result.ok or result.data is None:
            message = f"terraform show -json {plan_file} failed or was over max_json_bytes: {result.output[-500:]}"
            raise TerraformError(message, result)
        return result.data

    def apply(self, workdir: Path, plan_file: Path, workspace: str) -> TerraformResult:
        """Apply a saved plan in `workspace` (Terraform refuses a plan made before the state changed).

        The workspace is required: `terraform apply PLANFILE` writes to whichever workspace is selected
        in the working directory, not the one the plan was made in (seen with 1.11.4).
        """
        args = self._cmd("apply", str(_absolute(plan_file)), input=False, no_color=IsFlagged)
        return self._run(args, workdir, workspace=workspace)

    def state_pull(self, workdir: Path, workspace: str) -> dict[str, Any]:
        """The current state of `workspace` as a dict ({} when it has none yet); unmasked, for programs only."""
        args = self._cmd("state pull")
        with tempfile.TemporaryFile(dir=self.home) as spool:
            result = self._run(args, workdir, workspace=workspace, stdout=spool)
            if not result.ok:
                raise TerraformError(f"terraform state pull failed: {result.output.strip()}", result)
            spool.seek(0)
            raw = spool.read()
        return json.loads(raw) if raw.strip() else {}

    def run_custom(self, workdir: Path, argv: Sequence[str], env: Mapping[str, str] | None = None) -> TerraformResult:
        """Run a workflow's own command (an argv list, never a shell string) under the same rules."""
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError(f"a custom command is a non-empty list of non-empty strings, not {argv!r}")
        return self._run(list(argv), workdir, env=env)

    # -- process handling ------------------------------------------------------------------------

    def _cmd(self, command: str, *args: str, **options: object) -> list[str]:
        # Options we pass are flags and scalars only: a dict would make python-terraform write a temp file.
        argv: list[str] = self._argv.generate_cmd_string(command, *args, **options)
        return argv

    def _run(
        self,
        args: list[str],
        cwd: Path,
        *,
        workspace: str | None = None,
        stdout: IO[bytes] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> TerraformResult:
        """Run `args` in its own session; with `stdout` given, only stderr is captured as output."""
        run_env = self._base_env()
        run_env.update(env or {})
        if workspace is not None:
            run_env["TF_WORKSPACE"] = validate_workspace(workspace)
        capture = _BoundedOutput(self._head_bytes, self._tail_bytes)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                args, cwd=cwd, env=run_env, stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE if stdout is not None else subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a timeout reaches provisioners too
                preexec_fn=stop_with_parent,
            )
        except OSError as exc:
            return TerraformResult(self._mask_args(args), 127, self.mask(f"[tfbot] cannot run {args[0]}: {exc}"), 0.0)
        pipe = proc.stderr if stdout is not None else proc.stdout
        assert pipe is not None
        timed_out = killed = leftovers = False
        try:
            timed_out, killed, leftovers = self._pump(proc, pipe, capture, started + self.timeout)
        finally:
            pipe.close()
            if proc.poll() is None:  # only on an exception in our own code
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            # Terraform does not wait for a provisioner's own children (`cmd &`), which keep its process
            # group alive after it exits: leave nothing of this run behind.
            leftovers = bool(_live_members(proc.pid)) or leftovers
            _signal_group(proc.pid, signal.SIGKILL)
        duration = time.monotonic() - started
        output, omitted = self._render(capture)
        if timed_out:
            how = "SIGTERM"
            if killed:
                how += f", then SIGKILL after {self.kill_grace:g} s"
            elif leftovers:
                how += ", then SIGKILL for the processes it left behind"
            output += (f"\n[tfbot] {_describe(args)} timed out after {self.timeout:g} s; "
                       f"its process group was stopped with {how}.\n")
        elif leftovers:
            output += f"\n[tfbot] {_describe(args)} left processes running in its process group; they were killed.\n"
        return TerraformResult(self._mask_args(args), proc.returncode, output, duration, timed_out, omitted)

    def _pump(
        self, proc: subprocess.Popen[bytes], pipe: IO[bytes], capture: _BoundedOutput, deadline: float
    ) -> tuple[bool, bool, bool]:
        """Read output until EOF and exit, enforcing the deadline.

        Returns (timed_out, SIGKILL sent after the grace period, leftovers killed after the command exited).
        """
        fd = pipe.fileno()
        eof = timed_out = killed = leftovers = drained = False
        term_at = exited_at = 0.0
        while True:
            exited = proc.poll() is not None
            if eof and exited:
                break
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out, term_at = True, now
                _signal_group(proc.pid, signal.SIGTERM)
            elif timed_out and not killed and now >= term_at + self.kill_grace:
                killed = True
                _signal_group(proc.pid, signal.SIGKILL)
            if exited and not eof:
                # The command is gone but something it started still holds the output pipe open.
                exited_at = exited_at or now
                if not drained and now >= exited_at + self.drain_after_exit:
                    drained, leftovers = True, bool(_live_members(proc.pid))
                    _signal_group(proc.pid, signal.SIGKILL)
                if now >= exited_at + 2 * self.drain_after_exit:
                    break  # a process outside the group holds the pipe: stop reading
            wait = min(max(deadline - now, 0.01), 0.5) if not timed_out else 0.1
            if eof:
                try:
                    proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass
                continue
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                chunk = os.read(fd, _READ_CHUNK)
                if chunk:
                    capture.feed(chunk)
                else:
                    eof = True
        return timed_out, killed, leftovers

    def _render(self, capture: _BoundedOutput) -> tuple[str, int]:
        head, tail, omitted = capture.finish()
        if omitted <= 0:
            return self.mask((head + tail).decode("utf-8", "replace")), 0
        # A secret cut by the gap would survive masking as a fragment: drop what could be one.
        edge = max(self._longest_secret - 1, 0)
        if edge:
            head, tail = head[: max(len(head) - edge, 0)], tail[edge:]
            omitted += 2 * edge
        note = f"\n\n[... tfbot: {omitted} bytes of output omitted ...]\n\n"
        return self.mask(head.decode("utf-8", "replace")) + note + self.mask(tail.decode("utf-8", "replace")), omitted

    def _mask_args(self, args: list[str]) -> list[str]:
        return [self.mask(a) for a in args]


def _describe(args: Sequence[str]) -> str:
    """`terraform plan` for a terraform argv, the program's name for a custom command."""
    words = [a for a in args[1:3] if not a.startswith("-")]
    return f"terraform {words[0]}" if words and Path(args[0]).name.startswith("terraform") else Path(args[0]).name


def _stripped(name: str) -> bool:
    return name in _STRIPPED or name.startswith(_STRIPPED_PREFIXES)


def _absolute(path: Path) -> Path:
    # Terraform runs with cwd=workdir, so a relative plan path would land in the checkout.
    return Path(os.path.abspath(path))


def _flock(lock: IO[str], deadline: float) -> bool:
    """Take an exclusive flock on `lock`, polling until `deadline`; False if it never came free."""
    while True:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _live_members(pgid: int) -> list[int]:
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


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal process group `pgid`; False if no process was left in it."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


__all__ = [
    "MASK", "Terraform", "TerraformError", "TerraformResult", "action_name", "read_resource_changes",
    "validate_workspace",
]

