"""HTTP over engine channels: httpx's core (httpcore) speaks HTTP/1.1, the engine owns the socket.

Every response is bounded: headers by h11's limit, the body by `max_body` (read raw and
decompressed here under the same bound, so a compression bomb cannot expand), each request
by a deadline (a dripping server cannot stretch it), and redirects are followed only on the
same origin: phiwatch never wanders off the targets it was given.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

from ..engine import Channel, Engine, ProbeFailure
from ..models import ProbeStatus, TlsFacts
from ..text import sanitize

USER_AGENT = "phiwatch (medical data exposure audit)"
MAX_HEADERS = 64


@dataclass(frozen=True)
class HttpLimits:
    max_body: int = 256 * 1024
    max_redirects: int = 3
    request_time: float = 10.0


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False
    path: str = "/"

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _EngineStream(httpcore.AsyncNetworkStream):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await self.channel.read_some(max_bytes, timeout)
        except ProbeFailure as failure:
            if failure.status is ProbeStatus.RESET:
                return b""
            raise

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.channel.write(buffer)

    async def aclose(self) -> None:
        await self.channel.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self.channel.tls is None:
            await self.channel.start_tls()
        return self

    def get_extra_info(self, info: str) -> Any:
        return self.channel.extra(info)


class _EngineBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, engine: Engine, tls: bool) -> None:
        self.engine = engine
        self.tls = tls
        self.last_tls: TlsFacts | None = None

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        channel = await self.engine.connect(host, port, tls=self.tls)
        if channel.tls is not None:
            self.last_tls = channel.tls
        return _EngineStream(channel)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _decode_body(raw: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw, False
    if encoding not in ("gzip", "deflate", "x-gzip"):
        return b"", True  # an encoding we do not expand (br, zstd, ...): keep nothing
    decompressor = zlib.decompressobj(wbits=47)  # gzip or zlib, auto-detected
    try:
        body = decompressor.decompress(raw, limit)
    except zlib.error:
        return b"", True
    return body, bool(decompressor.unconsumed_tail)


@dataclass
class HttpSession:
    """Requests to one origin (host, port, scheme) through the engine."""

    engine: Engine
    host: str
    port: int
    tls: bool
    limits: HttpLimits = field(default_factory=HttpLimits)

    def __post_init__(self) -> None:
        self._backend = _EngineBackend(self.engine, self.tls)
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=self._backend,
            ssl_context=self.engine.tls_context,
            max_connections=1,
            max_keepalive_connections=1,
            retries=0,
        )
        self.requests = 0

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def tls_facts(self) -> TlsFacts | None:
        return self._backend.last_tls

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"

    async def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        follow: bool = True,
    ) -> HttpResponse:
        """One request; same-origin redirects followed up to the limit."""
        response = await self._once(method, path, headers or {}, body)
        hops = 0
        while follow and response.status in (301, 302, 303, 307, 308) and hops < self.limits.max_redirects:
            target = self._same_origin_path(response.path, response.header("location"))
            if target is None:
                break
            hops += 1
            method, body = ("GET", None) if response.status == 303 else (method, body)
            response = await self._once(method, target, headers or {}, body)
        return response

    def _same_origin_path(self, current: str, location: str) -> str | None:
        """The path to follow, or None when the redirect leaves this origin (never followed)."""
        if not location:
            return None
        target = urlsplit(urljoin(self.url(current), location))
        origin = urlsplit(self.url("/"))
        if (target.scheme, target.hostname, target.port) != (origin.scheme, origin.hostname, origin.port):
            return None
        return (target.path or "/") + (f"?{target.query}" if target.query else "")

    async def _once(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> HttpResponse:
        self.requests += 1
        all_headers = {
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            "Accept": "*/*",
            "Connection": "close",
            **headers,
        }
        if not path.startswith("/"):
            path = "/" + path
        try:
            async with asyncio.timeout(self.limits.request_time):
                return await self._exchange(method, path, all_headers, body)
        except TimeoutError as exc:
            raise ProbeFailure(ProbeStatus.TIMEOUT, "HTTP answer not complete in time") from exc
        except httpcore.TimeoutException as exc:
            raise ProbeFailure(ProbeStatus.TIMEOUT, "HTTP answer not complete in time") from exc
        except (httpcore.RemoteProtocolError, httpcore.LocalProtocolError) as exc:
            raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, "malformed HTTP answer") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise ProbeFailure(ProbeStatus.RESET, "HTTP connection failed") from exc

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> HttpResponse:
        async with self._pool.stream(
            method, self.url(path), headers=list(headers.items()), content=body
        ) as response:
            raw = bytearray()
            truncated = False
            async for chunk in response.aiter_stream():
                raw += chunk
                if len(raw) > self.limits.max_body:
                    truncated = True
                    del raw[self.limits.max_body:]
                    break
            kept: dict[str, str] = {}
            for name, value in response.headers[:MAX_HEADERS]:
                key = sanitize(name, 64).lower()
                if key not in kept:
                    kept[key] = sanitize(value, 512)
            decoded, cut = _decode_body(bytes(raw), kept.get("content-encoding", ""), self.limits.max_body)
            return HttpResponse(response.status, kept, decoded, truncated or cut, path)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
