"""The rsync probe and checks: against the lab's rsync daemon, and against scripted hostile peers.

Against the daemon: the module list, which modules need a password, the open module's medical
files counted from their first bytes (transfer phase) and by name, the folder loop, the depth
rule, the identify path from a banner on a non-default port, and neither a canary value nor a
lab file or folder name in any output. Hostile peers: every session ends in a status within
its bounds.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import time
import tracemalloc
from collections.abc import Awaitable, Callable

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus, Service
from phiwatch.probes import rsync, rsync_proto
from phiwatch.probes.walk import Outcome, WalkLimits

from .parrot import Parrot
from .repo_helpers import HOST, engine_session, identify, no_leak
from .repo_helpers import run_probe as _run_probe


def run_probe(port: int, limits: WalkLimits | None = None, timeout: float = 2.0) -> Outcome:
    return _run_probe(rsync, port, limits, timeout)


# --- against the lab's daemon -------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(lab_plugin):
    with lab_plugin("rsyncd") as entries:
        (entry,) = entries
        yield entry


@pytest.fixture(scope="module")
def scanned(daemon) -> Service:
    return identify(daemon["port"])


@pytest.mark.lab
def test_modules_and_authentication(daemon, scanned):
    expected = daemon["expected"]
    # Given the daemon on a non-default port, When the scanner meets its banner
    assert scanned.protocol == "rsync" and scanned.identified_by == "banner"
    assert scanned.status is ProbeStatus.EXPOSED
    facts = scanned.repository
    assert facts is not None and facts.access == expected["access"] == "anonymous"
    assert facts.listing == "rsync" and facts.dialect == expected["dialect"] == "30"
    assert facts.server is not None and facts.server.startswith("rsync 3") and scanned.banner == facts.server
    # Then the listed modules are seen, the hidden one is not, and the password module is marked
    shares = {share.name: share for share in facts.shares}
    assert list(shares) == expected["modules_listed"]
    assert not set(expected["unlisted"]) & set(shares)
    assert [n for n, s in shares.items() if s.readable] == expected["open"]
    assert [n for n, s in shares.items() if s.auth_required] == expected["auth_required"]
    archive = shares["archive"]
    assert not archive.files and archive.entries == 0 and archive.files_sniffed == 0


@pytest.mark.lab
def test_open_module_counts_match_the_tree(daemon, scanned):
    expected = daemon["expected"]
    imaging = next(s for s in scanned.repository.shares if s.name == "imaging")  # type: ignore[union-attr]
    counts = {kind: count.model_dump() for kind, count in imaging.files.items()}
    assert counts == expected["probe_counts"]
    assert counts["dicom"]["verified"] > 0 and counts["dicom"]["estimated"] > 0
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= set(imaging.phi_attributes["dicom"])
    assert "PID-5 patient name" in imaging.phi_attributes["hl7"]
    assert any(name.startswith("NM1*IL") for name in imaging.phi_attributes["x12"])
    assert imaging.loops == expected["loops"] == 1
    assert imaging.directories == 7  # /, DICOM, its patient folder, HL7, IMAGES, SE000001, X12
    assert imaging.limited
    assert 0 < imaging.bytes_read <= imaging.files_sniffed * WalkLimits().file_budget
    total = sum(c["verified"] for c in counts.values())
    assert imaging.files_sniffed >= total  # README.txt is read too, and is no medical file


@pytest.mark.lab
def test_findings_and_no_name_or_value_leaks(scanned):
    found = {f.check_id: f for f in evaluate(scanned)}
    assert set(found) == {"rsync_medical_files_exposed", "rsync_module_list_exposed"}
    exposed = found["rsync_medical_files_exposed"]
    assert exposed.severity == "critical" and exposed.exposure is not None
    assert "'imaging'" in exposed.evidence and "archive" not in exposed.evidence
    assert "verified from their first bytes" in exposed.evidence and "estimated by name" in exposed.evidence
    imaging = next(s for s in scanned.repository.shares if s.name == "imaging")  # type: ignore[union-attr]
    dicom = sum(imaging.files[k].verified + imaging.files[k].estimated for k in ("dicom", "dicomdir"))
    assert exposed.exposure.files.dicom == dicom
    assert (exposed.exposure.files.hl7, exposed.exposure.files.x12) == (3, 2)
    assert "auth users" in exposed.remediation and "hosts allow" in exposed.remediation
    listed = found["rsync_module_list_exposed"]
    assert listed.severity == "low" and "2 module(s)" in listed.evidence and "1 of them ask" in listed.evidence
    assert "list = no" in listed.remediation
    no_leak(scanned.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in found.values()]))


@pytest.mark.lab
def test_password_module_alone_gives_no_exposure(scanned):
    # Given only what the password-protected module showed, Then no exposure and no open-module finding
    facts = scanned.repository.model_copy(deep=True)  # type: ignore[union-attr]
    facts.shares = [s for s in facts.shares if s.name == "archive"]
    facts.access = "denied"
    svc = Service(host=HOST, port=scanned.port, protocol="rsync", status=ProbeStatus.REJECTED, repository=facts)
    assert {f.check_id for f in evaluate(svc)} == {"rsync_module_list_exposed"}


@pytest.mark.lab
def test_depth_rule_and_sniff_budget_hold(daemon):
    # Given a walk of depth 1 and 5 file heads, When the daemon is probed
    outcome = run_probe(daemon["port"], WalkLimits(max_depth=1, max_files=5))
    imaging = next(s for s in outcome.facts.shares if s.name == "imaging")
    # Then the patient folder and the series are not listed (the filter rule kept them off the list)
    assert imaging.directories == 5 and imaging.limited  # /, DICOM, HL7, IMAGES, X12
    assert imaging.files_sniffed == 5
    assert "dicom" not in imaging.files  # the images lie two folders down
    assert sum(c.verified for c in imaging.files.values()) <= 5
    assert sum(c.estimated for c in imaging.files.values()) > 0


@pytest.mark.lab
def test_file_list_is_cut_at_its_bound(daemon):
    outcome = run_probe(daemon["port"], WalkLimits(max_entries=10))  # the list is cut at 80 entries
    imaging = next(s for s in outcome.facts.shares if s.name == "imaging")
    assert imaging.limited and imaging.entries <= 80
    assert outcome.status in (ProbeStatus.EXPOSED, ProbeStatus.OPEN)


@pytest.mark.lab
def test_head_reads_stop_at_the_budget(daemon):
    with engine_session() as conn:
        _head_reads_stop_at_the_budget(conn, daemon["port"])


def _head_reads_stop_at_the_budget(conn, port):
    budget = rsync.Budget.start(WalkLimits())
    connections = rsync._Connections(conn, port, budget, 2.0)
    tree = rsync.RsyncTree(connections, b"imaging", WalkLimits())
    wire, _, _ = connections.open()
    assert rsync_proto.open_module(wire, b"imaging") == "ok"
    tree.load(wire)
    (dicomdir,) = [e for e in tree.folders["/DICOM"] if e.kind == "f"]
    assert dicomdir.size and dicomdir.size > 1000
    data, complete = tree.head("/DICOM/" + dicomdir.name, dicomdir, 1000)
    assert len(data) == 1000 and not complete and data[128:132] == b"DICM"
    whole, complete = tree.head("/DICOM/" + dicomdir.name, dicomdir, dicomdir.size + 10)
    assert complete and len(whole) == dicomdir.size and whole[:1000] == data
    assert connections.current is None  # every file connection is dropped


# --- wire encodings ----------------------------------------------------------------------------------


def test_varint_and_varlong_decode_rsync_encodings():
    def reader(data: bytes) -> Callable[[int], bytes]:
        view = bytearray(data)

        def read(n: int) -> bytes:
            out = bytes(view[:n])
            del view[:n]
            return out

        return read

    assert rsync_proto.varint(reader(b"\x05")) == 5
    assert rsync_proto.varint(reader(b"\x81\x00")) == 256  # one extra byte, high bits 1
    assert rsync_proto.varint(reader(b"\xa7\x10")) == 10_000
    assert rsync_proto.varlong(reader(b"\x00\x26\x2b"), 3) == 11_046
    assert rsync_proto.varlong(reader(b"\x81\x00\x00\x00\x00"), 4) == 1 << 32  # mtime past 2106
    with pytest.raises(rsync_proto.ProtocolError):
        rsync_proto.varint(reader(b"\xff" * 9))
    rules = rsync_proto.filter_rules(2)
    assert rules == struct.pack("<i", 10) + b"- /*/*/*/*" + struct.pack("<i", 0)


def test_unsafe_names_from_the_file_list_are_dropped():
    with engine_session() as conn:
        _unsafe_names_are_dropped(conn)


def _unsafe_names_are_dropped(conn):
    tree = rsync.RsyncTree(rsync._Connections(conn, 1, rsync.Budget.start(WalkLimits()), 1.0), b"m", WalkLimits())
    tree.folders["/"] = []
    for name in (b"../../etc/passwd", b"/abs.dcm", b"a//b.dcm", b"./x.dcm", b"a/../b.dcm", b"n\nl.dcm", b"."):
        tree._add(rsync_proto.FileEntry(name, 0o100644, 10))
    tree._add(rsync_proto.FileEntry(b"dev", 0o020644, 0))  # a device: neither file, folder nor link
    tree._add(rsync_proto.FileEntry(b"sub/ok.dcm", 0o100644, 10))
    # A line break is no unsafe path, only one no walk path can carry: kept with "?" (then estimated)
    assert tree.folders == {"/": [rsync.Entry("f", "n?l.dcm", 10)], "/sub": [rsync.Entry("f", "ok.dcm", 10)]}
    assert tree.listdir("/nowhere", 10) == ([], True)


# --- hostile peers -------------------------------------------------------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


def frame(payload: bytes, tag: int = 0) -> bytes:
    return struct.pack("<I", ((7 + tag) << 24) + len(payload)) + payload


def file_entry(name: bytes, mode: int = 0o100644, size: int = 100) -> bytes:
    size3 = bytes([size >> 16, size & 0xFF, (size >> 8) & 0xFF])
    return bytes([0x80, len(name)]) + name + size3 + struct.pack("<I", mode)


def daemon_script(modules: Script, module: Script, greeting: bytes = b"@RSYNCD: 31.0\n") -> Callable:
    """A scripted daemon: greeting, then the module list or one module's answer."""

    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        await reader.readline()  # the client's version
        request = await reader.readline()
        if request == b"\n":
            await modules(reader, writer, request)
        else:
            await module(reader, writer, request.strip())

    return scenario


def listing(*names: bytes) -> Script:
    async def send(reader, writer, _request):
        writer.write(b"".join(b"%-15s\tcomment\n" % n for n in names) + b"@RSYNCD: EXIT\n")
        await writer.drain()

    return send


def refuse() -> Script:
    async def send(reader, writer, _request):
        writer.write(b"@ERROR: access denied to " + b"DOE^JANE" + b"\n")
        await writer.drain()

    return send


def opened(after: Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]) -> Script:
    """Answer OK, read the arguments, then hand over (args given)."""

    async def send(reader, writer, _request):
        writer.write(b"@RSYNCD: OK\n")
        await writer.drain()
        args = await reader.readuntil(b"\0\0")
        await after(reader, writer, args)

    return send


def test_hostile_endless_module_list_is_cut():
    async def endless(reader, writer, _request):
        for i in range(1_000_000):
            writer.write(b"mod%07d\tsome comment\n" % i)
            await writer.drain()

    with Parrot(daemon_script(endless, refuse())) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port)
        assert time.monotonic() - started < 10
    assert outcome.status is ProbeStatus.REJECTED
    assert len(outcome.facts.shares) == WalkLimits().max_shares
    assert outcome.detail is not None and outcome.detail.endswith("module list cut at 32")
    assert all(s.error == "module refused" and not s.readable for s in outcome.facts.shares)
    assert "DOE" not in outcome.facts.model_dump_json()


def test_hostile_megabyte_line_is_a_protocol_error_in_bounded_memory():
    async def long_line(reader, writer, _request):
        chunk = b"x" * 65_536
        for _ in range(320):  # 20 MiB, no newline
            writer.write(chunk)
            await writer.drain()

    tracemalloc.start()
    try:
        with Parrot(daemon_script(long_line, refuse())) as parrot:
            outcome = run_probe(parrot.port)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR
    assert peak < 4 * 1024 * 1024

    async def silent(reader, writer, _request):
        await asyncio.sleep(5)

    with Parrot(daemon_script(silent, refuse(), greeting=b"@RSYNCD: " + b"9" * 1_000_000)) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR and outcome.facts.access == "not-attempted"


def test_hostile_garbage_greeting_and_garbage_after_setup():
    async def tls_hello(reader, writer):
        writer.write(b"\x16\x03\x01garbage\r\n")
        await writer.drain()
        await asyncio.sleep(2)

    with Parrot(tls_hello) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR

    async def garbage(reader, writer, _args):
        writer.write(b"\x00" + b"seed" + b"\xee\xff\x00\x01" * 1000)  # an unknown message tag
        await writer.drain()
        await asyncio.sleep(2)

    with Parrot(daemon_script(listing(b"data"), opened(garbage))) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.OPEN and outcome.facts.access == "anonymous"
    (share,) = outcome.facts.shares
    assert share.readable and share.error == "reply is not the rsync daemon protocol" and not share.files


def test_hostile_binary_garbage_after_the_greeting():
    noise = bytes(random.Random(7).getrandbits(8) for _ in range(200_000))

    async def garbage(reader, writer, _request):
        writer.write(noise)
        await writer.drain()

    with Parrot(daemon_script(garbage, garbage)) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port)
        assert time.monotonic() - started < 10
    assert outcome.status in (ProbeStatus.PROTOCOL_ERROR, ProbeStatus.REJECTED, ProbeStatus.RESET)
    assert len(outcome.facts.shares) <= WalkLimits().max_shares
    for share in outcome.facts.shares:
        assert share.name.isprintable() and len(share.name) <= 64 and not share.readable


def test_old_protocol_daemon_lists_modules_but_no_files():
    async def old(reader, writer, _args):
        await asyncio.sleep(2)

    with Parrot(daemon_script(listing(b"backup"), opened(old), greeting=b"@RSYNCD: 29\n")) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.OPEN
    assert outcome.facts.dialect == "29" and outcome.facts.server == "rsync 29"
    (share,) = outcome.facts.shares
    assert share.readable and share.error == "protocol 29 is older than 30: files not listed"
    found = evaluate(Service(host=HOST, port=parrot.port, protocol="rsync", status=outcome.status,
                             repository=outcome.facts))
    assert {f.check_id for f in found} == {"rsync_module_without_auth", "rsync_module_list_exposed"}


def test_hostile_file_list_is_bounded_and_unsafe_names_are_dropped():
    async def flist(reader, writer, args):
        writer.write(b"\x00seed")
        if b"-lr" not in args:  # a file's head: the sender cannot open it
            writer.write(frame(struct.pack("<i", 0), tag=102))
            await writer.drain()
            await asyncio.sleep(1)
            return
        unsafe = file_entry(b"../../etc/passwd") + file_entry(b"/abs.dcm") + file_entry(b"a//b.dcm")
        writer.write(frame(file_entry(b".", 0o040755, 0) + unsafe))
        for start in range(0, 1_000_000, 1000):
            block = b"".join(file_entry(b"IM%06d" % i) for i in range(start, start + 1000))
            writer.write(frame(block))
            await writer.drain()

    with Parrot(daemon_script(listing(b"data"), opened(flist))) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port)
        assert time.monotonic() - started < 15
    limits = WalkLimits()
    (share,) = outcome.facts.shares
    assert outcome.status is ProbeStatus.EXPOSED  # IM###### names: estimated DICOM
    assert share.limited and share.entries == limits.max_entries
    assert share.files["dicom"].verified == 0
    assert share.files["dicom"].estimated == limits.max_entries - limits.per_directory
    assert share.files_sniffed == 0  # every head was refused (MSG_NO_SEND)


def test_hostile_dripping_peers_end_in_time():
    async def drip_greeting(reader, writer):
        for byte in b"@RSYNCD: 31.0" + b"0" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    with Parrot(drip_greeting) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(walk_time=1.0), timeout=1.0)
        assert time.monotonic() - started < 5
    assert outcome.status is ProbeStatus.TIMEOUT

    async def drip_list(reader, writer, args):
        writer.write(b"\x00seed")
        await writer.drain()
        payload = frame(b"".join(file_entry(b"IM%06d.dcm" % i) for i in range(10_000)))
        for byte in payload:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.01)

    with Parrot(daemon_script(listing(b"data"), opened(drip_list))) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(walk_time=2.0), timeout=1.0)
        assert time.monotonic() - started < 6
    assert outcome.status in (ProbeStatus.OPEN, ProbeStatus.TIMEOUT)
    (share,) = outcome.facts.shares
    assert share.limited and not share.files
