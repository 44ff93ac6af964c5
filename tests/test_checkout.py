"""Mirrors and working copies against real git repositories (file:// and a local smart-HTTP server)."""
from __future__ import annotations

import base64
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

import bot.adapters.git
from bot.adapters.git import CheckoutError, Checkouts, mask_credentials
from tests.support.git_repos import RemoteRepo, Symlink, git_env

REPO = "acme/infra"


@pytest.fixture
def checkouts(tmp_path: Path) -> Checkouts:
    return Checkouts(tmp_path / "data")


def git(cwd: Path, *args: str) -> str:
    """Inspect a working copy as a plain git client would."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=git_env())
    assert result.returncode == 0, f"git {args} failed: {result.stderr}"
    return result.stdout


def seed(remote: RemoteRepo) -> tuple[str, str]:
    """main with two environments and a module; PR #12 changes prod. Returns (base sha, head sha)."""
    base = remote.commit("main", {
        "envs/prod/main.tf": 'module "net" {\n  source = "../../modules/net"\n}\n',
        "envs/dev/main.tf": "# dev\n",
        "modules/net/main.tf": 'module "sub" { source = "./sub" }\n',
        "modules/net/sub/main.tf": 'provisioner "file" { source = "./files/app.conf" }\n',
        "modules/net/sub/files/app.conf": "x\n",
        "README.md": "infra\n",
    }, "Initial")
    head = remote.commit("feature", {"envs/prod/main.tf": 'module "net" { source = "../../modules/net" }\n# v2\n',
                                     "envs/prod/.terraform.lock.hcl": "# tracked lock\n"}, "Change prod")
    remote.create_pull_ref(12, head)
    return base, head


# --- fetching and checking out ----------------------------------------------------------------------


def test_fetch_stores_pr_head_and_base_under_tfbot_refs(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)

    shas = checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head", "refs/heads/main"])

    assert shas == {"refs/pull/12/head": head, "refs/heads/main": base}
    mirror = checkouts.mirror_path(REPO)
    refs = git(mirror, "for-each-ref", "--format=%(refname) %(objectname)").split("\n")
    assert f"refs/tfbot/pull/12/head {head}" in refs and f"refs/tfbot/heads/main {base}" in refs
    assert checkouts.has_commit(REPO, head) and checkouts.has_commit(REPO, base)


def test_fetch_takes_refspecs_into_refs_tfbot_and_unusual_branch_names(
    remote_repo: RemoteRepo, checkouts: Checkouts
) -> None:
    base, head = seed(remote_repo)
    odd = remote_repo.commit("fix/ümlaut+#1@x", {"odd.tf": ""}, parent_branch="main")
    spec = "+refs/pull/12/head:refs/tfbot/pull/12/head"

    shas = checkouts.fetch(REPO, remote_repo.clone_url, [spec, "refs/heads/fix/ümlaut+#1@x"])

    assert shas == {spec: head, "refs/heads/fix/ümlaut+#1@x": odd}
    assert checkouts.resolve(REPO, "refs/tfbot/heads/fix/ümlaut+#1@x") == odd
    assert checkouts.resolve(REPO, "refs/tfbot/heads/nope") is None
    for bad in ("+refs/heads/main:refs/heads/main", "refs/heads/a..b", "refs/heads/x:", "-x", "refs/heads/a b"):
        with pytest.raises(CheckoutError):
            checkouts.fetch(REPO, remote_repo.clone_url, [bad])


def test_working_copy_is_detached_at_exactly_the_head_sha(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    remote_repo.commit("feature", {"envs/prod/later.tf": "# pushed after the event\n"})  # not what we asked for
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/feature", "refs/heads/main"])

    path = checkouts.working_copy(REPO, 12, "prod", head)

    assert path == checkouts.working_copy_path(REPO, 12, "prod")
    assert git(path, "rev-parse", "HEAD").strip() == head
    assert git(path, "status", "--porcelain").strip() == ""
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=path, env=git_env()).returncode != 0  # detached
    assert "v2" in (path / "envs/prod/main.tf").read_text()
    assert not (path / "envs/prod/later.tf").exists()

    with pytest.raises(CheckoutError, match="fetch it first"):
        checkouts.working_copy(REPO, 12, "prod", "f" * 40)


def test_two_projects_of_one_pr_check_out_in_parallel(remote_repo: RemoteRepo, tmp_path: Path) -> None:
    base, head = seed(remote_repo)
    data = tmp_path / "data"

    def run(slug: str) -> Path:
        # One Checkouts each, as separate worker processes would have: they share only the disk.
        mine = Checkouts(data)
        mine.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head", "refs/heads/main"])
        return mine.working_copy(REPO, 12, slug, head)

    slugs = [f"project-{i}" for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        paths = list(pool.map(run, slugs))

    assert len(set(paths)) == 6
    for path in paths:
        assert git(path, "rev-parse", "HEAD").strip() == head
        assert git(path, "status", "--porcelain").strip() == ""
        assert "v2" in (path / "envs/prod/main.tf").read_text()
    listed = git(Checkouts(data).mirror_path(REPO), "worktree", "list", "--porcelain")
    assert all(f"worktree {p}" in listed for p in paths)


def test_later_push_reuses_the_copy_keeping_only_dot_terraform(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head"])
    path = checkouts.working_copy(REPO, 12, "prod", head)
    prod = path / "envs/prod"
    # What a terraform run leaves behind, and what a user's code might write.
    (prod / ".terraform/providers").mkdir(parents=True)
    (prod / ".terraform/providers/marker").write_text("provider binary")
    (prod / "plan.tfplan").write_text("old plan")
    (prod / "ignored.log").write_text("x")
    (path / ".gitignore").write_text("*.log\n")
    (prod / ".terraform.lock.hcl").write_text("# rewritten by init\n")  # tracked: must be reset
    (path / "envs/dev/.terraform.lock.hcl").write_text("# untracked, from an old init\n")  # must go

    new_head = remote_repo.commit("feature", {"envs/prod/extra.tf": "# extra\n", "README.md": None}, "Push 2")
    remote_repo.create_pull_ref(12, new_head)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head"])
    again = checkouts.working_copy(REPO, 12, "prod", new_head)

    assert again == path
    assert git(path, "rev-parse", "HEAD").strip() == new_head
    assert (prod / "extra.tf").exists() and not (path / "README.md").exists()
    assert (prod / ".terraform/providers/marker").read_text() == "provider binary"
    assert not (prod / "plan.tfplan").exists() and not (prod / "ignored.log").exists()
    assert not (path / ".gitignore").exists()
    assert (prod / ".terraform.lock.hcl").read_text() == "# tracked lock\n"
    assert not (path / "envs/dev/.terraform.lock.hcl").exists()
    assert git(path, "status", "--porcelain", "--ignored").strip() == "?? envs/prod/.terraform/"


def test_copy_that_lost_its_git_file_is_rebuilt_without_touching_an_enclosing_repository(
    remote_repo: RemoteRepo, tmp_path: Path
) -> None:
    # data_dir inside someone's git checkout: a lost `.git` file must not let git find that repository.
    outer = tmp_path / "outer"
    outer.mkdir()
    git(outer, "init", "-q")
    (outer / "precious.txt").write_text("untracked work")
    checkouts = Checkouts(outer / "data")
    base, head = seed(remote_repo)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head"])
    path = checkouts.working_copy(REPO, 12, "prod", head)
    assert git(outer, "status", "--porcelain").split("\n")[:2] == ["?? data/", "?? precious.txt"]
    (path / ".git").unlink()
    (path / "stray.txt").write_text("x")

    again = checkouts.working_copy(REPO, 12, "prod", head)

    assert again == path and git(path, "rev-parse", "HEAD").strip() == head
    assert not (path / "stray.txt").exists()
    assert (outer / "precious.txt").read_text() == "untracked work"
    assert git(outer, "status", "--porcelain").split("\n")[:2] == ["?? data/", "?? precious.txt"]
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=outer, env=git_env(), capture_output=True).returncode != 0


def test_copy_that_cannot_be_reset_is_rebuilt(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head", "refs/heads/main"])
    path = checkouts.working_copy(REPO, 12, "prod", base)
    index = Path(git(path, "rev-parse", "--git-path", "index").strip())
    index = index if index.is_absolute() else path / index
    index.write_bytes(b"DIRC garbage")  # as a worker killed mid-write might leave it
    (path / "stray.txt").write_text("x")

    again = checkouts.working_copy(REPO, 12, "prod", head)

    assert again == path and git(path, "rev-parse", "HEAD").strip() == head
    assert git(path, "status", "--porcelain").strip() == ""
    assert not (path / "stray.txt").exists()


def test_repository_hooks_and_user_config_are_ignored(
    remote_repo: RemoteRepo, checkouts: Checkouts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, head = seed(remote_repo)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head"])
    ran = tmp_path / "hook-ran"
    hook = checkouts.mirror_path(REPO) / "hooks/post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {ran}\n")
    hook.chmod(0o755)
    # A user config that would send every fetch elsewhere, and a GIT_DIR that would redirect every command.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[url "file:///nonexistent/"]\n\tinsteadOf = {remote_repo.clone_url}\n')
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))

    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/main"])
    path = checkouts.working_copy(REPO, 12, "prod", head)

    monkeypatch.undo()  # our own inspection below needs a plain environment
    assert git(path, "rev-parse", "HEAD").strip() == head
    assert not ran.exists()


# --- reading commits --------------------------------------------------------------------------------


def test_changed_files_of_a_5000_file_pr_are_relative_to_the_merge_base(
    remote_repo: RemoteRepo, checkouts: Checkouts
) -> None:
    base, _ = seed(remote_repo)
    many = {f"stacks/s{i // 100}/f{i}.tf": f"# {i}\n" for i in range(5000)}
    head = remote_repo.commit("big", {**many, "envs/dev/main.tf": None}, "5,000 files", parent_branch="main")
    remote_repo.commit("main", {"envs/dev/other.tf": "# landed on main after the PR branched\n"})
    shas = checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/big", "refs/heads/main"])

    started = time.perf_counter()
    changed = checkouts.changed_files(REPO, shas["refs/heads/main"], head)
    print(f"\nchanged_files of 5,001 paths: {(time.perf_counter() - started) * 1000:.0f} ms")

    assert len(changed) == 5001
    assert set(changed) == set(many) | {"envs/dev/main.tf"}  # deleted files count; main's own change does not
    assert changed == sorted(changed)


def test_changed_files_needs_both_commits(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/main"])
    with pytest.raises(CheckoutError, match="fetch both"):
        checkouts.changed_files(REPO, base, head)


def test_tf_dirs_lists_dirs_holding_terraform_files(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    sha = remote_repo.commit("feature", {
        "root.tf": "", "json/main.tf.json": "{}", "vars/only.tfvars": "", "hidden/.x.tf": "", "docs/a.md": "",
    })
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/feature"])

    assert checkouts.tf_dirs(REPO, sha) == {".", "json", "envs/prod", "envs/dev", "modules/net", "modules/net/sub"}
    assert checkouts.list_files(REPO, sha, "modules/net/sub") == [
        "modules/net/sub/files/app.conf", "modules/net/sub/main.tf",
    ]


def test_tree_hash_changes_only_when_the_dir_changes(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    dev_change = remote_repo.commit("feature", {"envs/dev/main.tf": "# dev v2\n"})
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/feature"])

    def tree(sha: str, path: str) -> str | None:
        return checkouts.tree_hash(REPO, sha, path)

    assert tree(head, "envs/prod") == tree(dev_change, "envs/prod")
    assert tree(head, "./envs/prod/") == tree(head, "envs/prod")
    assert tree(head, "envs/dev") != tree(dev_change, "envs/dev")
    assert tree(base, "envs/prod") != tree(head, "envs/prod")
    assert tree(head, ".") != tree(dev_change, ".")
    assert tree(head, "missing") is None
    assert tree(head, "README.md") is not None  # a file's blob id works too


def test_read_files(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head"])

    texts = checkouts.read_files(REPO, head, ["envs/dev/main.tf", "README.md", "missing.tf", "envs", "a\nb"])

    assert texts == {"envs/dev/main.tf": "# dev\n", "README.md": "infra\n"}


def test_tree_entries_list_files_and_symlinks_with_their_blobs(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    sha = remote_repo.commit("feature", {"envs/dev/net": Symlink("../../modules/net"), "sp ace/ü.tf": "# x\n"})
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/heads/feature"])

    entries = {e.path: e for e in checkouts.tree_entries(REPO, sha)}

    assert entries["envs/dev/net"].is_link and not entries["envs/prod/main.tf"].is_link
    assert "sp ace/ü.tf" in entries and len(entries) == 9
    blobs = checkouts.read_blobs(REPO, [entries["envs/dev/net"].oid, entries["README.md"].oid, "0" * 40])
    assert blobs == {entries["envs/dev/net"].oid: "../../modules/net", entries["README.md"].oid: "infra\n"}


# --- credentials ------------------------------------------------------------------------------------


def test_credentials_never_reach_an_error_message(checkouts: Checkouts) -> None:
    with pytest.raises(CheckoutError) as caught:
        checkouts.fetch(REPO, "https://x-access-token:SECRET@127.0.0.1:1/x.git", ["refs/heads/main"])

    message = str(caught.value)
    assert "SECRET" not in message
    assert "https://x-access-token:***@127.0.0.1:1/x.git" in message
    assert "127.0.0.1" in message  # git's own reason is kept

    with pytest.raises(CheckoutError) as caught:
        checkouts.fetch(REPO, "https://127.0.0.1:1/x.git", ["refs/heads/main"], token="ghs_SECRETTOKEN")
    assert "SECRETTOKEN" not in str(caught.value)


def test_mask_credentials() -> None:
    text = "fatal: https://x-access-token:abc123@github.com/a/b.git and http://tok@h:8/x, plain https://h/x"
    assert mask_credentials(text) == (
        "fatal: https://x-access-token:***@github.com/a/b.git and http://***@h:8/x, plain https://h/x"
    )
    assert mask_credentials("header: dG9rZW4=", ["dG9rZW4="]) == "header: ***"


def test_only_safe_urls_and_refs_are_fetched(checkouts: Checkouts, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(CheckoutError, match="only https, http and file"):
        checkouts.fetch(REPO, f"ext::sh -c touch% {marker}", ["refs/heads/main"])
    with pytest.raises(CheckoutError, match="not a full ref"):
        checkouts.fetch(REPO, "https://github.com/a/b.git", ["main"])
    with pytest.raises(ValueError):
        checkouts.working_copy("acme/../etc", 1, "p", "a" * 40)
    with pytest.raises(ValueError):
        checkouts.working_copy(REPO, 1, "../p", "a" * 40)
    with pytest.raises(ValueError):
        checkouts.tree_hash(REPO, "HEAD", ".")
    assert not marker.exists()


class _GitHTTP(BaseHTTPRequestHandler):
    """Smart HTTP through `git http-backend`, answering 401 unless the request carries `expected_auth`."""

    project_root: Path
    expected_auth: str
    seen_auth: list[str | None]

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        auth = self.headers.get("Authorization")
        self.seen_auth.append(auth)
        if auth != self.expected_auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {**git_env(), "GIT_PROJECT_ROOT": str(self.project_root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "REMOTE_ADDR": "127.0.0.1",
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", "")}
        body = self._body()
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_git(remote_repo: RemoteRepo) -> Iterator[Callable[[str], tuple[str, list[str | None]]]]:
    """Serve the remote repo over HTTP on 127.0.0.1, accepting only `x-access-token:<token>`."""
    servers = []

    def start(token: str) -> tuple[str, list[str | None]]:
        seen: list[str | None] = []
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        handler = type("Handler", (_GitHTTP,), {"project_root": remote_repo.path.parent.parent,
                                                "expected_auth": f"Basic {basic}", "seen_auth": seen})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/acme/infra.git", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_token_authenticates_over_http_without_appearing_in_argv_or_on_disk(
    remote_repo: RemoteRepo, checkouts: Checkouts, http_git, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, head = seed(remote_repo)
    url, seen = http_git("ghs_T0KEN")
    argvs: list[list[str]] = []
    real_popen = subprocess.Popen

    class Recording(real_popen):  # type: ignore[misc,valid-type]
        def __init__(self, args, *rest, **kwargs):  # noqa: ANN001 - Popen's own signature
            argvs.append([str(a) for a in args])
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(bot.adapters.git.subprocess, "Popen", Recording)
    authed = url.replace("http://", "http://x-access-token:ghs_T0KEN@")

    assert checkouts.fetch(REPO, authed, ["refs/pull/12/head"]) == {"refs/pull/12/head": head}
    assert checkouts.fetch(REPO, url, ["refs/heads/main"], token="ghs_T0KEN") == {"refs/heads/main": base}
    with pytest.raises(CheckoutError) as caught:
        checkouts.fetch(REPO, url.replace("http://", "http://x-access-token:ghs_WR0NG@"), ["refs/heads/main"])

    assert seen and all(a is not None for a in seen), "credentials are sent up front, not after a 401"
    assert "ghs_WR0NG" not in str(caught.value)
    assert "the server rejected the credentials" in str(caught.value)
    fetches = [a for a in argvs if "fetch" in a]
    assert len(fetches) == 3 and not any("T0KEN" in " ".join(a) or "WR0NG" in " ".join(a) for a in argvs)
    for path in checkouts.data_dir.rglob("*"):
        if path.is_file():
            assert b"T0KEN" not in path.read_bytes(), path


# --- cleaning up ------------------------------------------------------------------------------------


def test_ensure_commit_fetches_a_missing_sha_into_the_pr_namespace(
    remote_repo: RemoteRepo, checkouts: Checkouts
) -> None:
    base, head = seed(remote_repo)
    merge = remote_repo.merge("feature")
    remote_repo.commit("main", {"later.tf": ""})  # the merge commit is no longer any branch's tip

    checkouts.ensure_commit(REPO, remote_repo.clone_url, merge, 12)

    assert checkouts.has_commit(REPO, merge)
    assert git(checkouts.mirror_path(REPO), "rev-parse", f"refs/tfbot/pull/12/commits/{merge}").strip() == merge
    checkouts.ensure_commit(REPO, remote_repo.clone_url, merge, 12)  # present: no fetch, no error


def test_remove_pull_deletes_only_that_pulls_copies_and_refs(remote_repo: RemoteRepo, checkouts: Checkouts) -> None:
    base, head = seed(remote_repo)
    other = remote_repo.commit("other", {"envs/dev/main.tf": "# other\n"}, parent_branch="main")
    remote_repo.create_pull_ref(13, other)
    checkouts.fetch(REPO, remote_repo.clone_url, ["refs/pull/12/head", "refs/pull/13/head"])
    checkouts.ensure_commit(REPO, remote_repo.clone_url, remote_repo.merge("feature"), 12)
    copies = [checkouts.working_copy(REPO, 12, slug, head) for slug in ("prod", "dev")]
    (copies[0] / "envs/prod/.terraform").mkdir()
    keep = checkouts.working_copy(REPO, 13, "dev", other)
    mirror = checkouts.mirror_path(REPO)

    checkouts.remove_pull(REPO, 12)

    assert not any(c.exists() for c in copies) and not copies[0].parent.exists()
    assert git(keep, "rev-parse", "HEAD").strip() == other
    assert git(mirror, "for-each-ref", "--format=%(refname)", "refs/tfbot/pull/").split() == ["refs/tfbot/pull/13/head"]
    listed = git(mirror, "worktree", "list", "--porcelain")
    assert f"worktree {keep}" in listed and not any(str(c) in listed for c in copies)
    assert not list((checkouts.data_dir / "work" / ".trash").iterdir())
    checkouts.remove_pull(REPO, 12)  # again: nothing to do
    # The PR can come back (reopened): its copies are simply made again.
    assert git(checkouts.working_copy(REPO, 12, "prod", head), "rev-parse", "HEAD").strip() == head


def test_merge_commit_is_the_same_on_every_host_and_none_on_conflict(tmp_path, remote_repo):
    from bot.adapters.git import Checkouts

    base = remote_repo.commit("main", {"a.tf": "a\n", "b.tf": "b\n"})
    head = remote_repo.commit("feature", {"b.tf": "B\n"}, parent_branch="main")
    main = remote_repo.commit("main", {"c.tf": "c\n"})
    conflicting = remote_repo.commit("other", {"b.tf": "X\n"}, parent_branch="main")
    shas = []
    for host in ("one", "two"):
        checkouts = Checkouts(tmp_path / host)
        checkouts.fetch("acme/infra", remote_repo.clone_url, ["refs/heads/main", "refs/heads/feature", "refs/heads/other"])
        merged = checkouts.merge_commit("acme/infra", main, head, 7)
        assert merged is not None
        files = checkouts.read_files("acme/infra", merged, ["a.tf", "b.tf", "c.tf"])
        assert files == {"a.tf": "a\n", "b.tf": "B\n", "c.tf": "c\n"}
        shas.append(merged)
        assert checkouts.merge_commit("acme/infra", head, conflicting, 7) is None
    assert shas[0] == shas[1]  # deterministic: another host re-makes exactly the planned commit
    assert base != main
