"""The `tfbot` command line, its commands in the order of docs/operations.md ("CLI"): serve, worker, web, check-config,
schema, locks, unlock, hash-password, audit, reconcile, drift."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bot.adapters.procs import quick_interpreter_exit
from bot.config import Config, ConfigError, load_config

DESCRIPTION = """\
tfbot runs Terraform from GitHub pull requests: a plan on every push, a lock per workspace,
apply on merge. It is a GitHub App: point the App's webhook at http(s)://HOST:PORT/events.
"""

EPILOG = """\
Secrets can come from the environment instead of the config file:
  TFBOT_WEBHOOK_SECRET, TFBOT_GITHUB_PRIVATE_KEY, TFBOT_GITHUB_APP_ID, TFBOT_REDIS_URL, ...
or from AWS SSM Parameter Store by writing the value as ssm:/path/name.
Every key and its variable: docs/configuration.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfbot", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument(
            "--config", "-c", default="config.yaml", metavar="PATH", help="the YAML config file (default: ./config.yaml)"
        )
        return p

    add(
        "serve",
        "run the webhook server and its workers",
        "Start the webhook server (gunicorn) on server.host:server.port and `workers` job workers.\n"
        "With redis_url empty it also starts an embedded Redis persisted under data_dir, so one\n"
        "machine needs nothing else. On SIGTERM or Ctrl-C it stops taking jobs, waits up to\n"
        "shutdown_grace for running Terraform runs, then asks Terraform to stop and gives it\n"
        "terraform_stop_grace to save its state before it kills the run (their PRs are told).",
    )
    add(
        "worker",
        "run one extra job worker (for scaling out)",
        "Run one job worker that takes plan/apply jobs from Redis. Start more on other hosts against\n"
        "the same redis_url to scale out. On the host of `tfbot serve` with the embedded Redis it\n"
        "connects to that Redis by itself.",
    )
    add(
        "web",
        "run only the web server (for scaling out intake)",
        "Run only the web server (gunicorn): webhook intake, health and the lock page. `tfbot serve`\n"
        "starts one itself; run more behind a load balancer, against the same redis_url.",
    )
    add(
        "check-config",
        "check the config and what startup needs, then exit",
        "Load and validate the config (environment overrides and ssm: secrets included), then check\n"
        "what startup needs: Terraform >= 1.4, git >= 2.38, server.port free to bind, and an external\n"
        "redis_url answering. Prints one line per problem; exits 0 when all is well, 2 otherwise.",
    )
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of config.yaml (or, with --repo, of a repository's tfbot.yaml)",
        description="Print the JSON Schema of the server's config file, for editors that validate config.yaml;\n"
                    "with --repo, of the tfbot.yaml a repository keeps at its root.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.add_argument("--repo", action="store_true", help="the schema of a repository's tfbot.yaml")
    locks = add(
        "locks",
        "list the workspace locks",
        "List every workspace lock, oldest first: repository, project, PR, who holds it, for how long,\n"
        "its state and plan summary. Reads the same Redis as `tfbot serve` (needs no App key).",
    )
    locks.add_argument("--repo", metavar="OWNER/NAME", help="only the locks of this repository")
    locks.add_argument("--json", action="store_true", help="print the JSON of GET /api/locks")
    unlock = add(
        "unlock",
        "release one workspace lock and tell its PR",
        "Release the lock of REPO's DIR (and WORKSPACE, default `default`) whoever holds it, hand it to\n"
        "the next PR in line (a worker plans it), record it in the audit trail, and comment on the PR\n"
        "that held it, with the GitHub App from the config.",
    )
    unlock.add_argument("repo", metavar="REPO", help="the repository, OWNER/NAME")
    unlock.add_argument("dir", metavar="DIR", help="the project's directory, as in the config")
    unlock.add_argument("workspace", metavar="WORKSPACE", nargs="?", default="default",
                        help="the Terraform workspace (default: default)")
    unlock.add_argument("--reason", metavar="TEXT", default="",
                        help="why; required to release a lock whose PR applied what the default branch lacks "
                             "(recorded in the audit trail)")
    unlock.add_argument("--as", dest="as_name", metavar="LOGIN",
                        help="your GitHub login, @-mentioned in the PR comment (default: your OS user, not mentioned)")
    sub.add_parser(
        "hash-password",
        help="print a password hash for server.admins",
        description="Read a password (asked twice on a terminal, else one line of standard input) and print\n"
        "the hash to put in server.admins[].password_hash. The password itself is never stored.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trail = add(
        "audit",
        "print who planned, applied and unlocked what, when",
        "Print the audit trail kept in Redis (newest first): every plan, apply and unlock with who,\n"
        "when, which commit and which PR; drift checks (drift-check) and applies from drift issues\n"
        "(drift-apply); change records opened or extended (change-record). Needs no App key.",
    )
    trail.add_argument("--repo", metavar="OWNER/NAME", help="only this repository")
    trail.add_argument("--since", metavar="DATE", help="only entries at or after DATE (2026-11-01 or ISO 8601, UTC)")
    trail.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add(
        "reconcile",
        "release or apply the locks of PRs closed or merged while tfbot was down",
        "Ask GitHub about every PR that holds a lock: a PR closed without merging loses its locks (the\n"
        "next PR in line is planned), a merged one gets its apply started, an open one is left alone.\n"
        "Prints one line per PR. `tfbot serve` does the same at every start.",
    )
    drift = add(
        "drift",
        "check projects for drift now and print the results",
        "Plan each project on its repository's default branch head, now, in this process, as the\n"
        "scheduled drift check does: the result is kept (the /drift page), and the project's drift\n"
        "issue is opened, updated or closed. Without --repo: every repository the App is installed\n"
        "on whose drift.enabled is on; without --project: the projects its drift.projects select.\n"
        "Prints one line per project: state, summary or reason, issue URL.\n"
        "Exit status: 0 all clean (or skipped: a PR holds the lock, or another run is under way),\n"
        "3 drift found, 1 a check failed (even when another found drift), 2 a command or config\n"
        "tfbot cannot use.",
    )
    drift.add_argument("--repo", metavar="OWNER/NAME", default="", help="only this repository (drift.enabled or not)")
    drift.add_argument("--project", metavar="NAME", default="", help="only this project (its name), with --repo")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tfbot")
    except PackageNotFoundError:
        return "unknown (not installed)"


# Commands that only read Redis: they run without the App's key and webhook secret.
READ_ONLY = ("locks", "audit")


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(build_parser().parse_args(argv))
    except BrokenPipeError:
        # `tfbot schema | head`: the reader left; say nothing more (and let no flush at exit complain either).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def console() -> int:
    """The `tfbot` program (and `python -m bot`): `main`, in a process that exits as soon as it returns."""
    code = main()
    quick_interpreter_exit()  # only here: `main` is also called by tests, whose process goes on
    return code


def _run(args: argparse.Namespace) -> int:
    if args.command == "hash-password":
        return _admin(lambda admin_cli: admin_cli.hash_password(sys.stdin, sys.stdout))
    if args.command == "schema":
        import json

        from bot.config.repo_file import schema as repo_schema

        print(json.dumps(repo_schema() if args.repo else Config.model_json_schema(), indent=2))
        return 0
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "drift" and args.project and not args.repo:
        print("tfbot drift: --project needs --repo", file=sys.stderr)
        return 2
    config = _load_or_exit(args.config, check_terraform=args.command == "serve",
                           github_app=args.command not in READ_ONLY)
    if args.command in ("locks", "unlock"):
        return _admin(lambda admin_cli: admin_cli.run(args.command, config, args))
    if args.command == "audit":
        return _audit(config, args)
    if args.command == "drift":
        return _admin(lambda admin_cli: _drift(config, args))
    if args.command == "reconcile":
        from bot.ops.reconcile import main as reconcile

        return reconcile(config)
    if args.command == "serve":
        from bot.ops.serve import serve

        return serve(config)
    if args.command == "worker":
        from bot.ops.worker import run_worker

        return run_worker(config)
    if args.command == "web":  # started by `tfbot serve`, which passes the Redis URL in the environment
        from bot.adapters.redis_server import connect
        from bot.compose import web_services
        from bot.ops.worker import no_redis, resolve_redis_url
        from bot.web.server import run_web

        url = resolve_redis_url(config)
        if url is None:
            print(f"tfbot web: {no_redis(config)}", file=sys.stderr)
            return 2
        return run_web(config, lambda: web_services(config, connect(url)))
    return 2


def _admin(command) -> int:  # type: ignore[no-untyped-def]
    from bot.ops import admin_cli

    try:
        return int(command(admin_cli))
    except admin_cli.AdminError as exc:
        print(f"tfbot: {exc}", file=sys.stderr)
        return 2


def _drift(config: Config, args: argparse.Namespace) -> int:
    from bot.ops.drift_cli import run

    return run(config, args.repo, args.project, sys.stdout)


def _audit(config: Config, args: argparse.Namespace) -> int:
    from bot.state import audit
    from bot.adapters.redis_server import connect
    from bot.ops.worker import no_redis, resolve_redis_url

    try:
        since = audit.parse_since(args.since) if args.since else None
    except ValueError:
        print(f"tfbot audit: --since {args.since!r} is not a date such as 2026-11-01", file=sys.stderr)
        return 2
    url = resolve_redis_url(config)
    if url is None:
        print(f"tfbot audit: {no_redis(config)}", file=sys.stderr)
        return 2
    items = list(audit.entries(connect(url), repo=args.repo, since=since))
    print(audit.format_entries(items, args.json))
    return 0


def _load_or_exit(path: str, check_terraform: bool = False, github_app: bool = True) -> Config:
    try:
        return load_config(Path(path), check_terraform=check_terraform, github_app=github_app)
    except ConfigError as exc:
        _print_problems(path, exc.problems)
        raise SystemExit(2) from None


def _print_problems(path: str, problems: list[str]) -> None:
    print(f"tfbot: the configuration in {path} cannot be used:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def _check_config(path: str) -> int:
    """Everything startup will need, all problems in one round."""
    from bot.adapters.preflight import check_git, check_terraform
    from bot.adapters.redis_server import redis_problem, serving_pid
    from bot.web.server import port_problem

    try:
        config = load_config(Path(path), check_terraform=True)
    except ConfigError as exc:
        problems = list(exc.problems)
        git = check_git()
        if not git.ok:
            problems.append(f"git: {git.error}")
        _print_problems(path, problems)
        return 2
    terraform = check_terraform(config.terraform.binary, config.data_dir, config.terraform.sandbox.mode)
    git = check_git()
    port = port_problem(config)
    listen = f"{config.server.host}:{config.server.port} (free)"
    serving = serving_pid(config.data_dir) if port and not config.redis_url else None
    if serving is not None:
        # The usual check of an edited config before a restart: its own `tfbot serve` holds the port, which is
        # free again once that one stops.
        port, listen = None, (f"{config.server.host}:{config.server.port} (in use by the tfbot serve of this "
                              f"data_dir, pid {serving}; free once it stops)")
    problems = [p for p in (port, redis_problem(config.redis_url)) if p]
    if not git.ok:
        problems.append(f"git: {git.error}")
    if problems:
        _print_problems(path, problems)
        return 2
    redis = config.redis_url or f"embedded, persisted under {config.data_dir / 'redis'}"
    print(f"config OK: {config.source}")
    print(f"  github:    {config.github.api_url} (app {config.github.app_id})")
    print(f"  redis:     {_without_password(redis)}")
    print(f"  terraform: {terraform.version} at {terraform.path}")
    print(f"  versions:  {_versions_line(config, terraform.version)}")
    print(f"  runs:      {_sandbox_line(terraform.notes)}")
    print(f"  git:       {git.version} at {git.path}")
    print(f"  listen:    {listen}")
    print(f"  repos:     {', '.join(r.name for r in config.repos) or 'none: every event will be ignored'}")
    print(f"  notify:    {_receivers_line(config)}")
    return 0


def _versions_line(config: Config, default_version: str) -> str:
    """What projects can run with, per engine, for `check-config` (the listed binaries were run by the check)."""
    from bot.compose import installed_binaries

    binaries = installed_binaries(config, default_version)
    engines = ["terraform", *(["opentofu"] if config.tofu.binaries else [])]
    return "; ".join(binaries.describe(engine) for engine in engines)


def _receivers_line(config: Config) -> str:
    """The notification receivers for `check-config`: kind and host only (a receiver's URL is a secret)."""
    from urllib.parse import urlsplit

    return ", ".join(f"notifications[{i}] {n.kind} to {urlsplit(n.url).hostname}"
                     for i, n in enumerate(config.notifications)) or "none"


def _sandbox_line(notes: dict[str, str]) -> str:
    """How Terraform runs are isolated, for `check-config` (from the sandbox probe's notes)."""
    if notes.get("sandbox") == "bubblewrap":
        return f"sandboxed with bubblewrap (terraform.sandbox.mode: {notes.get('mode')})"
    why = notes.get("warning") or "terraform.sandbox.mode: none"
    return f"NOT sandboxed: {why}; a PR's code can read tfbot's secrets (docs/security.md)"


def _without_password(url: str) -> str:
    """Never print a Redis password embedded in a URL."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


if __name__ == "__main__":
    sys.exit(main())
