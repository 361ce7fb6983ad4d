"""Connections at socket level: non-blocking TCP connects and the limits on opening them.

A connect costs a socket and, only while the answer is pending, one poll registration
and one timer; no transport or protocol object exists until a port answers. Failures
are errno values, not exceptions, so a sweep of closed ports raises nothing.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections import deque
from collections.abc import Callable

SocketAddress = tuple[socket.AddressFamily, tuple]
# created non-blocking in one system call where the platform allows
_NONBLOCKING_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)


class AdaptiveRate:
    """New connections per second, adapted to the answers (congestion control, as nmap's).

    The rate starts low and doubles every window in which connects are answered (connected
    or refused) and the limiter was what held the scan back; after the first back-off it grows
    by a tenth per window. It halves when a window shows congestion: a connect answered only
    on its retry after a timeout (a proven drop), resets while connecting, or a share of
    timeouts and unreachables clearly above its usual level (a network that is dark from the
    start sets that level, and is not mistaken for congestion). `ceiling` (--rate) bounds it;
    0 leaves it unbounded.

    Single-threaded: every call comes from the event loop's thread.
    """

    START = 1000.0  # connections per second before any answer came back
    FLOOR = 5.0  # never slower than this, whatever the losses
    UNBOUNDED = 10_000_000.0  # the top of the range without a ceiling (well beyond any socket rate)
    WINDOW = 0.05  # seconds of outcomes judged together (at least MIN_OUTCOMES of them)
    MIN_OUTCOMES = 16
    BURST = 0.05  # seconds of unused rate that may be spent at once

    def __init__(self, ceiling: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.ceiling = ceiling if ceiling > 0 else 0.0
        top = self.ceiling or self.UNBOUNDED
        self.rate = min(self.START, top)
        self._top = top
        self._threshold = top  # slow start until the first back-off
        self._next = 0.0
        self._window = clock()
        self._answered = self._lost = self._drops = self._reserved = 0
        self._usual_loss: float | None = None  # the loss share a window usually has
        self.backoffs = 0
        self.peak = self.rate

    def holding_back(self) -> bool:
        """Connects wait for the rate right now (for progress: is the rate what holds back?)."""
        return self._next > self._clock()

    def reserve(self) -> float:
        """Take the next start time; the seconds to wait for it (0 or less: go now)."""
        now = self._clock()
        if not self._reserved:  # a window starts with its first connect (idle time is not judged)
            self._window = now
        start = max(self._next, now - self.BURST)
        self._next = start + 1.0 / self.rate
        self._reserved += 1
        return start - now

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def record(self, answered: bool, drop: bool = False) -> None:
        """One connect's outcome: answered (connected or refused), or lost (timeout, unreachable,
        reset); `drop` when it was answered only on a retry after a timeout, or reset."""
        if answered:
            self._answered += 1
        else:
            self._lost += 1
        if drop:
            self._drops += 1
        if self._answered + self._lost >= self.MIN_OUTCOMES:
            now = self._clock()
            if now - self._window >= self.WINDOW:
                self._adjust(now)

    def _adjust(self, now: float) -> None:
        total = self._answered + self._lost
        loss = self._lost / total
        usual = loss if self._usual_loss is None else self._usual_loss
        congested = self._drops >= 2 or (self._lost >= 8 and loss > usual + 0.2)
        if congested:
            self._threshold = max(self.FLOOR, self.rate / 2)
            self.rate = self._threshold
            self.backoffs += 1
        elif self._answered and self._reserved >= self.rate * (now - self._window) / 2:
            # the scan used the rate it had (not held back by --concurrency or slow answers): go faster
            grown = self.rate * 2 if self.rate < self._threshold else self.rate * 1.1
            self.rate = min(self._top, grown)
            self.peak = max(self.peak, self.rate)
        if not congested:  # a congested window does not become the usual level
            self._usual_loss = loss if self._usual_loss is None else 0.8 * usual + 0.2 * loss
        self._window = now
        self._answered = self._lost = self._drops = self._reserved = 0


class HostSlots:
    """Per-host connection limits; entries vanish when a host has no connection open.

    A host costs one dict entry while it has a connection open (and a queue while
    someone waits for it), so memory follows the connections open, not the targets.
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._open: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def waiting(self) -> int:
        """Connections queued for a host's slot right now (is --per-host what holds back?)."""
        return sum(len(queue) for queue in self._waiting.values())

    def borrow(self, host: str) -> None:
        """Take a slot at once, even above the limit (for a session that already holds one:
        it is counted, so nobody else gets a slot until the count is below the limit)."""
        self._open[host] = self._open.get(host, 0) + 1

    def try_acquire(self, host: str) -> bool:
        """Take a slot at once if one is free and nobody waits for it."""
        count = self._open.get(host, 0)
        if count >= self.per_host or host in self._waiting:
            return False
        self._open[host] = count + 1
        return True

    async def acquire(self, host: str) -> None:
        if self.try_acquire(host):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting.setdefault(host, deque())
        queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(host)  # the slot was handed over as we were cancelled
            else:
                queue.remove(waiter)
                if not queue and self._waiting.get(host) is queue:
                    del self._waiting[host]
            raise

    def release(self, host: str) -> None:
        count = self._open.get(host, 0)
        queue = self._waiting.get(host) if count <= self.per_host else None  # not while above it
        while queue:
            waiter = queue.popleft()
            if not queue:
                del self._waiting[host]
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: the count stays
                return
        if count > 1:
            self._open[host] = count - 1
        else:
            self._open.pop(host, None)

    def __len__(self) -> int:
        return len(self._open)


def numeric_address(host: str, port: int) -> SocketAddress | None:
    """The socket address of a literal IPv4/IPv6 address; None for a host name."""
    try:
        socket.inet_pton(socket.AF_INET, host)
        return socket.AF_INET, (host, port)
    except (OSError, ValueError):
        pass
    if ":" not in host:
        return None
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return info[0][0], info[0][4]


def _wake(waiter: asyncio.Future[bool], answered: bool) -> None:
    if not waiter.done():
        waiter.set_result(answered)


async def _writable(sock: socket.socket, timeout: float) -> int:
    """Wait for a pending connect; its errno, 0 when connected, ETIMEDOUT after `timeout`."""
    loop = asyncio.get_running_loop()
    fd = sock.fileno()
    waiter: asyncio.Future[bool] = loop.create_future()
    loop.add_writer(fd, _wake, waiter, True)
    timer = loop.call_later(timeout, _wake, waiter, False)
    try:
        answered = await waiter
    finally:
        loop.remove_writer(fd)
        timer.cancel()
    if not answered:
        return errno.ETIMEDOUT
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


async def dial(target: SocketAddress, timeout: float) -> socket.socket | int:
    """One non-blocking TCP connect: the connected socket, or an errno (ETIMEDOUT: no answer).

    No transport or protocol object exists until the port answers, and a connect whose
    answer is already in (a refusal on a local link) costs no poll registration.
    """
    try:
        sock = socket.socket(target[0], _NONBLOCKING_STREAM)
    except OSError as exc:
        return exc.errno or errno.EIO
    try:
        if _NONBLOCKING_STREAM == socket.SOCK_STREAM:
            sock.setblocking(False)
        code = sock.connect_ex(target[1])
        if code == errno.EINPROGRESS:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.EINPROGRESS
        if code == errno.EINPROGRESS:
            code = await _writable(sock, timeout)
    except OSError as exc:
        code = exc.errno or errno.EIO
    except BaseException:
        sock.close()
        raise
    if code:
        sock.close()
        return code
    return sock
