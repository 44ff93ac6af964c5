"""A workflow whose plan waits at a gate the test opens: makes "a run is under way" deterministic."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path



def gated_workflow(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A `gated` workflow whose plan waits, after saying so, until the test opens the gate.
    Returns (workflows dir, the file that says a run waits, the gate file)."""
    shared = tmp_path / "host"  # a Scenario's directory that sandboxed runs may write
    shared.mkdir(exist_ok=True)
    waiting, gate = shared / "waiting", shared / "gate-open"
    script = shared / "gate.py"
    script.write_text(textwrap.dedent(f"""
        import pathlib, sys, time
        pathlib.Path({str(waiting)!r}).touch()
        deadline = time.monotonic() + 120
        while not pathlib.Path({str(gate)!r}).exists():
            if time.monotonic() > deadline:
                sys.exit("the gate never opened")
            time.sleep(0.05)
    """))
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "gated.yaml").write_text(
        f"plan:\n  steps: [init, workspace, {{run: [{sys.executable!r}, {str(script)!r}]}}, plan, show]\n"
        "apply:\n  steps: [init, apply]\n")
    return workflows, waiting, gate
