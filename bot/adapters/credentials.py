"""Short-lived AWS credentials for one run: tfbot assumes the project's role for the phase with STS (boto3)."""
from __future__ import annotations

import re

# STS RoleSessionName: 2-64 characters of [\w+=,.@-].
_SESSION_CHARS = re.compile(r"[^\w+=,.@-]")
SESSION_NAME_MAX = 64


class CredentialsError(Exception):
    """The role could not be assumed; the message names the role and STS's error code, never a key."""


def session_name(repo: str, pull: int, phase: str, run_id: str) -> str:
    """The STS session name of a run (pure): `<repo>-pr<N>-<phase>-<run id>`, in STS's characters and 64 at most.

    CloudTrail shows it with every call the run makes; when it is too long the repository's name is cut, never
    the PR, the phase or the run id, which find the run's log in tfbot.
    """
    tail = _SESSION_CHARS.sub("-", f"-pr{pull}-{phase}-{run_id}")[-(SESSION_NAME_MAX - 2):]
    head = _SESSION_CHARS.sub("-", repo.replace("/", "."))[: SESSION_NAME_MAX - len(tail)]
    return (head + tail).lstrip("-") or "tfbot"


def assume_role(role_arn: str, session: str, duration: int, region: str = "",
                endpoint_url: str = "") -> dict[str, str]:
    """Assume `role_arn` for `duration` seconds; the run's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    AWS_SESSION_TOKEN (and AWS_REGION / AWS_DEFAULT_REGION when `region` is set).

    tfbot's own credentials come from boto3's usual chain. Raises CredentialsError.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.client("sts", region_name=region or None, endpoint_url=endpoint_url or None)
        answer = client.assume_role(RoleArn=role_arn, RoleSessionName=session, DurationSeconds=duration)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CredentialsError(f"STS refused to assume {role_arn}: {error.get('Code', 'error')}: "
                               f"{error.get('Message', '')}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise CredentialsError(f"STS is unreachable or tfbot has no AWS credentials to assume {role_arn} "
                               f"({type(exc).__name__}: {exc})") from None
    keys = answer["Credentials"]
    env = {"AWS_ACCESS_KEY_ID": str(keys["AccessKeyId"]), "AWS_SECRET_ACCESS_KEY": str(keys["SecretAccessKey"]),
           "AWS_SESSION_TOKEN": str(keys["SessionToken"])}
    if region:
        env.update(AWS_REGION=region, AWS_DEFAULT_REGION=region)
    return env
