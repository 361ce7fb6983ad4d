"""Run a blocking library's session (ftplib, impacket, botocore ...) under the engine's rules.

The session runs in the engine's thread pool, holds one of the host's connection slots,
waits for the connection rate, and has a watchdog: when its wall time is spent, `kill`
is called from another thread to shut its sockets down, so a dripping peer cannot hold
a thread.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts
from .walk import Outcome, has_medical_files

T = TypeVar("T")


def session_wall(engine: Engine, walk_time: float) -> float:
    """Wall time for one session: the walk's, within the probe's time less one timeout."""
    return max(1.0, min(walk_time, engine.limits.probe_time - engine.limits.timeout))


async def run_session(
    engine: Engine, host: str, session: Callable[[], T], kill: Callable[[], None], wall: float
) -> T:
    """Run `session` in the thread pool; `kill` is called once wall + timeout have passed."""
    await engine.hosts.acquire(host)
    watchdog = threading.Timer(wall + engine.limits.timeout, kill)
    watchdog.daemon = True
    try:
        await engine.rate.wait()
        engine.connections_opened += 1
        watchdog.start()
        return await engine.run_blocking(session)
    finally:
        watchdog.cancel()
        engine.hosts.release(host)


def os_failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    """The status of a socket-level failure; ERROR for anything else. Never the exception's text."""
    if isinstance(exc, ConnectionRefusedError):
        return ProbeStatus.REFUSED, "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return ProbeStatus.TIMEOUT, "no answer in time"
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ProbeStatus.UNREACHABLE, "host or network unreachable"
        return ProbeStatus.RESET, "connection reset"
    return ProbeStatus.ERROR, f"probe failed ({type(exc).__name__})"


def failed(
    exc: BaseException, classify: Callable[[BaseException], tuple[ProbeStatus, str]], facts: RepositoryFacts,
    expired: bool,
) -> Outcome:
    """The outcome of a session that raised: the failure's status, or TIMEOUT when the watchdog ended it.

    The facts gathered before the failure stay, and medical files already seen still
    prove the exposure (see probes/steps.py).
    """
    status, detail = classify(exc)
    if expired:
        status, detail = ProbeStatus.TIMEOUT, "session wall time spent"
    if has_medical_files(facts.shares):
        status = ProbeStatus.EXPOSED
    return Outcome(status, facts, detail)
