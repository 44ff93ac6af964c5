"""Where saved plan files live between plan and apply: local disk under data_dir, or S3 (issue 5).

Keys are documented here, like Atlantis's plan store:
    <owner>/<repo>/<pull>/<workspace>/<dir, '/' kept>/<head sha>.tfplan
A plan is checked against its recorded SHA-256 before it is applied, so a file changed at rest is refused.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.models import Project

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from bot.config import Config, S3Config


class PlanStoreError(Exception):
    """A plan file is missing or does not match its recorded checksum."""


def plan_key(project: Project, pull: int, sha: str, run_id: str) -> str:
    """The storage key of the plan made by run `run_id` for `project` of PR `pull` at commit `sha`:
    `<repo>/<pull>/<workspace>/<dir>/<sha>-<run id>.tfplan` (two plans of one commit never share a file)."""
    dir_part = "_root" if project.dir == "." else project.dir
    return f"{project.repo}/{pull}/{project.workspace}/{dir_part}/{sha}-{run_id}.tfplan"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class PlanStore(Protocol):
    """Stores plan files by key. Implementations: LocalPlanStore, S3PlanStore."""

    def put(self, key: str, source: Path) -> str:
        """Store the file at `source` under `key`; return its SHA-256."""

    def get(self, key: str, dest: Path, sha256: str) -> None:
        """Write the plan stored under `key` to `dest`, refusing it unless its SHA-256 is `sha256`."""

    def delete(self, key: str) -> None:
        """Remove the plan under `key`; a missing key is not an error."""


class LocalPlanStore:
    """Plans on the local disk of a single host, under `<data_dir>/plans`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not str(path).startswith(str(self.root.resolve()) + "/"):
            raise PlanStoreError(f"plan key escapes the store: {key!r}")
        return path

    def put(self, key: str, source: Path) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(path)
        return file_sha256(path)

    def get(self, key: str, dest: Path, sha256: str) -> None:
        path = self._path(key)
        if not path.exists():
            raise PlanStoreError(f"no saved plan at {key}")
        actual = file_sha256(path)
        if actual != sha256:
            raise PlanStoreError(f"saved plan {key} has SHA-256 {actual[:12]}…, recorded {sha256[:12]}…: refusing it")
        if path.resolve() != Path(dest).resolve():
            shutil.copyfile(path, dest)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass


class S3PlanStore:
    """Plans in S3 under `<prefix>/plans/<key>`, encrypted at rest, so any worker on any host can apply them."""

    def __init__(self, bucket: str, prefix: str, client: S3Client):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client

    @classmethod
    def from_config(cls, s3: "S3Config") -> "S3PlanStore":
        import boto3

        client = boto3.client("s3", region_name=s3.region, endpoint_url=s3.endpoint_url or None)
        return cls(s3.bucket, s3.prefix, client)

    def _key(self, key: str) -> str:
        if ".." in key.split("/"):
            raise PlanStoreError(f"plan key escapes the store: {key!r}")
        return f"{self.prefix}/plans/{key}" if self.prefix else f"plans/{key}"

    def put(self, key: str, source: Path) -> str:
        digest = file_sha256(source)
        with open(source, "rb") as body:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=body, ServerSideEncryption="AES256",
                Metadata={"sha256": digest},
            )
        return digest

    def get(self, key: str, dest: Path, sha256: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(dest))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise PlanStoreError(f"no saved plan at s3://{self.bucket}/{self._key(key)} ({code})") from None
        actual = file_sha256(dest)
        if actual != sha256:
            Path(dest).unlink(missing_ok=True)
            raise PlanStoreError(f"saved plan {key} has SHA-256 {actual[:12]}…, recorded {sha256[:12]}…: refusing it")

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def plan_store_for(config: "Config") -> PlanStore:
    """The plan store the config names: local disk under data_dir, or S3."""
    if config.storage.backend == "s3":
        return S3PlanStore.from_config(config.storage.s3)
    return LocalPlanStore(config.data_dir / "plans")
