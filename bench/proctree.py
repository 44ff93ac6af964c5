"""Memory of a process tree read from /proc: peak RSS (VmHWM) per process and the tree's peak PSS.

VmHWM is the kernel's own high-water mark of a process's resident set, so a process that is still alive
reports its true peak when read at the end. Short-lived processes (RQ's work horse, terraform) are read
every `interval` while they live; the last reading before they exit is kept, so a process that grows in its
last moments is undercounted by that much.
RSS counts pages shared with a parent again in every forked child, so the tree's total is summed from PSS
(each shared page split between its sharers) instead.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProcPeak:
    pid: int
    role: str
    hwm_kb: int = 0
    pss_kb: int = 0  # at the last reading with PSS


@dataclass
class TreePeaks:
    processes: dict[int, ProcPeak] = field(default_factory=dict)
    total_pss_kb: int = 0

    def by_role(self) -> dict[str, dict[str, int]]:
        """Per role: the largest VmHWM of any process in it (MiB) and how many processes had it."""
        out: dict[str, dict[str, int]] = {}
        for p in self.processes.values():
            entry = out.setdefault(p.role, {"peak_mib": 0, "processes": 0})
            entry["peak_mib"] = max(entry["peak_mib"], round(p.hwm_kb / 1024))
            entry["processes"] += 1
        return out

    def pss_by_role(self) -> dict[str, int]:
        """Per role: the PSS of its processes at the last reading with PSS, summed (MiB)."""
        out: dict[str, int] = {}
        for p in self.processes.values():
            out[p.role] = out.get(p.role, 0) + p.pss_kb
        return {role: round(kb / 1024) for role, kb in out.items()}


def children_of(pid: int) -> list[int]:
    """The children of `pid`, from each of its threads' `children` file (a child belongs to the thread that
    forked it): a few small reads instead of a scan of every process on the machine."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out.extend(int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split())
        except (OSError, ValueError):
            continue
    return out


def cmdline(pid: int) -> list[str]:
    """The argv of a process, empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _status_kb(pid: int, names: tuple[str, ...]) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in names:
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def role_of(pid: int, parent_role: str) -> str:
    """What a process of a `tfbot serve` tree is, from its command line and its parent's role."""
    argv = cmdline(pid)
    line = " ".join(argv)
    exe = os.path.basename(argv[0]) if argv else ""
    if "redis-server" in line or "valkey-server" in line:
        return "redis"
    if line.startswith(("redis-rdb", "redis-aof", "valkey-rdb", "valkey-aof")):  # a snapshot or AOF rewrite forked by Redis
        return "redis (background save)"
    if exe == "terraform":
        return "terraform"
    if exe == "git" or exe.startswith("git-"):
        return "git"
    if "bot serve" in line:
        return "supervisor"
    if "bot web" in line:
        return "web worker" if parent_role == "web master" else "web master"
    if "bot worker" in line:
        return "work horse" if parent_role == "rq worker" else "rq worker"
    return exe or "other"


class TreeSampler:
    """Reads VmHWM of every process under `root` every `interval` seconds until stopped, and the tree's PSS
    every `pss_every`-th time (PSS makes the kernel walk each process's page tables: too dear to read often)."""

    def __init__(self, root: int, interval: float = 0.1, pss_every: int = 5):
        self.root = root
        self.interval = interval
        self.pss_every = pss_every
        self.peaks = TreePeaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree sampler", daemon=True)
        self._roles: dict[int, str] = {}
        self._count = 0

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample(with_pss=True)

    def sample(self, with_pss: bool = False) -> None:
        total_pss = 0
        todo = [(self.root, "")]
        while todo:
            pid, parent_role = todo.pop()
            role = self._roles.get(pid) or role_of(pid, parent_role)
            self._roles[pid] = role
            hwm = _status_kb(pid, ("VmHWM",)).get("VmHWM", 0)
            peak = self.peaks.processes.setdefault(pid, ProcPeak(pid, role))
            peak.hwm_kb = max(peak.hwm_kb, hwm)
            if with_pss:
                peak.pss_kb = _pss_kb(pid)
                total_pss += peak.pss_kb
            todo.extend((kid, role) for kid in children_of(pid))
        if with_pss:
            self.peaks.total_pss_kb = max(self.peaks.total_pss_kb, total_pss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._count += 1
            self.sample(with_pss=self._count % self.pss_every == 0)
