"""`python -m bench --quick` runs every case end to end, so the benchmark code cannot rot. Timings and targets
are never asserted here: only that each case ran and left its rows in the results file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CASES = {"intake", "pr_overhead", "parallel", "detection", "locks", "lock_page", "memory", "burst"}


@pytest.mark.e2e
def test_quick_bench_runs_every_case(tmp_path: Path) -> None:
    # Written beside the test, not over bench/results.json, which holds the last full run's figures.
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-8000:]}"
    results = json.loads(out.read_text())
    assert set(results["cases"]) == CASES
    for key, case in results["cases"].items():
        assert not case["error"], (key, case["error"])
        assert case["rows"], key
        assert all(row["value"] is not None for row in case["rows"]), (key, case["rows"])
    assert results["meta"]["quick"] is True
    assert "met?" in done.stdout  # the table was printed
