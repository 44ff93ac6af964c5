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
- A command's environment is scrubbed: tfbot's own environment is never inherited. It gets PATH, then
  `extra_env`, then the run's `RunEnv.env` (the project's `env`, `ssm:` values, passed-through names and
  short-lived cloud credentials), minus settings that would change what we asked for (TF_CLI_ARGS*,
  TF_WORKSPACE, TF_DATA_DIR, TF_LOG*), then our own TF_CLI_CONFIG_FILE (a machine may point it at a
  missing file), TF_PLUGIN_CACHE_DIR, TF_IN_AUTOMATION=1, CHECKPOINT_DISABLE=1, TF_INPUT=0; the runner
  adds a private HOME and TMPDIR. Every command gets `-input=false` and `-no-color` where Terraform accepts
  them.
- Every command is started by a `Runner` (bot/adapters/runners.py): unsandboxed, or in bubblewrap with only
  its working copy and its plan file's directory writable.
- One adapter runs one binary. `using(binary, version, engine)` gives the sibling of another (a Terraform version,
  OpenTofu's `tofu`), sharing data_dir, runner, masking and timeouts. An adapter that knows its version leads its
  commands' PATH with `<data_dir>/terraform/bin/<engine>-<version>-<hash>/`, links named `terraform` (and `tofu`)
  to its binary, so a workflow's `run` step calling `terraform` runs the project's binary. Below Terraform 1.4,
  `workspace select -or-create` does not exist: select, then `workspace new` when that fails.
- Each run has `timeout` seconds; then it is asked to stop (SIGTERM to its process group: Terraform stops
  gracefully and writes its state), and killed `kill_grace` seconds later. The result says `timed_out=True`.
- Output is stdout and stderr interleaved through one pipe, kept in bounded memory (the first
  `output_head_bytes` and the last `output_tail_bytes`, with a note of what was cut), and masked.
- Results are values; a failed command is not an exception. `version`, `show_json` and `state_pull`,
  which return parsed data, raise `TerraformError` (carrying the result) when the command fails.
"""
from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import ijson

from bot.adapters.runners import PlainRunner, Runner, RunSpec, Started
from python_terraform import IsFlagged
from python_terraform import Terraform as _ArgvBuilder

from bot.adapters import init_stamp
from bot.adapters.logs import MASK, SecretMasker
from bot.models import validate_workspace
from bot.plan_args import known_option

# Terraform itself accepts any URL-safe name, including "..": with the local backend's workspace_dir
# that name resolves to `<workspace_dir>/../terraform.tfstate`, which is the default workspace's state
# (seen with 1.11.4). So: Terraform's characters, no leading '-' (it would read as a flag), not all dots.
_STRIPPED_PREFIXES = ("TF_CLI_ARGS", "TF_LOG")
_STRIPPED = {"TF_WORKSPACE", "TF_DATA_DIR"}
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RunEnv:
    """What one run (a project's plan or apply) adds to every command's scrubbed environment.

    `env`: names and values (the project's `env`, `ssm:` values, passed-through names, short-lived cloud
    credentials); `secrets`: values masked in the run's output besides the adapter's own; `error`: why the run
    cannot start (its credentials could not be had), said on the PR as the failed step's error.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    error: str = ""


NO_RUN_ENV = RunEnv()


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
        runner: Runner | None = None,
        engine: str = "terraform",
        version: str = "",
    ):
        self.binary = binary
        self.engine, self.version_text = engine, version
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
        self.runner: Runner = runner if runner is not None else PlainRunner(self.home / "runs")
        # mask_env names tfbot's own environment as well: a value it holds stays masked wherever it turns up.
        known = {**os.environ, **self._extra_env}
        self._mask_env = tuple(mask_env)
        self._secrets = [v for v in mask_values if v] + [known[n] for n in self._mask_env if known.get(n)]
        self._masker = SecretMasker(self._secrets)
        self._longest_secret = max((len(s.encode()) for s in self._secrets), default=0)
        # python-terraform's argv builder only; its constructor reads a state file, so aim it at our dir.
        self._argv = _ArgvBuilder(working_dir=str(self.home), terraform_bin_path=binary)
        self._siblings: dict[tuple[str, str, str], Terraform] = {(engine, version, binary): self}
        self.bin_dir = self._write_shims()

    def using(self, binary: str, version: str, engine: str = "terraform") -> Terraform:
        """The adapter of another binary (`engine` terraform or opentofu, `version` as it reports it): the same
        data_dir, runner, masking, timeouts and plugin cache; made once per binary and kept.

        Its commands run `binary`, and a workflow's `run` steps find it first on PATH as `terraform` (and `tofu`).
        """
        key = (engine, version, binary)
        sibling = self._siblings.get(key)
        if sibling is None:
            sibling = copy.copy(self)
            sibling.binary, sibling.engine, sibling.version_text = binary, engine, version
            sibling._argv = _ArgvBuilder(working_dir=str(self.home), terraform_bin_path=binary)
            sibling.bin_dir = sibling._write_shims()
            self._siblings[key] = sibling
        return sibling

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

    def _write_shims(self) -> Path | None:
        """`<home>/bin/<engine>-<version>-<hash of the path>/` holding `terraform` (and `tofu` for OpenTofu), links
        to this binary: first on a run's PATH, so a `run` step calling `terraform` runs the project's binary. None
        for an adapter whose version is not known (a startup probe), or whose binary cannot be found (its commands
        then fail, and say so)."""
        found = shutil.which(self.binary) if self.version_text else None
        if found is None:
            return None
        target = os.path.abspath(found)
        tag = re.sub(r"[^0-9A-Za-z.+-]", "_", self.version_text)[:40]
        folder = self.home / "bin" / f"{self.engine}-{tag}-{hashlib.sha256(target.encode()).hexdigest()[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("terraform", "tofu") if self.engine == "opentofu" else ("terraform",):
            link = folder / name
            if os.path.islink(link) and os.readlink(link) == target:
                continue
            # Several workers may make it at once: link aside, then rename over, so none sees it half made.
            aside = folder / f".{name}.{os.getpid()}.{time.monotonic_ns()}"
            os.symlink(target, aside)
            os.replace(aside, link)
        return folder

    @property
    def or_create(self) -> bool:
        """Whether `workspace select -or-create` exists: Terraform 1.4 added it (OpenTofu forked from 1.6)."""
        if self.engine != "terraform" or not self.version_text:
            return True
        match = re.match(r"(\d+)\.(\d+)", self.version_text)
        return match is None or (int(match[1]), int(match[2])) >= (1, 4)

    def _base_env(self, run: RunEnv = NO_RUN_ENV) -> dict[str, str]:
        """The whole environment of a command of `run` (HOME and TMPDIR are the runner's)."""
        path = os.environ.get("PATH", os.defpath)
        env = {"PATH": f"{self.bin_dir}{os.pathsep}{path}" if self.bin_dir is not None else path}
        # A deliberate TF_LOG in extra_env is kept; the rest would undo what the adapter asks for.
        env.update({k: v for k, v in self._extra_env.items() if not _stripped(k) or k.startswith("TF_LOG")})
        env.update({k: v for k, v in run.env.items() if not _stripped(k)})
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
        text = self.reported_version()
        major, minor, patch = re.match(r"(\d+)\.(\d+)\.(\d+)", text).groups()  # type: ignore[union-attr]
        return int(major), int(minor), int(patch)

    def reported_version(self) -> str:
        """The version `version -json` reports, whole (`1.11.4`, `1.12.0-alpha20250101`); OpenTofu's `tofu` reports
        its own under the same key. TerraformError when it fails or says something else."""
        result = self._run(self._cmd("version", json=IsFlagged), self.home)
        if not result.ok:
            raise TerraformError(f"{_describe(result.args)} failed: {result.output.strip()}", result)
        try:
            text = json.loads(result.output)["terraform_version"]
            if not isinstance(text, str) or not re.match(r"\d+\.\d+\.\d+", text):
                raise ValueError(text)
        except (ValueError, KeyError, TypeError) as exc:
            message = f"unexpected `{_describe(result.args)} -json` output: {result.output[:200]!r}"
            raise TerraformError(message, result) from exc
        return text

    def _masker_for(self, run: RunEnv) -> tuple[SecretMasker, int]:
        """The masker of a command of `run`, and the length in bytes of its longest secret."""
        extra = [v for v in run.secrets if v] + [run.env[n] for n in self._mask_env if run.env.get(n)]
        if not extra:
            return self._masker, self._longest_secret
        secrets = [*self._secrets, *extra]
        return SecretMasker(secrets), max(len(s.encode()) for s in secrets)

    def init(self, workdir: Path, run: RunEnv = NO_RUN_ENV, copy_root: Path | None = None) -> TerraformResult:
        """`terraform init -reconfigure`: the checkout's backend block is the truth, never a migration prompt.

        With `copy_root` (the working copy `workdir` is in), an init that would find what the last successful one
        left (bot/adapters/init_stamp.py) is skipped: the result says so and took no time."""
        args = self._cmd("init", input=False, no_color=IsFlagged, reconfigure=IsFlagged)
        if copy_root is None:
            return self._init(args, workdir, run)
        identity = [str(self.binary), self.version_text or "", *args]
        if init_stamp.is_current(copy_root, workdir, identity):
            return TerraformResult(args, 0, "[tfbot] init skipped: the Terraform files and the dependency lock file "
                                   "are those the last init of this working copy saw\n", 0.0)
        init_stamp.forget(copy_root, workdir)
        result = self._init(args, workdir, run)
        if result.ok:
            init_stamp.record(copy_root, workdir, identity)
        return result

    def _init(self, args: list[str], workdir: Path, run: RunEnv) -> TerraformResult:
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
            # Only init, under this lock, may write the shared plugin cache; every other command sees it read-only.
            return self._run(args, workdir, run=run, cache_writable=True)

    def select_workspace(self, workdir: Path, name: str, run: RunEnv = NO_RUN_ENV) -> TerraformResult:
        """Select workspace `name`, creating it if missing: `-or-create` (Terraform >= 1.4), else `workspace select`
        and, when that fails, `workspace new` (whose result is returned, after the select's output).

        `default` with no other workspace selected in `workdir` (no `.terraform/environment`, or one that names
        `default`) starts nothing: Terraform is already there, and plan and apply name it in TF_WORKSPACE anyway."""
        if name == "default" and _selected_workspace(workdir) == "default":
            return TerraformResult(self._cmd("workspace select", "default"), 0,
                                   "[tfbot] workspace select skipped: `default` is selected\n", 0.0)
        if self.or_create:
            args = self._cmd("workspace select", validate_workspace(name), or_create=True, no_color=IsFlagged)
            return self._run(args, workdir, run=run)
        selected = self._run(self._cmd("workspace select", validate_workspace(name), no_color=IsFlagged), workdir,
                             run=run)
        if selected.ok or selected.timed_out:
            return selected
        created = self._run(self._cmd("workspace new", validate_workspace(name), no_color=IsFlagged), workdir, run=run)
        if created.ok:
            return replace(created, duration=selected.duration + created.duration)
        return replace(created, output=selected.output + created.output, duration=selected.duration + created.duration)

    def plan(self, workdir: Path, plan_file: Path, workspace: str, run: RunEnv = NO_RUN_ENV,
             extra_args: Sequence[str] = ()) -> TerraformResult:
        """Plan into `plan_file`; exit 2 (changes) is success with `has_changes=True`.

        The plan file's directory (one run's own temporary directory) is writable in a sandbox. `extra_args` are
        argv items after tfbot's own options, each one of bot/plan_args.py's plan options (`-target=ADDR`,
        `-destroy`); anything else raises ValueError before Terraform starts, so no argument can override `-out`,
        `-input=false` or `-detailed-exitcode` (Terraform takes the last of two equal options).
        """
        refused = [a for a in extra_args if not known_option(a)]
        if refused:
            raise ValueError(f"not a plan option tfbot passes on: {refused[0][:60]!r}")
        plan_file = _absolute(plan_file)
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        args = self._cmd("plan", input=False, no_color=IsFlagged, detailed_exitcode=IsFlagged, out=str(plan_file))
        args += list(extra_args)
        result = self._run(args, workdir, workspace=workspace, run=run, writable=(plan_file.parent,))
        if result.timed_out or result.exit_code not in (0, 2):
            return result
        return replace(result, has_changes=result.exit_code == 2)

    def show_plan(self, workdir: Path, plan_file: Path, run: RunEnv = NO_RUN_ENV) -> TerraformResult:
        """`terraform show -json` of a saved plan: `resource_changes` always, `data` if small enough."""
        plan_file = _absolute(plan_file)
        args = self._cmd("show", str(plan_file), json=IsFlagged, no_color=IsFlagged)
        with tempfile.TemporaryFile(dir=self.home) as spool:
            result = self._run(args, workdir, stdout=spool, run=run, writable=(plan_file.parent,))
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

    def validate(self, workdir: Path, run: RunEnv = NO_RUN_ENV) -> TerraformResult:
        """`terraform validate -json`: offline, and without `init` it still reads the files' syntax.

        `data` is Terraform's JSON (`diagnostics[]`, masked), None when it printed none or more than
        `max_json_bytes`; `output` is what it wrote to stderr. Exit 1 with JSON means "not valid": a normal result.
        """
        args = self._cmd("validate", json=IsFlagged, no_color=IsFlagged)
        with tempfile.TemporaryFile(dir=self.home) as spool:
            result = self._run(args, workdir, stdout=spool, run=run)
            if result.timed_out or os.fstat(spool.fileno()).st_size > self.max_json_bytes:
                return result
            spool.seek(0)
            try:
                data = json.loads(self.mask(spool.read().decode("utf-8", "replace")))
            except ValueError:
                return result
        return replace(result, data=data if isinstance(data, dict) else None)

    def show_json(self, workdir: Path, plan_file: Path) -> dict[str, Any]:
        """The plan JSON as a dict; raises TerraformError if show fails or the JSON is over max_json_bytes."""
        result = self.show_plan(workdir, plan_file)
        if not result.ok or result.data is None:
            message = f"terraform show -json {plan_file} failed or was over max_json_bytes: {result.output[-500:]}"
            raise TerraformError(message, result)
        return result.data

    def apply(self, workdir: Path, plan_file: Path, workspace: str, run: RunEnv = NO_RUN_ENV) -> TerraformResult:
        """Apply a saved plan in `workspace` (Terraform refuses a plan made before the state changed).

        The workspace is required: `terraform apply PLANFILE` writes to whichever workspace is selected
        in the working directory, not the one the plan was made in (seen with 1.11.4).
        """
        plan_file = _absolute(plan_file)
        args = self._cmd("apply", str(plan_file), input=False, no_color=IsFlagged)
        return self._run(args, workdir, workspace=workspace, run=run, writable=(plan_file.parent,))

    def init_backend(self, workdir: Path, run: RunEnv = NO_RUN_ENV) -> TerraformResult:
        """Initialise only the backend of a configuration that holds nothing else (bot/changes/state_ids.py), so
        `state_pull` can read the state without any provider.

        Terraform has no flag for "the backend only": `init` also installs the providers the *state* names. An
        empty `-plugin-dir` forbids every download, so that step fails by design, after the backend was set up;
        the result is successful when the backend is (Terraform recorded it in `.terraform/terraform.tfstate`).
        """
        plugins = Path(workdir) / ".no-providers"
        plugins.mkdir(parents=True, exist_ok=True)
        backend_record = Path(workdir) / ".terraform" / "terraform.tfstate"
        backend_record.unlink(missing_ok=True)
        args = self._cmd("init", input=False, no_color=IsFlagged, reconfigure=IsFlagged, get=False,
                         plugin_dir=str(plugins))
        result = self._run(args, workdir, run=run)
        if result.timed_out or not backend_record.exists():
            return result if result.exit_code else replace(result, exit_code=1)
        return replace(result, exit_code=0)

    def state_pull(self, workdir: Path, workspace: str, run: RunEnv = NO_RUN_ENV) -> dict[str, Any]:
        """The current state of `workspace` as a dict ({} when it has none yet); unmasked, for programs only."""
        args = self._cmd("state pull")
        with tempfile.TemporaryFile(dir=self.home) as spool:
            result = self._run(args, workdir, workspace=workspace, stdout=spool, run=run)
            if not result.ok:
                raise TerraformError(f"terraform state pull failed: {result.output.strip()}", result)
            spool.seek(0)
            raw = spool.read()
        return json.loads(raw) if raw.strip() else {}

    def run_custom(self, workdir: Path, argv: Sequence[str], env: Mapping[str, str] | None = None,
                   run: RunEnv = NO_RUN_ENV, writable: Sequence[Path] = ()) -> TerraformResult:
        """Run a workflow's own command (an argv list, never a shell string) under the same rules.

        `env` is added to the run's environment; `writable` are extra paths it may write (the plan's directory).
        """
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValueError(f"a custom command is a non-empty list of non-empty strings, not {argv!r}")
        return self._run(list(argv), workdir, env=env, run=run, writable=tuple(_absolute(p) for p in writable))

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
        run: RunEnv = NO_RUN_ENV,
        writable: Sequence[Path] = (),
        cache_writable: bool = False,
    ) -> TerraformResult:
        """Run `args` through the runner; with `stdout` given, only stderr is captured as output."""
        masker, longest = self._masker_for(run)
        if run.error:  # the run could not get its credentials: nothing is started
            return TerraformResult([masker.mask(a) for a in args], 1, masker.mask(f"Error: {run.error}\n"), 0.0)
        run_env = self._base_env(run)
        run_env.update(env or {})
        if workspace is not None:
            run_env["TF_WORKSPACE"] = validate_workspace(workspace)
        capture = _BoundedOutput(self._head_bytes, self._tail_bytes)
        started = time.monotonic()
        spec = RunSpec(args, Path(cwd), run_env, tuple(writable), cache_writable, stdout)
        try:
            proc = self.runner.start(spec)
        except OSError as exc:
            return TerraformResult([masker.mask(a) for a in args], 127,
                                   masker.mask(f"[tfbot] cannot run {args[0]}: {exc}"), 0.0)
        timed_out = killed = leftovers = False
        try:
            timed_out, killed, leftovers = self._pump(proc, capture, started + self.timeout)
        finally:
            proc.output.close()
            if proc.poll() is None:  # only on an exception in our own code
                proc.kill()
            # Terraform does not wait for a provisioner's own children (`cmd &`), which keep its process
            # group alive after it exits: leave nothing of this run behind.
            leftovers = proc.leftovers() or leftovers
            proc.kill()
            proc.close()
        duration = time.monotonic() - started
        output, omitted = self._render(capture, masker, longest)
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
        code = proc.poll()
        return TerraformResult([masker.mask(a) for a in args], -9 if code is None else code, output, duration,
                               timed_out, omitted)

    def _pump(self, proc: Started, capture: _BoundedOutput, deadline: float) -> tuple[bool, bool, bool]:
        """Read output until EOF and exit, enforcing the deadline.

        Returns (timed_out, SIGKILL sent after the grace period, leftovers killed after the command exited).
        """
        fd = proc.output.fileno()
        eof = timed_out = killed = leftovers = drained = False
        term_at = exited_at = 0.0
        while True:
            exited = proc.poll() is not None
            if eof and exited:
                break
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out, term_at = True, now
                proc.stop()
            elif timed_out and not killed and now >= term_at + self.kill_grace:
                killed = True
                proc.kill()
            if exited and not eof:
                # The command is gone but something it started still holds the output pipe open.
                exited_at = exited_at or now
                if not drained and now >= exited_at + self.drain_after_exit:
                    drained, leftovers = True, proc.leftovers()
                    proc.kill()
                if now >= exited_at + 2 * self.drain_after_exit:
                    break  # a process outside the group holds the pipe: stop reading
            wait = min(max(deadline - now, 0.01), 0.5) if not timed_out else 0.1
            if eof:
                proc.wait(wait)
                continue
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                chunk = os.read(fd, _READ_CHUNK)
                if chunk:
                    capture.feed(chunk)
                else:
                    eof = True
        return timed_out, killed, leftovers

    def _render(self, capture: _BoundedOutput, masker: SecretMasker, longest: int) -> tuple[str, int]:
        head, tail, omitted = capture.finish()
        if omitted <= 0:
            return masker.mask((head + tail).decode("utf-8", "replace")), 0
        # A secret cut by the gap would survive masking as a fragment: drop what could be one.
        edge = max(longest - 1, 0)
        if edge:
            head, tail = head[: max(len(head) - edge, 0)], tail[edge:]
            omitted += 2 * edge
        note = f"\n\n[... tfbot: {omitted} bytes of output omitted ...]\n\n"
        return masker.mask(head.decode("utf-8", "replace")) + note + masker.mask(tail.decode("utf-8", "replace")), omitted

    def _mask_args(self, args: list[str]) -> list[str]:
        return [self.mask(a) for a in args]


def _describe(args: Sequence[str]) -> str:
    """`terraform plan` (`tofu plan`) for a terraform (tofu) argv, the program's name for a custom command."""
    words = [a for a in args[1:3] if not a.startswith("-")]
    program = Path(args[0]).name
    for engine in ("terraform", "tofu"):
        if words and program.startswith(engine):
            return f"{engine} {words[0]}"
    return program


def _stripped(name: str) -> bool:
    return name in _STRIPPED or name.startswith(_STRIPPED_PREFIXES)


def _selected_workspace(workdir: Path) -> str | None:
    """The workspace `.terraform/environment` selects ("default" without the file); None when it cannot be read
    plainly (a symlink, a special or large file: PR code may have put anything there)."""
    path = Path(workdir) / ".terraform" / "environment"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None if (Path(workdir) / ".terraform").is_symlink() else "default"
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        text = handle.read(257)
    return text.decode(errors="replace").strip() if len(text) <= 256 else None


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


__all__ = [
    "MASK", "NO_RUN_ENV", "RunEnv", "Terraform", "TerraformError", "TerraformResult", "action_name", "read_resource_changes",
    "validate_workspace",
]

