"""Child-process helpers shared by the supervisor and the Terraform adapter."""
from __future__ import annotations

import ctypes
import gc
import os
import signal
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., Any] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux


# Resolved once, in the parent: the child between fork and exec must not import or take Python-level locks,
# since another thread of the parent may have held them at the fork.
_prctl = _load_prctl()


def stop_with_parent() -> None:
    """In a child, before exec: ask Linux to SIGTERM it when the process that started it dies.

    A worker killed mid-run (SIGKILL, OOM) must not leave Terraform applying with nobody to report the
    outcome, nor a supervisor killed with SIGKILL leave its workers running unsupervised; on SIGTERM
    Terraform stops cleanly and releases its state lock, and a worker finishes its job and exits.
    Elsewhere the run-guard expiry and the interrupted-run report still apply.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Make processes orphaned below this one (a work horse's Terraform, say) its children, not init's.

    `tfbot serve` can then find and stop every process it started, however deep (Linux only).
    """
    if _prctl is not None:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _processes() -> dict[int, tuple[int, bool]]:
    """pid -> (parent pid, is a zombie) of every process, from /proc (empty where there is no /proc)."""
    found: dict[int, tuple[int, bool]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        process = _process(int(entry)) if entry.isdigit() else None
        if process is not None:  # None: exited while we looked
            found[int(entry)] = process
    return found


def descendants(pid: int) -> list[int]:
    """Every running process below `pid`, deepest first (children are signalled before the parents that watch them).

    Zombies are left out: they have exited and only wait for their parent to collect them.
    """
    children: dict[int, list[int]] = {}
    for child, (parent, zombie) in _processes().items():
        if not zombie:
            children.setdefault(parent, []).append(child)
    found: list[int] = []
    level = children.get(pid, [])
    while level:
        found = level + found
        level = [c for p in level for c in children.get(p, [])]
    return found


def children_of(pid: int) -> list[int]:
    return [child for child, (parent, zombie) in _processes().items() if parent == pid and not zombie]


def command_line(pid: int) -> str:
    """What `pid` runs, for a log line: its program's name and first argument ("" once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = [a.decode(errors="replace") for a in cmdline.read().split(b"\0") if a]
    except OSError:
        return ""
    return " ".join([os.path.basename(argv[0]), *argv[1:2]]) if argv else ""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, which only waits for its parent to collect it, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    entry = _process(pid)
    return entry is None or not entry[1]


def _process(pid: int) -> tuple[int, bool] | None:
    """(parent pid, is a zombie) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[1]), fields[0] == b"Z"
    except (OSError, IndexError, ValueError):
        return None


def signal_all(pids: list[int], signum: int) -> None:
    """Send `signum` to each process that still exists."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def reap_orphans(known: set[int]) -> None:
    """Collect the exit status of exited children that are not ours to wait for (orphans a subreaper inherited)."""
    me = os.getpid()
    for pid, (parent, zombie) in _processes().items():
        if parent == me and zombie and pid not in known:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def quick_interpreter_exit() -> None:
    """Call just before this process exits: its interpreter then ends in milliseconds instead of ~0.5 s.

    At exit CPython runs full garbage collections over every object it tracks, which for a tfbot process
    (about 1,100 modules imported) takes 0.3-0.6 s of CPU per process, paid by every worker, web process
    and supervisor on every stop. Frozen objects are skipped by those collections. Everything else about
    the exit still happens: `finally` blocks, atexit handlers (logging's flush and close), module teardown,
    objects freed by reference count; only garbage in reference cycles is left to the kernel, which
    reclaims the memory, file descriptors and sockets anyway.
    """
    gc.freeze()
