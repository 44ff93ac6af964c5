"""GitHub's own example webhook payloads, from the npm package @octokit/webhooks-examples.

The package is fetched with `npm pack` into `<repo>/.cache/` on first use (the
cache is gitignored; nothing of it is committed). Its `api.github.com/index.json`
is a list of event definitions: `{name, description, actions, properties, examples}`.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "@octokit/webhooks-examples"
# Pinned so that a new upstream release cannot change what CI checks against.
VERSION = "7.6.1"
CACHE_ROOT = Path(__file__).resolve().parents[2] / ".cache" / "octokit-webhooks-examples"
INDEX = Path("package") / "api.github.com" / "index.json"


def package_dir() -> Path:
    """The unpacked package, fetched with npm when not cached yet; skips the test if npm is absent."""
    target = CACHE_ROOT / VERSION
    if (target / INDEX).is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch GitHub's example webhook payloads")
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_ROOT) as scratch:
        tarball = _npm_pack(npm, Path(scratch))
        unpacked = Path(scratch) / "unpacked"
        with tarfile.open(tarball) as archive:
            _extract(archive, unpacked)
        if not (unpacked / INDEX).is_file():
            raise RuntimeError(f"{PACKAGE}@{VERSION} has no {INDEX}; its layout changed")
        try:
            # Atomic, so a concurrent test run sees either nothing or the whole package.
            os.rename(unpacked, target)
        except OSError:
            if not (target / INDEX).is_file():
                raise
    return target


@functools.lru_cache(maxsize=1)
def _definitions() -> dict[str, dict[str, Any]]:
    with open(package_dir() / INDEX, encoding="utf-8") as index:
        return {definition["name"]: definition for definition in json.load(index)}


def event_definition(event: str) -> dict[str, Any]:
    """The package's definition of `event`: name, description, actions, properties, examples (a copy)."""
    definitions = _definitions()
    if event not in definitions:
        raise KeyError(f"{PACKAGE} has no event {event!r}; it has {sorted(definitions)}")
    return copy.deepcopy(definitions[event])


def load_examples(event: str, action: str | None = None) -> list[dict[str, Any]]:
    """GitHub's example payloads for `event` (e.g. "pull_request"), only those of `action` if given."""
    examples = event_definition(event)["examples"]
    if action is not None:
        examples = [example for example in examples if example.get("action") == action]
    return examples


def _npm_pack(npm: str, dest: Path) -> Path:
    result = subprocess.run(
        [npm, "pack", f"{PACKAGE}@{VERSION}", "--json", "--silent"],
        cwd=dest, capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm pack {PACKAGE}@{VERSION} failed ({result.returncode}): {result.stderr.strip()}")
    filename = json.loads(result.stdout)[0]["filename"]
    return dest / filename


def _extract(archive: tarfile.TarFile, dest: Path) -> None:
    # The "data" filter refuses absolute paths, links out of dest and devices.
    if hasattr(tarfile, "data_filter"):
        archive.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in archive.getmembers():
        if not member.isfile() and not member.isdir():
            raise RuntimeError(f"unexpected member {member.name!r} in {PACKAGE} tarball")
        if not (root / member.name).resolve().is_relative_to(root):
            raise RuntimeError(f"member {member.name!r} escapes the extraction dir")
    archive.extractall(dest)
