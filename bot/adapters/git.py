"""Git working copies of pull requests: one shared mirror per repository, one working copy per (PR, project).

Layout under `data_dir`:
  git/<owner>/<repo>.git              bare mirror; every fetch lands here (refs under refs/tfbot/)
  git/<owner>/<repo>.git.lock         flock guarding fetch, mirror creation, worktree add/prune
  work/<owner>/<repo>/<pull>/<slug>/  a working copy: a `git worktree` of the mirror, detached at a sha

Why worktrees and not `git clone --shared`: a shared clone borrows the mirror's objects through
`alternates`, and the mirror's gc knows nothing about it, so after a force-push gc may prune a commit a
clone still has checked out (git-clone(1) warns about exactly this). A worktree's HEAD and index are
reachability roots of the mirror's own gc, creating one copies no refs or objects, and fetching happens
once per repository instead of once per copy. The price: adding and pruning worktrees write the mirror's
`worktrees/` metadata, so they run under the same lock as fetches; checkouts inside a worktree touch only
its own HEAD, index and files, so they run outside the lock, in parallel.

Contract of `Checkouts`:
- Safe to use from many threads and processes at once for different working copies. One working copy
  must be used by one run at a time: the runner's per-project run guard provides that.
- git never reads the machine's or the user's config (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL`),
  never prompts, never runs hooks, credential helpers or fsmonitor, and only speaks https, http and file.
- Credentials in a clone URL (`https://x-access-token:TOKEN@host/...`) are taken out of the URL and sent
  as an Authorization header given to git through its environment, so they never appear in argv (`ps`),
  in the mirror's config or refs, or in error messages. `CheckoutError` texts are masked regardless.
- Submodules are not fetched; files stored with Git LFS stay pointers (its filter is never configured).
"""
from __future__ import annotations

import base64
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from bot.adapters.logs import MASK
from bot.projects.modules import TreeEntry
from bot.projects.paths import is_tf_file, tf_dir_of

_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*)(?::(?P<pw>[^/@\s]*))?@")
_SCHEMES = ("https", "http", "file")


class CheckoutError(Exception):
    """A git operation failed; the message (git's stderr included) has credentials masked."""


def mask_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with URL credentials (`https://user:***@host`, `https://***@host`) and each of `secrets` masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)

    def userinfo(m: re.Match[str]) -> str:
        if m.group("pw") is not None:
            return f"{m.group('scheme')}{m.group('user')}:{MASK}@"
        return f"{m.group('scheme')}{MASK}@"  # a token alone in the user part (https://TOKEN@host)

    return _URL_USERINFO.sub(userinfo, text)


class Checkouts:
    """Mirrors and working copies of repositories under `data_dir` (see the module docstring for the contract)."""

    def __init__(self, data_dir: Path, git: str = "git", *, timeout: float = 900.0, lock_timeout: float = 1800.0):
        self.data_dir = Path(data_dir).resolve()
        self.git = git
        self.timeout = timeout  # one git command; a stalled transfer is cut sooner by http.lowSpeedTime
        self.lock_timeout = lock_timeout  # waiting for another process's fetch of the same repository

    # -- paths -------------------------------------------------------------------------------------

    def mirror_path(self, repo: str) -> Path:
        """The bare mirror of `repo` (owner/name); names are lower-cased, as GitHub treats them."""
        owner, name = _split_repo(repo)
        return self.data_dir / "git" / owner / f"{name}.git"

    def working_copy_path(self, repo: str, pull: int, project_slug: str) -> Path:
        """Where the working copy of one project of one PR lives (it may not exist yet)."""
        owner, name = _split_repo(repo)
        return self._pull_dir(owner, name, pull) / _check_slug(project_slug)

    # -- fetching ----------------------------------------------------------------------------------

    def fetch(self, repo: str, clone_url: str, refs: list[str], *, token: str | None = None,
              pull: int | None = None) -> dict[str, str]:
        """Fetch `refs` from `clone_url` into the mirror; returns {item of `refs`: sha it now stores}.

        An item is a full ref name, a commit sha, or a refspec `[+]SRC:refs/tfbot/...`. Every update is
        forced (PR heads are force-pushed). Without a destination, `refs/X` is stored as `refs/tfbot/X`,
        and a sha as `refs/tfbot/pull/<pull>/commits/<sha>` when `pull` is given (so `remove_pull` drops
        it), else `refs/tfbot/commits/<sha>`. `token`, or credentials in the URL, authenticate the fetch.
        """
        if not refs:
            return {}
        url, secrets, auth_env = _credentials(clone_url, token)
        specs, stored = [], {}
        for ref in refs:
            source, dest = _refspec(ref, pull)
            specs.append(f"+{source}:{dest}")
            stored[ref] = dest
        config = ["-c", "protocol.file.allow=always"] if urlsplit(url).scheme == "file" else []
        mirror = self.mirror_path(repo)
        what = f"git fetch from {mask_credentials(clone_url, secrets)}"
        with self._locked(repo):
            self._ensure_mirror(mirror)
            try:
                self._run([*config, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                           "--no-recurse-submodules", "--", url, *specs],
                          git_dir=mirror, env=auth_env, secrets=secrets, what=what)
            except CheckoutError as exc:
                # With prompts off, git reports a refused token as a failure to ask for a user name.
                if auth_env and "could not read Username" in str(exc):
                    raise CheckoutError(f"{exc} (the server rejected the credentials)") from None
                raise
            # Read under the lock: a concurrent fetch may move the same refs right after.
            shas = self._run(["rev-parse", *stored.values()], git_dir=mirror).stdout.decode().split()
        return dict(zip(stored, shas))

    def ensure_commit(self, repo: str, clone_url: str, sha: str, pull: int, *, token: str | None = None) -> None:
        """Make sure commit `sha` is in the mirror, fetching it (or else the PR's head ref) only if missing."""
        _check_sha(sha)
        if self.has_commit(repo, sha):
            return
        try:
            self.fetch(repo, clone_url, [sha], token=token, pull=pull)
        except CheckoutError:
            # A server that refuses to serve a sha directly still serves the PR's ref.
            self.fetch(repo, clone_url, [f"refs/pull/{int(pull)}/head"], token=token)
        if not self.has_commit(repo, sha):
            raise CheckoutError(f"commit {sha} is not in {repo} (neither fetchable by sha nor on PR #{pull})")

    def resolve(self, repo: str, ref: str) -> str | None:
        """The commit sha a ref of the mirror (e.g. `refs/tfbot/heads/main`) points at, or None."""
        if not _valid_ref(ref):
            raise ValueError(f"not a full ref name: {ref!r}")
        mirror = self.mirror_path(repo)
        if not (mirror / "HEAD").exists():
            return None
        result = self._run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], git_dir=mirror, check=False)
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip() or None

    def has_commit(self, repo: str, sha: str) -> bool:
        """Whether the mirror holds commit `sha`."""
        _check_sha(sha)
        mirror = self.mirror_path(repo)
        if not (mirror / "HEAD").exists():
            return False
        return self._run(["cat-file", "-e", f"{sha}^{{commit}}"], git_dir=mirror, check=False).returncode == 0

    def merge_commit(self, repo: str, base_sha: str, head_sha: str, pull: int) -> str | None:
        """The commit GitHub's merge button would make of `head_sha` into `base_sha`, or None on a conflict.

        Made in the mirror with `git merge-tree --write-tree` (no working copy) and a fixed author, date
        and message, so the same two commits give the same sha on every host: a worker elsewhere that
        must apply a plan made on this merge recreates it exactly. A ref under the PR keeps it from gc.
        """
        _check_sha(base_sha)
        _check_sha(head_sha)
        mirror = self.mirror_path(repo)
        with self._locked(repo):
            merged = self._run(["merge-tree", "--write-tree", "--no-messages", base_sha, head_sha], git_dir=mirror,
                               check=False)
            if merged.returncode == 1:
                return None  # conflicts: GitHub would not merge it either
            if merged.returncode != 0:
                raise CheckoutError(f"git merge-tree failed for {base_sha[:8]}..{head_sha[:8]}: "
                                    f"{merged.stderr.decode(errors='replace').strip()}")
            tree = merged.stdout.decode().split()[0]
            env = {**_git_env(), "GIT_AUTHOR_NAME": "tfbot", "GIT_AUTHOR_EMAIL": "tfbot@localhost",
                   "GIT_COMMITTER_NAME": "tfbot", "GIT_COMMITTER_EMAIL": "tfbot@localhost",
                   "GIT_AUTHOR_DATE": "1970-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "1970-01-01T00:00:00Z"}
            sha = self._run(["commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m",
                             f"tfbot: merge {head_sha} into {base_sha}"], git_dir=mirror, env=env).stdout.decode().strip()
            self._run(["update-ref", f"refs/tfbot/pull/{int(pull)}/merges/{sha}", sha], git_dir=mirror)
        return sha

    # -- working copies ----------------------------------------------------------------------------

    def working_copy(self, repo: str, pull: int, project_slug: str, sha: str) -> Path:
        """The PR's working copy for one project, at exactly `sha`, clean but for `.terraform` dirs.

        The commit must be in the mirror already (`fetch`/`ensure_commit`). Untracked and ignored files
        go, `.terraform.lock.hcl` included: a lock file that `terraform init` wrote for an older head
        would pin provider versions the new head's constraints may reject (a tracked one is reset to
        the head's version). `.terraform` dirs stay, so init reuses providers and modules.
        A copy that cannot be reset (killed mid-checkout, damaged) is rebuilt once from scratch.
        """
        return self._checkout(repo, self.working_copy_path(repo, pull, project_slug), sha)

    def branch_copy(self, repo: str, project_slug: str, sha: str) -> Path:
        """A working copy of one project at `sha` on a branch, outside every PR's (a drift check plans the default
        branch's head here); kept as `working_copy` keeps a PR's, under `work/<owner>/<name>/branch/`."""
        owner, name = _split_repo(repo)
        return self._checkout(repo, self.data_dir / "work" / owner / name / "branch" / _check_slug(project_slug), sha)

    def _checkout(self, repo: str, path: Path, sha: str) -> Path:
        _check_sha(sha)
        if not self.has_commit(repo, sha):
            raise CheckoutError(f"commit {sha} is not in the mirror of {repo}: fetch it first")
        try:
            gitdir = self._worktree_gitdir(repo, path) or self._add_worktree(repo, path, sha)
            self._reset(gitdir, path, sha)
        except CheckoutError:
            self._discard(repo, path)
            self._reset(self._add_worktree(repo, path, sha), path, sha)
        return path

    def remove_pull(self, repo: str, pull: int) -> None:
        """Delete every working copy of PR `pull` and its refs; call it when no run of the PR is under way."""
        owner, name = _split_repo(repo)
        pull_dir = self._pull_dir(owner, name, pull)
        mirror = self.mirror_path(repo)
        trash = self.data_dir / "work" / ".trash" / uuid.uuid4().hex
        with self._locked(repo):
            if pull_dir.exists():
                # Move aside under the lock (instant), delete outside it (provider binaries are large).
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(pull_dir, trash)
            if (mirror / "HEAD").exists():
                self._run(["worktree", "prune"], git_dir=mirror)
                listed = self._run(["for-each-ref", "--format=%(refname)", f"refs/tfbot/pull/{int(pull)}/"],
                                   git_dir=mirror).stdout.decode().split()
                if listed:
                    commands = "".join(f"delete {ref}\n" for ref in listed).encode()
                    self._run(["update-ref", "--stdin"], git_dir=mirror, input=commands)
        shutil.rmtree(trash, ignore_errors=True)

    # -- reading commits ---------------------------------------------------------------------------

    def changed_files(self, repo: str, base_sha: str, head_sha: str) -> list[str]:
        """Paths a PR from `head_sha` into `base_sha` changes (diff from their merge base), renames as two paths."""
        _check_sha(base_sha)
        _check_sha(head_sha)
        mirror = self.mirror_path(repo)
        merge_base = self._run(["merge-base", base_sha, head_sha], git_dir=mirror, check=False)
        if merge_base.returncode != 0:
            raise CheckoutError(f"{base_sha[:12]} and {head_sha[:12]} of {repo} share no history "
                                f"(or one is missing: fetch both first): {_text(merge_base.stderr)}")
        base = merge_base.stdout.decode().split()[0]
        out = self._run(["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", "--no-textconv",
                         base, head_sha], git_dir=mirror).stdout
        return _nul_split(out)

    def list_files(self, repo: str, sha: str, under: str = ".") -> list[str]:
        """Repo-relative paths of every file at `sha` below dir `under` (recursively)."""
        _check_sha(sha)
        under = _repo_path(under)
        args = ["ls-tree", "-r", "--name-only", "-z", sha] + ([] if under == "." else ["--", f"{under}/"])
        return _nul_split(self._run(args, git_dir=self.mirror_path(repo)).stdout)

    def tf_dirs(self, repo: str, sha: str) -> set[str]:
        """Dirs (repo-relative, '.' for the root) holding Terraform files (`*.tf`, `*.tf.json`) at `sha`."""
        return {tf_dir_of(p) for p in self.list_files(repo, sha) if is_tf_file(p)}

    def read_files(self, repo: str, sha: str, paths: Iterable[str], max_bytes: int = 1024 * 1024) -> dict[str, str]:
        """The text of each of `paths` at `sha` (one `git cat-file --batch`); missing, non-file or larger
        than `max_bytes` paths are left out, bytes that are not UTF-8 are replaced."""
        _check_sha(sha)
        wanted = [p for p in dict.fromkeys(_repo_path(p) for p in paths) if "\n" not in p and p != "."]
        if not wanted:
            return {}
        texts = self._cat_blobs(repo, [f"{sha}:{p}" for p in wanted], max_bytes)
        return {path: texts[f"{sha}:{path}"] for path in wanted if f"{sha}:{path}" in texts}

    def tree_hash(self, repo: str, sha: str, path: str) -> str | None:
        """The object id of `path` (a dir's tree, or a file's blob) at `sha`; None if absent there."""
        _check_sha(sha)
        path = _repo_path(path)
        rev = f"{sha}^{{tree}}" if path == "." else f"{sha}:{path}"
        result = self._run(["rev-parse", "--verify", "--quiet", rev], git_dir=self.mirror_path(repo), check=False)
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip() or None

    def tree_entries(self, repo: str, sha: str) -> list[TreeEntry]:
        """Every file and symlink of commit `sha` (`git ls-tree -r`), with its mode and blob id; submodules are
        left out."""
        _check_sha(sha)
        out = self._run(["ls-tree", "-r", "-z", "--full-tree", sha], git_dir=self.mirror_path(repo)).stdout
        entries = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, oid = meta.decode().split()
            if kind == "blob":
                entries.append(TreeEntry(path=path.decode(errors="replace"), mode=mode, oid=oid))
        return entries

    def read_blobs(self, repo: str, oids: Iterable[str], max_bytes: int = 1024 * 1024) -> dict[str, str]:
        """The text of each blob in `oids` (one `git cat-file --batch`): {oid: text}; missing blobs and blobs
        larger than `max_bytes` are left out, bytes that are not UTF-8 are replaced."""
        wanted = list(dict.fromkeys(oids))
        for oid in wanted:
            _check_sha(oid)
        return self._cat_blobs(repo, wanted, max_bytes)

    # -- internals ---------------------------------------------------------------------------------

    def _cat_blobs(self, repo: str, names: list[str], max_bytes: int) -> dict[str, str]:
        """{name: text} for each object name (`<sha>:<path>` or a blob id) that is a blob of at most `max_bytes`;
        one `git cat-file --batch`, bytes that are not UTF-8 replaced."""
        if not names:
            return {}
        request = "".join(f"{name}\n" for name in names).encode()
        out = self._run(["cat-file", "--batch"], git_dir=self.mirror_path(repo), input=request).stdout
        texts: dict[str, str] = {}
        pos = 0
        for name in names:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode(errors="replace").split()
            pos = end + 1
            if len(header) != 3 or not _SHA_RE.match(header[0]):  # "<name> missing" / "ambiguous"
                continue
            size = int(header[2])
            if header[1] == "blob" and size <= max_bytes:
                texts[name] = out[pos:pos + size].decode(errors="replace")
            pos += size + 1  # content, then a newline
        return texts

    def _pull_dir(self, owner: str, name: str, pull: int) -> Path:
        if isinstance(pull, bool) or not isinstance(pull, int) or pull <= 0:
            raise ValueError(f"pull must be a positive PR number, got {pull!r}")
        return self.data_dir / "work" / owner / name / str(pull)

    @contextmanager
    def _locked(self, repo: str) -> Iterator[None]:
        """The repository's mirror lock: an flock per open file, so it orders threads as well as processes."""
        mirror = self.mirror_path(repo)
        mirror.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        with open(mirror.with_name(mirror.name + ".lock"), "a") as lock:
            while True:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CheckoutError(f"timed out after {self.lock_timeout:.0f} s waiting for the lock "
                                            f"of {mirror} (another fetch of {repo} is running)") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _ensure_mirror(self, mirror: Path) -> None:
        """Create the bare mirror if missing (caller holds the lock); built aside and renamed, so never half-made."""
        if (mirror / "HEAD").exists():
            return
        if mirror.exists():
            shutil.rmtree(mirror)
        tmp = mirror.with_name(f".{mirror.name}.{uuid.uuid4().hex}")
        try:
            self._run(["-c", "init.defaultBranch=main", "init", "--quiet", "--bare", str(tmp)])
            # gc --auto runs after fetches; in the foreground it stays inside our lock.
            self._run(["config", "gc.autoDetach", "false"], git_dir=tmp)
            os.rename(tmp, mirror)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _worktree_gitdir(self, repo: str, path: Path) -> Path | None:
        """The mirror's metadata dir for the worktree at `path`, or None if `path` is not one of ours."""
        try:
            pointer = (path / ".git").read_text().strip()
        except OSError:
            return None
        if not pointer.startswith("gitdir:"):
            return None
        gitdir = Path(pointer.removeprefix("gitdir:").strip())
        worktrees = self.mirror_path(repo) / "worktrees"
        return gitdir if gitdir.parent == worktrees and (gitdir / "HEAD").is_file() else None

    def _add_worktree(self, repo: str, path: Path, sha: str) -> Path:
        mirror = self.mirror_path(repo)
        with self._locked(repo):
            if path.exists():
                shutil.rmtree(path)
            # Forget worktrees whose dirs are gone (a wiped data dir, a crash), or `add` refuses the path.
            self._run(["worktree", "prune"], git_dir=mirror)
            path.parent.mkdir(parents=True, exist_ok=True)
            # --no-checkout: writing the files happens in _reset, outside the lock.
            self._run(["worktree", "add", "--quiet", "--detach", "--no-checkout", str(path), sha], git_dir=mirror)
        gitdir = self._worktree_gitdir(repo, path)
        if gitdir is None:
            raise CheckoutError(f"git worktree add made no usable working copy at {path}")
        return gitdir

    def _discard(self, repo: str, path: Path) -> None:
        with self._locked(repo):
            shutil.rmtree(path, ignore_errors=True)
            self._run(["worktree", "prune"], git_dir=self.mirror_path(repo), check=False)

    def _reset(self, gitdir: Path, path: Path, sha: str) -> None:
        # Both dirs explicit: should the copy's `.git` file vanish, git must fail here rather than walk up
        # and find some repository enclosing data_dir, then force-checkout and clean that one.
        where = [f"--git-dir={gitdir}", f"--work-tree={path}"]
        self._run([*where, "checkout", "--quiet", "--force", "--detach", sha], cwd=path)
        # -x: ignore rules protect nothing; -e re-adds the one exception. `.terraform` matches that name
        # only, at any depth: `.terraform.lock.hcl` is removed (see working_copy).
        self._run([*where, "clean", "-ffdxq", "-e", ".terraform"], cwd=path)

    def _run(self, args: list[str], *, git_dir: Path | None = None, cwd: Path | None = None,
             input: bytes | None = None, env: dict[str, str] | None = None, secrets: Iterable[str] = (),
             what: str | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        argv = [self.git, *_SAFE_CONFIG]
        if git_dir is not None:
            argv.append(f"--git-dir={git_dir}")
        argv += args
        process_env = _git_env()
        process_env.update(env or {})
        secrets = list(secrets)
        what = what or f"git {next((a for a in args if not a.startswith('-')), '')}"
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=process_env, stdin=subprocess.PIPE if input is not None
                                    else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            raise CheckoutError(f"cannot run {self.git!r}: {exc.strerror}") from None
        try:
            stdout, stderr = proc.communicate(input, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            # The whole group: git fetch leaves its work to git-remote-https and index-pack children.
            _kill_group(proc.pid)
            proc.communicate()
            raise CheckoutError(f"{what} timed out after {self.timeout:.0f} s") from None
        result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
        if check and proc.returncode != 0:
            raise CheckoutError(mask_credentials(f"{what} failed (exit {proc.returncode}): {_text(stderr)}", secrets))
        return result


# Given on every command line: settings that beat anything in a repository's config.
_SAFE_CONFIG = [
    "-c", "core.hooksPath=/dev/null",  # a repository must never run code on our host
    "-c", "core.fsmonitor=false",
    "-c", "credential.helper=",  # an empty value clears the helper list
    "-c", "protocol.allow=never",  # `ext::` and friends run commands; only what we name is spoken
    "-c", "protocol.https.allow=always",
    "-c", "protocol.http.allow=always",
    "-c", "http.followRedirects=false",  # the Authorization header must not follow a redirect elsewhere
    "-c", "http.lowSpeedLimit=1000",
    "-c", "http.lowSpeedTime=120",
    "-c", "advice.detachedHead=false",
    "-c", "core.quotePath=false",
]


def _git_env() -> dict[str, str]:
    # No inherited GIT_* (GIT_DIR, GIT_TRACE_CURL, GIT_CONFIG_PARAMETERS, ...) may redirect or log our git.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "SSH_ASKPASS"}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0",
               GIT_LITERAL_PATHSPECS="1", LC_ALL="C")
    return env


def _credentials(clone_url: str, token: str | None) -> tuple[str, list[str], dict[str, str]]:
    """(URL without userinfo, values to mask, env carrying an Authorization header for its origin)."""
    try:
        parts = urlsplit(clone_url)
        port = parts.port
    except ValueError:
        raise CheckoutError(f"not a usable clone URL: {mask_credentials(clone_url)}") from None
    if parts.scheme not in _SCHEMES:
        raise CheckoutError(f"refusing to fetch {mask_credentials(clone_url)}: only https, http and file URLs")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    host = parts.hostname or ""
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc += f":{port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    if token:
        user, password = "x-access-token", token
    if not user and not password:
        return url, [], {}
    basic = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
    raw = [parts.password] if parts.password else [parts.username]  # as written, maybe %-encoded
    secrets = [s for s in (password, basic, *raw) if s] + ([user] if user and not password else [])
    origin = urlunsplit((parts.scheme, netloc, "/", "", ""))
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{origin}.extraHeader",
           "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}
    return url, secrets, env


def _refspec(item: str, pull: int | None) -> tuple[str, str]:
    """(source, destination) for one item of `fetch`; anything but plain refs and shas is refused."""
    source, colon, dest = item.removeprefix("+").partition(":")
    if not (_SHA_RE.match(source) or _valid_ref(source)):
        raise CheckoutError(f"not a full ref name or commit sha: {source!r}")
    if colon:
        if not (_valid_ref(dest) and dest.startswith("refs/tfbot/")):
            raise CheckoutError(f"fetch destinations must be refs under refs/tfbot/, got {dest!r}")
        return source, dest
    if _SHA_RE.match(source):
        where = f"pull/{int(pull)}/commits" if pull is not None else "commits"
        return source, f"refs/tfbot/{where}/{source}"
    return source, "refs/tfbot/" + source.removeprefix("refs/")


def _valid_ref(ref: str) -> bool:
    """git check-ref-format's rules for a full ref name (GitHub branch names may hold most characters)."""
    if not ref.startswith("refs/") or ref.endswith(("/", ".")) or "//" in ref or ".." in ref or "@{" in ref:
        return False
    if _REF_FORBIDDEN.search(ref):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in ref.split("/"))


def _split_repo(repo: str) -> tuple[str, str]:
    if not _REPO_RE.match(repo) or any(p in (".", "..") for p in repo.split("/")):
        raise ValueError(f"repository must be owner/name, got {repo!r}")
    owner, name = repo.lower().split("/")
    return owner, name


def _check_slug(slug: str) -> str:
    if not slug or len(slug) > 128 or slug in (".", "..") or slug.startswith(".") or any(c in slug for c in "/\\\0"):
        raise ValueError(f"not a usable working copy name: {slug!r}")
    return slug


def _check_sha(sha: str) -> None:
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise ValueError(f"not a full commit sha: {sha!r}")


def _repo_path(path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path must stay inside the repository: {path!r}")
    return "/".join(parts) or "."


def _nul_split(out: bytes) -> list[str]:
    return [p.decode(errors="replace") for p in out.split(b"\0") if p]


def _text(stderr: bytes) -> str:
    return stderr.decode(errors="replace").strip()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
