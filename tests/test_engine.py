"""Given limits, the engine never opens more connections than allowed, nor faster."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
import tracemalloc

from phiwatch.engine import Engine, Limits, ProbeFailure, connect_failure
from phiwatch.events import HostDone, ScanEvent
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
    # Then the whole host ends within its budget: a service the peer let time out says timeout,
    # one our host budget cut short says interrupted (not the target's doing)
    assert elapsed < 4
    assert len(outcome.services) == 3
    assert {s.status for s in outcome.services} <= {ProbeStatus.TIMEOUT, ProbeStatus.INTERRUPTED}
    cut = [s for s in outcome.services if s.detail == "host time budget spent"]
    assert cut and all(s.status is ProbeStatus.INTERRUPTED for s in cut)
    assert outcome.progress.open_services == 3 - len(cut)


def _free_port() -> int:
    """A port nothing listens on (not even on 0.0.0.0, or 127.0.0.1 could not be bound)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_connect_nobody_answers_is_a_timeout_after_every_retry():
    # Given a listener whose accept queue is full: the kernel drops further SYNs
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
    time.sleep(0.1)

    async def go() -> tuple[ProbeStatus, float, int]:
        engine = Engine(Limits(timeout=0.3, retries=1))
        started = time.monotonic()
        try:
            await engine.connect("127.0.0.1", listener.getsockname()[1])
        except ProbeFailure as failure:
            return failure.status, time.monotonic() - started, engine.connections_opened
        finally:
            engine.close()
        raise AssertionError("connected to a full accept queue")

    try:
        status, elapsed, attempts = asyncio.run(go())
    finally:
        for sock in (*fillers, listener):
            sock.close()
    # Then the status is a timeout, after the first attempt and one retry
    assert status is ProbeStatus.TIMEOUT
    assert attempts == 2
    assert 0.55 <= elapsed < 2.0


def test_errno_values_map_to_statuses():
    assert connect_failure(errno.ECONNREFUSED).status is ProbeStatus.REFUSED
    assert connect_failure(errno.ETIMEDOUT).status is ProbeStatus.TIMEOUT
    assert connect_failure(errno.EHOSTUNREACH).status is ProbeStatus.UNREACHABLE
    assert connect_failure(errno.ENETUNREACH).status is ProbeStatus.UNREACHABLE
    assert connect_failure(errno.ECONNRESET).status is ProbeStatus.RESET
    assert connect_failure(errno.EMFILE).status is ProbeStatus.ERROR


def test_host_names_and_ipv6_literals_connect():
    async def go() -> tuple[bytes, bytes, ProbeStatus | None]:
        async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(greet, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        engine = Engine(Limits(timeout=1, retries=0))
        # localhost may resolve to ::1 first, where nothing listens: the next address is tried
        async with await engine.connect("localhost", port) as channel:
            by_name = await channel.read_exact(7)
        async with await engine.connect("127.0.0.1", port) as channel:
            await asyncio.sleep(0.1)  # the line and the close arrive before anyone reads
            early = await channel.read_some(64)
        status = None
        try:
            await engine.connect("::1", _free_port())
        except ProbeFailure as failure:
            status = failure.status
        engine.close()
        server.close()
        return by_name, early, status

    by_name, early, ipv6 = asyncio.run(go())
    assert by_name == b"hello\r\n" and early == b"hello\r\n"
    assert ipv6 in (ProbeStatus.REFUSED, ProbeStatus.UNREACHABLE, ProbeStatus.ERROR)  # no IPv6: error


def test_a_cancelled_wait_for_a_host_slot_leaves_nothing_behind():
    async def go() -> tuple[int, int, bool]:
        counter = Counter()
        servers, ports = await _servers(counter, 1)
        engine = Engine(Limits(per_host=1, timeout=1, retries=0))
        first = await engine.connect("127.0.0.1", ports[0])
        waiting = asyncio.create_task(engine.connect("127.0.0.1", ports[0]))
        await asyncio.sleep(0.05)
        blocked = not waiting.done()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await first.close()
        left = len(engine.hosts)
        async with await engine.connect("127.0.0.1", ports[0]):
            held = len(engine.hosts)
        engine.close()
        servers[0].close()
        return left, held, blocked

    left, held, blocked = asyncio.run(go())
    assert blocked  # per_host=1: the second connect had to wait
    assert left == 0 and held == 1


def _sweep(spec: str, port: int, concurrency: int, ticks: list[int] | None = None, record: bool = True) -> tuple:
    events: list[ScanEvent] = []

    async def go() -> tuple:
        scanner = Scanner(ScanConfig(ports=[port], limits=Limits(concurrency=concurrency, rate=0,
                                                                  retries=0, timeout=1)),
                          events.append if record else None)

        async def tick() -> None:
            while True:
                await asyncio.sleep(0)
                if ticks is not None:
                    ticks[0] += 1

        ticker = asyncio.create_task(tick())
        outcome = await scanner.run(build_targets([spec]))
        ticker.cancel()
        return outcome, scanner.engine.connections_opened, len(scanner.engine.hosts)

    outcome, opened, hosts_left = asyncio.run(go())
    return outcome, opened, hosts_left, events


def test_a_sweep_of_closed_ports_reports_every_address_and_lets_other_tasks_run():
    ticks = [0]
    outcome, opened, hosts_left, events = _sweep("127.77.4.0/22", _free_port(), 1, ticks)
    done = [event.host for event in events if isinstance(event, HostDone)]
    assert outcome.complete and outcome.services == []
    assert outcome.progress.done == 1024 and opened == 1024
    assert len(done) == len(set(done)) == 1024 and done[0] == "127.77.4.0"
    assert hosts_left == 0
    # one worker whose connects are refused at once still gives the loop a turn now and then
    assert ticks[0] >= 1024 // 64


def test_a_sweep_finds_exactly_the_listening_addresses():
    port = _free_port()
    listening = ["127.77.9.3", "127.77.9.200", "127.77.10.17"]

    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-test\r\n")
        await writer.drain()
        writer.close()

    async def go() -> tuple:
        servers = [await asyncio.start_server(greet, host, port) for host in listening]
        config = ScanConfig(ports=[port], limits=Limits(concurrency=200, rate=0, retries=0, timeout=1))
        outcome = await Scanner(config).run(build_targets(["127.77.8.0/22"]))
        for server in servers:
            server.close()
        return outcome

    outcome = asyncio.run(go())
    assert sorted(s.host for s in outcome.services) == sorted(listening)
    assert outcome.progress.done == 1024 and outcome.progress.open_services == 3


def test_sweep_memory_does_not_grow_with_the_number_of_addresses():
    port = _free_port()
    _sweep("127.77.12.0/24", port, 100)  # first use: imports and caches
    tracemalloc.start()
    try:
        _sweep("127.77.12.0/22", port, 100, record=False)
        _, small = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        outcome, *_ = _sweep("127.77.16.0/18", port, 100, record=False)
        _, large = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.progress.done == 16384
    # 16 times the addresses (peaks of about 120 and 190 KB): nothing is kept per address,
    # which would cost 15360 * 50 bytes and more
    assert large - small < 128 * 1024


def test_tls_connects_report_the_certificate_and_a_plain_peer_is_a_tls_error(tmp_path):
    import ssl

    from phiwatch_lab.certs import make_self_signed

    make_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(4))
        await writer.drain()
        writer.close()

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def go() -> tuple:
        tls_server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
        plain_server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        engine = Engine(Limits(timeout=1, retries=0))
        async with await engine.connect("127.0.0.1", tls_server.sockets[0].getsockname()[1], tls=True) as ch:
            await ch.write(b"ping")
            answer, facts = await ch.read_exact(4), ch.tls
        try:
            await engine.connect("127.0.0.1", plain_server.sockets[0].getsockname()[1], tls=True)
            status = None
        except ProbeFailure as failure:
            status = failure.status
        hosts_left = len(engine.hosts)
        engine.close()
        tls_server.close()
        plain_server.close()
        return answer, facts, status, hosts_left

    answer, facts, status, hosts_left = asyncio.run(go())
    assert answer == b"ping"
    assert facts is not None and facts.self_signed
    assert status is ProbeStatus.TLS_ERROR
    assert hosts_left == 0
