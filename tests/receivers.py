"""Real alert receivers on loopback for the watcher's tests: a webhook (HTTP) server that checks the
HMAC signature, a syslog server (UDP, TCP, TLS with RFC 6587 octet counting), and aiosmtpd with
STARTTLS. Each records what it received; a webhook can be stopped and started again on its port."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import socketserver
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webhook:
    """POSTs kept as (headers, raw body, parsed JSON); `valid` says whether the signature matched."""

    def __init__(self, secret: str | None = None, port: int | None = None, delay: float = 0.0) -> None:
        self.secret = secret
        self.delay = delay  # seconds before each answer: a slow receiver
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Webhook:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signature = self.headers.get("X-Phiwatch-Signature")
                valid = None
                if owner.secret is not None:
                    expected = "sha256=" + hmac.new(owner.secret.encode(), body, hashlib.sha256).hexdigest()
                    valid = signature is not None and hmac.compare_digest(signature, expected)
                if owner.delay:
                    time.sleep(owner.delay)
                with owner.lock:
                    owner.received.append({"headers": dict(self.headers), "body": body,
                                           "json": json.loads(body), "valid": valid})
                    owner.times.append(time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["json"] for r in self.received]


class Syslog:
    """A syslog receiver: 'udp', 'tcp' or 'tls' (with a certificate from `cert`, `key`)."""

    def __init__(self, scheme: str, cert: Path | None = None, key: Path | None = None) -> None:
        self.scheme = scheme
        self.messages: list[bytes] = []
        self.lock = threading.Lock()
        owner = self
        if scheme == "udp":
            class Udp(socketserver.BaseRequestHandler):
                def handle(self) -> None:
                    with owner.lock:
                        owner.messages.append(self.request[0])

            self.server: socketserver.BaseServer = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
        else:
            context = None
            if scheme == "tls":
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(str(cert), str(key))

            class Tcp(socketserver.BaseRequestHandler):
                def handle(self) -> None:
                    stream = self.request
                    if context is not None:
                        stream = context.wrap_socket(stream, server_side=True)
                    data = b""
                    while chunk := stream.recv(65536):
                        data += chunk
                    while data:  # RFC 6587 octet counting: "LEN SP MSG"
                        length, _, rest = data.partition(b" ")
                        size = int(length)
                        with owner.lock:
                            owner.messages.append(rest[:size])
                        data = rest[size:]

            self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tcp)
        self.server.daemon_threads = True  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Smtp:
    """aiosmtpd on loopback requiring STARTTLS; messages kept as bytes."""

    def __init__(self, cert: Path, key: Path) -> None:
        from aiosmtpd.controller import Controller

        owner = self
        self.messages: list[bytes] = []
        self.tls_used: list[bool] = []

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                owner.messages.append(envelope.original_content or envelope.content)
                owner.tls_used.append(session.ssl is not None)
                return "250 OK"

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=context,
                                     require_starttls=True)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.controller.stop()
