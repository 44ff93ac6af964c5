"""An npm package's files, fetched with `npm pack` into `<repo>/.cache/<cache_name>/<version>/` on first use.

The cache is gitignored; nothing of it is committed. Versions are pinned by the callers so that a new upstream
release cannot change what CI checks against. Used for GitHub's example webhook payloads
(tests/support/octokit_examples.py) and GitHub's GraphQL schema (tests/test_fake_github_graphql.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parents[2] / ".cache"


def unpacked(package: str, version: str, cache_name: str, marker: Path) -> Path:
    """The directory `package@version` unpacks to (its files under `package/`), fetched with npm when not cached
    yet. `marker` is a file relative to that directory that must exist (checked so a changed layout fails
    loudly). Skips the test if npm is absent; raises RuntimeError when npm fails."""
    root = CACHE / cache_name
    target = root / version
    if (target / marker).is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed: cannot fetch {package}")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        tarball = _npm_pack(npm, package, version, Path(scratch))
        into = Path(scratch) / "unpacked"
        with tarfile.open(tarball) as archive:
            _extract(archive, into, package)
        if not (into / marker).is_file():
            raise RuntimeError(f"{package}@{version} has no {marker}; its layout changed")
        try:
            # Atomic, so a concurrent test run sees either nothing or the whole package.
            os.rename(into, target)
        except OSError:
            if not (target / marker).is_file():
                raise
    return target


def _npm_pack(npm: str, package: str, version: str, dest: Path) -> Path:
    result = subprocess.run(
        [npm, "pack", f"{package}@{version}", "--json", "--silent"],
        cwd=dest, capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm pack {package}@{version} failed ({result.returncode}): {result.stderr.strip()}")
    filename = str(json.loads(result.stdout)[0]["filename"])
    return dest / filename


def _extract(archive: tarfile.TarFile, dest: Path, package: str) -> None:
    # The "data" filter refuses absolute paths, links out of dest and devices.
    if hasattr(tarfile, "data_filter"):
        archive.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in archive.getmembers():
        if not member.isfile() and not member.isdir():
            raise RuntimeError(f"unexpected member {member.name!r} in {package} tarball")
        if not (root / member.name).resolve().is_relative_to(root):
            raise RuntimeError(f"member {member.name!r} escapes the extraction dir")
    archive.extractall(dest)
