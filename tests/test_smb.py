"""The SMB probe and checks: against the lab's Samba servers, and against scripted hostile peers.

Against samba-guest (null and guest sessions, SMB1 on, signing optional): the medical tree on
share 'imaging' is EXPOSED with the counts the manifest measured, the folder loop is seen and
not followed, 'finance' needs a user, and neither a canary value nor a lab file or folder name
reaches any output. Against samba-auth (negative control): REJECTED, SMB1 refused, signing
required, no finding. Hostile peers: every session ends in a status within its bounds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from impacket import smb3structs as s3

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus, Service
from phiwatch.probes import smb
from phiwatch.probes.walk import Budget, Outcome, WalkLimits
from phiwatch_lab.samba import PUBLIC_FILES

from .parrot import Parrot
from .repo_helpers import HOST, engine_session, identify
from .repo_helpers import no_leak as _no_leak
from .repo_helpers import run_probe as _run_probe

# Names of files and folders in the lab's shares: none may appear in any output.
EXTRA_NAMES = ["ledger", *PUBLIC_FILES]  # besides the shared lab names


def run_probe(port: int, limits: WalkLimits | None = None, timeout: float = 2.0) -> Outcome:
    return _run_probe(smb, port, limits, timeout)


def no_leak(text: str) -> None:
    _no_leak(text, EXTRA_NAMES)


def dump(service: Service, findings: list) -> str:
    return service.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in findings])


# --- against the lab ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def guest_lab(lab_plugin) -> Iterator[dict]:
    with lab_plugin("samba-guest") as entries:
        yield entries[0]


@pytest.fixture(scope="module")
def auth_lab(lab_plugin) -> Iterator[dict]:
    with lab_plugin("samba-auth") as entries:
        yield entries[0]


@pytest.fixture(scope="module")
def guest_service(guest_lab) -> Service:
    return identify(guest_lab["port"])


@pytest.mark.lab
def test_guest_server_is_identified_and_exposed_with_measured_counts(guest_lab, guest_service):
    expected, svc = guest_lab["expected"], guest_service
    # Given Samba on an odd port, When the scanner's negotiate finds SMB, Then the SMB probe runs
    assert svc.protocol == "smb" and svc.identified_by == "probe"
    assert svc.status is ProbeStatus.EXPOSED
    facts = svc.repository
    assert facts is not None
    assert (facts.access, facts.login, facts.listing) == ("anonymous", None, "smb")
    assert facts.dialect == expected["dialect"] == "SMB 3.1.1"
    assert facts.smb1 is True and facts.signing_required is False
    shares = {share.name: share for share in facts.shares}
    assert set(shares) == set(expected["shares"]) == {"imaging", "public", "finance"}  # IPC$ skipped
    imaging, public, finance = shares["imaging"], shares["public"], shares["finance"]
    # And the medical tree is counted as the manifest measured it, verified and estimated
    assert imaging.readable and not imaging.auth_required
    assert {kind: count.model_dump() for kind, count in imaging.files.items()} == expected["probe_counts"]
    assert imaging.files["dicom"].estimated > 0 and imaging.limited
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= set(imaging.phi_attributes["dicom"])
    assert "PID-5 patient name" in imaging.phi_attributes["hl7"]
    assert any(name.startswith("NM1*IL") for name in imaging.phi_attributes["x12"])
    # Samba follows HL7/back -> .. inside the share: the folder shows the root again, seen as a loop
    assert imaging.loops == expected["loops"] == 1
    assert imaging.directories == 8  # /, DICOM, its patient folder, HL7, HL7/back, IMAGES, SE000001, X12
    assert 0 < imaging.bytes_read <= imaging.files_sniffed * WalkLimits().file_budget
    # And the harmless share is readable with nothing medical; the user-only share is locked
    assert public.readable and public.entries == expected["public_entries"] and not public.files
    assert not public.limited and public.files_sniffed == 2
    assert finance.auth_required and not finance.readable and finance.entries == 0
    assert finance.error == "tree STATUS_ACCESS_DENIED"


@pytest.mark.lab
def test_guest_server_findings_and_no_name_or_value_leaks(guest_service):
    svc = guest_service
    findings = evaluate(svc)
    found = {f.check_id: f for f in findings}
    assert set(found) == {"smb_medical_files_exposed", "smb_anonymous_share_access", "smb1_enabled",
                          "smb_signing_not_required"}
    exposed = found["smb_medical_files_exposed"]
    assert exposed.severity == "critical" and exposed.exposure is not None
    imaging = next(s for s in svc.repository.shares if s.name == "imaging")  # type: ignore[union-attr]
    dicom = imaging.files["dicom"]
    assert exposed.exposure.files.dicom == dicom.verified + dicom.estimated + imaging.files["dicomdir"].verified
    assert (exposed.exposure.files.hl7, exposed.exposure.files.x12) == (3, 2)
    assert "null session" in exposed.evidence and "'imaging'" in exposed.evidence
    assert f"{dicom.verified} verified" in exposed.evidence and f"{dicom.estimated} estimated" in exposed.evidence
    assert "PatientName" in exposed.exposure.phi_attributes
    for text in ("139", "445", "map to guest = Never", "restrict anonymous = 2", "guest ok",
                 "RestrictNullSessAccess"):
        assert text in exposed.remediation, text
    quiet = found["smb_anonymous_share_access"]
    assert quiet.severity == "medium" and "'public'" in quiet.evidence and "1 need a user" in quiet.evidence
    assert found["smb1_enabled"].severity == "high"
    assert "server min protocol = SMB2_10" in found["smb1_enabled"].remediation
    assert "EnableSMB1Protocol $false" in found["smb1_enabled"].remediation
    assert found["smb_signing_not_required"].severity == "low"
    no_leak(dump(svc, findings))


@pytest.fixture
def conn():
    with engine_session() as session:
        yield session


@pytest.mark.lab
def test_guest_session_with_blank_password_lists_the_shares(guest_lab, conn):
    # The null session works first on this server; the guest attempt on its own must work too.
    session = smb._Session(conn, guest_lab["port"], WalkLimits(), 2.0, 10.0)
    conn = session._connection(smb.SMB2_DIALECT_30)
    try:
        shares, refusal = session._attempt(conn, smb.GUEST)
        assert conn.isGuestSession() and refusal == ""
    finally:
        session._close(conn)
    assert shares is not None and {name for _, name in shares} == {"imaging", "public", "finance"}


@pytest.mark.lab
def test_listing_comes_in_bounded_batches(guest_lab, conn, monkeypatch):
    monkeypatch.setattr(smb, "LIST_BUFFER", 2048)  # a few dozen entries per QUERY_DIRECTORY answer
    session = smb._Session(conn, guest_lab["port"], WalkLimits(), 2.0, 20.0)
    conn = session._connection()
    try:
        assert session._attempt(conn, "")[0] is not None
        tree = smb.SmbTree(conn, conn.connectTree("imaging"), "imaging", Budget.start(WalkLimits()))
        everything, cut = tree.listdir("/IMAGES/SE000001", 2_000)
        assert not cut and len(everything) == 300 and {e.kind for e in everything} == {"f"}
        some, cut = tree.listdir("/IMAGES/SE000001", 40)
        assert cut and len(some) == 40
        first = next(e for e in everything if e.name == "IM00001")
        data, complete = tree.head("/IMAGES/SE000001/IM00001", first, 200)
        assert len(data) == 200 and not complete and data[128:132] == b"DICM"
    finally:
        session._close(conn)


@pytest.mark.lab
def test_smb1_session_lists_and_reads_the_tree(guest_lab, conn):
    # An SMB1-only server is walked through impacket's SMB1 listing (capped) and reads.
    session = smb._Session(conn, guest_lab["port"], WalkLimits(), 2.0, 20.0)
    conn = session._connection(smb.SMB_DIALECT, nego="\x02NT LM 0.12\x00")
    try:
        assert conn.getDialect() == smb.SMB_DIALECT
        assert session._attempt(conn, "")[0] is not None
        tree = smb.SmbTree(conn, conn.connectTree("imaging"), "imaging", Budget.start(WalkLimits()))
        root, cut = tree.listdir("/", 100)
        assert not cut and {(e.kind, e.name) for e in root if e.kind == "d"} >= {("d", "DICOM"), ("d", "IMAGES")}
        some, cut = tree.listdir("/IMAGES/SE000001", 40)
        assert cut and len(some) == 40
        first = next(e for e in some if e.kind == "f")
        data, complete = tree.head(f"/IMAGES/SE000001/{first.name}", first, 200)
        assert len(data) == 200 and not complete and data[128:132] == b"DICM"
    finally:
        session._close(conn)


@pytest.mark.lab
def test_bounds_hold_on_the_real_tree(guest_lab):
    limits = WalkLimits(max_entries=50, max_shares=1, total_bytes=40_000)
    outcome = run_probe(guest_lab["port"], limits)
    assert outcome.status is ProbeStatus.EXPOSED
    (share,) = outcome.facts.shares
    assert share.name == "imaging" and share.limited
    assert share.bytes_read <= limits.total_bytes
    assert share.files["dicom"].verified + share.files["dicom"].estimated <= 4 + 50
    assert outcome.detail == "3 disk shares, 1 walked"


def cut_tree_connect_answer(nth: int):
    """For a relay: on each connection, the server's nth successful TREE_CONNECT answer loses its
    body (the NetBIOS frames around it stay whole, so the session goes on)."""

    def per_connection():
        pending, seen = bytearray(), 0

        def change(data: bytes) -> bytes:
            nonlocal seen
            pending.extend(data)
            out = bytearray()
            while len(pending) >= 4 and len(pending) >= 4 + int.from_bytes(pending[1:4], "big"):
                length = int.from_bytes(pending[1:4], "big")
                frame = bytes(pending[4:4 + length])
                del pending[:4 + length]
                answer = frame[:4] == b"\xfeSMB" and int.from_bytes(frame[16:20], "little") & 1
                if answer and int.from_bytes(frame[12:14], "little") == 3 and frame[8:12] == b"\0" * 4:
                    seen += 1
                    if seen == nth:
                        frame = frame[:64] + b"\x10\x00"
                out += len(frame).to_bytes(4, "big") + frame
            return bytes(out)

        return change

    return per_connection


@pytest.mark.lab
def test_a_malformed_tree_connect_answer_costs_one_share_not_the_rest(guest_lab):
    from .relay import CountingRelay

    # Given real Samba behind a relay that cuts the body of its third tree-connect answer on every
    # connection (IPC$ for the share list, then imaging, then public)
    with CountingRelay("127.0.0.91", HOST, [guest_lab["port"]], rewrite=cut_tree_connect_answer(3)):
        outcome = _run_probe(smb, guest_lab["port"], timeout=5.0, host="127.0.0.91")
    # Then public is recorded with its error, finance after it is still tried, and the exposure holds
    shares = {share.name: share for share in outcome.facts.shares}
    assert set(shares) == {"imaging", "public", "finance"}, outcome
    assert shares["public"].error is not None and not shares["public"].readable
    assert shares["finance"].error == "tree STATUS_ACCESS_DENIED"
    assert shares["imaging"].readable and shares["imaging"].files["dicom"].verified > 0
    assert outcome.status is ProbeStatus.EXPOSED


@pytest.mark.lab
def test_auth_server_refuses_null_and_guest_and_gives_no_finding(auth_lab):
    expected = auth_lab["expected"]
    started = time.monotonic()
    outcome = run_probe(auth_lab["port"])
    assert time.monotonic() - started < 5
    assert outcome.status is ProbeStatus.REJECTED
    facts = outcome.facts
    assert facts.access == expected["access"] == "denied" and facts.login is None and facts.shares == []
    assert facts.smb1 is expected["smb1"] is False
    assert facts.signing_required is expected["signing_required"] is True
    assert facts.dialect == "SMB 3.1.1"
    refusals = "share list STATUS_ACCESS_DENIED, login STATUS_LOGON_FAILURE"
    assert outcome.detail == f"null and guest sessions refused ({refusals})"
    svc = Service(host=HOST, port=auth_lab["port"], protocol="smb", status=outcome.status, repository=facts)
    assert evaluate(svc) == []
    no_leak(svc.model_dump_json())


@pytest.mark.lab
def test_scanner_end_to_end_on_both_smb_ports(guest_lab, auth_lab, tmp_path):
    ports = [guest_lab["port"], auth_lab["port"]]
    result = subprocess.run(
        [sys.executable, "-m", "phiwatch", "scan", HOST, "-p", ",".join(map(str, ports)),
         "--output", str(tmp_path), "--db", str(tmp_path / "phiwatch.db"), "--timeout", "2"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "scan.json").read_text())
    by_port = {s["port"]: s for s in document["services"]}
    assert by_port[ports[0]]["protocol"] == by_port[ports[1]]["protocol"] == "smb"
    assert by_port[ports[0]]["status"] == "exposed" and by_port[ports[1]]["status"] == "rejected"
    checks = {(f["port"], f["check_id"]) for f in document["findings"]}
    assert (ports[0], "smb_medical_files_exposed") in checks and (ports[0], "smb1_enabled") in checks
    assert not any(port == ports[1] for port, _ in checks)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            no_leak(path.read_text(errors="replace"))


# --- hostile peers ---------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(3, "big") + payload


async def read_request(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(header[1:], "big"))


def negotiate_answer(message_id: int = 0) -> bytes:
    """A plain SMB 2.1 NEGOTIATE answer (signing optional), built with impacket's structures."""
    body = s3.SMB2Negotiate_Response()
    body["SecurityMode"] = s3.SMB2_NEGOTIATE_SIGNING_ENABLED
    body["DialectRevision"] = s3.SMB2_DIALECT_21
    body["ServerGuid"] = b"P" * 16
    body["Capabilities"] = 0
    body["MaxTransactSize"] = body["MaxReadSize"] = body["MaxWriteSize"] = 65536
    body["SystemTime"] = body["ServerStartTime"] = 0
    body["SecurityBufferOffset"] = 0x80
    body["SecurityBufferLength"] = 0
    body["Buffer"] = b""
    packet = s3.SMB2Packet()
    packet["Command"] = s3.SMB2_NEGOTIATE
    packet["Flags"] = s3.SMB2_FLAGS_SERVER_TO_REDIR
    packet["MessageID"] = message_id
    packet["Data"] = body
    return frame(packet.getData())


def pending(message_id: int, padding: int = 0) -> bytes:
    packet = s3.SMB2Packet()
    packet["Command"] = s3.SMB2_SESSION_SETUP
    packet["Status"] = 0x00000103  # STATUS_PENDING: "an answer will follow"
    packet["Flags"] = s3.SMB2_FLAGS_SERVER_TO_REDIR | s3.SMB2_FLAGS_ASYNC_COMMAND
    packet["MessageID"] = message_id
    packet["Data"] = b"\x09\x00" + b"\x00" * (6 + padding)
    return frame(packet.getData())


def test_hostile_garbage_is_a_protocol_error():
    async def scenario(reader, writer):
        await read_request(reader)
        writer.write(frame(b"\xfeSMB" + b"\xff\x00garbage" * 20))
        await writer.drain()
        await asyncio.sleep(3)

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, timeout=1.0)
        assert time.monotonic() - started < 4
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR
    assert outcome.facts.access == "not-attempted" and outcome.facts.shares == []


def test_hostile_close_after_negotiate_is_a_reset():
    async def scenario(reader, writer):
        await read_request(reader)
        writer.write(negotiate_answer())
        await writer.drain()
        await read_request(reader)  # the session setup: hang up instead of answering

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, timeout=1.0)
        assert time.monotonic() - started < 4
    assert outcome.status is ProbeStatus.RESET
    assert outcome.facts.dialect == "SMB 2.1" and outcome.facts.signing_required is False
    assert outcome.facts.smb1 is False  # it answered an SMB1-only offer in SMB2


def test_hostile_silence_is_a_timeout():
    async def scenario(reader, writer):
        await read_request(reader)
        await asyncio.sleep(10)

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(walk_time=3.0), timeout=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 4  # two connections (SMB1 check, then the session), one timeout each
    assert outcome.status is ProbeStatus.TIMEOUT and outcome.facts.smb1 is None


def test_hostile_endless_interim_answers_are_cut_by_the_watchdog():
    async def scenario(reader, writer):
        await read_request(reader)
        writer.write(negotiate_answer())
        await writer.drain()
        await read_request(reader)
        for _ in range(2_000):  # "pending" forever, each well within the per-message timeout
            writer.write(pending(1))
            await writer.drain()
            await asyncio.sleep(0.05)

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(walk_time=2.0), timeout=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 6  # wall 2 s + one timeout for the watchdog, plus set-up
    assert outcome.status is ProbeStatus.TIMEOUT and outcome.detail == "session wall time spent"


def test_hostile_flood_is_cut_at_the_byte_budget():
    async def scenario(reader, writer):
        await read_request(reader)
        writer.write(negotiate_answer())
        await writer.drain()
        await read_request(reader)
        for _ in range(400):  # 64 KiB interim answers as fast as the client takes them
            writer.write(pending(1, padding=65_000))
            await writer.drain()

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(total_bytes=100_000, walk_time=10.0), timeout=1.0)
        assert time.monotonic() - started < 8
    assert outcome.status is ProbeStatus.BUDGET_EXCEEDED


def test_hostile_keepalive_flood_ends_in_a_status():
    async def scenario(reader, writer):
        await read_request(reader)
        for _ in range(5_000):
            writer.write(b"\x85\x00\x00\x00")  # NetBIOS keep-alive, forever
        await writer.drain()
        await asyncio.sleep(3)

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(walk_time=2.0), timeout=1.0)
        assert time.monotonic() - started < 6
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR  # impacket recurses on each keep-alive: cut, not a crash


def test_nothing_listening_is_refused():
    with socket.socket() as holder:  # a port that was just free
        holder.bind((HOST, 0))
        port = holder.getsockname()[1]
    started = time.monotonic()
    outcome = run_probe(port)
    assert time.monotonic() - started < 2
    assert outcome.status is ProbeStatus.REFUSED and outcome.detail == "connection refused"
    assert outcome.facts.smb1 is None and outcome.facts.dialect is None
