"""The services a worker builds (bot.services.WorkerServices) on real Redis and the fake GitHub, for tests that
call handlers, jobs and passes directly instead of through a tfbot process."""
from __future__ import annotations

import pytest

from bot.config import parse_config
from bot.services import WorkerServices
from tests.support.tfbot_process import REPO_ROOT

REPO = "acme/infra"
INSTALLATION = 99


@pytest.fixture
def worker_services(fake_github, app_keys, redis_conn, tmp_path) -> WorkerServices:
    """acme/* configured with projects `network` and `dns`; acme/infra exists (installation 99, no git behind it)."""
    config = parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path), "workflows_dir": str(REPO_ROOT / "workflows"),
        "repos": [{"name": "acme/*", "projects": [{"dir": "network"}, {"dir": "dns"}]}],
    }, base_dir=tmp_path)
    fake_github.add_repo(REPO, "file:///nowhere", installation_id=INSTALLATION)
    return WorkerServices(config, redis_conn)
