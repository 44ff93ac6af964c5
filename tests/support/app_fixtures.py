"""The App's private key as config text, from the same key pair the fake GitHub verifies JWTs with."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def app_private_key(app_keys: tuple[bytes, bytes]) -> str:
    return app_keys[0].decode()
