"""The exchange over HTTPS, as with a real tenant: the deadline-bounded socket wraps an SSLSocket.

A loopback HTTPS server with a certificate made here for 127.0.0.1 answers the token request; the
endpoint's own pool (the one production uses) verifies it against that certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from token_vendor.assertion import Assertion
from token_vendor.deadline import Deadline
from token_vendor.errors import UpstreamUnavailable
from token_vendor.token_endpoint import TokenEndpoint, bounded_pool_manager

pytestmark = pytest.mark.integration


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def https_token_endpoint(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, float]]]:
    cert_file, key_file = _certificate(tmp_path)
    behaviour = {"drip": 0.0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"access_token": "tls-token-" + "x" * 40, "expires_in": 899}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for index in range(len(body)):  # one byte at a time when dripping
                if behaviour["drip"]:
                    time.sleep(behaviour["drip"])
                try:
                    self.wfile.write(body[index : index + 1] if behaviour["drip"] else body[index:])
                    self.wfile.flush()
                except OSError:
                    return
                if not behaviour["drip"]:
                    return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/am/oauth2/access_token", cert_file, behaviour
    server.shutdown()
    server.server_close()


def _sign() -> Assertion:
    return Assertion(jwt="header.claims.signature", jti="tls-test")


def test_a_token_is_exchanged_over_tls_through_the_bounded_sockets(https_token_endpoint: Any) -> None:
    url, cert_file, _ = https_token_endpoint
    endpoint = TokenEndpoint(url, pool=bounded_pool_manager(ca_certs=str(cert_file)))

    issued = endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(5, time.monotonic))

    assert issued.access_token.startswith("tls-token-")
    assert issued.expires_in == 899


def test_a_dripping_tls_endpoint_is_cut_off_at_the_deadline(https_token_endpoint: Any) -> None:
    url, cert_file, behaviour = https_token_endpoint
    behaviour["drip"] = 0.3
    endpoint = TokenEndpoint(url, pool=bounded_pool_manager(ca_certs=str(cert_file)), max_attempts=1)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="no complete answer within the time left"):
        endpoint.exchange(_sign, ("fr:idm:*",), Deadline.after(1.0, time.monotonic))
    assert time.monotonic() - started < 2.0  # the drip alone would take about 20 seconds
