"""Startup checks: git must be new enough for `git merge-tree --write-tree`, and tfbot says so before it starts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.adapters.preflight import MIN_GIT, check_git, judge_git_version
from tests.support.tfbot_process import free_port, write_config


@pytest.mark.parametrize(
    "output, ok, version",
    [
        ("git version 2.38.0\n", True, "2.38.0"),
        ("git version 2.39.5\n", True, "2.39.5"),
        ("git version 2.39.3 (Apple Git-146)\n", True, "2.39.3"),
        ("git version 2.45.1.windows.1\n", True, "2.45.1"),
        ("git version 3.0\n", True, "3.0"),
        ("git version 2.37.7\n", False, "2.37.7"),
        ("git version 2.32.0\n", False, "2.32.0"),  # the old minimum: GIT_CONFIG_GLOBAL, but no merge-tree
        ("git version 1.8.3.1\n", False, "1.8.3"),
        ("", False, ""),
        ("hub version 2.14.2\n", False, ""),
    ],
)
def test_git_version_verdict(output, ok, version):
    check = judge_git_version(output, "/usr/bin/git")
    assert (check.ok, check.version) == (ok, version)
    if not ok:
        assert "install git >= 2.38" in check.error
        assert version in check.error


def test_an_old_git_is_named_with_what_to_install(tmp_path: Path) -> None:
    old = _fake_git(tmp_path, "2.34.1")
    check = check_git(str(old))
    assert not check.ok and check.path == str(old)
    assert "git 2.34.1" in check.error and "merge-tree --write-tree" in check.error and "install git >= 2.38" in check.error
    missing = check_git(str(tmp_path / "no-git"))
    assert not missing.ok and "not found" in missing.error and "install git >= 2.38" in missing.error


@pytest.mark.io
def test_this_machines_git_passes() -> None:
    check = check_git()
    assert check.ok, check.error
    assert tuple(int(p) for p in check.version.split(".")[:2]) >= MIN_GIT


def test_this_machines_git_can_merge_tree(tmp_path: Path) -> None:
    """The reason for the minimum: the command planning uses exists in the git that passes the check."""
    out = subprocess.run(["git", "merge-tree", "-h"], capture_output=True, text=True)
    assert "--write-tree" in out.stdout + out.stderr


@pytest.mark.parametrize("command", ["check-config", "worker", "serve"])
def test_commands_refuse_to_start_with_an_old_git(tmp_path: Path, app_private_key: str, command: str) -> None:
    _fake_git(tmp_path / "bin", "2.30.2")
    settings = {
        "github": {"api_url": "http://127.0.0.1:9/api/v3", "app_id": 1234, "private_key": app_private_key,
                   "webhook_secret": "s", "retries": 0},
        "server": {"host": "127.0.0.1", "port": free_port()},
        "data_dir": str(tmp_path / "data"),
        "workers": 1,
        "redis_url": "redis://127.0.0.1:9/0",  # never reached: the check comes first
        "repos": [{"name": "acme/*"}],
    }
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "bot", command, "--config", str(write_config(tmp_path, settings))],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "git 2.30.2" in result.stderr and "install git >= 2.38" in result.stderr


def _fake_git(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "git"
    path.write_text(f"#!/bin/sh\necho 'git version {version}'\n")
    path.chmod(0o755)
    return path
