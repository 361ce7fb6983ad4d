"""Given limits, the engine never opens more connections than allowed, nor faster."""

from __future__ import annotations

import asyncio
import time

from phiwatch.engine import Engine, Limits, ProbeFailure
from phiwatch.models import ProbeStatus
from phiwatch.scanner import ScanConfig, Scanner
from phiwatch.targets import build_targets


class Counter:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.total = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.now += 1
        self.total += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(0.2)
        self.now -= 1
        writer.close()


async def _servers(counter: Counter, count: int) -> tuple[list[asyncio.base_events.Server], list[int]]:
    servers = [await asyncio.start_server(counter.handle, "127.0.0.1", 0) for _ in range(count)]
    return servers, [s.sockets[0].getsockname()[1] for s in servers]


def test_per_host_limit_holds_across_ports():
    async def go() -> tuple[Counter, int]:
        counter = Counter()
        servers, ports = await _servers(counter, 6)
        limits = Limits(concurrency=50, per_host=2, timeout=0.5, retries=0, probe_time=5)
        engine = Engine(limits)

        async def touch(port: int) -> None:
            channel = await engine.connect("127.0.0.1", port)
            await asyncio.sleep(0.2)
            await channel.close()

        await asyncio.gather(*(touch(p) for p in ports * 2))
        hosts_left = len(engine.hosts)
        engine.close()
        for server in servers:
            server.close()
        return counter, hosts_left

    counter, hosts_left = asyncio.run(go())
    assert counter.total == 12
    assert counter.peak <= 2
    assert hosts_left == 0  # per-host entries vanish: memory does not grow with targets


def test_global_concurrency_bounds_the_sweep():
    async def go() -> Counter:
        counter = Counter()
        servers, ports = await _servers(counter, 8)
        config = ScanConfig(ports=ports, limits=Limits(concurrency=3, per_host=8, timeout=0.3,
                                                       retries=0, probe_time=3))
        await Scanner(config).run(build_targets(["127.0.0.1"]))
        for server in servers:
            server.close()
        return counter

    counter = asyncio.run(go())
    assert counter.total >= 8
    assert counter.peak <= 3


def test_rate_limit_spaces_new_connections():
    async def go() -> float:
        counter = Counter()
        servers, ports = await _servers(counter, 1)
        engine = Engine(Limits(rate=50, per_host=64, timeout=1, retries=0))
        started = time.monotonic()
        channels = [await engine.connect("127.0.0.1", ports[0]) for _ in range(20)]
        elapsed = time.monotonic() - started
        for channel in channels:
            await channel.close()
        engine.close()
        servers[0].close()
        return elapsed

    # 20 connections at 50 per second cannot take less than ~19/50 s
    assert asyncio.run(go()) >= 0.3


def test_connect_failures_are_statuses():
    async def go() -> tuple[ProbeStatus, ProbeStatus]:
        engine = Engine(Limits(timeout=0.5, retries=0))
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        statuses = []
        for port_to_try, tls in ((port, False), (port, True)):
            try:
                await engine.connect("127.0.0.1", port_to_try, tls=tls)
            except ProbeFailure as failure:
                statuses.append(failure.status)
        engine.close()
        return statuses[0], statuses[1]

    assert asyncio.run(go()) == (ProbeStatus.REFUSED, ProbeStatus.REFUSED)


def test_the_host_time_budget_bounds_every_probe_of_one_address():
    from .parrot import Parrot
    from .test_hostile_dicom import silent

    # Given three ports of one host that accept and never answer
    with Parrot(silent) as a, Parrot(silent) as b, Parrot(silent) as c:
        limits = Limits(timeout=1.0, retries=0, per_host=3, probe_time=30, host_time=1.5)
        config = ScanConfig(ports=[a.port, b.port, c.port], limits=limits)
        started = time.monotonic()
        outcome = asyncio.run(Scanner(config).run(build_targets(["127.0.0.1"])))
        elapsed = time.monotonic() - started
    # Then the whole host ends within its budget, every service with a timeout status
    assert elapsed < 4
    assert len(outcome.services) == 3
    assert {s.status for s in outcome.services} == {ProbeStatus.TIMEOUT}
    assert any(s.detail == "host time budget spent" for s in outcome.services)
