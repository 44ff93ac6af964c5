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
    assert "5 kept, 0 broken" in result.stdout, result.stdout


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


def test_job_code_imported_by_the_web_breaks_the_web_contract(tmp_path):
    """The web's contract bites on the real tree: one import of the job module from a page fails the build."""
    shutil.copytree(ROOT / "bot", tmp_path / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    health = tmp_path / "bot" / "web" / "health.py"
    health.write_text(health.read_text() + "\nfrom bot import jobs  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Web reads state and never runs a pipeline" in result.stdout and "BROKEN" in result.stdout
    assert "bot.web.health -> bot.jobs" in result.stdout, result.stdout
