"""The engine's blocking side: scope, host slots, the byte budget and the watchdog, on real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from phiwatch.engine import Limits
from phiwatch.sessions import MAX_HELD, BudgetSpent, OutOfScope

from .repo_helpers import engine_session

HOST = "127.0.0.1"


class Listener:
    """A TCP server on an ephemeral port that counts accepts and sends `greeting` to each."""

    def __init__(self, host: str = HOST, greeting: bytes = b"") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.greeting = greeting
        self.peers: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                peer, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.peers.append(peer)
            if self.greeting:
                peer.sendall(self.greeting)

    def close(self) -> None:
        self.sock.close()
        for peer in self.peers:
            peer.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_a_library_cannot_reach_another_host(listener):
    other = Listener("127.0.0.2")
    try:
        with engine_session(HOST) as session:
            with pytest.raises(OutOfScope):
                session.create_connection(("127.0.0.2", other.port), 1.0)
            time.sleep(0.1)
        assert other.accepted == 0  # refused before any packet
    finally:
        other.close()


def test_a_session_never_waits_on_itself_and_others_wait_for_it(listener):
    with engine_session(HOST, limits=Limits(per_host=1, timeout=1.0, retries=0)) as session:
        hosts = session.engine.hosts
        first = session.connect(listener.port)
        second = session.connect(listener.port)  # granted at once although --per-host is 1
        assert session.peak_held == 2
        assert not hosts.try_acquire(HOST)  # nobody else gets a slot meanwhile
        extra = [session.connect(listener.port) for _ in range(MAX_HELD - 2)]
        with pytest.raises(OSError):
            session.connect(listener.port)  # more at once than any protocol needs
        for sock in (first, second, *extra):
            sock.close()
        time.sleep(0.1)  # the releases run on the engine's loop
        assert len(hosts) == 0
        assert hosts.try_acquire(HOST)  # the host is free again
        hosts.release(HOST)


def test_every_byte_counts_against_the_services_one_budget():
    server = Listener(greeting=b"x" * 6000)
    try:
        with engine_session(HOST, limits=Limits(byte_budget=8192, timeout=1.0, retries=0)) as session:
            one = session.connect(server.port)
            assert len(one.recv(6000, socket.MSG_WAITALL)) == 6000
            two = session.connect(server.port)  # a second connection of the same session
            with pytest.raises(BudgetSpent):
                while True:
                    two.recv(4096)
            assert session.budget_spent and session.received > 8192
    finally:
        server.close()


def test_the_watchdog_wakes_a_blocked_read_and_stops_new_connections(listener):
    with engine_session(HOST) as session:
        sock = session.connect(listener.port)
        sock.settimeout(30)
        threading.Timer(0.3, session.kill).start()
        started = time.monotonic()
        assert sock.recv(10) == b""  # shut down under the reader's feet
        assert time.monotonic() - started < 5
        with pytest.raises(TimeoutError):
            session.connect(listener.port)


def test_a_services_async_and_blocking_connections_share_one_budget():
    from phiwatch.engine import Engine
    from phiwatch.probes.blocking import run_session

    server = Listener(greeting=b"y" * 6000)

    async def main() -> tuple[int, bool]:
        engine = Engine(Limits(byte_budget=8192, timeout=1.0, retries=0))
        try:
            with engine.service() as meter:
                # Given 6000 bytes read by the service's asyncio probe ...
                channel = await engine.connect(HOST, server.port)
                assert len(await channel.read_exact(6000)) == 6000
                await channel.close()
                # ... When its blocking session reads from the same service
                session = engine.blocking_session(HOST, 5.0)

                def work() -> bool:
                    sock = session.connect(server.port)
                    try:
                        while sock.recv(4096):
                            pass
                    except BudgetSpent:
                        return True
                    return False

                spent = await run_session(engine, session, work, lambda: None, 5.0)
                return meter.used, spent
        finally:
            engine.close()

    try:
        used, spent = asyncio.run(main())
    finally:
        server.close()
    # Then the two together hit the one budget of 8192 bytes
    assert spent and 8192 < used <= 12000
