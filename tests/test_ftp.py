"""The FTP probe and checks: against the lab's vsftpd servers, and against scripted hostile peers.

Against the lab: an anonymous tree with DICOM, a DICOMDIR, HL7 and X12 files is EXPOSED with
verified and estimated counts and PHI attribute names, the folder loop is seen and not
followed, budgets hold, and neither a canary value nor a lab file or folder name reaches
any output. Hostile peers: every session ends in a status within its bounds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus, Service
from phiwatch.peertext import peer_text
from phiwatch.probes import ftp
from phiwatch.probes.walk import Outcome, WalkLimits

from .parrot import Parrot
from .repo_helpers import HOST, identify, no_leak
from .repo_helpers import run_probe as _run_probe


def run_probe(port: int, options: WalkLimits | None = None, timeout: float = 2.0) -> Outcome:
    return _run_probe(ftp, port, options, timeout)


# --- against the lab ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def anonymous(lab) -> tuple[dict, Service]:
    entry = next(s for s in lab["services"] if s["name"] == "vsftpd-anonymous")
    return entry, identify(entry["port"])


@pytest.mark.lab
def test_anonymous_tree_is_exposed_with_verified_and_estimated_counts(anonymous):
    entry, svc = anonymous
    expected = entry["expected"]
    # Given the anonymous vsftpd, When the scanner meets its banner on an odd port
    assert svc.protocol == "ftp" and svc.identified_by == "banner"
    # Then the files are exposed, counted as the manifest measured them
    assert svc.status is ProbeStatus.EXPOSED
    facts = svc.repository
    assert facts is not None and facts.access == "anonymous" and facts.login == "anonymous"
    assert facts.listing == "list" and facts.tls_offered is False
    assert facts.server == peer_text("220 PHIWATCH LAB FTP")  # no product in it: a keyed hash
    (share,) = facts.shares
    assert share.name == "/" and share.readable
    counts = {kind: count.model_dump() for kind, count in share.files.items()}
    assert counts == expected["probe_counts"]
    assert counts["dicom"]["estimated"] > 0  # the series beyond the per-folder sniff budget
    # And PHI attribute names (never values) of every kind
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= set(share.phi_attributes["dicom"])
    assert "PID-5 patient name" in share.phi_attributes["hl7"]
    assert any(name.startswith("NM1*IL") for name in share.phi_attributes["x12"])
    # And the loop was seen and not followed; every bound held
    assert share.loops == expected["loops"] == 1
    assert share.limited  # counts beyond the sniff budget are estimates
    assert 0 < share.bytes_read <= share.files_sniffed * WalkLimits().file_budget
    assert share.files_sniffed <= WalkLimits().max_files
    assert share.directories == 7  # /, DICOM, its patient folder, HL7, IMAGES, SE000001, X12


@pytest.mark.lab
def test_anonymous_tree_findings_and_no_name_or_value_leaks(anonymous):
    _, svc = anonymous
    found = {f.check_id: f for f in evaluate(svc)}
    assert set(found) == {"ftp_medical_files_exposed", "ftp_no_tls"}
    exposed = found["ftp_medical_files_exposed"]
    assert exposed.severity == "critical"
    assert exposed.exposure is not None
    (share,) = svc.repository.shares  # type: ignore[union-attr]
    dicom = share.files["dicom"].verified + share.files["dicom"].estimated + share.files["dicomdir"].verified
    assert exposed.exposure.files.dicom == dicom
    assert (exposed.exposure.files.hl7, exposed.exposure.files.x12) == (3, 2)
    assert "verified" in exposed.evidence and "estimated" in exposed.evidence
    assert "PatientName" in exposed.exposure.phi_attributes
    assert "anonymous_enable=NO" in exposed.remediation and "iptables" in exposed.remediation
    no_leak(svc.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in found.values()]))


@pytest.mark.lab
def test_closed_server_rejects_anonymous_login(lab):
    entry = next(s for s in lab["services"] if s["name"] == "vsftpd-closed")
    started = time.monotonic()
    outcome = run_probe(entry["port"])
    assert time.monotonic() - started < 5
    assert outcome.status is ProbeStatus.REJECTED
    assert outcome.facts.access == "denied" and outcome.facts.login is None
    assert outcome.facts.tls_offered is False
    assert outcome.facts.shares[0].auth_required and not outcome.facts.shares[0].files
    svc = Service(host=HOST, port=entry["port"], protocol="ftp", status=outcome.status,
                  repository=outcome.facts)
    assert {f.check_id for f in evaluate(svc)} == {"ftp_no_tls"}


@pytest.mark.lab
def test_scanner_end_to_end_on_both_ftp_ports(lab, tmp_path):
    ports = [s["port"] for s in lab["services"] if s["protocol"] == "ftp"]
    result = subprocess.run(
        [sys.executable, "-m", "phiwatch", "scan", HOST, "-p", ",".join(map(str, ports)),
         "--output", str(tmp_path), "--db", str(tmp_path / "phiwatch.db"), "--timeout", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "scan.json").read_text())
    by_port = {s["port"]: s for s in document["services"]}
    assert by_port[ports[0]]["status"] == "exposed" and by_port[ports[1]]["status"] == "rejected"
    checks = {(f["port"], f["check_id"]) for f in document["findings"]}
    assert (ports[0], "ftp_medical_files_exposed") in checks
    assert (ports[1], "ftp_no_tls") in checks
    assert (ports[1], "ftp_anonymous_access") not in checks
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            no_leak(path.read_text(errors="replace"))


# --- listing parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind", "name", "size"),
    [
        (b"drwxr-xr-x 2 0 0 4096 Nov 22 03:07 name", "d", "name", 4096),
        (b"-rw-r--r--    1 ftp      ftp        264 Nov 22 05:26 a b.hl7", "f", "a b.hl7", 264),
        (b"lrwxrwxrwx 1 ftp ftp 2 Jan  1  2020 back -> ..", "l", "back", 2),
        (b"-rw-r--r-- 1 owner 12 Mar 01 2019 nogroup.dcm", "f", "nogroup.dcm", 12),
        (b"11-22-23  03:07AM       <DIR>          DICOM", "d", "DICOM", None),
        (b"11-22-2023  03:07PM            123456 IM00001", "f", "IM00001", 123456),
    ],
)
def test_list_lines_unix_and_dos(line, kind, name, size):
    entry = ftp._parse_list(line + b"\r")
    assert entry is not None and (entry.kind, entry.name, entry.size) == (kind, name, size)


def test_list_and_mlsd_reject_junk():
    for junk in (b"total 12", b"", b"\x00\xff" * 10, b"x" * 10_000, b"drwxr-xr-x 2 0 0 4096 Nov 22 03:07 .."):
        assert ftp._parse_list(junk) is None
    assert ftp._parse_mlsd(b"type=file;size=12; IM1").name == "IM1"  # type: ignore[union-attr]
    assert ftp._parse_mlsd(b"type=cdir; /") is None


# --- hostile peers ---------------------------------------------------------------------------------

Data = Callable[[asyncio.StreamWriter], Awaitable[None]]


def ftp_server(listing: Data, retr: Data | None = None, banner: bytes = b"220 parrot\r\n",
               on_cut: bytes | None = b"426 broken\r\n", abor: bytes | None = b"426 aborted\r\n226 ABOR ok\r\n",
               hang_after_cut: bool = False, log: list[bytes] | None = None,
               refuse: dict[bytes, bytes] | None = None, feat: bytes = b"500 no\r\n") -> Callable:  # fmt: skip
    """A scripted FTP server: login always works, PASV opens a data listener for LIST/RETR.

    feat: the answer to FEAT, on the first control connection only (later ones get 500).

    refuse: LIST or RETR commands (as sent, e.g. b"LIST /bad") answered with this reply instead.

    on_cut: the reply when the client closes a transfer's data connection early (None: silent);
    abor: the reply to ABOR (None: none at all); hang_after_cut: answer nothing more on that
    control connection once a transfer was cut; log: every command received, in order.
    """

    connections = 0

    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        writer.write(banner)
        await writer.drain()
        pending: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()
        servers = []
        tasks: list[asyncio.Task] = []

        async def accept(_r: asyncio.StreamReader, data: asyncio.StreamWriter) -> None:
            await pending.put(data)

        cut = False

        async def send(what: Data) -> None:
            nonlocal cut
            data = await asyncio.wait_for(pending.get(), 5)
            try:
                await what(data)
                writer.write(b"226 done\r\n")
            except (ConnectionError, OSError):
                cut = True
                if on_cut is not None:
                    writer.write(on_cut)
            finally:
                data.close()

        while True:
            line = await reader.readline()
            if not line:
                break
            if log is not None:
                log.append(line.strip())
            if cut and hang_after_cut:
                continue
            verb = line.split(b" ")[0].strip().upper()
            if verb == b"PASV":
                server = await asyncio.start_server(accept, HOST, 0)
                servers.append(server)
                port = server.sockets[0].getsockname()[1]
                writer.write(b"227 Entering Passive Mode (127,0,0,1,%d,%d)\r\n" % (port >> 8, port & 255))
            elif refuse and line.strip() in refuse:
                writer.write(refuse[line.strip()])
                tasks.append(asyncio.create_task(drop(pending)))  # the data connection opened for it
            elif verb in (b"LIST", b"RETR"):
                writer.write(b"150 here\r\n")
                tasks.append(asyncio.create_task(send(listing if verb == b"LIST" else (retr or listing))))
            elif verb == b"USER":
                writer.write(b"230 welcome\r\n")
            elif verb == b"FEAT":
                writer.write(feat if first else b"500 no\r\n")
            elif verb == b"ABOR":
                if abor is not None:
                    writer.write(abor)
            elif verb == b"NOOP":
                writer.write(b"200 ok\r\n")
            else:
                writer.write(b"200 ok\r\n")
            await writer.drain()
        for server in servers:
            server.close()

    return scenario


async def drop(pending: asyncio.Queue[asyncio.StreamWriter]) -> None:
    try:
        data = await asyncio.wait_for(pending.get(), 5)
    except TimeoutError:
        return
    data.close()


def huge_listing(lines: int) -> Data:
    async def send(data: asyncio.StreamWriter) -> None:
        for start in range(0, lines, 1000):
            block = b"".join(
                b"-rw-r--r-- 1 0 0 100 Nov 22 03:07 IM%06d\r\n" % i for i in range(start, min(lines, start + 1000))
            )
            data.write(block)
            await data.drain()

    return send


def fixed(payload: bytes) -> Data:
    async def send(data: asyncio.StreamWriter) -> None:
        data.write(payload)
        await data.drain()

    return send


def drip(payload: bytes, every: float = 0.2) -> Data:
    async def send(data: asyncio.StreamWriter) -> None:
        while True:
            for byte in payload:
                data.write(bytes([byte]))
                await data.drain()
                await asyncio.sleep(every)

    return send


def test_hostile_garbage_banner_is_a_protocol_error():
    async def scenario(reader, writer):
        writer.write(b"\x16\x03\x01garbage \xff\xfe no FTP here\r\n")
        await writer.drain()
        await asyncio.sleep(2)

    with Parrot(scenario) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR and outcome.facts.access == "not-attempted"


def test_hostile_endless_multiline_reply_is_cut():
    async def scenario(reader, writer):
        writer.write(b"220-hello\r\n")
        for _ in range(20_000):
            writer.write(b"220-" + b"x" * 60 + b"\r\n")
            await writer.drain()
        await asyncio.sleep(2)

    with Parrot(scenario) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR


@pytest.mark.parametrize("feat", [b"211-" + b"X" * 20_000 + b"\r\n", b"211-Features\r\n MLSD\r\n"],
                         ids=["a line too long", "a list that never ends"])
def test_hostile_feat_answer_does_not_hide_the_anonymous_tree(feat):
    # Given a server whose FEAT answer is hostile, and whose anonymous tree holds DICOM-named files
    from phiwatch_lab.medtree import _small_image

    image = _small_image()
    listing = fixed(b"-rw-r--r-- 1 0 0 %d Nov 22 03:07 IM000001\r\n" % len(image))
    with Parrot(ftp_server(listing, fixed(image), feat=feat)) as parrot:
        outcome = run_probe(parrot.port, timeout=1.0)
    # Then a new control connection logs in without FEAT: the exposure is still found
    assert outcome.status is ProbeStatus.EXPOSED, outcome.detail
    assert outcome.facts.access == "anonymous" and outcome.facts.listing == "list"
    assert outcome.facts.tls_offered is None  # not known: FEAT was not read
    assert outcome.facts.shares[0].files["dicom"].verified == 1


def test_hostile_100000_line_listing_is_bounded():
    retr = fixed(b"\x00" * 50_000)
    with Parrot(ftp_server(huge_listing(100_000), retr)) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port)
        elapsed = time.monotonic() - started
    assert elapsed < 15
    assert outcome.status is ProbeStatus.EXPOSED  # IM###### names: estimated DICOM
    options = WalkLimits()
    (share,) = outcome.facts.shares
    assert share.entries == options.max_entries and share.limited
    assert share.files_sniffed == options.per_directory
    assert share.bytes_read <= share.files_sniffed * options.file_budget
    assert share.files["dicom"].verified == 0
    assert share.files["dicom"].estimated == options.max_entries - options.per_directory
    assert outcome.facts.tls_offered is False and outcome.facts.listing == "list"


def test_hostile_absurd_lines_are_skipped():
    junk = b"x" * 3_000_000 + b"\r\n" + b"\x00\xff" * 100_000 + b"\n-rw-r--r-- 1 0 0 notanumber Nov 22 x\r\n"
    with Parrot(ftp_server(fixed(junk))) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.OPEN
    (share,) = outcome.facts.shares
    assert share.readable and share.entries == 0 and not share.files


def test_hostile_total_byte_budget_holds():
    options = WalkLimits(total_bytes=200_000)
    with Parrot(ftp_server(fixed(b"y" * 5_000_000))) as parrot:
        outcome = run_probe(parrot.port, options)
    assert outcome.status is ProbeStatus.OPEN
    assert outcome.facts.shares[0].limited


def test_hostile_dripping_data_channel_ends_in_time():
    listing = b"-rw-r--r-- 1 0 0 100 Nov 22 03:07 IM000001\r\n-rw-r--r-- 1 0 0 100 Nov 22 03:07 b.hl7\r\n"
    options = WalkLimits(walk_time=2.0)
    with Parrot(ftp_server(fixed(listing), drip(b"MSH|^~\\&|" * 100, every=0.1))) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, options, timeout=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 6
    assert outcome.status in (ProbeStatus.EXPOSED, ProbeStatus.OPEN)
    (share,) = outcome.facts.shares
    assert share.limited
    assert share.bytes_read <= max(1, share.files_sniffed) * options.file_budget


def test_hostile_dripping_listing_and_banner_end_in_a_status():
    with Parrot(ftp_server(drip(b"-rw-r--r-- 1 0 0 100 Nov 22 03:07 IM000001\r\n", every=0.05))) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(walk_time=2.0), timeout=1.0)
        assert time.monotonic() - started < 6
    assert outcome.status in (ProbeStatus.OPEN, ProbeStatus.EXPOSED)
    assert outcome.facts.shares[0].limited

    async def slow_banner(reader, writer):
        for byte in b"220 " + b"z" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    with Parrot(slow_banner) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, WalkLimits(walk_time=1.0), timeout=1.0)
        assert time.monotonic() - started < 5
    assert outcome.status is ProbeStatus.TIMEOUT


def test_no_file_name_in_detail_even_when_the_server_quotes_it():
    name = b"DOE^JANE 1234.dcm"

    async def scenario(reader, writer):
        writer.write(b"220 hi\r\n")
        await writer.drain()
        await reader.readline()
        writer.write(b"530 " + name + b" is not allowed\r\n")
        await writer.drain()
        await reader.readline()
        writer.write(b"421 " + name + b" bye\r\n")
        await writer.drain()

    with Parrot(scenario) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status in (ProbeStatus.REJECTED, ProbeStatus.PROTOCOL_ERROR, ProbeStatus.RESET)
    assert "DOE" not in (outcome.detail or "") and "DOE" not in outcome.facts.model_dump_json()


# --- ending a transfer that was cut short ---------------------------------------------------------

BIG = b"-rw-r--r-- 1 0 0 5000000 Nov 22 03:07 IM000001\r\n-rw-r--r-- 1 0 0 5000000 Nov 22 03:07 IM000002\r\n"


def big_dicom(data: asyncio.StreamWriter) -> Awaitable[None]:
    """A DICOM file far longer than the per-file budget (its header first, then pixel data)."""
    from phiwatch_lab.medtree import _small_image

    async def send() -> None:
        data.write(_small_image())
        for _ in range(200):
            data.write(b"\x00" * 65_536)
            await data.drain()

    return send()


@pytest.mark.parametrize(
    ("name", "server"),
    [
        ("426 when the data connection closes", {}),
        ("silent until ABOR, then 426 and 226", {"on_cut": None}),
        ("silent, ABOR unknown (500)", {"on_cut": None, "abor": b"500 unknown command\r\n"}),
        ("silent, ABOR never answered", {"on_cut": None, "abor": None}),
        ("nothing more on the control connection", {"on_cut": None, "hang_after_cut": True}),
    ],
)
def test_a_cut_transfer_ends_in_band_whatever_the_server_does(name, server):
    # Given a server with two DICOM files longer than the per-file budget, ending cut transfers its own way
    log: list[bytes] = []
    with Parrot(ftp_server(fixed(BIG), big_dicom, log=log, **server)) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, timeout=2.0)
        elapsed = time.monotonic() - started
        connections = parrot.connections
    # Then both heads are read and proved, in binary mode, and no urgent data was ever sent
    assert outcome.status is ProbeStatus.EXPOSED, (name, outcome.detail)
    (share,) = outcome.facts.shares
    assert share.files["dicom"].verified == 2 and share.error is None
    assert log.index(b"TYPE I") < next(i for i, line in enumerate(log) if line.startswith(b"RETR"))
    assert all(b"\xff" not in line for line in log) and all(line.isascii() for line in log)
    assert elapsed < 12
    if server.get("hang_after_cut"):
        assert connections >= 2  # the out-of-step session was replaced by a new one
    else:
        assert connections == 1 and log.count(b"NOOP") >= 2  # back in step after each cut transfer
    if server.get("on_cut", b"") is None:
        assert b"ABOR" in log
    else:
        assert b"ABOR" not in log  # closing the data connection was enough


def test_hostile_a_folder_refused_with_450_and_a_file_with_451_mid_walk_end_their_steps():
    """A server that answers one folder's LIST with 450 and one file's RETR with 451 (transient
    refusals, not 550): that folder and that file end as failed steps; the folders after it are
    still listed and the DICOM files still read, and the file refused is counted from its name."""
    from phiwatch_lab.canary import canary_bytes

    listing = (b"drwxr-xr-x 2 0 0 4096 Nov 22 03:07 a\r\n"
               b"drwxr-xr-x 2 0 0 4096 Nov 22 03:07 bad\r\n"
               b"drwxr-xr-x 2 0 0 4096 Nov 22 03:07 z\r\n"
               b"-rw-r--r-- 1 0 0 9000 Nov 22 03:07 good.dcm\r\n"
               b"-rw-r--r-- 1 0 0 9000 Nov 22 03:07 refused.dcm\r\n")  # fmt: skip
    log: list[bytes] = []
    refuse = {b"LIST /bad": b"450 folder busy\r\n", b"RETR /refused.dcm": b"451 local error\r\n"}
    with Parrot(ftp_server(fixed(listing), fixed(canary_bytes()), log=log, refuse=refuse)) as parrot:
        outcome = run_probe(parrot.port, WalkLimits(max_depth=1))
    assert outcome.status is ProbeStatus.EXPOSED, outcome.detail
    sent = [line for line in log if line.split(b" ")[0] in (b"LIST", b"RETR")]
    assert b"LIST /bad" in sent and b"RETR /refused.dcm" in sent
    # the walk takes folders last in, first out: /z before the refused /bad, /a after it
    assert sent.index(b"LIST /z") < sent.index(b"LIST /bad") < sent.index(b"LIST /a")
    (share,) = outcome.facts.shares
    # /a and /z list what / lists: seen as loops, not walked again; good.dcm was read, refused.dcm
    # is counted from its name
    assert share.loops == 2 and share.directories == 3
    assert share.files["dicom"].verified == 1 and share.files["dicom"].estimated == 1, share.files
    assert share.error is not None and share.error.startswith("2 step(s) failed"), share.error
