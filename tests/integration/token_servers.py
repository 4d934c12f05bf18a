"""Token endpoints served by HTTP servers this project did not write, for the transport conformance matrix.

Each server answers ``POST`` with a token document the size of AIC's (an encrypted JWT is about a
kilobyte) and counts the requests it received, so a test can assert one request per exchange. The HTTP
framing is the server's own: stdlib ``http.server`` (HTTP/1.0, keep-alive, ``Connection: close``),
waitress in a thread, gunicorn in a subprocess; the variants below only choose how the answer is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN_PATH = "/am/oauth2/access_token"
COUNT_PATH = "/count"


class Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def next(self) -> int:
        with self._lock:
            self.value += 1
            return self.value


def token_body(number: int) -> bytes:
    token = f"t{number:06d}." + "x" * 1200
    return json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 899}).encode()


# --- WSGI (waitress, gunicorn) ------------------------------------------------------------------------

_wsgi_requests = Counter()


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"] == COUNT_PATH:
        body = str(_wsgi_requests.value).encode()
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
        body = token_body(_wsgi_requests.next())
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# --- http.server variants -----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    variant = "keepalive"
    # Each write leaves at once as its own segment (no Nagle wait for the client's delayed ACK).
    disable_nagle_algorithm = True
    counter: Counter
    drip = 0.0
    framing = "length"  # of a dripped body: "length" (keep-alive), "close" (Connection: close), "chunked"
    slow_first = 0.0  # the first request is answered this many seconds late (a slow AIC behind a gateway)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        number = self.counter.next()
        body = token_body(number)
        if number == 1 and self.slow_first:
            time.sleep(self.slow_first)
        if self.variant == "drop-after-read":  # the request arrived; the answer never leaves
            self.close_connection = True
            return
        if self.variant == "drip-headers":
            self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"p" * 200)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.variant == "chunked" or (self.variant == "drip-body" and self.framing == "chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if self.variant == "drip-body" else body
        else:
            self.send_header("Content-Length", str(len(body)))
        if self.variant == "connection-close" or self.framing == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        if self.variant == "drip-body":
            self._drip(body)
            return
        if self.variant in ("split-writes", "chunked"):
            time.sleep(0.002)  # the headers leave in their own segment before the body is written
        if self.variant == "chunked":
            half = len(body) // 2
            for part in (body[:half], body[half:], b""):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                time.sleep(0.001)
            return
        with contextlib.suppress(OSError):  # a gateway that gave up on a slow answer closed the connection
            self.wfile.write(body)

    def _drip(self, data: bytes) -> None:
        for index in range(len(data)):
            try:
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(self.drip)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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


class Served:
    """A running token endpoint: its URL, its request count, and the CA file a TLS client trusts."""

    def __init__(self, url: str, count: Callable[[], int], ca_certs: str | None = None) -> None:
        self.url = url
        self.count = count
        self.ca_certs = ca_certs


def serve_stdlib(
    variant: str,
    *,
    http10: bool = False,
    tls_dir: Path | None = None,
    drip: float = 0.0,
    framing: str = "length",
    slow_first: float = 0.0,
) -> Iterator[Served]:
    counter = Counter()
    handler = type(
        "Handler",
        (_Handler,),
        {
            "variant": variant,
            "counter": counter,
            "drip": drip,
            "framing": framing,
            "slow_first": slow_first,
            "protocol_version": "HTTP/1.0" if http10 else "HTTP/1.1",
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    scheme, ca = "http", None
    if tls_dir is not None:
        cert_file, key_file = self_signed_certificate(tls_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme, ca = "https", str(cert_file)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(
            f"{scheme}://127.0.0.1:{server.server_address[1]}{TOKEN_PATH}", lambda: counter.value, ca
        )
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve_subprocess(argv: list[str], port: int, name: str) -> Iterator[Served]:
    """A WSGI server of another project in its own process, serving ``wsgi_app``; stopped after."""
    import urllib3

    process = subprocess.Popen(
        argv,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(retries=False)

    def count() -> int:
        return int(http.request("GET", base + COUNT_PATH, timeout=2).data)

    try:
        started = time.monotonic()
        while True:
            try:
                count()
                break
            except urllib3.exceptions.HTTPError:
                if process.poll() is not None or time.monotonic() - started > 20:
                    _, err = process.communicate(timeout=5)
                    raise RuntimeError(f"{name} did not start: {err.decode(errors='replace')}") from None
                time.sleep(0.05)
        yield Served(base + TOKEN_PATH, count)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def serve_gunicorn() -> Iterator[Served]:
    """gunicorn's sync worker answers every request with ``Connection: close``, as it does in production."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    argv = [str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    argv += ["--worker-class", "sync", "--log-level", "warning", "tests.integration.token_servers:wsgi_app"]
    yield from _serve_subprocess(argv, port, "gunicorn")


def serve_waitress() -> Iterator[Served]:
    """waitress (keep-alive, its own buffering and channel loop), as `waitress-serve` runs it."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    argv = [str(bin_dir / "waitress-serve"), f"--listen=127.0.0.1:{port}", "--threads=4"]
    argv += ["tests.integration.token_servers:wsgi_app"]
    yield from _serve_subprocess(argv, port, "waitress")
