"""--per-host and --rate hold for every connection of every blocking protocol, as the server sees it.

Each real lab server (pyftpdlib FTP, rsync daemon, Samba, moto S3, nginx autoindex, nfs-ganesha) stands
behind a counting TCP relay on an address of its own; the scanner scans the relay's address
with `--per-host 1` and a low `--rate`. The relay counts what reaches the server: connections
open at once, and connections begun within any one second. Identification, the sweep and every
connection the protocol's library opens (FTP data connections, one rsync connection per module
and file head, impacket's, botocore's and httpx's) all count.

The rule for a session that needs two connections at once (FTP control and data): it is
granted its second connection without waiting, and counted, so nothing else starts on that
host meanwhile; the host then sees `--per-host - 1 + 2` at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from phiwatch.engine import Limits
from phiwatch.models import ProbeStatus, Service
from phiwatch.scanner import ScanConfig, Scanner
from phiwatch.targets import build_targets
from phiwatch_lab.errors import LabError

from .relay import CountingRelay

RELAY_HOST = "127.23.9.1"  # the "host" the scanner sees; the servers listen on 127.0.0.1
RATE = 8.0  # --rate: new connections per second
PASV_FIRST, PASV_LAST = 65, 69  # the pyftpdlib plug-in's passive data ports (offsets)
FTP_OFFSET = 27


def scan(ports: list[int], rate: float = RATE, per_host: int = 1, byte_budget: int | None = None) -> list[Service]:
    limits = Limits(per_host=per_host, rate=rate, timeout=2.0, retries=0,
                    byte_budget=byte_budget or Limits().byte_budget)
    scanner = Scanner(ScanConfig(ports=ports, limits=limits))
    outcome = asyncio.run(scanner.run(build_targets([RELAY_HOST], [], [], [])))
    return sorted(outcome.services, key=lambda s: s.port)


@contextmanager
def behind_relay(lab_plugin, *names: str) -> Iterator[tuple[CountingRelay, list[dict]]]:
    """The named plug-in servers, and a relay in front of every port they use."""
    with ExitStack() as stack:
        services = [s for name in names for s in stack.enter_context(lab_plugin(name))]
        ports = [s["port"] for s in services]
        for service in services:
            if service["name"] == "pyftpdlib-mlsd":
                base = service["port"] - FTP_OFFSET
                ports += list(range(base + PASV_FIRST, base + PASV_LAST + 1))
        relay = stack.enter_context(CountingRelay(RELAY_HOST, "127.0.0.1", ports))
        yield relay, services


# (plug-in, protocol found, --rate, connections the host may see at once, fewest connections expected);
# the rate is low enough that the connections expected cannot all fit in one second's allowance
CASES = [
    ("pyftpdlib-mlsd", "ftp", RATE, 2, 20),  # control + data; a listing or head per data connection
    ("rsyncd", "rsync", RATE, 1, 20),  # module list, one per module, one per file head
    ("samba-guest", "smb", 2.0, 1, 6),  # identification, SMB1 check, null and guest sessions
    ("moto-s3", "s3", RATE, 1, 20),  # identification, HTTP probe, the S3 walk
    ("nginx-autoindex", "http", 4.0, 1, 12),  # identification, HTTP probe, the index walk
]


@pytest.mark.lab
@pytest.mark.parametrize(("plugin", "protocol", "rate", "at_once", "fewest"), CASES, ids=[c[0] for c in CASES])
def test_per_host_and_rate_hold_for_every_connection(lab_plugin, plugin, protocol, rate, at_once, fewest):
    with behind_relay(lab_plugin, plugin) as (relay, services):
        # Given the real server behind the relay, When it is scanned with --per-host 1 and a low --rate
        (found,) = scan([services[0]["port"]], rate)
    # Then the probe did its whole work under the limits (no session waited on itself) ...
    assert found.protocol == protocol
    assert found.status is ProbeStatus.EXPOSED, found.detail
    # ... through enough connections that the limits were put to the test ...
    assert len(relay.records) >= fewest
    # ... and the server never saw more at once, nor more begun in any second, than allowed
    assert relay.peak() <= at_once
    assert relay.busiest_second() <= rate + 2  # one for the rate's burst allowance (1/20 s), one for jitter


@pytest.mark.lab
def test_nfs_portmapper_mountd_and_nfsd_under_per_host_one(lab_plugin):
    """NFS holds nfsd while it asks the portmapper and mountd: two at once, never three."""
    with ExitStack() as stack:
        try:
            services = stack.enter_context(lab_plugin("nfs-ganesha"))
        except LabError as exc:
            pytest.skip(str(exc))
        nfs = next(s for s in services if s["port"] == 2049)
        ports = [111, 2049, nfs["expected"]["mountd_port"]]  # the relay stands for the NFS host
        relay = stack.enter_context(CountingRelay(RELAY_HOST, nfs["host"], ports))
        (found,) = scan([2049], rate=2.0)
    assert found.protocol == "nfs" and found.status is ProbeStatus.EXPOSED, found.detail
    assert {r.port for r in relay.records} == set(ports)  # nfsd, the portmapper and mountd
    assert len(relay.records) >= 4
    assert relay.peak() <= 2
    assert relay.busiest_second() <= 2.0 + 2


@pytest.mark.lab
def test_a_session_holding_two_connections_keeps_other_sessions_of_the_host_waiting(lab_plugin):
    with behind_relay(lab_plugin, "pyftpdlib-mlsd", "rsyncd") as (relay, services):
        # Given FTP and rsync on one host, When both are scanned at once with --per-host 1
        found = scan([s["port"] for s in services], rate=50)
    # Then both were walked ...
    assert {s.protocol for s in found} == {"ftp", "rsync"}
    assert all(s.status is ProbeStatus.EXPOSED for s in found)
    # ... and the host never had more open than FTP's control and data connections
    by_port = {s["name"]: s["port"] for s in services}
    assert {r.port for r in relay.records} >= {by_port["rsyncd"], by_port["pyftpdlib-mlsd"]}
    assert relay.peak() <= 2


@pytest.mark.lab
def test_per_host_two_lets_two_sessions_run_at_once_and_no_more(lab_plugin):
    with behind_relay(lab_plugin, "pyftpdlib-mlsd", "rsyncd") as (relay, services):
        found = scan([s["port"] for s in services], rate=50, per_host=2)
    assert all(s.status is ProbeStatus.EXPOSED for s in found)
    # FTP's two connections and one of rsync's at most; and both sessions did run at once
    assert 2 <= relay.peak() <= 3


@pytest.mark.lab
@pytest.mark.parametrize("plugin", ["rsyncd", "pyftpdlib-mlsd"])
def test_the_walk_is_bounded_by_the_services_byte_budget(lab_plugin, plugin):
    budget = 48 * 1024  # the lab's trees hold megabytes of file heads within the walk's own bounds
    with behind_relay(lab_plugin, plugin) as (relay, services):
        # Given a tree far larger than the budget, When it is scanned with --byte-budget 48 KiB
        (found,) = scan([services[0]["port"]], rate=0, byte_budget=budget)
    # Then the walk stopped within it (what the server pushed into socket buffers is not what
    # was read, so the count is phiwatch's own, taken at its sockets and in the walk)
    shares = found.repository.shares  # type: ignore[union-attr]
    assert any(share.limited for share in shares)
    assert 0 < sum(share.bytes_read for share in shares) <= budget
    assert sum(r.sent for r in relay.records) > budget  # the tree would have given much more
