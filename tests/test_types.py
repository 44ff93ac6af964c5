"""bot/ type-checks clean under `mypy --strict` (the [tool.mypy] config in pyproject.toml), and services are typed."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "pyproject.toml"
# Parameters that carry the composition root (bot/services.py) or a part of it.
SERVICE_PARAMETERS = {"svc", "services"}


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m mypy` with the project's config, from the repository root (its cache is .mypy_cache there)."""
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(CONFIG), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.io
def test_bot_is_clean_under_mypy_strict() -> None:
    result = mypy()
    assert result.returncode == 0, f"mypy --strict on bot/ is not clean:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout


@pytest.mark.io
def test_the_check_fails_on_a_type_error(tmp_path: Path) -> None:
    module = tmp_path / "broken.py"
    module.write_text("def double(n: int) -> str:\n    return n * 2\n\n\ndef untyped(x):\n    return x\n")
    result = mypy("--cache-dir", str(tmp_path / "cache"), str(module))
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'broken.py:2: error: Incompatible return value type (got "int", expected "str")' in result.stdout
    # strict: an unannotated function is an error too
    assert "broken.py:5: error: Function is missing a type annotation" in result.stdout


def _untyped_service_parameters(source: str, path: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.arg in SERVICE_PARAMETERS and (
                    arg.annotation is None or ast.unparse(arg.annotation).strip("'\"") in ("Any", "object")):
                found.append(f"{path}:{arg.lineno} {node.name}({arg.arg})")
    return found


def test_no_service_parameter_is_untyped() -> None:
    found = [hit for path in sorted((ROOT / "bot").rglob("*.py"))
             for hit in _untyped_service_parameters(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "service parameters typed Any, object or nothing (use WorkerServices, WebServices or a " \
                      "Protocol of bot/services.py):\n" + "\n".join(found)


def test_the_service_parameter_scan_finds_an_any() -> None:
    source = "from typing import Any\n\ndef run(svc: Any, n: int) -> None: ...\ndef web(services: object): ...\n"
    assert _untyped_service_parameters(source, "m.py") == ["m.py:3 run(svc)", "m.py:4 web(services)"]
