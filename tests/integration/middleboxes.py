"""What stands between a Lambda and AIC, on loopback: a NAT-like relay, nginx, HAProxy and squid.

The relay is ours (a NAT gateway cannot be run here); nginx, HAProxy and squid are Debian's binaries, run
in the foreground from generated configurations on free loopback ports and stopped after, never as system
services. ``binary`` says why a case cannot run when one is missing (the test prints it and skips).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

FOREGROUND = {"nginx": ["-g", "daemon off;"], "haproxy": ["-db"], "squid": ["-N"]}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def binary(name: str) -> str | None:
    """The path of a middlebox's binary (Debian puts them in /usr/sbin), or None."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


class _Flow:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.forgotten: str | None = None  # "drop" or "reset" once the relay forgot the flow


class NatRelay:
    """Forwards TCP to ``target`` and, on ``forget``, forgets every flow as a NAT gateway does after its
    idle timeout, telling neither end: the client's next packets are then swallowed ("drop") or answered
    with a reset ("reset", AWS's NAT gateway), and nothing more reaches the server on that flow."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()[:2]
        self._flows: list[_Flow] = []
        self._lock = threading.Lock()
        self.flows_opened = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def forget(self, mode: str) -> None:
        with self._lock:
            for flow in self._flows:
                flow.forgotten = flow.forgotten or mode
            self._flows = []

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            flow = _Flow(client, upstream)
            with self._lock:
                self._flows.append(flow)
                self.flows_opened += 1
            threading.Thread(target=self._outbound, args=(flow,), daemon=True).start()
            threading.Thread(target=self._inbound, args=(flow,), daemon=True).start()

    def _outbound(self, flow: _Flow) -> None:
        with contextlib.suppress(OSError):
            while data := flow.client.recv(65536):
                if flow.forgotten == "reset":
                    flow.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                if flow.forgotten is None:
                    flow.upstream.sendall(data)
        flow.client.close()
        flow.upstream.close()

    def _inbound(self, flow: _Flow) -> None:
        with contextlib.suppress(OSError):
            while data := flow.upstream.recv(65536):
                if flow.forgotten is not None:
                    return
                flow.client.sendall(data)
        if flow.forgotten is None:  # the server closed: the relay passes it on
            with contextlib.suppress(OSError):
                flow.client.shutdown(socket.SHUT_WR)


def run(name: str, config: str, directory: Path, ready_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Runs ``name`` in the foreground on ``config`` until the generator is closed."""
    path = binary(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed")
    directory.chmod(0o777)  # squid drops to its own user even in the foreground
    conf = directory / f"{name}.conf"
    conf.write_text(config)
    argv = [path, *FOREGROUND[name], "-c" if name == "nginx" else "-f", str(conf)]
    if name == "nginx":
        argv += ["-p", str(directory)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=directory)
    try:
        _wait_for(ready_port, process, name)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_for(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    started = time.monotonic()
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if process.poll() is not None or time.monotonic() - started > 20:
            process.kill()
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"{name} did not start: {err.decode(errors='replace')[-2000:]}")
        time.sleep(0.05)


def nginx_config(directory: Path, port: int, upstream: int, cert: Path, key: Path) -> str:
    """TLS in front of a plain upstream: idle keep-alive 1 s, 5 requests a connection, and a
    ``proxy_read_timeout`` of 1 s that turns a slow token endpoint into a 504."""
    temp = " ".join(f"{kind}_temp_path {directory}/{kind};" for kind in ("client_body", "proxy", "fastcgi"))
    temp += f" uwsgi_temp_path {directory}/uwsgi; scgi_temp_path {directory}/scgi;"
    return f"""master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log {directory}/access.log;
  {temp}
  keepalive_timeout 1s;
  keepalive_requests 5;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 1s;
    }}
  }}
}}
"""


def haproxy_config(port: int, upstream: int) -> str:
    """HTTP mode with its own keep-alive: idle client connections closed after 1 s."""
    return f"""global
  maxconn 64
defaults
  mode http
  timeout connect 2s
  timeout client 5s
  timeout server 5s
  timeout http-keep-alive 1s
frontend token
  bind 127.0.0.1:{port}
  default_backend aic
backend aic
  server aic 127.0.0.1:{upstream}
"""


def squid_config(directory: Path, port: int) -> str:
    """An egress proxy that lets loopback clients CONNECT anywhere and logs every transaction."""
    return f"""http_port 127.0.0.1:{port}
acl CONNECT method CONNECT
http_access allow localhost
http_access deny all
cache deny all
access_log stdio:{directory}/access.log
cache_log {directory}/cache.log
pid_filename {directory}/squid.pid
coredump_dir {directory}
shutdown_lifetime 0 seconds
"""
