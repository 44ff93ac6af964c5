"""Pytest fixtures for the fake GitHub, and helpers that build real PyGithub clients for it."""
from __future__ import annotations

import functools
from typing import Iterator, Optional, Union

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from github import Auth, Github, GithubIntegration
from urllib3 import Retry

from tests.support.fake_github import FakeGitHub, make_app_keypair

APP_ID = 1234
INSTALLATION_ID = 99
ACCOUNT = "acme"


@pytest.fixture(scope="session")
def app_keys() -> tuple[bytes, bytes]:
    """One RSA key pair for the test GitHub App: (private PEM, public PEM)."""
    return make_app_keypair()


@pytest.fixture
def fake_github(app_keys: tuple[bytes, bytes]) -> Iterator[FakeGitHub]:
    """A started fake GitHub: app 1234 (slug "tfbot") installed as 99 on the "acme" organization."""
    private_pem, public_pem = app_keys
    fake = FakeGitHub(APP_ID, public_pem, private_key_pem=private_pem)
    fake.start()
    fake.add_installation(INSTALLATION_ID, ACCOUNT)
    try:
        yield fake
    finally:
        fake.stop()


@functools.lru_cache(maxsize=8)
def _loaded_key(pem: bytes) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


def app_auth_for(fake: FakeGitHub, private_key_pem: Optional[bytes] = None) -> Auth.AppAuth:
    """PyGithub's app authentication (RS256 JWTs) for the fake's app."""
    pem = private_key_pem or fake.private_key_pem
    if pem is None:
        raise ValueError("the FakeGitHub was made without private_key_pem; pass the app's private key")
    key = _loaded_key(pem)
    # PyGithub given a PEM parses and checks the key for every JWT (~50 ms);
    # signing with a key parsed once keeps each test's token fetch cheap.
    return Auth.AppAuth(fake.app_id, sign_func=lambda claims: jwt.encode(claims, key, algorithm="RS256"))


def _client_options(fake: FakeGitHub, retry: Union[int, Retry, None]) -> dict:
    # PyGithub sleeps between requests (0.25 s) and writes (1 s) by default; tests must not.
    return {
        "base_url": fake.base_url,
        "retry": retry,
        "timeout": 10,
        "seconds_between_requests": None,
        "seconds_between_writes": None,
    }


def github_integration_for(fake: FakeGitHub, retry: Union[int, Retry, None] = None,
                           private_key_pem: Optional[bytes] = None) -> GithubIntegration:
    """A PyGithub GithubIntegration (authenticated as the app) talking to the fake."""
    return GithubIntegration(auth=app_auth_for(fake, private_key_pem), **_client_options(fake, retry))


def github_client_for(fake: FakeGitHub, installation_id: int = INSTALLATION_ID,
                      retry: Union[int, Retry, None] = None, per_page: int = 30,
                      private_key_pem: Optional[bytes] = None) -> Github:
    """A PyGithub Github authenticated as an installation of the fake's app (tokens fetched as needed).

    `retry=None` fails on the first 5xx; pass e.g. `github.GithubRetry(total=3, backoff_factor=0)`
    to exercise retries.
    """
    auth = app_auth_for(fake, private_key_pem).get_installation_auth(installation_id)
    return Github(auth=auth, per_page=per_page, **_client_options(fake, retry))
