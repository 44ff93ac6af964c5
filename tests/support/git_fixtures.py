"""Pytest fixtures for local stand-ins of GitHub repositories (see git_repos.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.support.git_repos import RemoteRepo


@pytest.fixture
def make_remote_repo(tmp_path: Path) -> Callable[..., RemoteRepo]:
    """Factory: `make_remote_repo("owner/name", default_branch="main")` makes an empty bare repo under tmp_path."""

    def make(full_name: str = "acme/infra", default_branch: str = "main") -> RemoteRepo:
        return RemoteRepo(tmp_path / "github", full_name, default_branch)

    return make


@pytest.fixture
def remote_repo(make_remote_repo: Callable[..., RemoteRepo]) -> RemoteRepo:
    """An empty bare repository "acme/infra" (default branch main) reached by file:// URL."""
    return make_remote_repo("acme/infra")
