"""The services a worker builds (bot.services.WorkerServices) on real Redis and the fake GitHub, for tests that
call handlers, jobs and passes directly instead of through a tfbot process."""
from __future__ import annotations

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from bot.compose import worker_services as build_worker_services
from bot.config import parse_config
from bot.ops.worker import TfbotSimpleWorker
from bot.services import WorkerServices
from tests.support.git_repos import RemoteRepo

REPO = "acme/infra"
INSTALLATION = 99


@pytest.fixture
def services_remote(tmp_path) -> RemoteRepo:
    """The git repository behind acme/infra: main holds the `network` and `dns` roots (no resources)."""
    remote = RemoteRepo(tmp_path / "remote", REPO)
    remote.commit("main", {"network/main.tf": "# network\n", "dns/main.tf": "# dns\n"}, "Initial roots")
    return remote


def real_pull(fake, remote: RemoteRepo, number: int, path: str = "network/main.tf") -> str:
    """Open PR `number` on a real branch changing `path`; returns its head sha."""
    branch = f"b{number}"
    head = remote.commit(branch, {path: f"# changed by #{number}\n"}, f"Change for #{number}", parent_branch="main")
    remote.create_pull_ref(number, head)
    fake.add_pull(REPO, number, head_ref=branch, user="alice", head_sha=head)
    return head


def real_merge(fake, remote: RemoteRepo, number: int) -> str:
    """Merge PR `number` (opened by real_pull) into main, as the merge button does; returns the merge commit."""
    sha = remote.merge(f"b{number}")
    fake.update_pull(REPO, number, merged=True, merge_commit_sha=sha, merged_by="mo")
    return sha


@pytest.fixture
def worker_services(fake_github, app_keys, redis_conn, tmp_path, services_remote) -> WorkerServices:
    """acme/* configured with projects `network` and `dns`; acme/infra exists (installation 99) on a real git
    repository (`services_remote`)."""
    config = parse_config({
        "github": {"api_url": fake_github.base_url, "app_id": fake_github.app_id, "private_key": app_keys[0].decode(),
                   "webhook_secret": "s", "retries": 0, "write_interval": 0},
        "data_dir": str(tmp_path),
        "repos": [{"name": "acme/*", "projects": [{"dir": "network"}, {"dir": "dns"}]}],
    }, base_dir=tmp_path)
    fake_github.add_repo(REPO, services_remote.clone_url, installation_id=INSTALLATION)
    return build_worker_services(config, redis_conn)


def run_jobs(svc: WorkerServices, *queues: Queue, **work: object) -> None:
    """Run the jobs queued on `queues` (default: the events queue) in this process, as a tfbot worker runs them:
    with `svc`, the allowlist, and RQ's retries and callbacks; `work` goes to RQ's `work(burst=True, ...)`."""
    worker = TfbotSimpleWorker(list(queues) or [svc.events_queue], svc, connection=svc.redis,
                               serializer=JSONSerializer)
    worker.work(burst=True, **work)  # type: ignore[arg-type]
