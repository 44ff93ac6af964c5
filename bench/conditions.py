"""How busy the machine was around a run: load average, CPU pressure, and a fixed CPU task's time.

Shared machines make absolute figures move; these numbers say how much, so a slow run can be told from a
slow tfbot. The calibration task is pure Python (JSON round trips), single-threaded, always the same.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

_DOC = {"repo": "acme/infra", "dir": "stacks/app", "pull": 12, "state": "planned", "summary": "x" * 64}


def calibration_ms(rounds: int = 20_000) -> float:
    """Milliseconds for `rounds` JSON dumps+loads of a small document: about 60 ms on an idle 2-core VM."""
    start = time.perf_counter()
    for _ in range(rounds):
        json.loads(json.dumps(_DOC))
    return round((time.perf_counter() - start) * 1000, 1)


def cpu_pressure() -> float | None:
    """The share of the last 10 s some task waited for a CPU (Linux PSI), in percent; None where not available."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(part.split("=") for part in first.split()[1:])["avg10"])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def conditions() -> dict[str, Any]:
    return {"loadavg_1m": round(os.getloadavg()[0], 2), "cpu_pressure_avg10": cpu_pressure(),
            "calibration_ms": calibration_ms()}
