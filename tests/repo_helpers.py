"""What the file-repository tests share: running one probe on a fresh engine, the scanner's
identification path for one open port, and the lab names that must never reach an output."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TypeVar

from phiwatch.engine import Engine, Limits
from phiwatch.models import Service
from phiwatch.probes.identify import ProbeOptions, service_on
from phiwatch.probes.outcome import Peer
from phiwatch.probes.walk import FileOptions, Outcome, WalkLimits
from phiwatch.sessions import BlockingSession
from phiwatch_lab.canary import CANARY_STRINGS
from phiwatch_lab.medtree import CANARY_FOLDER

T = TypeVar("T")
HOST = "127.0.0.1"
# Names of files and folders in the lab's medical tree, and the canary values: never in any output.
LAB_NAMES = ["CT_small", "MR_small", "rtplan", "ADT_", "claims_", "SE000001", "IM00001", "README",
             CANARY_FOLDER, *CANARY_STRINGS]  # fmt: skip


def on_engine(work: Callable[[Engine], Awaitable[T]], timeout: float = 2.0) -> T:
    """Run `work` on a fresh engine (no connect retries) in a fresh event loop."""

    async def main() -> T:
        engine = Engine(Limits(timeout=timeout, retries=0))
        try:
            return await work(engine)
        finally:
            engine.close()

    return asyncio.run(main())


@contextmanager
def engine_session(host: str = HOST, wall: float = 30.0, limits: Limits | None = None
                   ) -> Iterator[BlockingSession]:  # fmt: skip
    """The engine's blocking side for one session, usable from the test's own thread (for tests
    that drive a probe's internals directly): the engine's loop runs in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    engine = Engine(limits or Limits(timeout=2.0, retries=0))
    session = BlockingSession(engine, host, loop, wall)
    try:
        yield session
    finally:
        session.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        engine.close()
        loop.close()


def run_probe(module: ModuleType, port: int, limits: WalkLimits | None = None, timeout: float = 2.0,
              host: str = HOST, buckets: tuple[str, ...] = ()) -> Outcome:  # fmt: skip
    """One file-repository probe (module.probe) against host:port."""
    options = ProbeOptions(files=FileOptions(limits or WalkLimits(), buckets))
    return on_engine(lambda engine: module.probe(engine, Peer(host, port), options), timeout)


def identify(port: int, host: str = HOST, options: ProbeOptions | None = None) -> Service:
    """The scanner's path for one open port: the sweep's connection handed to identification."""

    async def work(engine: Engine) -> Service:
        channel = await engine.connect(host, port)
        return await service_on(engine, host, port, channel, options or ProbeOptions())

    return on_engine(work)


def no_leak(text: str, extra: Iterable[str] = ()) -> None:
    for name in [*LAB_NAMES, *extra]:
        assert name not in text, name
