"""Run a blocking library's session (ftplib, impacket, botocore ...) under the engine's rules.

The session runs in the engine's thread pool and opens every connection through its
`BlockingSession` (phiwatch.sessions): each one takes a host slot and a rate token, is
charged to the service's byte budget and goes to the probed host only. A watchdog shuts the
session's sockets down when its wall time is spent (and calls the probe's own `kill`), so a
dripping peer cannot hold a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import importlib
import socket
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from ..engine import Engine
from ..models import ProbeStatus, RepositoryFacts
from ..sessions import BlockingSession, BudgetSpent
from .outcome import Outcome as ProbeOutcome
from .walk import Outcome, WalkLimits, has_medical_files

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
PROTOCOL_SHARE = 8  # the walk's listings and heads may use 7/8 of --byte-budget; the rest is protocol


def session_wall(engine: Engine, walk_time: float) -> float:
    """Wall time for one session: the walk's, within the probe's time less one timeout."""
    return max(1.0, min(walk_time, engine.limits.probe_time - engine.limits.timeout))


def walk_limits(engine: Engine, limits: WalkLimits) -> WalkLimits:
    """The walk's bounds within what is left of the service's one byte budget (--byte-budget)."""
    left = engine.meter().left()
    cap = left - left // PROTOCOL_SHARE
    if limits.total_bytes <= cap:
        return limits
    return dataclasses.replace(limits, total_bytes=cap)


async def run_session(
    engine: Engine, session: BlockingSession, work: Callable[[], T], kill: Callable[[], None], wall: float
) -> T:
    """Run `work` in the thread pool as `session`; both are killed once wall + timeout have passed."""
    load_sniffer()

    def expire() -> None:
        kill()  # first: the probe marks itself expired before any of its sockets is shut down
        session.kill()

    watchdog = threading.Timer(wall + engine.limits.timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        result = await engine.run_blocking(session.run, work)
    except asyncio.CancelledError:
        expire()  # the scan gave up on this service: its thread must not go on
        raise
    finally:
        watchdog.cancel()
    if isinstance(result, ProbeOutcome) and session.budget_spent and result.status in _BROKEN:
        result.status, result.detail = ProbeStatus.BUDGET_EXCEEDED, "byte budget spent"
    return result


class Walker(Protocol[T_co]):
    """A protocol's blocking session: run() does the work, kill() (the watchdog's) ends it early."""

    def run(self) -> T_co: ...

    def kill(self) -> None: ...


async def walk_session(
    engine: Engine, host: str, limits: WalkLimits, start: Callable[[BlockingSession, WalkLimits, float], Walker[T]]
) -> T:
    """One file-repository session on `host`, the same for every protocol: its wall time, its
    connections owned by the engine, the walk's bounds within the service's byte budget; `start`
    makes the protocol's session from (connections, bounds, wall), run in the pool under the watchdog."""
    wall = session_wall(engine, limits.walk_time)
    conn = engine.blocking_session(host, wall)
    session = start(conn, walk_limits(engine, limits), wall)
    return await run_session(engine, conn, session.run, session.kill, wall)


def load_sniffer() -> None:
    """Import the content sniffer, and so pydicom, on the event loop's thread, before a session's thread
    reads its first file head. pydicom's modules import one another in circles: imported by two threads
    at once (a DICOM probe loading on the loop, a walk sniffing in the pool), one of them finds a module
    half-initialised and fails. Every other lazy import happens on the loop's thread already."""
    importlib.import_module("phiwatch.content.sniffer")


_BROKEN = {ProbeStatus.RESET, ProbeStatus.ERROR, ProbeStatus.PROTOCOL_ERROR, ProbeStatus.TIMEOUT}


def os_failure(exc: BaseException) -> tuple[ProbeStatus, str]:
    """The status of a socket-level failure; ERROR for anything else. Never the exception's text."""
    if isinstance(exc, BudgetSpent):
        return ProbeStatus.BUDGET_EXCEEDED, "byte budget spent"
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
