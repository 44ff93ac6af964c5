"""The GitHub App's JSON Web Tokens: what proves to GitHub that a request comes from the App itself.

Shared by the worker's GitHub adapter (bot/adapters/github.py, through PyGithub) and the web process's
permission check (bot/adapters/github_roles.py), so the App's key is read one way only.
"""
from __future__ import annotations

import time
from typing import Any, Callable

# GitHub refuses a JWT that lives longer than ten minutes; a minute of slack on each side absorbs clock drift.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 540


def rs256_signer(private_key_pem: str) -> Callable[[dict[str, Any]], str]:
    """A function signing JWT claims with the App's key (RS256), the key parsed once.

    PyGithub given the PEM parses it again for every JWT (~50 ms): a recovery pass may make hundreds of calls.
    Raises ValueError when `private_key_pem` is not an RSA private key.
    """
    import jwt
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("github.private_key is not a PEM-encoded private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("github.private_key is not an RSA private key")
    return lambda claims: jwt.encode(claims, key, "RS256")


def app_claims(app_id: int, now: float | None = None) -> dict[str, Any]:
    """The claims of a JWT for App `app_id`, as GitHub documents them: issued a minute ago, valid nine minutes."""
    now = int(time.time() if now is None else now)
    return {"iat": now - JWT_BACKDATE_SECONDS, "exp": now + JWT_LIFETIME_SECONDS, "iss": str(app_id)}
