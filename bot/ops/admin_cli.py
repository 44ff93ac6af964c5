"""`tfbot locks`, `tfbot unlock` and `tfbot hash-password`: what an admin does from a shell.

Both lock commands read the same Redis as the server: `redis_url`, or the embedded Redis of a
`tfbot serve` on this host sharing data_dir.
"""
from __future__ import annotations

import getpass
import json
import sys
import time
from typing import TYPE_CHECKING, TextIO

from bot.config import Config
from bot.web import present, unlocking

if TYPE_CHECKING:
    import argparse

    import redis


class AdminError(Exception):
    """Something the admin must fix before the command can run; the message says what."""


def connect_store(config: Config) -> redis.Redis:
    """A Redis client for the server's store, or AdminError when there is none to reach."""
    import redis

    from bot.adapters.redis_server import connect
    from bot.ops.worker import no_redis, resolve_redis_url

    url = resolve_redis_url(config)
    if url is None:
        raise AdminError(no_redis(config))
    conn = connect(url)
    try:
        conn.ping()
    except (redis.RedisError, OSError) as exc:
        raise AdminError(f"cannot reach Redis: {exc}") from None
    return conn


def list_locks(config: Config, conn: redis.Redis, repo: str | None, as_json: bool, out: TextIO) -> int:
    """Print every lock (of `repo`), oldest first, as a table or as the JSON of /api/locks (every lock on one page)."""
    from bot.state.lock_cache import LockCache
    from bot.state.locks import LockStore

    snapshot = LockCache(LockStore(conn)).snapshot()
    locks = present.filtered(snapshot.locks, repo or "", "")
    now = time.time()
    if as_json:
        data = present.locks_json(locks, len(locks), None, now, config.github.api_url, config.server.public_url,
                                  snapshot.waiting)
        json.dump(data, out, indent=2)
        out.write("\n")
        return 0
    if not locks:
        out.write(f"No locks are held{' in ' + repo if repo else ''}.\n")
        return 0
    header = ("REPO", "PROJECT", "DIR", "WORKSPACE", "PR", "USER", "HELD FOR", "STATE", "SUMMARY")
    rows = [(lk.repo, lk.project, lk.dir, lk.workspace, f"#{lk.pull}", lk.user,
             present.relative_age(now - lk.locked_at), lk.state.value, present.summary_line(lk)) for lk in locks]
    widths = [max(len(_clean(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [_clean(cell).ljust(width) for cell, width in zip(row, widths)]
        out.write("  ".join([*cells, _clean(row[-1])]).rstrip() + "\n")
    return 0


def unlock(config: Config, conn: redis.Redis, repo: str, dir: str, workspace: str, by: str, mention: bool,
           out: TextIO, reason: str = "") -> int:
    """Release one lock, hand it to the next PR in line, and comment on the PR that held it."""
    from bot.models import Project
    from bot.compose import worker_services
    from bot.lifecycle.handover import announce_unlock

    svc = worker_services(config, conn)
    lock = svc.locks.get(Project(repo=repo, name=dir, dir=dir, workspace=workspace))
    if lock is None:
        raise AdminError(f"{repo} {dir} (workspace {workspace}) is not locked; `tfbot locks --repo {repo}` lists "
                         "the locks of that repository")
    try:
        held, waiter = unlocking.release(svc, repo, dir, workspace, by=by, via=unlocking.FROM_CLI, token=lock.token,
                                         reason=reason)
    except unlocking.UnlockRefused as exc:
        raise AdminError(f"{exc} (`--reason TEXT`)") from None
    if held is None:
        raise AdminError("the lock changed hands while unlocking; nothing was released: look again with `tfbot locks`")
    next_pull = int(waiter["pull"]) if waiter else None
    out.write(f"Unlocked {held.project} ({held.repo}, dir {held.dir}, workspace {held.workspace}), "
              f"held by #{held.pull} ({held.user}).\n")
    if next_pull:
        out.write(f"The lock goes to #{next_pull}; a worker plans it now.\n")
    try:
        told = announce_unlock(svc, held, by, unlocking.FROM_CLI, next_pull, mention=mention, reason=reason)
    except Exception as exc:  # noqa: BLE001 - the unlock stands; say why the PR was not told
        out.write(f"Could not comment on {held.repo}#{held.pull}: {exc}\n")
        return 1
    if not told:
        out.write(f"Could not comment on {held.repo}#{held.pull}: its GitHub App installation is not recorded.\n")
        return 1
    out.write(f"Commented on {held.repo}#{held.pull}.\n")
    return 0


def hash_password(stdin: TextIO, out: TextIO) -> int:
    """Read a password (twice on a terminal) and print the hash to put in server.admins[].password_hash."""
    from werkzeug.security import generate_password_hash

    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise AdminError("the passwords differ")
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise AdminError("use at least 12 characters")
    out.write(generate_password_hash(password) + "\n")
    return 0


def default_admin_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "admin"


def _clean(text: str) -> str:
    """One line for a terminal: no control characters (a PR title could carry escape sequences)."""
    return "".join(c if c.isprintable() else " " for c in str(text))


def run(command: str, config: Config, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Entry point from bot.cli for `locks` and `unlock`."""
    out = out or sys.stdout
    conn = connect_store(config)
    if command == "locks":
        return list_locks(config, conn, args.repo, args.json, out)
    by = args.as_name or default_admin_name()
    return unlock(config, conn, args.repo, normal_dir(args.dir), args.workspace, by, bool(args.as_name), out,
                  reason=getattr(args, "reason", "") or "")


def normal_dir(value: str) -> str:
    """A project dir as the config writes it: relative, no './' or trailing '/', '.' for the root."""
    return "/".join(p for p in value.replace("\\", "/").split("/") if p not in ("", ".")) or "."
