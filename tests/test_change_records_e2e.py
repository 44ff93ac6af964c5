"""Change records end to end: `tfbot serve` as a subprocess polls a real SQS queue (moto's server) fed with
CloudTrail events shaped as EventBridge delivers them (tests/cloudtrail_events/), and opens issues on the fake
GitHub; a project's state, read by real Terraform in a worker, names the project a changed bucket belongs to."""
from __future__ import annotations

import json
import time

import pytest
import requests

from bot.state import audit
from bot.state.change_records import ChangeStore
from tests.support.change_fixtures import ISSUES_REPO, ROLE, SERVICE, USER, change_records_settings, cloudtrail
from tests.support.scenario import REPO
from tests.support.tfbot_process import wait_for

pytestmark = pytest.mark.e2e


def bucket_state(bucket: str) -> str:
    """A state holding one S3 bucket, as Terraform writes it (the aws provider is never installed here)."""
    return json.dumps({"version": 4, "terraform_version": "1.11.4", "serial": 1, "lineage": "5d1c0b9a-8e7f-4a6b-9c5d-4e3f2a1b0c9d",
                       "outputs": {}, "check_results": None, "resources": [{
                           "mode": "managed", "type": "aws_s3_bucket", "name": "logs",
                           "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                           "instances": [{"schema_version": 0, "attributes": {
                               "id": bucket, "arn": f"arn:aws:s3:::{bucket}", "bucket": bucket}}]}]})


@pytest.fixture
def changes(make_scenario, make_queues, fake_github):
    """A tfbot whose main holds the `storage` project (state outside the checkout, holding bucket acme-logs) with
    change records on a fresh queue; returns (scenario, queues)."""
    queues = make_queues(redrive=3)

    def make(**values):
        sc = make_scenario(extra_settings={
            "repos": [{"name": ISSUES_REPO, "change_records": False}, {"name": "acme/*"}],
            "change_records": change_records_settings(queues, **values)})
        sc.init_main({"storage/main.tf": sc.config_for("storage", {"marker": "managed by terraform"})})
        (sc.state_dir("storage") / "terraform.tfstate").parent.mkdir(parents=True, exist_ok=True)
        (sc.state_dir("storage") / "terraform.tfstate").write_text(bucket_state("acme-logs"))
        fake_github.add_repo(ISSUES_REPO, "file:///nonexistent/infra-changes.git", installation_id=99)
        return sc

    return make, queues


def issues(sc) -> list[dict]:
    return sc.fake.issues(ISSUES_REPO, label="change-record")


def wait_issues(sc, count: int, timeout: float = 60) -> list[dict]:
    try:
        return wait_for(lambda: (found := issues(sc)) and len(found) >= count and found, timeout=timeout,
                        message=f"{count} change-record issue(s)")
    except AssertionError:
        raise AssertionError(f"issues: {issues(sc)}\n--- tfbot log ---\n{sc.logs()[-8000:]}") from None


def test_each_call_becomes_an_issue_saying_who_when_where_and_what(changes):
    make, queues = changes
    sc = make(ignore={"accounts": ["999999999999"]}).start()
    assert wait_for(lambda: requests.get(sc.server.url + "/healthz", timeout=5).json()
                    .get("change_records", {}).get("running"), timeout=30, message="the poller in /healthz")
    queues.send(cloudtrail(USER, recipientAccountId="999999999999"))  # an ignored account
    for name in (USER, ROLE, SERVICE):
        queues.send(cloudtrail(name))
    found = wait_issues(sc, 3)
    wait_for(lambda: queues.waiting() == 0, timeout=30, message="every message deleted")
    by_who = {i["title"].split(" on ")[0]: i["body"] for i in found}
    assert set(by_who) == {"AWS change: PutBucketPolicy", "AWS change: ModifyDBInstance",
                           "AWS change: TerminateInstances"}
    user, role, service = (by_who["AWS change: PutBucketPolicy"], by_who["AWS change: ModifyDBInstance"],
                           by_who["AWS change: TerminateInstances"])
    assert "**Who:** `arn:aws:iam::123456789012:user/Alice` (`IAMUser`)" in user
    assert "**When:** 2026-11-03 14:02:11 UTC" in user
    assert "**Where:** account `123456789012`, region `eu-west-1`, source IP `203.0.113.7`" in user
    assert "**What:** `s3.amazonaws.com` `PutBucketPolicy`" in user and '"bucketName": "acme-logs"' in user
    assert "**Assumed role:** `arn:aws:iam::123456789012:role/Admin`, session `bob@example.com`" in role
    assert "Orders-db-p4ssw0rd!" not in role and '"masterUserPassword": "***"' in role
    assert "**Invoked by:** `autoscaling.amazonaws.com`" in service and "`i-0a1b2c3d4e5f60718`" in service
    assert "Orders-db-p4ssw0rd!" not in "\n".join(sc.redis_texts().values()) + sc.logs()
    assert ChangeStore(sc.redis()).counts().get("ignored") == 1 and len(issues(sc)) == 3
    started = time.monotonic()
    assert sc.server.stop() == 0
    assert time.monotonic() - started < 30
    assert "change records: poller stopped" in sc.logs()


def test_a_change_to_a_resource_in_a_projects_state_names_the_project_and_queues_its_drift_check(changes):
    make, queues = changes
    sc = make().start()
    store = ChangeStore(sc.redis())
    wait_for(lambda: any(e["project"]["name"] == "storage" for e in store.indexed().values()), timeout=90,
             message="the storage project's state read")
    queues.send(cloudtrail(USER))
    queues.send(cloudtrail(USER, eventID="later", eventName="DeleteBucketPolicy", eventTime="2026-11-03T14:05:40Z"))
    [issue] = wait_issues(sc, 1)
    wait_for(lambda: "2 calls" in issues(sc)[0]["title"], timeout=30, message="the second call in the issue")
    body = issues(sc)[0]["body"]
    assert f"`acme-logs` is in the Terraform state of project `storage` of `{REPO}`" in body
    assert "tfbot queued its drift check." in body
    # Both calls queued a drift check of storage, which ran: it fails here (its aws provider cannot be installed
    # without a network), and says why in the audit trail, naming the change record that asked.
    checks = wait_for(lambda: [e for e in audit.entries(sc.redis(), REPO) if e.action == "drift-check"]
                      if len([e for e in audit.entries(sc.redis(), REPO) if e.action == "drift-check"]) == 2 else None,
                      timeout=120, message="the drift checks run")
    assert {e.project for e in checks} == {"storage"} and issue["html_url"] in checks[0].detail
    assert {e.outcome for e in checks} <= {"failed", "skipped"}
    assert "drift check of acme/infra storage (" in sc.logs()


def test_an_unreadable_message_is_set_aside_and_a_github_failure_is_tried_again(changes):
    make, queues = changes
    sc = make().start()
    queues.send("{not json")
    wait_for(lambda: queues.dead(), timeout=30, message="the malformed message in the dead-letter queue")
    sc.fake.fail_next(1, status=502, path_contains="/issues")
    queues.send(cloudtrail(SERVICE))
    wait_for(lambda: "not recorded (try 1 of 5)" in sc.logs(), timeout=30, message="the failed try")
    assert issues(sc) == [] and queues.waiting() == 1  # not deleted: SQS delivers it again
    [issue] = wait_issues(sc, 1, timeout=60)  # after the visibility timeout (10 s)
    wait_for(lambda: queues.waiting() == 0, timeout=30, message="the recorded message deleted")
    metrics = requests.get(sc.server.url + "/metrics", timeout=5).text
    for outcome, count in (("malformed", 1), ("set_aside", 1), ("failed", 1), ("recorded", 1)):
        assert f'tfbot_change_record_messages{{outcome="{outcome}"}} {count}.0' in metrics
    assert len(issues(sc)) == 1 and issue["number"] == 1
