"""Local bare git repositories standing in for repositories on GitHub.

A `RemoteRepo` is a real bare repository reached by a `file://` URL, so the bot
clones and fetches it with plain git exactly as it would clone github.com.
Commits are written straight into the bare repository with git plumbing
(`fast-import`, `merge-tree`, `commit-tree`, `update-ref`): no work tree, no
push, one git process per commit, so a test can make dozens of commits cheaply.
"""
from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class Symlink:
    """A file value for `commit`: a symbolic link to `target` (git mode 120000), relative to the link's dir."""

    target: str


FileContent = Union[str, bytes, Symlink, None]

# Commit dates advance one second per commit from a fixed point: shas are the
# same on every run, and two commits with the same tree and parent (say, two
# PR branches with identical edits) still get different shas, as on GitHub.
_EPOCH = 1_700_000_000

# Nothing from the machine's or the user's git config may leak in (hooks,
# signing, another default branch): CI and developers' machines differ.
_ISOLATED_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "LC_ALL": "C",
}

_STATUS_NAMES = {"A": "added", "M": "modified", "D": "removed", "T": "changed"}


class GitError(RuntimeError):
    """A git command failed; the message carries its argv and stderr."""


class MergeConflict(GitError):
    """The branches do not merge cleanly (GitHub would show the PR as unmergeable)."""


def git_env() -> dict[str, str]:
    """The environment the helpers run git with: the process env, isolated from any git config."""
    return {**os.environ, **_ISOLATED_ENV}


def _quote_path(path: str) -> str:
    # fast-import accepts C-style quoted paths everywhere; quoting always
    # spares us from deciding which names (spaces, quotes, newlines) need it.
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class RemoteRepo:
    """A bare repository under `root` named like a GitHub repository (`owner/name`)."""

    def __init__(self, root: Path, full_name: str = "acme/infra", default_branch: str = "main") -> None:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"full_name must look like 'owner/name', got {full_name!r}")
        self.full_name = full_name
        self.owner = owner
        self.name = name
        self.default_branch = default_branch
        self.path = Path(root) / owner / f"{name}.git"
        self._clock = itertools.count(_EPOCH)
        self.path.mkdir(parents=True, exist_ok=False)
        self._git("-c", f"init.defaultBranch={default_branch}", "init", "--quiet", "--bare", "-b", default_branch)
        # GitHub lets clients fetch any reachable commit by sha and supports
        # partial clones; a fetch strategy that works here must work there.
        self._git("config", "uploadpack.allowReachableSHA1InWant", "true")
        self._git("config", "uploadpack.allowFilter", "true")

    @property
    def clone_url(self) -> str:
        """The `file://` URL to clone, fetch or ls-remote."""
        return self.path.as_uri()

    # ---- reading -----------------------------------------------------------

    def branch_sha(self, branch: str) -> str:
        """The sha at the tip of `branch`; GitError if it does not exist."""
        return self.rev_parse(f"refs/heads/{branch}")

    def has_branch(self, branch: str) -> bool:
        """Whether `branch` exists."""
        return self._ref_sha(f"refs/heads/{branch}") is not None

    def rev_parse(self, rev: str) -> str:
        """The commit sha that `rev` (a ref, branch or sha) names."""
        result = self._run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], check=False)
        if result.returncode != 0:
            raise GitError(f"{rev!r} names no commit in {self.full_name}")
        return result.stdout.decode().strip()

    def ref_sha(self, ref: str) -> str | None:
        """The sha a full ref name (e.g. `refs/pull/3/head`) points at, or None if absent."""
        return self._ref_sha(ref)

    def read_file(self, rev: str, path: str) -> str | None:
        """The text of `path` at `rev`, or None if the file is not there."""
        result = self._run(["cat-file", "blob", f"{rev}:{path}"], check=False)
        return result.stdout.decode() if result.returncode == 0 else None

    def list_files(self, rev: str) -> list[str]:
        """Every file path in the tree of `rev`, sorted."""
        return sorted(self._git("ls-tree", "-r", "-z", "--name-only", rev).split("\0")[:-1])

    def parents(self, rev: str) -> list[str]:
        """The parent shas of the commit `rev` names (two for a merge commit)."""
        return self._git("rev-list", "--parents", "-n", "1", rev).split()[1:]

    def changed_files(self, base: str, head: str) -> list[dict[str, str]]:
        """Files a PR from `head` into `base` changes, as GitHub lists them: diff from the merge base.

        Each item is `{"filename": path, "status": "added" | "modified" | "removed" | "changed"}`;
        renames are listed as a removal and an addition (both paths matter to the bot).
        """
        out = self._git("diff", "--no-renames", "--name-status", "-z", f"{base}...{head}")
        return _parse_name_status(out)

    def commits_between(self, before: str, after: str) -> list[dict]:
        """The commits a push from `before` to `after` brings, oldest first, in plain dicts.

        Keys: id, tree_id, message, timestamp (unix seconds), author_name, author_email,
        added, removed, modified (paths against the first parent). For a new branch
        (`before` is forty zeros) only `after` itself is listed.
        """
        revs = ["-n", "1", after] if before == ZERO_SHA else [f"{before}..{after}"]
        fields = "%x1e%H%x1f%T%x1f%ct%x1f%an%x1f%ae%x1f%B%x1f"
        # One git call for all commits: \x1e starts a commit, \x1f ends each field,
        # then the commit's files against its first parent follow as NUL-separated pairs.
        out = self._git(
            "log", "--reverse", "--no-renames", "--diff-merges=first-parent", "--name-status", "-z",
            f"--format={fields}", *revs,
        )
        return [_parse_log_entry(entry) for entry in out.split("\x1e")[1:]]

    # ---- writing -----------------------------------------------------------

    def commit(
        self,
        branch: str,
        files: Mapping[str, FileContent],
        message: str = "Change files",
        parent_branch: str | None = None,
    ) -> str:
        """Commit `files` onto `branch` and return the new sha.

        A value of None deletes that path. An existing branch grows from its tip
        (`parent_branch` is then ignored); a new branch starts from `parent_branch`,
        else from the default branch; the default branch's first commit is a root commit.
        """
        parent = self._ref_sha(f"refs/heads/{branch}")
        if parent is None:
            parent = self._new_branch_parent(branch, parent_branch)
        return self._fast_import(branch, parent, files, message)

    def push_direct(self, branch: str, files: Mapping[str, FileContent], message: str = "Direct push") -> str:
        """Commit straight onto an existing branch, as a push that bypasses PRs would; returns the sha."""
        parent = self._ref_sha(f"refs/heads/{branch}")
        if parent is None:
            raise GitError(f"push_direct: branch {branch!r} does not exist in {self.full_name}")
        return self._fast_import(branch, parent, files, message)

    def create_pull_ref(self, number: int, sha: str) -> None:
        """Point `refs/pull/<number>/head` at `sha`, as GitHub does for every PR head."""
        self._update_ref(f"refs/pull/{number}/head", self.rev_parse(sha))

    def create_merge_ref(self, number: int, head: str, base: str | None = None) -> str:
        """Write GitHub's test merge `refs/pull/<number>/merge` (head merged into base) without moving base.

        Returns the merge commit sha; raises MergeConflict when GitHub would report the PR unmergeable.
        """
        base = base or self.default_branch
        base_sha, head_sha = self.branch_sha(base), self.rev_parse(head)
        tree = self._merge_tree(base_sha, head_sha)
        sha = self._commit_tree(tree, [base_sha, head_sha], f"Merge {head_sha} into {base_sha}")
        self._update_ref(f"refs/pull/{number}/merge", sha)
        return sha

    def merge(
        self,
        pr_branch: str,
        into: str | None = None,
        message: str | None = None,
        squash: bool = False,
    ) -> str:
        """Merge `pr_branch` into `into` (default branch) as GitHub's merge button does; returns the new tip.

        Always a new commit, even when a fast-forward were possible: two parents
        (base tip, PR tip), or with `squash` one parent and the merged tree.
        Raises MergeConflict when the branches do not merge cleanly.
        """
        into = into or self.default_branch
        base_sha, head_sha = self.branch_sha(into), self.branch_sha(pr_branch)
        tree = self._merge_tree(base_sha, head_sha)
        parents = [base_sha] if squash else [base_sha, head_sha]
        sha = self._commit_tree(tree, parents, message or f"Merge branch '{pr_branch}' into {into}")
        self._update_ref(f"refs/heads/{into}", sha, expected=base_sha)
        return sha

    def set_branch(self, branch: str, sha: str) -> None:
        """Move `branch` to `sha` whatever it held, as a force push does."""
        self._update_ref(f"refs/heads/{branch}", self.rev_parse(sha))

    def delete_branch(self, branch: str) -> None:
        """Delete `branch`, as GitHub's 'delete branch' after a merge does."""
        self._git("update-ref", "-d", f"refs/heads/{branch}")

    # ---- plumbing ----------------------------------------------------------

    def _new_branch_parent(self, branch: str, parent_branch: str | None) -> str | None:
        if parent_branch is not None:
            return self.branch_sha(parent_branch)
        if branch == self.default_branch:
            return None
        default_tip = self._ref_sha(f"refs/heads/{self.default_branch}")
        if default_tip is None:
            raise GitError(
                f"cannot start {branch!r}: {self.default_branch!r} has no commits yet; commit to it first"
            )
        return default_tip

    def _fast_import(self, branch: str, parent: str | None, files: Mapping[str, FileContent], message: str) -> str:
        when = next(self._clock)
        msg = message.encode()
        env = _ISOLATED_ENV
        stream = bytearray()
        stream += f"commit refs/heads/{branch}\nmark :1\n".encode()
        stream += f"author {env['GIT_AUTHOR_NAME']} <{env['GIT_AUTHOR_EMAIL']}> {when} +0000\n".encode()
        stream += f"committer {env['GIT_COMMITTER_NAME']} <{env['GIT_COMMITTER_EMAIL']}> {when} +0000\n".encode()
        stream += f"data {len(msg)}\n".encode() + msg + b"\n"
        if parent is not None:
            stream += f"from {parent}\n".encode()
        for path, content in files.items():
            if content is None:
                stream += f"D {_quote_path(path)}\n".encode()
                continue
            mode = "120000" if isinstance(content, Symlink) else "100644"
            if isinstance(content, Symlink):
                content = content.target
            data = content.encode() if isinstance(content, str) else content
            stream += f"M {mode} inline {_quote_path(path)}\ndata {len(data)}\n".encode() + data + b"\n"
        # get-mark answers on stdout once the commit exists, saving a rev-parse.
        stream += b"get-mark :1\n"
        sha = self._run(["fast-import", "--quiet", "--done"], stdin=bytes(stream) + b"done\n").stdout
        return sha.decode().strip()

    def _merge_tree(self, base_sha: str, head_sha: str) -> str:
        result = self._run(["merge-tree", "--write-tree", "--messages", base_sha, head_sha], check=False)
        out = result.stdout.decode()
        if result.returncode == 1:
            raise MergeConflict(f"{head_sha} does not merge cleanly into {base_sha}:\n{out}")
        if result.returncode != 0:
            raise GitError(f"git merge-tree failed ({result.returncode}): {result.stderr.decode()}")
        return out.splitlines()[0]

    def _commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        when = next(self._clock)
        args = ["commit-tree", tree, "-m", message]
        for parent in parents:
            args += ["-p", parent]
        env = {"GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
        return self._run(args, extra_env=env).stdout.decode().strip()

    def _ref_sha(self, ref: str) -> str | None:
        result = self._run(["rev-parse", "--verify", "--quiet", ref], check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def _update_ref(self, ref: str, sha: str, expected: str | None = None) -> None:
        args = ["update-ref", ref, sha] + ([expected] if expected else [])
        self._git(*args)

    def _git(self, *args: str) -> str:
        return self._run(list(args)).stdout.decode()

    def _run(
        self,
        args: list[str],
        stdin: bytes | None = None,
        check: bool = True,
        extra_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = ["git", f"--git-dir={self.path}", *args]
        env = {**git_env(), **(extra_env or {})}
        result = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
        if check and result.returncode != 0:
            raise GitError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode().strip()}")
        return result

    def __repr__(self) -> str:
        return f"RemoteRepo({self.full_name!r}, {self.clone_url!r})"


def _parse_log_entry(entry: str) -> dict:
    sha, tree, ts, name, email, body, files = entry.split("\x1f", 6)
    by_status: dict[str, list[str]] = {"added": [], "removed": [], "modified": []}
    for item in _parse_name_status(files.lstrip("\0\n")):
        by_status.setdefault(item["status"], []).append(item["filename"])
    return {
        "id": sha,
        "tree_id": tree,
        "message": body.rstrip("\n"),
        "timestamp": int(ts),
        "author_name": name,
        "author_email": email,
        "added": by_status["added"],
        "removed": by_status["removed"],
        "modified": by_status["modified"],
    }


def _parse_name_status(out: str) -> list[dict[str, str]]:
    # With -z the output alternates status and path, each NUL-terminated.
    parts = out.split("\0")[:-1]
    return [
        {"filename": path, "status": _STATUS_NAMES.get(status[0], "changed")}
        for status, path in zip(parts[0::2], parts[1::2])
    ]
