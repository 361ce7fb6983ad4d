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

SocketAddress = tuple[socket.AddressFamily, tuple]
# created non-blocking in one system call where the platform allows
_NONBLOCKING_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)


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
    """Per-host connection limits; entries vanish when a host has no connection open.

    A host costs one dict entry while it has a connection open (and a queue while
    someone waits for it), so memory follows the connections open, not the targets.
    """

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._open: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

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
        queue = self._waiting.get(host)
        while queue:
            waiter = queue.popleft()
            if not queue:
                del self._waiting[host]
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: the count stays
                return
        count = self._open.get(host, 0)
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
