"""A merged PR whose provisioner hunts for tfbot's secrets, through `tfbot serve`, real Terraform and the fake
GitHub: with the bubblewrap sandbox it finds nothing and runs as the apply role (and its plan `run` step as the plan
role); with `sandbox.mode: none` the same PR takes the App key, the config, another PR's working copy, Redis and
tfbot's environment: what the sandbox buys."""
from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from bot.adapters.redis_server import EmbeddedRedis
from tests.support.scenario import REPO, SECRET
from tests.support.tf_configs import hcl_string

pytestmark = pytest.mark.e2e

OTHER_PR_MARK = "other-pr-working-copy-secret-5511"
SECRET_KEY = "tfbot-session-signing-key-" + "7" * 20  # in tfbot's environment: TFBOT_SECRET_KEY
OWN_AWS_SECRET = "tfbot-own-aws-secret-access-key-0042"  # tfbot's own AWS credentials, for calling STS
WHOAMI = ("import boto3, os; print(os.environ.get('PHASE'), 'IDENTITY', boto3.client('sts', region_name='us-east-1', "
          "endpoint_url=os.environ['STS_URL']).get_caller_identity()['Arn'])")


def snoop(sc, key_file: Path, config_file: Path) -> str:
    """A shell command that gathers whatever of tfbot's it can reach into a file outside its working copy (the
    state directory, which runs may write), past tfbot's masking of its output, then asks STS who it is."""
    data = sc.settings["data_dir"]
    socket_path = EmbeddedRedis(Path(data)).url.removeprefix("unix://").split("?")[0]
    redis = (f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({socket_path!r}); "
             "s.sendall(b'PING\\r\\n'); print('REDIS', s.recv(20))")
    loot = sc.state_root / "loot.txt"
    gather = "; ".join([
        f"cat {key_file} {config_file}",
        f"grep -r {OTHER_PR_MARK[:-1]}[{OTHER_PR_MARK[-1]}] {data}",  # a pattern: the command itself is printed
        f"{shlex.quote(sys.executable)} -c {shlex.quote(redis)}",
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done",
        "env",
    ])
    return (f"{{ {gather}; }} > {loot} 2>&1; "
            f"PHASE=apply {shlex.quote(sys.executable)} -c {shlex.quote(WHOAMI)}")


@pytest.fixture
def world(make_scenario, tmp_path, app_keys, moto_server_url, monkeypatch):
    def make(mode: str):
        monkeypatch.setenv("TFBOT_SECRET_KEY", SECRET_KEY)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATFBOTOWNKEY00001")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", OWN_AWS_SECRET)
        monkeypatch.setenv("STS_URL", moto_server_url)
        key_file = tmp_path / "etc" / "app.pem"
        key_file.parent.mkdir(exist_ok=True)
        key_file.write_bytes(app_keys[0])
        workflows = tmp_path / "workflows"
        workflows.mkdir(exist_ok=True)
        (workflows / "proof.yaml").write_text(json.dumps({
            "plan": {"steps": ["init", "workspace", "plan", "show",
                               {"run": ["sh", "-c", f"PHASE=plan {shlex.quote(sys.executable)} -c "
                                        f"{shlex.quote(WHOAMI)}"]}]},
            "apply": {"steps": ["init", "apply"]}}))
        role = "arn:aws:iam::123456789012:role/tfbot-{}"
        sc = make_scenario(
            github_settings={"private_key": "", "private_key_path": str(key_file)},
            repo_settings={"workflow": "proof", "env_passthrough": ["STS_URL"],
                           "credentials": {"plan": {"aws_role_arn": role.format("plan")},
                                           "apply": {"aws_role_arn": role.format("apply")}}},
            extra_settings={"workflows_dir": str(workflows),
                            "aws": {"region": "us-east-1", "sts_endpoint_url": moto_server_url},
                            "terraform": {"timeout": 300, "sandbox": {"mode": mode, "writable_paths": [str(tmp_path / "state")]}}})
        sc.init_main({"network/main.tf": sc.config_for("network", {"vpc": "v"}),
                      "dns/main.tf": sc.config_for("dns", {"zone": "z"})})
        sc.fake.set_permission(REPO, "alice", "write")
        return sc, key_file
    return make


def run_the_hostile_pr(sc, key_file: Path) -> tuple[str, str, str]:
    """Another PR leaves its working copy; the hostile PR is planned and merged. (plan comment, apply comment, loot)"""
    sc.start()
    other = sc.open_pr("other", {"dns/main.tf": sc.config_for("dns", {"zone": OTHER_PR_MARK})})
    sc.wait_comment(other, lambda b: "Plan:" in b)
    extra = (f'resource "terraform_data" "snoop" {{\n  provisioner "local-exec" {{\n'
             f"    command = {hcl_string(snoop(sc, key_file, sc.server.config_path))}\n  }}\n}}\n")
    pr = sc.open_pr("hostile", {"network/main.tf": sc.config_for("network", {"vpc": "v"}, extra=extra)})
    plan = sc.wait_comment(pr, lambda b: "Plan:" in b or "failed" in b)
    sc.merge(pr)
    applied = sc.wait_comment(pr, lambda b: "Apply complete!" in b or "apply failed" in b.lower(), timeout=180)
    sc.wait_idle()
    return plan, applied, (sc.state_root / "loot.txt").read_text(errors="replace")


def secrets_of(sc, key_file: Path) -> dict[str, str]:
    return {
        "webhook secret": SECRET,
        "session key": SECRET_KEY,
        "tfbot's own AWS secret": OWN_AWS_SECRET,
        "another PR's working copy": OTHER_PR_MARK,
        "Redis": "PONG",
        **{f"App key line {i}": line for i, line in enumerate(key_file.read_text().splitlines()) if len(line) > 40},
    }


def everything_written(sc) -> dict[str, str]:
    """Where a leak would land: the comments, the tfbot log, every Redis value, every file in the state directory."""
    written = {"comments": "\n".join(c["body"] for c in sc.fake.comments(REPO, 2)),
               "tfbot log": sc.logs(), **sc.redis_texts()}
    for path in sc.state_root.rglob("*"):
        if path.is_file():
            written[str(path)] = path.read_text(errors="replace")
    return written


def test_a_hostile_pr_finds_nothing_in_the_sandbox_and_runs_as_each_phases_role(world):
    sc, key_file = world("bubblewrap")
    _, applied, loot = run_the_hostile_pr(sc, key_file)
    written = everything_written(sc)

    assert "Apply complete!" in applied
    run_logs = "\n".join(text for where, text in written.items() if where.startswith("tfbot:"))
    assert re.search(r"plan IDENTITY arn:aws:sts::123456789012:assumed-role/tfbot-plan/acme\.infra-pr2-plan-", run_logs)
    assert re.search(r"apply IDENTITY arn:aws:sts::123456789012:assumed-role/tfbot-apply/acme\.infra-pr2-apply-",
                     applied)
    assert "AWS_ACCESS_KEY_ID=ASIA" in loot  # the apply role's short-lived key, not tfbot's own
    assert "AKIATFBOTOWNKEY00001" not in loot and "TFBOT_" not in loot
    assert "loot" in str(written)  # the loot file is among the files checked
    for where, text in written.items():
        for name, value in secrets_of(sc, key_file).items():
            if name == "another PR's working copy" and where.startswith("tfbot:"):
                continue  # that PR's own plan and run log hold it
            assert value not in text, f"the {name} appears in {where}"


def test_without_the_sandbox_the_same_pr_takes_everything(world):
    sc, key_file = world("none")
    _, applied, loot = run_the_hostile_pr(sc, key_file)

    found = {name for name, value in secrets_of(sc, key_file).items() if value in loot}
    # The scrubbed environment keeps tfbot's variables out of `env`, but /proc/<tfbot pid>/environ has them all.
    assert {"webhook secret", "session key", "tfbot's own AWS secret", "another PR's working copy", "Redis",
            "App key line 1"} <= found, loot[:3000]
