"""The `tfbot` command line: serve, worker, check-config."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.config import Config, ConfigError, load_config

DESCRIPTION = """\
tfbot runs Terraform from GitHub pull requests: a plan on every push, a lock per workspace,
apply on merge. It is a GitHub App: point the App's webhook at http(s)://HOST:PORT/events.
"""

EPILOG = """\
Secrets can come from the environment instead of the config file:
  TFBOT_WEBHOOK_SECRET, TFBOT_GITHUB_PRIVATE_KEY, TFBOT_GITHUB_APP_ID, TFBOT_REDIS_URL, ...
or from AWS SSM Parameter Store by writing the value as ssm:/path/name.
See README.md for every key.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfbot", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
        "machine needs nothing else. Stops cleanly on SIGTERM or Ctrl-C.",
    )
    add(
        "worker",
        "run one extra job worker (for scaling out)",
        "Run one job worker that takes plan/apply jobs from Redis. Start more on other hosts against\n"
        "the same redis_url to scale out. On the host of `tfbot serve` with the embedded Redis it\n"
        "connects to that Redis by itself.",
    )
    add(
        "check-config",
        "validate the config and the Terraform binary, then exit",
        "Load and validate the config (environment overrides and ssm: secrets included) and check\n"
        "the Terraform binary. Prints one line per problem; exits 0 when all is well, 2 otherwise.",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = _load_or_exit(args.config)
    if args.command == "check-config":
        return _check_config(config)
    if args.command == "serve":
        from bot.serve import serve

        return serve(config)
    if args.command == "worker":
        from bot.worker import run_worker

        return run_worker(config)
    return 2


def _load_or_exit(path: str) -> Config:
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        print(f"tfbot: the configuration in {path} cannot be used:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def _check_config(config: Config) -> int:
    from bot.preflight import check_terraform

    check = check_terraform(config.terraform.binary, config.data_dir)
    if not check.ok:
        print(f"tfbot: terraform.binary: {check.error}", file=sys.stderr)
        return 2
    redis = config.redis_url or f"embedded, persisted under {config.data_dir / 'redis'}"
    print(f"config OK: {config.source}")
    print(f"  github:    {config.github.api_url} (app {config.github.app_id})")
    print(f"  redis:     {_without_password(redis)}")
    print(f"  terraform: {check.version} at {check.path}")
    print(f"  repos:     {', '.join(r.name for r in config.repos) or 'none: every event will be ignored'}")
    return 0


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
