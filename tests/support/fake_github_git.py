"""What the fake GitHub reads from a repository's local bare clone: commits, refs and PR diffs.

GitHub knows every commit of a repository; the fake knows those of the `file://`
bare repository a test gave as `clone_url`, so the bot and the API agree.
"""
from __future__ import annotations

import os
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any, Optional

# Nothing from the machine's git config may change what we read.
_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}

# git's one-letter statuses in GitHub's words.
_STATUS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}


def local_git_dir(clone_url: str) -> Optional[Path]:
    """The directory of a local repository named by a `file://` URL or path; None for remote URLs."""
    parsed = urllib.parse.urlsplit(clone_url)
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
    elif parsed.scheme == "" and clone_url.startswith("/"):
        path = Path(clone_url)
    else:
        return None
    return path if path.is_dir() else None


def _git(git_dir: Path, *args: str) -> Optional[str]:
    result = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, env=_ENV, check=False
    )
    return result.stdout.decode("utf-8", "surrogateescape") if result.returncode == 0 else None


def resolve_commit(git_dir: Path, ref: str) -> Optional[str]:
    """The full sha of the commit `ref` (sha, branch or tag) names, or None."""
    if ref.startswith("-"):
        return None
    for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        out = _git(git_dir, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
        if out:
            return out.strip()
    return None


def commit_details(git_dir: Path, sha: str) -> Optional[dict[str, Any]]:
    """Author, committer, message, tree and parents of commit `sha`, or None if absent."""
    out = _git(git_dir, "show", "-s", "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B", sha)
    if out is None:
        return None
    full, tree, parents, an, ae, ad, cn, ce, cd, message = out.split("\0", 9)
    return {
        "sha": full,
        "tree": tree,
        "parents": parents.split(),
        "author": {"name": an, "email": ae, "date": _utc(ad)},
        "committer": {"name": cn, "email": ce, "date": _utc(cd)},
        "message": message.rstrip("\n"),
    }


def _utc(iso: str) -> str:
    # git prints "+00:00"; GitHub writes UTC times with a "Z".
    return iso.replace("+00:00", "Z")


# Shas name immutable content, so a diff once computed never changes; a failed
# one (commit not pushed yet) is not remembered.
_FILES_CACHE: dict[tuple[Path, str, str], tuple[dict[str, Any], ...]] = {}


def pull_files(git_dir: Path, base_sha: str, head_sha: str) -> Optional[list[dict[str, Any]]]:
    """The files a PR changes as GitHub lists them (diff from the merge base, renames detected), or None."""
    key = (git_dir, base_sha, head_sha)
    if key not in _FILES_CACHE:
        files = _diff_files(git_dir, base_sha, head_sha)
        if files is None:
            return None
        _FILES_CACHE[key] = tuple(files)
    return [dict(f) for f in _FILES_CACHE[key]]


def _diff_files(git_dir: Path, base_sha: str, head_sha: str) -> Optional[list[dict[str, Any]]]:
    spec = f"{base_sha}...{head_sha}"
    raw = _git(git_dir, "diff", "--raw", "-z", "-M", "--no-abbrev", spec)
    numstat = _git(git_dir, "diff", "--numstat", "-z", "-M", spec)
    if raw is None or numstat is None:
        return None
    counts = _parse_numstat(numstat)
    files = []
    for status, src_sha, dst_sha, path, old_path in _parse_raw(raw):
        added, deleted = counts.get(path, (0, 0))
        entry: dict[str, Any] = {
            "sha": src_sha if status == "removed" else dst_sha,
            "filename": path,
            "status": status,
            "additions": added,
            "deletions": deleted,
            "changes": added + deleted,
        }
        if old_path is not None:
            entry["previous_filename"] = old_path
        files.append(entry)
    return files


def _parse_raw(out: str) -> list[tuple[str, str, str, str, Optional[str]]]:
    # Each record: ":mode mode src dst STATUS\0path\0" plus a second path for renames and copies.
    parts = out.split("\0")
    records, i = [], 0
    while i < len(parts) and parts[i].startswith(":"):
        meta = parts[i][1:].split()
        src, dst, letter = meta[2], meta[3], meta[4][0]
        if letter in "RC":
            old, new = parts[i + 1], parts[i + 2]
            records.append((_STATUS[letter], src, dst, new, old))
            i += 3
        else:
            records.append((_STATUS.get(letter, "changed"), src, dst, parts[i + 1], None))
            i += 2
    return records


def _parse_numstat(out: str) -> dict[str, tuple[int, int]]:
    # "added\tdeleted\tpath\0", or for renames "added\tdeleted\t\0old\0new\0"; "-" for binary files.
    parts = out.split("\0")
    counts, i = {}, 0
    while i < len(parts) and parts[i]:
        added, deleted, path = parts[i].split("\t", 2)
        if path == "":
            path = parts[i + 2]
            i += 3
        else:
            i += 1
        counts[path] = (int(added) if added != "-" else 0, int(deleted) if deleted != "-" else 0)
    return counts
