"""Whether a working copy's `.terraform` is already what `terraform init` would make of it, so init can be skipped.

Working copies are kept per PR and project, `.terraform` included (bot/adapters/git.py), so a PR's second run (its
apply, a push, a `plan` comment) finds the directory initialised. What init reads is the configuration's Terraform
files (backend block, module sources, required providers and versions) and the dependency lock file; what it
writes is `.terraform` and, when missing, that lock file. The fingerprint is a SHA-256 over the binary and argv that
ran init, and every `*.tf`, `*.tf.json` and `.terraform.lock.hcl` of the copy by path, read after init succeeded
(so the lock file it wrote is in it: a copy reset since, whose untracked lock file went, no longer matches).
Conservative on purpose: any change to a Terraform file, resources included, inits again.

The stamp lives beside the copy, not in it: runs can write only inside the copy, so PR code cannot forge one. The
copy's files are PR code: symlinks are hashed by their target's name and never followed, special files by kind.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Sequence

_NAMES = (".tf", ".tf.json")
_LOCK_FILE = ".terraform.lock.hcl"
_SKIPPED_DIRS = {".terraform", ".git"}


def stamp_path(copy_root: Path, workdir: Path) -> Path:
    """Where the stamp of `workdir` (a project directory inside the working copy `copy_root`) is kept: in the
    copy's parent directory, named after the copy and the project directory."""
    relative = os.path.relpath(workdir, copy_root)
    tag = hashlib.sha256(relative.encode()).hexdigest()[:12]
    return copy_root.parent / f".{copy_root.name}.init-{tag}"


def fingerprint(copy_root: Path, argv: Sequence[str]) -> str:
    """The hex SHA-256 of `argv` and the copy's Terraform files and lock files (see the module docstring)."""
    digest = hashlib.sha256()
    for item in argv:
        digest.update(item.encode() + b"\0")
    for dirpath, dirnames, filenames in os.walk(copy_root):  # never follows a symlinked directory
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS)
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            if not (name.endswith(_NAMES) or name == _LOCK_FILE) and not os.path.islink(os.path.join(dirpath, name)):
                continue
            path = os.path.join(dirpath, name)
            digest.update(os.path.relpath(path, copy_root).encode() + b"\0")
            digest.update(_content_digest(path))
    return digest.hexdigest()


def _content_digest(path: str) -> bytes:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return b"link\0" + os.readlink(path).encode(errors="surrogateescape") + b"\0"
    if not stat.S_ISREG(info.st_mode):
        return b"special\0"
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return b"file\0" + digest.digest()


def is_current(copy_root: Path, workdir: Path, argv: Sequence[str]) -> bool:
    """Whether init of `workdir` with `argv` would find what the last successful one left: the stamp matches and
    `.terraform` is still a real directory (not removed, not replaced by a symlink)."""
    terraform_dir = workdir / ".terraform"
    if terraform_dir.is_symlink() or not terraform_dir.is_dir():
        return False
    try:
        recorded = stamp_path(copy_root, workdir).read_text()
    except OSError:
        return False
    return recorded == fingerprint(copy_root, argv)


def record(copy_root: Path, workdir: Path, argv: Sequence[str]) -> None:
    """After a successful init: remember what it saw."""
    stamp_path(copy_root, workdir).write_text(fingerprint(copy_root, argv))


def forget(copy_root: Path, workdir: Path) -> None:
    """Before an init (or after a failed one): the next run inits again, whatever happens to this one."""
    stamp_path(copy_root, workdir).unlink(missing_ok=True)
