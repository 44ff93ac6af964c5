"""moto in server mode on 127.0.0.1: real HTTP S3/SSM for boto3 and Terraform's s3 backend."""
from __future__ import annotations

from typing import Iterator

import pytest


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
