"""GitHub App authentication as GitHub checks it: RS256 app JWTs and installation tokens."""
from __future__ import annotations

import secrets
import string
import time
from typing import Any, Optional, Union

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.fake_github_state import State, Token

# GitHub refuses app JWTs that live longer than ten minutes; a second of
# slack absorbs rounding between the client's clock and ours (same machine).
MAX_JWT_LIFETIME = 600
_CLOCK_SLACK = 1

MSG_BAD_JWT = "A JSON web token could not be decoded"
MSG_EXP_PAST = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at which "
    "the assertion expires"
)
MSG_EXP_FAR = "'Expiration time' claim ('exp') is too far in the future"
MSG_IAT = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
MSG_ISS = "'Issuer' claim ('iss') must be an Integer"


class AuthFailure(Exception):
    """The request's credentials are refused; `status` and `message` are what GitHub answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def make_app_keypair() -> tuple[bytes, bytes]:
    """A fresh RSA key pair for a test GitHub App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def verify_app_jwt(state: State, token: str, now: Optional[float] = None) -> dict[str, Any]:
    """The claims of a valid app JWT; AuthFailure(401) otherwise, with GitHub's message."""
    now = time.time() if now is None else now
    try:
        claims = jwt.decode(
            token,
            state.public_key_pem,
            algorithms=["RS256"],
            # We check the time claims ourselves to answer with GitHub's messages.
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_iss": False},
        )
    except jwt.InvalidTokenError:
        raise AuthFailure(401, MSG_BAD_JWT) from None
    _check_issuer(state, claims.get("iss"))
    iat, exp = claims.get("iat"), claims.get("exp")
    if not _is_number(iat) or iat > now + _CLOCK_SLACK:
        raise AuthFailure(401, MSG_IAT)
    if not _is_number(exp) or exp <= now or exp <= iat:
        raise AuthFailure(401, MSG_EXP_PAST)
    if exp > now + MAX_JWT_LIFETIME + _CLOCK_SLACK:
        raise AuthFailure(401, MSG_EXP_FAR)
    return claims


def _check_issuer(state: State, iss: Union[str, int, None]) -> None:
    # GitHub takes the app id as a number or a numeric string, or the app's client id.
    if iss == state.client_id:
        return
    if isinstance(iss, bool) or not isinstance(iss, (int, str)):
        raise AuthFailure(401, MSG_ISS)
    if isinstance(iss, str) and not iss.isdigit():
        raise AuthFailure(401, MSG_ISS)
    if int(iss) != state.app_id:
        # Another app's id: its key would not verify this signature.
        raise AuthFailure(401, MSG_BAD_JWT)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mint_token(
    state: State,
    installation_id: int,
    permissions: dict[str, str],
    repositories: Optional[set[str]] = None,
    now: Optional[float] = None,
) -> Token:
    """Issue an installation access token that expires after the state's token lifetime."""
    now = time.time() if now is None else now
    alphabet = string.ascii_letters + string.digits
    value = "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36))
    token = Token(
        token=value,
        installation_id=installation_id,
        expires_at=now + state.token_lifetime,
        permissions=dict(permissions),
        repositories=repositories,
    )
    state.tokens[value] = token
    return token


def parse_authorization(header: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """Split an Authorization header into (scheme lower-cased, credential); (None, None) if absent."""
    if not header:
        return None, None
    scheme, _, credential = header.strip().partition(" ")
    return scheme.lower(), credential.strip()


def looks_like_jwt(credential: str) -> bool:
    """Whether a bearer credential is a JWT (three dot-separated parts) rather than a token."""
    return credential.count(".") == 2


def installation_token(state: State, credential: str, now: Optional[float] = None) -> Token:
    """The live installation token `credential`; AuthFailure(401) if unknown, revoked or expired."""
    now = time.time() if now is None else now
    token = state.tokens.get(credential)
    if token is None or token.revoked or token.expires_at <= now:
        raise AuthFailure(401, "Bad credentials")
    installation = state.installations.get(token.installation_id)
    if installation is None:
        raise AuthFailure(401, "Bad credentials")
    if installation.suspended:
        raise AuthFailure(403, "This installation has been suspended")
    return token
