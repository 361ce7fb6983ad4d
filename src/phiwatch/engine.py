"""The only place that opens sockets (through `dial`, its socket-level half).

It owns timeouts, connect retries, the global and per-host connection limits,
the connection rate, per-probe byte budgets, TLS wrapping and the bounded
thread pool for blocking libraries. Probes talk to peers only through a
`Channel`, whose failures are `ProbeFailure`s carrying a closed-vocabulary
status, never a traceback. A sweep asks `try_connect`, which answers None for a port
that is not open without raising anything.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from .dial import AdaptiveRate, HostSlots, SocketAddress, dial, numeric_address
from .models import ProbeStatus, TlsFacts
from .sessions import BlockingSession
from .tlsinfo import tls_facts

T = TypeVar("T")
# The default ceiling of the connection rate (--rate); the README says why this number.
DEFAULT_RATE = 50_000.0


@dataclass(frozen=True)
class Limits:
    concurrency: int = 512  # connections open at once, over the whole scan
    per_host: int = 2  # connections open at once to one address
    rate: float = DEFAULT_RATE  # the ceiling of the adaptive connection rate; 0 = none
    timeout: float = 5.0  # connect timeout, and the time a peer has for each message
    retries: int = 1  # extra connect attempts after a timeout
    byte_budget: int = 8 * 1024 * 1024  # bytes one probe may read from one service
    probe_time: float = 60.0  # wall time one service's probes may take
    host_time: float = 600.0  # wall time all probes of one address may take
    threads: int = 8  # bounded pool for blocking libraries


class ByteMeter:
    """Bytes received from one service over all its connections, async and blocking (--byte-budget)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()  # blocking sessions charge from the pool's threads

    def left(self) -> int:
        return max(0, self.limit - self.used)

    def charge(self, count: int) -> bool:
        """Count `count` bytes; True when the budget is now overspent."""
        with self._lock:
            self.used += count
            return self.used > self.limit


# The meter of the service being probed (set by the scanner around each service's probes).
_SERVICE_METER: ContextVar[ByteMeter | None] = ContextVar("phiwatch_service_meter", default=None)


class ProbeFailure(Exception):
    """A probe could not go on. `status` is from the closed vocabulary; `detail` holds no PHI."""

    def __init__(self, status: ProbeStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


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
        self.meter = engine.meter()
        self.budget = budget
        self.bytes_read = 0
        self.tls: TlsFacts | None = None
        self._closed = False

    def charge_to(self, meter: ByteMeter) -> None:
        """From now on, this connection's bytes count against `meter` (its service's budget)."""
        self.meter = meter

    def _charge(self, count: int) -> None:
        self.bytes_read += count
        if self.meter.charge(count):
            raise ProbeFailure(
                ProbeStatus.BUDGET_EXCEEDED, f"peer sent more than {self.meter.limit} bytes"
            )

    async def read_exact(self, count: int, timeout: float | None = None) -> bytes:
        """Exactly `count` bytes, all within one deadline (a dripping peer cannot stretch it)."""
        if count > self.meter.left():
            raise ProbeFailure(
                ProbeStatus.BUDGET_EXCEEDED, f"peer announced more than {self.meter.limit} bytes"
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
        limit = max(0, min(limit, self.meter.left()))
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


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EACCES}
_RESET = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}
_MAX_ADDRESSES = 4  # addresses of one host name tried at most

Connected = Channel | ProbeFailure | int  # an int is the errno of a failed connect


class Engine:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.rate = AdaptiveRate(limits.rate)
        self.hosts = HostSlots(limits.per_host)
        self.tls_context = _insecure_tls_context()
        self._pool = ThreadPoolExecutor(max_workers=limits.threads, thread_name_prefix="phiwatch")
        self.connections_opened = 0

    async def connect(
        self, host: str, port: int, tls: bool = False, timeout: float | None = None
    ) -> Channel:
        """Open a connection under every limit; raises ProbeFailure with a status."""
        result = await self._connect(host, port, tls, timeout or self.limits.timeout)
        if isinstance(result, Channel):
            return result
        raise result if isinstance(result, ProbeFailure) else connect_failure(result)

    async def try_connect(self, host: str, port: int) -> Channel | None:
        """Plain TCP for a sweep: a Channel, or None when the port is not open. Never raises."""
        result = await self._connect(host, port, False, self.limits.timeout)
        return result if isinstance(result, Channel) else None

    async def _connect(self, host: str, port: int, tls: bool, timeout: float) -> Connected:
        if not self.hosts.try_acquire(host):
            await self.hosts.acquire(host)
        try:
            result = await self._attempts(host, port, tls, timeout)
        except BaseException:
            self.hosts.release(host)
            raise
        if not isinstance(result, Channel):
            self.hosts.release(host)
        return result

    async def _attempts(self, host: str, port: int, tls: bool, timeout: float) -> Connected:
        """Connect, again after a timeout as often as `retries` says; then TLS if asked."""
        numeric = numeric_address(host, port)
        targets = [numeric] if numeric is not None else await self._resolve(host, port, timeout)
        if isinstance(targets, ProbeFailure):
            return targets
        code = errno.ETIMEDOUT
        rate = self.rate
        for target in targets:
            for attempt in range(1 + max(0, self.limits.retries)):
                delay = rate.reserve()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.connections_opened += 1
                result = await dial(target, timeout)
                if not isinstance(result, int):
                    rate.record(True, attempt > 0)  # answered only on a retry: a dropped packet
                    return await self._wrap(result, host, port, tls, timeout)
                code = result
                refused = code == errno.ECONNREFUSED
                rate.record(refused, code in _RESET or (attempt > 0 and refused))
                if code != errno.ETIMEDOUT:
                    break
        return code

    async def _resolve(self, host: str, port: int, timeout: float) -> list[SocketAddress] | ProbeFailure:
        """A host name's first few addresses, resolved by the loop (not blocking it)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (TimeoutError, OSError, UnicodeError, ValueError):
            infos = []
        targets: list[SocketAddress] = list(dict.fromkeys((info[0], info[4]) for info in infos))
        return targets[:_MAX_ADDRESSES] or ProbeFailure(ProbeStatus.UNREACHABLE, "host name does not resolve")

    async def _wrap(self, sock: socket.socket, host: str, port: int, tls: bool, timeout: float) -> Connected:
        """Hand a connected socket to the loop as a stream; the TLS handshake when asked."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=65536, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:  # from here on the transport owns the socket, also when this fails
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    sock=sock,
                    ssl=self.tls_context if tls else None,
                    server_hostname="" if tls else None,
                    ssl_handshake_timeout=timeout if tls else None,
                )
        except TimeoutError:
            return ProbeFailure(ProbeStatus.TIMEOUT, "no TLS handshake in time" if tls else "no answer to connect")
        except ssl.SSLError:
            return ProbeFailure(ProbeStatus.TLS_ERROR, "TLS handshake failed")
        except OSError as exc:
            if tls and isinstance(exc, ConnectionError):
                return ProbeFailure(ProbeStatus.TLS_ERROR, "peer closed during TLS handshake")
            return connect_failure(exc.errno or errno.EIO)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        channel = Channel(self, host, port, reader, writer, self.limits.byte_budget)
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            channel.tls = tls_facts(ssl_object)
        return channel

    def _release(self, host: str) -> None:
        self.hosts.release(host)

    def meter(self) -> ByteMeter:
        """The byte budget of the service being probed (a fresh one outside a service)."""
        return _SERVICE_METER.get() or ByteMeter(self.limits.byte_budget)

    @contextmanager
    def service(self) -> Iterator[ByteMeter]:
        """One service's probes: every connection opened within shares one byte budget."""
        meter = ByteMeter(self.limits.byte_budget)
        token = _SERVICE_METER.set(meter)
        try:
            yield meter
        finally:
            _SERVICE_METER.reset(token)

    def blocking_session(self, host: str, wall: float) -> BlockingSession:
        """The engine's blocking side for one probe session to `host` (see phiwatch.sessions)."""
        return BlockingSession(self, host, asyncio.get_running_loop(), wall)

    async def run_blocking(self, func: Callable[..., T], *args: object) -> T:
        """Run a blocking library call in the bounded pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, func, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def connect_failure(code: int) -> ProbeFailure:
    """The status of a failed connect, from its errno."""
    if code == errno.ECONNREFUSED:
        return ProbeFailure(ProbeStatus.REFUSED, "connection refused")
    if code == errno.ETIMEDOUT:
        return ProbeFailure(ProbeStatus.TIMEOUT, "no answer to connect")
    if code in _UNREACHABLE:
        return ProbeFailure(ProbeStatus.UNREACHABLE, "host or network unreachable")
    if code in _RESET:
        return ProbeFailure(ProbeStatus.RESET, "connection reset")
    return ProbeFailure(ProbeStatus.ERROR, f"connect failed: {os.strerror(code)}")
