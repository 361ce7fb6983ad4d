"""The only place that opens sockets.

It owns timeouts, connect retries, the global and per-host connection limits,
the connection rate, per-probe byte budgets, TLS wrapping and the bounded
thread pool for blocking libraries. Probes talk to peers only through a
`Channel`, whose failures are `ProbeFailure`s carrying a closed-vocabulary
status, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from .models import ProbeStatus, TlsFacts
from .tlsinfo import tls_facts

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    concurrency: int = 512  # connections open at once, over the whole scan
    per_host: int = 2  # connections open at once to one address
    rate: float = 2000.0  # new connections per second; 0 = unlimited
    timeout: float = 5.0  # connect timeout, and the time a peer has for each message
    retries: int = 1  # extra connect attempts after a timeout
    byte_budget: int = 8 * 1024 * 1024  # bytes one probe may read from one service
    probe_time: float = 60.0  # wall time one service's probes may take
    host_time: float = 600.0  # wall time all probes of one address may take
    threads: int = 8  # bounded pool for blocking libraries


class ProbeFailure(Exception):
    """A probe could not go on. `status` is from the closed vocabulary; `detail` holds no PHI."""

    def __init__(self, status: ProbeStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class RateLimiter:
    """Token bucket over new connections; 0 means unlimited."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._next
            # allow small bursts, never a backlog of credit
            self._next = max(self._next, now - 0.05) + 1.0 / self.rate


class HostSlots:
    """Per-host connection limits; entries vanish when a host has no connection open."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    async def acquire(self, host: str) -> None:
        sem, users = self._slots.get(host, (asyncio.Semaphore(self.per_host), 0))
        self._slots[host] = (sem, users + 1)
        try:
            await sem.acquire()
        except BaseException:
            self._drop(host)
            raise

    def release(self, host: str) -> None:
        entry = self._slots.get(host)
        if entry is None:
            return
        entry[0].release()
        self._drop(host)

    def _drop(self, host: str) -> None:
        sem, users = self._slots[host]
        if users <= 1:
            del self._slots[host]
        else:
            self._slots[host] = (sem, users - 1)

    def __len__(self) -> int:
        return len(self._slots)


def _insecure_tls_context() -> ssl.SSLContext:
    """We observe certificates, we do not trust them: verification is reported, not enforced."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # old TLS versions are observed, never preferred
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    return context


class _Connecting(asyncio.Protocol):
    """Holds a fresh connection until a stream takes it over; keeps bytes that come early."""

    def __init__(self) -> None:
        self.early = bytearray()
        self.eof = False

    def data_received(self, data: bytes) -> None:
        if len(self.early) < 65536:
            self.early += data[: 65536 - len(self.early)]

    def eof_received(self) -> bool:
        self.eof = True
        return True


class Channel:
    """One TCP (or TLS) connection with deadlines and a byte budget."""

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        budget: int,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self._reader = reader
        self._writer = writer
        self.budget = budget
        self.bytes_read = 0
        self.tls: TlsFacts | None = None
        self._closed = False

    def _charge(self, count: int) -> None:
        self.bytes_read += count
        if self.bytes_read > self.budget:
            raise ProbeFailure(
                ProbeStatus.BUDGET_EXCEEDED, f"peer sent more than {self.budget} bytes"
            )

    async def read_exact(self, count: int, timeout: float | None = None) -> bytes:
        """Exactly `count` bytes, all within one deadline (a dripping peer cannot stretch it)."""
        if self.bytes_read + count > self.budget:
            raise ProbeFailure(
                ProbeStatus.BUDGET_EXCEEDED, f"peer announced more than {self.budget} bytes"
            )
        try:
            async with asyncio.timeout(timeout or self.engine.limits.timeout):
                data = await self._reader.readexactly(count)
        except TimeoutError as exc:
            raise ProbeFailure(ProbeStatus.TIMEOUT, "no complete answer in time") from exc
        except asyncio.IncompleteReadError as exc:
            self._charge(len(exc.partial))
            if exc.partial:
                raise ProbeFailure(ProbeStatus.PROTOCOL_ERROR, "peer closed mid-message") from exc
            raise ProbeFailure(ProbeStatus.RESET, "peer closed the connection") from exc
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise ProbeFailure(ProbeStatus.RESET, "connection reset by peer") from exc
        self._charge(len(data))
        return data

    async def read_some(self, limit: int, timeout: float | None = None) -> bytes:
        """Up to `limit` bytes, whatever arrives first; b'' when the peer closed."""
        limit = max(0, min(limit, self.budget - self.bytes_read))
        if limit == 0:
            raise ProbeFailure(ProbeStatus.BUDGET_EXCEEDED, "byte budget spent")
        try:
            async with asyncio.timeout(timeout or self.engine.limits.timeout):
                data = await self._reader.read(limit)
        except TimeoutError as exc:
            raise ProbeFailure(ProbeStatus.TIMEOUT, "no answer in time") from exc
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise ProbeFailure(ProbeStatus.RESET, "connection reset by peer") from exc
        self._charge(len(data))
        return data

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            async with asyncio.timeout(self.engine.limits.timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise ProbeFailure(ProbeStatus.TIMEOUT, "peer does not read") from exc
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            raise ProbeFailure(ProbeStatus.RESET, "connection reset by peer") from exc

    async def start_tls(self) -> None:
        """Upgrade this connection to TLS in place (for protocols that negotiate it)."""
        try:
            await self._writer.start_tls(
                self.engine.tls_context, ssl_handshake_timeout=self.engine.limits.timeout
            )
        except TimeoutError as exc:
            raise ProbeFailure(ProbeStatus.TIMEOUT, "no TLS handshake in time") from exc
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            raise ProbeFailure(ProbeStatus.TLS_ERROR, "TLS handshake failed") from exc
        ssl_object = self._writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls = tls_facts(ssl_object)

    def extra(self, name: str) -> object:
        return self._writer.get_extra_info(name)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
        except (TimeoutError, ConnectionError, OSError, ssl.SSLError):
            self._writer.transport.abort()
        finally:
            self.engine._release(self.host)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


_REFUSED = {errno.ECONNREFUSED}
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EACCES}


class Engine:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.rate = RateLimiter(limits.rate)
        self.hosts = HostSlots(limits.per_host)
        self.tls_context = _insecure_tls_context()
        self._pool = ThreadPoolExecutor(max_workers=limits.threads, thread_name_prefix="phiwatch")
        self.connections_opened = 0

    async def connect(
        self, host: str, port: int, tls: bool = False, timeout: float | None = None
    ) -> Channel:
        """Open a connection under every limit; raises ProbeFailure with a status."""
        await self.hosts.acquire(host)
        try:
            return await self._connect_with_retries(host, port, tls, timeout or self.limits.timeout)
        except BaseException:
            self.hosts.release(host)
            raise

    async def _connect_with_retries(
        self, host: str, port: int, tls: bool, timeout: float
    ) -> Channel:
        attempts = 1 + max(0, self.limits.retries)
        for attempt in range(attempts):
            await self.rate.wait()
            self.connections_opened += 1
            try:
                transport, connecting = await self._tcp_connect(host, port, tls, timeout)
            except TimeoutError as exc:
                if attempt + 1 < attempts and not tls:
                    continue
                raise ProbeFailure(ProbeStatus.TIMEOUT, "no answer to connect") from exc
            except ssl.SSLError as exc:
                raise ProbeFailure(ProbeStatus.TLS_ERROR, "TLS handshake failed") from exc
            except OSError as exc:
                if tls and isinstance(exc, ConnectionError) and exc.errno not in _REFUSED:
                    raise ProbeFailure(ProbeStatus.TLS_ERROR, "peer closed during TLS handshake") from exc
                raise _connect_failure(exc) from exc
            return self._channel(transport, connecting, host, port)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _tcp_connect(
        self, host: str, port: int, tls: bool, timeout: float
    ) -> tuple[asyncio.BaseTransport, _Connecting]:
        """Connect with a bare protocol: refused and silent ports cost no stream objects."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(
                _Connecting,
                host,
                port,
                ssl=self.tls_context if tls else None,
                server_hostname="" if tls else None,
                ssl_handshake_timeout=timeout if tls else None,
            )
        return transport, protocol

    def _channel(
        self, transport: asyncio.BaseTransport, connecting: _Connecting, host: str, port: int
    ) -> Channel:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=65536, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if connecting.early:
            reader.feed_data(bytes(connecting.early))
        if connecting.eof:
            reader.feed_eof()
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        channel = Channel(self, host, port, reader, writer, self.limits.byte_budget)
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            channel.tls = tls_facts(ssl_object)
        return channel


    def _release(self, host: str) -> None:
        self.hosts.release(host)

    async def run_blocking(self, func: Callable[..., T], *args: object) -> T:
        """Run a blocking library call in the bounded pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, func, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _connect_failure(exc: OSError) -> ProbeFailure:
    if exc.errno in _REFUSED or isinstance(exc, ConnectionRefusedError):
        return ProbeFailure(ProbeStatus.REFUSED, "connection refused")
    if exc.errno in _UNREACHABLE:
        return ProbeFailure(ProbeStatus.UNREACHABLE, "host or network unreachable")
    if isinstance(exc, ConnectionError):
        return ProbeFailure(ProbeStatus.RESET, "connection reset")
    return ProbeFailure(ProbeStatus.ERROR, f"connect failed: {exc.strerror or type(exc).__name__}")
