"""The layers of bot/ hold: import-linter's contracts in pyproject.toml (no cycles, pure decisions, intake apart
from the lifecycle, adapters apart from the flow), and a broken contract fails with its import chain."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.io


def lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is in the test extra"
    return subprocess.run([exe, "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(cwd)})


def test_bot_keeps_its_import_contracts():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout, result.stdout


def test_a_forbidden_import_breaks_the_build_with_its_chain(tmp_path):
    package = tmp_path / "shop"
    (package / "adapters").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "flow.py").write_text("")
    (package / "adapters" / "__init__.py").write_text("")
    (package / "adapters" / "db.py").write_text("from shop import flow\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = shop\n\n[importlinter:contract:1]\nname = Adapters import nothing of the "
        "flow\ntype = forbidden\nsource_modules = shop.adapters\nforbidden_modules = shop.flow\n")
    result = lint_imports(tmp_path, "--config", str(tmp_path / ".importlinter"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and "shop.adapters.db -> shop.flow" in result.stdout
