"""The engine's blocking side: every socket a blocking library opens, under the engine's limits.

Blocking probes (ftplib, http.client under botocore, httpx, impacket, phiwatch's own rsync
and ONC RPC clients) run in the engine's thread pool as one `BlockingSession` per service.
Every connection of the session, whichever library asks for it, is opened here:

- it takes one of the host's slots (`--per-host`) and one token of the connection rate
  (`--rate`), both granted by the event loop; its outcome feeds the adaptive rate;
- every byte it receives is charged to the service's one byte budget (`--byte-budget`);
  past it, reads raise `BudgetSpent`;
- it is shut down by the watchdog when the session's wall time is spent, and closed at the
  latest when the session ends;
- it goes to the session's host and nowhere else.

The rule for protocols that hold several connections at once (FTP control and data, NFS
portmapper, mountd and nfsd): a session's first connection waits for a free slot like any
other; while the session holds a connection, its further connections are granted at once
and counted. A session never waits on itself, so `--per-host 1` cannot deadlock it; nothing
else starts on that host until the count is below the limit again. At most
`--per-host - 1 + MAX_HELD` connections are therefore open to one host at once.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .engine import Engine

T = TypeVar("T")
MAX_HELD = 3  # connections one session may hold at once (NFS: portmapper, mountd, nfsd)
_LOCAL = threading.local()  # the session whose thread this is (for library hooks without an argument)


class BudgetSpent(ConnectionAbortedError):
    """The service's byte budget is spent: the connection reads nothing more."""


class OutOfScope(ConnectionRefusedError):
    """A library asked for a connection to another host than the session's: refused, never tried."""


class _Lease:
    """One host slot, held by one connection until it is closed."""

    __slots__ = ("session", "released")

    def __init__(self, session: BlockingSession) -> None:
        self.session = session
        self.released = False

    def release(self) -> None:
        self.session._release(self)


class _Leased:
    """A socket holding a lease: closing its descriptor frees the host slot, once."""

    _lease: _Lease | None = None

    def _real_close(self, *args: Any) -> None:
        lease, self._lease = self._lease, None
        try:
            super()._real_close(*args)  # type: ignore[misc]
        finally:
            if lease is not None:
                lease.release()


class EngineSocket(_Leased, socket.socket):
    """A TCP socket of a blocking session: its reads are charged, its close frees the slot."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        _charge(self._lease, len(data))
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        count = super().recv_into(buffer, nbytes, flags)
        _charge(self._lease, count)
        return count


class EngineSSLSocket(_Leased, ssl.SSLSocket):
    """The TLS layer over an EngineSocket: takes over its lease; decrypted bytes are charged."""

    @classmethod
    def _create(cls, sock: socket.socket, *args: Any, **kwargs: Any) -> EngineSSLSocket:  # type: ignore[override]
        lease = getattr(sock, "_lease", None)
        if isinstance(sock, EngineSocket):
            sock._lease = None  # the TLS socket owns the descriptor (and the slot) from here on
        try:
            wrapped: EngineSSLSocket = super()._create(sock, *args, **kwargs)  # type: ignore[misc]
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        wrapped._lease = lease
        if lease is not None:
            lease.session._adopt(wrapped)
        return wrapped

    def read(self, size: int = 1024, buffer: Any = None) -> Any:
        data = super().read(size, buffer)
        _charge(self._lease, data if isinstance(data, int) else len(data))
        return data


def _charge(lease: _Lease | None, count: int) -> None:
    if lease is not None and count:
        lease.session.charge(count)


def tls_context(engine_context: ssl.SSLContext) -> ssl.SSLContext:
    """A context like the engine's whose sockets keep the slot and charge the budget."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # old TLS versions are observed, never preferred
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = engine_context.minimum_version
    try:
        context.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    context.sslsocket_class = EngineSSLSocket
    return context


class BlockingSession:
    """The connections of one blocking probe session to one host (see the module's rules)."""

    def __init__(self, engine: Engine, host: str, loop: asyncio.AbstractEventLoop, wall: float) -> None:
        self.engine = engine
        self.host = host
        self.loop = loop
        self.deadline = time.monotonic() + wall + engine.limits.timeout
        self.meter = engine.meter()  # the service's one byte budget, shared with its async connections
        self.budget = self.meter.limit
        self.received = 0
        self.opened = 0
        self.peak_held = 0
        self.expired = False  # the watchdog ended the session
        self.budget_spent = False
        self._held = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    # --- for probes and library hooks (the session's thread) -----------------------------

    def connect(self, port: int, timeout: float | None = None, host: str | None = None) -> socket.socket:
        """A connected TCP socket to the session's host, under every limit; raises OSError."""
        if host is not None and not _same_host(host, self.host):
            raise OutOfScope(errno.ECONNREFUSED, "not the probed host")
        if self.expired:
            raise TimeoutError("session wall time spent")
        wait = min(timeout or self.engine.limits.timeout, self.left())
        address = _address(self.host, port)
        lease = self._admit()
        sock = EngineSocket(address[0], socket.SOCK_STREAM)
        sock._lease = lease
        self._adopt(sock)
        try:
            sock.settimeout(wait)
            sock.connect(address[1])
        except BaseException as exc:
            self._record(exc)
            sock.close()
            raise
        self._record(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def create_connection(self, address: tuple[str, int], timeout: Any = None, source_address: Any = None,
                          **_: Any) -> socket.socket:  # fmt: skip
        """socket.create_connection's signature, for libraries that take it as a hook."""
        wait = timeout if isinstance(timeout, int | float) and timeout > 0 else None
        return self.connect(int(address[1]), wait, str(address[0]))

    def left(self) -> float:
        """Seconds until the watchdog (at least a little, so a call fails by timeout, not by zero)."""
        return max(0.05, self.deadline - time.monotonic())

    def charge(self, count: int) -> None:
        with self._lock:
            self.received += count
        if self.meter.charge(count):
            self.budget_spent = True
            raise BudgetSpent(errno.ECONNABORTED, "byte budget spent")

    def tls_context(self) -> ssl.SSLContext:
        return tls_context(self.engine.tls_context)

    # --- for the engine ------------------------------------------------------------------

    def kill(self) -> None:
        """Watchdog: shut every socket down (blocked reads wake at once); no new connection."""
        self.expired = True
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """The session ended: whatever its libraries left open is closed, every slot freed."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    def run(self, work: Callable[[], T]) -> T:
        """Run `work` as this session in the calling (pool) thread: its library hooks find it
        here, and whatever it left open is closed when it returns."""
        _LOCAL.session = self
        try:
            return work()
        finally:
            _LOCAL.session = None
            self.close()

    # --- inside ----------------------------------------------------------------------------

    def _admit(self) -> _Lease:
        """A host slot and a rate token from the event loop, within the session's time."""
        wait = self.left()
        future = asyncio.run_coroutine_threadsafe(self._admission(wait), self.loop)
        try:
            future.result(wait + 5.0)  # the loop answers within `wait`; the margin is for a stopped loop
        except (TimeoutError, asyncio.CancelledError) as exc:
            raise TimeoutError("no connection slot on this host in time") from exc
        return _Lease(self)

    async def _admission(self, wait: float) -> None:
        hosts = self.engine.hosts
        with self._lock:
            holding = self._held
        if holding >= MAX_HELD:
            raise OSError(errno.EMFILE, "a session holds no more connections at once")
        async with asyncio.timeout(wait):
            if holding:
                hosts.borrow(self.host)  # a session never waits on itself
            else:
                await hosts.acquire(self.host)
            try:
                await self.engine.rate.wait()
            except BaseException:
                hosts.release(self.host)
                raise
        with self._lock:
            self._held += 1
            self.peak_held = max(self.peak_held, self._held)
            self.opened += 1
        self.engine.connections_opened += 1

    def _adopt(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _release(self, lease: _Lease) -> None:
        with self._lock:
            if lease.released:
                return
            lease.released = True
            self._held -= 1
            self._sockets = {s for s in self._sockets if getattr(s, "_lease", None) is not None}
        try:
            self.loop.call_soon_threadsafe(self.engine.hosts.release, self.host)
        except RuntimeError:  # the loop is gone: so is every limit
            pass

    def _record(self, exc: BaseException | None) -> None:
        """A connect's outcome, for the adaptive rate (on the loop's thread)."""
        if exc is None or isinstance(exc, ConnectionRefusedError):
            answered, drop = True, False
        else:
            answered, drop = False, isinstance(exc, ConnectionResetError)
        try:
            self.loop.call_soon_threadsafe(self.engine.rate.record, answered, drop)
        except RuntimeError:
            pass


def current() -> BlockingSession | None:
    """The session this thread runs, for library hooks that cannot be given one."""
    session: BlockingSession | None = getattr(_LOCAL, "session", None)
    return session


def _address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    from .dial import numeric_address

    numeric = numeric_address(host, port)
    if numeric is not None:
        return numeric
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(errno.EHOSTUNREACH, "host name does not resolve")
    return infos[0][0], infos[0][4]


def _same_host(asked: str, host: str) -> bool:
    asked = asked.strip("[]")
    return asked == host or asked.lower() == host.lower()
