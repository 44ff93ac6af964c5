"""Secrets written as `ssm:/path/name` in the config are read from AWS SSM Parameter Store at startup."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import AwsConfig


class SecretError(Exception):
    """An `ssm:` reference could not be read; the message never contains the secret's value."""


def resolve_secret(reference: str, aws: "AwsConfig") -> str:
    """Return the decrypted value of the SSM parameter named by `ssm:/path/name`."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    name = reference.removeprefix("ssm:").strip()
    if not name:
        raise SecretError("empty SSM parameter name")
    try:
        client = boto3.client("ssm", region_name=aws.region or None, endpoint_url=aws.endpoint_url or None)
        response = client.get_parameter(Name=name, WithDecryption=True)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise SecretError(f"SSM answered {code} for parameter {name}") from None
    except BotoCoreError as exc:
        raise SecretError(f"SSM is unreachable or not configured ({type(exc).__name__}: {exc})") from None
    return str(response["Parameter"]["Value"])
