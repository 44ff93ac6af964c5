"""The audit trail: bounded, newest first, filtered by repository and time; `tfbot audit` prints it."""
from __future__ import annotations

import json
import subprocess
import sys

from bot.state import audit
from tests.support.tfbot_process import write_config


def test_entries_filter_by_repo_and_since(redis_conn):
    for i, repo in enumerate(["acme/infra", "acme/other", "ACME/infra"]):
        audit.record(redis_conn, audit.AuditEntry(action="apply", repo=repo, pull=i, project="net", user="alice",
                                                  sha="a" * 40, at=1_000 + i))
    assert [e.pull for e in audit.entries(redis_conn)] == [2, 1, 0]
    assert [e.pull for e in audit.entries(redis_conn, repo="acme/infra")] == [2, 0]
    assert [e.pull for e in audit.entries(redis_conn, since=1_001)] == [2, 1]
    assert audit.parse_since("1970-01-01T00:16:41Z") == 1_001


def test_tfbot_audit_prints_the_trail(redis_conn, redis_url, app_private_key, tmp_path):
    audit.record(redis_conn, audit.AuditEntry(action="unlock", repo="acme/infra", pull=7, project="network",
                                              user="bob", detail="@bob unlocked it on #7", at=1_800_000_000))
    config = write_config(tmp_path, {"github": {"app_id": 1, "private_key": app_private_key, "webhook_secret": "s" * 8},
                                     "redis_url": redis_url, "data_dir": str(tmp_path / "data")})
    base = [sys.executable, "-m", "bot", "audit", "--config", str(config)]
    table = subprocess.run(base + ["--repo", "acme/infra"], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "unlock" in table.stdout and "#7" in table.stdout and "2027-01-15" in table.stdout
    as_json = subprocess.run(base + ["--json", "--since", "2027-01-01"], capture_output=True, text=True, timeout=60)
    assert json.loads(as_json.stdout)[0]["user"] == "bob"
    none = subprocess.run(base + ["--since", "2030-01-01"], capture_output=True, text=True, timeout=60)
    assert "no audit entries" in none.stdout
    bad = subprocess.run(base + ["--since", "yesterday"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_tfbot_audit_shows_drift_checks_drift_applies_and_change_records(redis_conn, redis_url, app_private_key,
                                                                        tmp_path):
    """What happens outside PRs is in the same trail: a drift check and an apply from a drift issue (#12 is the
    issue), and a change record (no PR)."""
    for entry in (
            audit.AuditEntry(action="drift-check", repo="acme/infra", pull=0, project="network", user="tfbot",
                             outcome="drifted", detail="scheduled", at=1_800_000_000),
            audit.AuditEntry(action="drift-apply", repo="acme/infra", pull=12, project="network", user="alice",
                             outcome="applied", sha="b" * 40, at=1_800_000_100),
            audit.AuditEntry(action="change-record", repo="acme/infra-changes", pull=0, project="", user="tfbot",
                             outcome="opened", detail="PutBucketPolicy on acme-logs by arn:aws:iam::1:user/Alice",
                             at=1_800_000_200)):
        audit.record(redis_conn, entry)
    config = write_config(tmp_path, {"github": {"app_id": 1, "private_key": app_private_key, "webhook_secret": "s" * 8},
                                     "redis_url": redis_url, "data_dir": str(tmp_path / "data")})
    table = subprocess.run([sys.executable, "-m", "bot", "audit", "--config", str(config)], capture_output=True,
                           text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    [record] = [line for line in lines if "change-record" in line]
    assert "acme/infra-changes" in record and "PutBucketPolicy on acme-logs" in record
    [applied] = [line for line in lines if "drift-apply" in line]
    assert "#12" in applied and "alice" in applied and "applied" in applied
    [checked] = [line for line in lines if "drift-check" in line]
    assert "drifted" in checked and "#0" not in checked  # no PR: nothing pretends there was one
