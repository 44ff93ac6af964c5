"""Plan storage on local disk and in S3 (moto server over real HTTP): round trip and checksum refusal."""
from __future__ import annotations

import boto3
import pytest

from bot.models import Project
from bot.adapters.plan_store import LocalPlanStore, PlanStoreError, S3PlanStore, plan_key


@pytest.fixture
def s3_store(moto_server_url, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server_url)
    client.create_bucket(Bucket="tfbot-plans")
    return S3PlanStore("tfbot-plans", "team-a", client)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, s3_store):
    return LocalPlanStore(tmp_path / "plans") if request.param == "local" else s3_store


def test_round_trip_and_delete(store, tmp_path):
    key = plan_key(Project(repo="acme/infra", name="net", dir="envs/net", workspace="prod"), 12, "a" * 40, "run1")
    assert key == f"acme/infra/12/prod/envs/net/{'a' * 40}-run1.tfplan"
    source = tmp_path / "plan.bin"
    source.write_bytes(b"\x00plan-bytes" * 1000)
    digest = store.put(key, source)
    out = tmp_path / "out.bin"
    store.get(key, out, digest)
    assert out.read_bytes() == source.read_bytes()
    with pytest.raises(PlanStoreError, match="refusing"):
        store.get(key, tmp_path / "bad.bin", "0" * 64)
    store.delete(key)
    with pytest.raises(PlanStoreError):
        store.get(key, tmp_path / "gone.bin", digest)


def test_s3_objects_are_encrypted_and_prefixed(s3_store, tmp_path):
    source = tmp_path / "plan.bin"
    source.write_bytes(b"plan")
    s3_store.put("acme/infra/1/default/_root/x.tfplan", source)
    head = s3_store.client.head_object(Bucket="tfbot-plans", Key="team-a/plans/acme/infra/1/default/_root/x.tfplan")
    assert head["ServerSideEncryption"] == "AES256"


def test_a_plan_changed_at_rest_is_refused(tmp_path):
    store = LocalPlanStore(tmp_path / "plans")
    source = tmp_path / "plan.bin"
    source.write_bytes(b"original")
    digest = store.put("acme/infra/1/default/_root/x.tfplan", source)
    (tmp_path / "plans/acme/infra/1/default/_root/x.tfplan").write_bytes(b"tampered")
    with pytest.raises(PlanStoreError, match="refusing"):
        store.get("acme/infra/1/default/_root/x.tfplan", tmp_path / "out", digest)
    with pytest.raises(PlanStoreError, match="escapes"):
        store.get("../../etc/passwd", tmp_path / "out", digest)
