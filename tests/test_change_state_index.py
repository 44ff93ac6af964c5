"""The state index of change records, with the real Terraform binary (in the sandbox when bubblewrap runs here),
a real git repository behind the fake GitHub, and real Redis: a project's backend is initialised alone, without
any provider, and `terraform state pull` reads a state naming an `aws_s3_bucket` (whose provider is never
installed)."""
from __future__ import annotations

import json

from bot.changes.state_index import refresh_state_index
from bot.compose import worker_services as build_worker_services
from bot.config import parse_config
from bot.state.change_records import ChangeStore
from tests.support.git_repos import RemoteRepo
from tests.support.tf_configs import backend_block

INSTALLATION = 99


def bucket_state(bucket: str) -> str:
    """A state as Terraform 1.11 writes it, holding one S3 bucket (the aws provider is nowhere here)."""
    return json.dumps({
        "version": 4, "terraform_version": "1.11.4", "serial": 3, "lineage": "0b6f4c1e-2a3d-4b5c-8d9e-0f1a2b3c4d5e",
        "outputs": {}, "check_results": None,
        "resources": [{"mode": "managed", "type": "aws_s3_bucket", "name": "logs",
                       "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                       "instances": [{"schema_version": 0, "attributes": {
                           "id": bucket, "arn": f"arn:aws:s3:::{bucket}", "bucket": bucket}}]}]})


def test_the_projects_states_are_read_for_the_resources_they_hold(fake_github, app_keys, redis_conn, tmp_path,
                                                                    terraform_binary):
    state = tmp_path / "state" / "storage"
    state.mkdir(parents=True)
    (state / "terraform.tfstate").write_text(bucket_state("acme-logs"))
    remote = RemoteRepo(tmp_path / "remote", "acme/infra")
    storage = backend_block(state) + 'resource "aws_s3_bucket" "logs" {\n  bucket = "acme-logs"\n}\n'
    remote.commit("main", {"storage/main.tf": storage, "network/main.tf": 'resource "terraform_data" "a" {}\n'},
                  "Initial roots")
    fake_github.add_repo("acme/infra", remote.clone_url, installation_id=INSTALLATION)
    other = RemoteRepo(tmp_path / "other", "acme/legacy")
    other.commit("main", {"old/main.tf": backend_block(state)}, "Legacy")
    fake_github.add_repo("acme/legacy", other.clone_url, installation_id=INSTALLATION)
    config = parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path / "data"),
        "terraform": {"binary": terraform_binary, "sandbox": {"readable_paths": [str(tmp_path / "state")]}},
        "repos": [{"name": "acme/legacy", "change_records": False}, {"name": "acme/*"}],
        "change_records": {"sqs_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
                           "repo": "acme/infra-changes", "state_refresh": 600},
    }, base_dir=tmp_path)
    svc = build_worker_services(config, redis_conn)

    report = refresh_state_index(svc)

    assert report.failed == [], report.summary()
    assert report.repos == 1  # acme/legacy has change records off
    assert report.read == ["acme/infra storage (2 identifiers)"]
    assert [s.split(":")[0] for s in report.skipped] == ["acme/infra network"]
    assert "no backend block" in report.skipped[0]
    store = ChangeStore(redis_conn)
    assert [p.name for p in store.projects_holding(["arn:aws:s3:::acme-logs"])] == ["storage"]
    assert store.projects_holding(["acme-other"]) == []
    assert 0 < redis_conn.ttl("tfbot:changes:ids:acme/infra:default:storage") <= 1800  # three periods
    assert not any((tmp_path / "data" / "tmp" / "state-index").iterdir())  # scratch directories removed
