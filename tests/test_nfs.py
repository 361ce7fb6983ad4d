"""The NFS probe and checks: against nfs-ganesha in the lab's network namespace, and scripted RPC peers.

Against ganesha: the export list and its clients, an unprivileged mount and bounded walk of
each export with the counts the manifest measured, the folder loop seen and not followed,
the restricted export neither listed nor mountable, the portmapper service deferring to
2049, findings, and no canary value or lab file name in any output. Scripted peers on
127.0.0.1: garbage, a huge record-marking length, silence, and a whole scripted NFS server
(portmapper, mountd and NFS on one port) with an endless listing, a flood of exports and an
oversized READ: each ends in a status within its bounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from pyNfsClient.pack import nfs_pro_v3Packer

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus, RepositoryFacts, Service
from phiwatch.peertext import place_name
from phiwatch.probes import nfs
from phiwatch.probes.walk import Outcome, WalkLimits
from phiwatch_lab.errors import LabError
from phiwatch_lab.nfs import NOT_OURS, namespace

from .parrot import Parrot
from .repo_helpers import engine_session
from .repo_helpers import identify as _identify
from .repo_helpers import no_leak as _no_leak
from .repo_helpers import run_probe as _run_probe

LOCAL = "127.0.0.1"
EXTRA_NAMES = ["minutes", "scan.dcm", "HL7/back"]  # besides the shared lab names


def no_leak(text: str) -> None:
    _no_leak(text, EXTRA_NAMES)


def run_probe(host: str, port: int, limits: WalkLimits | None = None, timeout: float = 2.0) -> Outcome:
    return _run_probe(nfs, port, limits, timeout, host=host)


def identify(host: str, port: int) -> Service:
    return _identify(port, host)


def findings_json(svc: Service) -> str:
    return svc.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in evaluate(svc)])


# --- against nfs-ganesha -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ganesha(lab_plugin):
    try:
        with lab_plugin("nfs-ganesha") as entries:
            yield {entry["port"]: entry for entry in entries}
    except LabError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def exports(ganesha) -> tuple[dict, Service]:
    entry = ganesha[2049]
    return entry, identify(entry["host"], entry["port"])


def test_lab_runs_in_its_own_namespace(ganesha):
    entry = ganesha[2049]
    assert entry["host"].startswith("100.") and entry["host"] == ganesha[111]["host"]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert namespace(int(os.environ.get("PHIWATCH_TEST_BASE", "31100")) + 200) in listed
    shown = subprocess.run(["showmount", "-e", entry["host"]], capture_output=True, text=True, timeout=10).stdout
    assert all(name in shown for name in ("/imaging", "/public", "/secure")) and "/restricted" not in shown


def test_export_list_and_unprivileged_mounts(exports):
    entry, svc = exports
    expected = entry["expected"]
    assert svc.protocol == "nfs" and svc.identified_by == "port"
    assert svc.status is ProbeStatus.EXPOSED
    facts = svc.repository
    assert facts is not None
    assert (facts.access, facts.login, facts.dialect, facts.listing) == (
        expected["access"], expected["login"], expected["dialect"], expected["listing"]
    )
    # The list holds what ganesha shows this client: /restricted is only for another address
    assert [share.name for share in facts.shares] == sorted(expected["exports"])
    assert {share.name for share in facts.shares if share.world_readable} == set(expected["exports"])
    imaging, public, secure = facts.shares
    assert imaging.readable and public.readable and not (imaging.auth_required or public.auth_required)
    # /secure mounts, then refuses every call from an unprivileged source port: nothing read
    assert expected["privileged_port_exports"] == [secure.name]
    assert secure.auth_required and not secure.readable and secure.bytes_read == 0 and secure.files == {}
    assert secure.error == "NFS calls refused for AUTH_SYS uid 65534 from an unprivileged port"


def test_imaging_counts_equal_the_measured_counts(exports):
    entry, svc = exports
    expected = entry["expected"]
    imaging, public, _ = svc.repository.shares  # type: ignore[union-attr]
    counts = {kind: count.model_dump() for kind, count in imaging.files.items()}
    assert counts == expected["probe_counts"]["/imaging"]
    assert counts["dicom"]["estimated"] > 0  # the series beyond the per-folder sniff budget
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= set(imaging.phi_attributes["dicom"])
    assert "PID-5 patient name" in imaging.phi_attributes["hl7"]
    assert any(name.startswith("NM1*IL") for name in imaging.phi_attributes["x12"])
    assert imaging.loops == expected["loops"] == 1  # HL7/back -> .. read with READLINK, not followed
    assert imaging.directories == 7 and imaging.limited
    limits = WalkLimits()
    assert 0 < imaging.bytes_read <= imaging.files_sniffed * limits.file_budget
    assert imaging.files_sniffed + public.files_sniffed <= limits.max_files
    # The documents-only export: read, nothing medical
    assert public.readable and public.entries == expected["public_entries"] == 2
    assert public.files == {} and public.files_sniffed == 2 and not public.limited


def test_findings_for_the_exports_and_no_leak(exports):
    _, svc = exports
    found = {f.check_id: f for f in evaluate(svc)}
    assert set(found) == {"nfs_medical_files_exposed", "nfs_world_readable_export", "nfs_export_list_exposed"}
    exposed = found["nfs_medical_files_exposed"]
    assert exposed.severity == "critical" and exposed.exposure is not None
    imaging = svc.repository.shares[0]  # type: ignore[union-attr]
    dicom = sum(c.verified + c.estimated for k, c in imaging.files.items() if k in ("dicom", "dicomdir"))
    assert exposed.exposure.files.dicom == dicom
    assert (exposed.exposure.files.hl7, exposed.exposure.files.x12) == (3, 2)
    assert "'/imaging'" in exposed.evidence and "'/public'" not in exposed.evidence
    assert "uid/gid 65534" in exposed.evidence
    world = found["nfs_world_readable_export"]
    assert world.severity == "high" and "'/public'" in world.evidence  # listed to *, mounted and read
    assert "'/imaging'" not in world.evidence and "'/secure'" not in world.evidence  # medical; not readable
    listing = found["nfs_export_list_exposed"]
    assert listing.severity == "low" and "3 export(s)" in listing.evidence and "3 of them" in listing.evidence
    for text in ("root_squash", "krb5p", "Clients = 10.0.0.0/24", "2049"):
        assert text in exposed.remediation
    no_leak(findings_json(svc))


def test_portmapper_service_defers_to_2049(ganesha):
    entry = ganesha[111]
    svc = identify(entry["host"], entry["port"])
    assert svc.protocol == "nfs" and svc.status is ProbeStatus.OPEN
    assert svc.repository is not None and svc.repository.shares == []
    assert svc.repository.registered == "portmapper: nfs v3,v4 on tcp/2049; mountd v1,v3 on tcp/20048"
    assert "2049" in (svc.detail or "")
    assert evaluate(svc) == []  # the exports' findings belong to the 2049 service only


def test_restricted_export_is_refused_and_reports_nothing(ganesha):
    entry = ganesha[2049]
    assert entry["expected"]["hidden_exports"] == {"/restricted": [NOT_OURS]}
    with engine_session(entry["host"]) as conn:
        _restricted_export(conn, entry)


def _restricted_export(conn, entry):
    session = nfs._Session(conn, 2049, WalkLimits(), 2.0, 10.0)
    try:
        mount = session.open(nfs._Mount, entry["expected"]["mountd_port"])
        client = session.open(nfs._Nfs, 2049)
        share = session.mount_share(mount, client, b"/restricted")
    finally:
        session.kill()
    assert share.name == place_name("/restricted") and share.auth_required and not share.readable
    assert share.error == "mount refused (MNT3ERR_ACCES)"
    assert share.files == {} and share.entries == 0 and share.bytes_read == 0
    facts = RepositoryFacts(access="denied", dialect="NFSv3", shares=[share])
    svc = Service(host=entry["host"], port=2049, protocol="nfs", status=ProbeStatus.REJECTED, repository=facts)
    assert evaluate(svc) == []
    no_leak(findings_json(svc))


def test_scanner_end_to_end(ganesha, tmp_path):
    host = ganesha[2049]["host"]
    result = subprocess.run(
        [sys.executable, "-m", "phiwatch", "scan", host, "-p", "111,2049", "--output", str(tmp_path),
         "--db", str(tmp_path / "phiwatch.db"), "--timeout", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "scan.json").read_text())
    by_port = {s["port"]: s for s in document["services"]}
    assert by_port[2049]["status"] == "exposed" and by_port[111]["status"] == "open"
    checks = {(f["port"], f["check_id"]) for f in document["findings"]}
    assert checks == {(2049, "nfs_medical_files_exposed"), (2049, "nfs_world_readable_export"),
                      (2049, "nfs_export_list_exposed")}  # fmt: skip
    no_leak(result.stdout + result.stderr)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            no_leak(path.read_text(errors="replace"))


# --- small pure pieces --------------------------------------------------------------------------------


def test_world_client_names():
    assert nfs.is_world([]) and nfs.is_world([b"*"]) and nfs.is_world([b"10.0.0.0/8", b"(everyone)"])
    assert not nfs.is_world([b"10.0.0.0/24"]) and not nfs.is_world([b"@trusted", b"host.example"])


# --- scripted RPC peers ------------------------------------------------------------------------------------


def test_hostile_garbage_is_a_protocol_error():
    async def scenario(reader, writer):
        await reader.read(1024)
        writer.write(b"\x80\x00\x00\x10" + b"\xde\xad\xbe\xef" * 4)
        await writer.drain()
        await asyncio.sleep(2)

    with Parrot(scenario) as parrot:
        outcome = run_probe(LOCAL, parrot.port)
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR and outcome.facts.access == "not-attempted"


def test_hostile_huge_record_length_is_refused_at_once():
    async def scenario(reader, writer):
        await reader.read(1024)
        writer.write(b"\x7f\xff\xff\xff" + b"A" * 65_536)
        await writer.drain()
        await asyncio.sleep(3)

    with Parrot(scenario) as parrot:
        started = time.monotonic()
        outcome = run_probe(LOCAL, parrot.port)
        elapsed = time.monotonic() - started
    assert elapsed < 2
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR and outcome.detail == "reply is not ONC RPC"


def test_hostile_silence_and_early_close_end_in_time():
    async def silent(reader, writer):
        await asyncio.sleep(10)

    async def closes(reader, writer):
        await reader.read(1024)
        writer.write(b"\x80\x00")  # half a record mark, then gone

    with Parrot(silent) as parrot:
        started = time.monotonic()
        outcome = run_probe(LOCAL, parrot.port, timeout=1.0)
        assert time.monotonic() - started < 3
    assert outcome.status is ProbeStatus.TIMEOUT
    with Parrot(closes) as parrot:
        outcome = run_probe(LOCAL, parrot.port, timeout=1.0)
    assert outcome.status is ProbeStatus.RESET


# A scripted NFS server: portmapper, mountd and NFSv3 on one port. `behaviour` chooses the abuse.


def _reply(xid: int, results: bytes) -> bytes:
    body = struct.pack("!6L", xid, 1, 0, 0, 0, 0) + results
    return struct.pack("!L", 0x80000000 | len(body)) + body


def _fattr(kind: int, size: int, fileid: int) -> bytes:
    times = b"\0" * 24
    return struct.pack("!5L", kind, 0o644, 1, 0, 0) + struct.pack("!QQLLQQ", size, size, 0, 0, 1, fileid) + times


def _call(body: bytes) -> tuple[int, int, int, bytes]:
    xid, _, _, program, _, procedure = struct.unpack("!6L", body[:24])
    offset = 24
    for _ in range(2):  # credential, verifier
        length = struct.unpack("!L", body[offset + 4 : offset + 8])[0]
        offset += 8 + (length + 3) // 4 * 4
    return xid, program, procedure, body[offset:]


def scripted(port_of: Callable[[], int], behaviour: str) -> Callable:
    async def scenario(reader, writer):
        while True:
            (mark,) = struct.unpack("!L", await reader.readexactly(4))
            xid, program, procedure, args = _call(await reader.readexactly(mark & 0x7FFFFFFF))
            packer = nfs_pro_v3Packer()
            if program == nfs.PORTMAP and procedure == 4:  # DUMP: nfs and mountd on this very port
                for prog, vers in ((nfs.NFS, 3), (nfs.MOUNT, 3)):
                    packer.pack_bool(True)
                    for value in (prog, vers, 6, port_of()):
                        packer.pack_uint(value)
                packer.pack_bool(False)
            elif program == nfs.MOUNT and procedure == 5:  # EXPORT
                count = {"exports": 30_000, "too-many-exports": 60_000}.get(behaviour, 1)
                for index in range(count):
                    packer.pack_bool(True)
                    packer.pack_string(b"/e%05d" % index)
                    packer.pack_bool(True)
                    packer.pack_string(b"*")
                    packer.pack_bool(False)
                packer.pack_bool(False)
            elif program == nfs.MOUNT and procedure == 1:  # MNT
                packer.pack_uint(0)
                packer.pack_opaque(b"ROOTHANDLE")
                packer.pack_array([1], packer.pack_uint)
            elif program == nfs.NFS and procedure == 17:  # READDIRPLUS: one file per page
                cookie = struct.unpack("!Q", args[16:24])[0]  # after the handle: length + 10 bytes + pad
                packer.pack_uint(0)
                packer.pack_bool(False)
                packer.pack_fopaque(8, b"\0" * 8)
                packer.pack_bool(True)
                packer.pack_uhyper(cookie + 1)
                packer.pack_string(b"IM%06d" % cookie)
                packer.pack_uhyper(cookie + 1)
                packer.pack_bool(True)
                tail = nfs_pro_v3Packer()
                tail.pack_bool(True)
                tail.pack_opaque(b"F%07d" % cookie)
                tail.pack_bool(False)
                tail.pack_bool(behaviour != "endless")  # eof never comes in the endless listing
                results = packer.get_buffer() + _fattr(1, 100_000, cookie + 1) + tail.get_buffer()
                writer.write(_reply(xid, results))
                await writer.drain()
                continue
            elif program == nfs.NFS and procedure == 6:  # READ: far more than asked
                packer.pack_uint(0)
                packer.pack_bool(False)
                packer.pack_uint(2_000_000)
                packer.pack_bool(True)
                packer.pack_opaque(b"\0" * 2_000_000)
            writer.write(_reply(xid, packer.get_buffer()))
            await writer.drain()

    return scenario


def run_scripted(behaviour: str, limits: WalkLimits | None = None) -> tuple[Outcome, float]:
    holder: dict[str, int] = {}
    with Parrot(scripted(lambda: holder["port"], behaviour)) as parrot, engine_session(LOCAL) as conn:
        holder["port"] = parrot.port
        limits = limits or WalkLimits()
        # The service is the portmapper: NFS is registered on another port, so this service walks it
        session = nfs._Session(conn, parrot.port, limits, 1.0, limits.walk_time, portmap_port=parrot.port)
        started = time.monotonic()
        outcome = session.run()
        return outcome, time.monotonic() - started


def test_scripted_server_endless_listing_is_bounded():
    limits = WalkLimits(max_entries=200, walk_time=10.0)
    outcome, elapsed = run_scripted("endless", limits)
    assert elapsed < 10
    assert outcome.status is ProbeStatus.EXPOSED  # IM###### names beyond the sniff budget: estimated
    assert outcome.facts.registered is not None and outcome.facts.registered.startswith("portmapper: nfs v3")
    (share,) = outcome.facts.shares
    assert share.name == place_name("/e00000") and share.limited and share.entries == limits.max_entries
    # Each oversized READ answer is refused (the connection is replaced): nothing verified, nothing kept
    assert share.files["dicom"].verified == 0
    assert share.files["dicom"].estimated == limits.max_entries - limits.per_directory
    assert share.bytes_read == 0


def test_scripted_server_flood_of_exports_is_capped():
    outcome, elapsed = run_scripted("exports", WalkLimits(walk_time=10.0, max_shares=4))
    assert elapsed < 10
    assert outcome.status is ProbeStatus.OPEN and outcome.facts.listing == "nfs"
    names = ["/e00000", "/e00001", "/e00002", "/e00003"]
    assert [share.name for share in outcome.facts.shares] == [place_name(name) for name in names]
    assert outcome.facts.error == f"{nfs.MAX_EXPORTS - 4} export(s) not walked"
    assert all(share.readable and share.files_sniffed == 0 for share in outcome.facts.shares)
    outcome, elapsed = run_scripted("too-many-exports", WalkLimits(walk_time=10.0))
    assert elapsed < 10
    assert outcome.status is ProbeStatus.BUDGET_EXCEEDED and outcome.facts.shares == []
