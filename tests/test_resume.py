"""Given a scan whose process is killed with -9 mid-scan, `scan --resume` finishes it: shards
recorded complete are not scanned again, every result recorded before the kill is still there,
and the final result equals an uninterrupted scan's."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from pydicom.dataset import Dataset
from rich.console import Console

from phiwatch.cluster import list_shards, sweep_shards
from phiwatch.events import ServiceDone
from phiwatch.journal import Journal
from phiwatch.models import ProbeStatus, ScanInfo, ScanOptions, Service, TargetSummary
from phiwatch.run import ScanRequest, run_scan
from phiwatch.scanner import Progress, ScanOutcome
from phiwatch.store import Store
from phiwatch.targets import build_targets

from .conftest import LAB_BASE_PORT
from .parrot import IMPLICIT, Parrot, associate_ac, echo_rsp, find_rsp, pdu, read_pdu

CANARY = "RESUMECANARY^KILLED^Q7"
PORT = LAB_BASE_PORT + 613  # no lab server uses it (labs the tests start hold base + 0 .. 541)
ROOT = Path(__file__).resolve().parent.parent


def study(index: int) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = CANARY
    ds.PatientID = f"RESUME-{index}"
    ds.StudyDate = "20200304"
    ds.ModalitiesInStudy = ["MR"]
    ds.NumberOfStudyRelatedInstances = "4"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1492.{index}"
    return ds


async def exposed_dicom(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A DICOM archive that answers any STUDY C-FIND with two studies. It hangs up on anything
    but an A-ASSOCIATE-RQ (a TLS hello, an HTTP request), so identification stays quick."""
    header = await reader.readexactly(6)
    length = struct.unpack(">L", header[2:])[0]
    if header[0] != 1 or length > 65536:
        return
    await reader.readexactly(length)
    writer.write(associate_ac({1: IMPLICIT, 3: IMPLICIT}))
    await writer.drain()
    await read_pdu(reader)  # C-ECHO-RQ
    writer.write(echo_rsp(1))
    await writer.drain()
    await read_pdu(reader)  # C-FIND-RQ
    for index in range(2):
        writer.write(find_rsp(3, 0xFF00, study(index)))
    writer.write(find_rsp(3, 0x0000))
    await writer.drain()
    while True:
        pdu_type, _ = await read_pdu(reader)
        if pdu_type == 5:  # A-RELEASE-RQ
            writer.write(pdu(6, b"\x00" * 4))
            await writer.drain()
            return


def archives(stack: ExitStack, hosts: list[str], port: int) -> dict[str, Parrot]:
    """One scripted archive per address, each counting the connections it gets."""
    return {host: stack.enter_context(Parrot(exposed_dicom, host=host, port=port)) for host in hosts}


def scan_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "phiwatch", "scan", "--progress", "none", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=10) as connection:
        return connection.execute(query).fetchall()


def shards_recorded(db: Path) -> int:
    """Shards a running scan has recorded so far (0 while its store is still being created)."""
    try:
        return len(rows(db, "select shard from scan_shards")) if db.exists() else 0
    except sqlite3.OperationalError:
        return 0


def outcome_keys(scan: dict) -> set[tuple]:
    """(host, port, protocol, status, check ids) per service: what two scans must agree on."""
    checks: dict[tuple[str, int], set[str]] = {}
    for finding in scan["findings"]:
        checks.setdefault((finding["host"], finding["port"]), set()).add(finding["check_id"])
    return {(s["host"], s["port"], s["protocol"], s["status"],
             tuple(sorted(checks.get((s["host"], s["port"]), ())))) for s in scan["services"]}


def wait_for(condition, limit: float, what: str):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_resume_after_kill_redoes_only_unfinished_shards(tmp_path):
    hosts = [f"127.0.0.{n}" for n in range(61, 67)]
    db = tmp_path / "phiwatch.db"
    scan = scan_command("127.0.0.61-66", "-p", str(PORT), "--shard-size", "1", "--concurrency", "1",
                        "--timeout", "2", "--retries", "0", "--db", str(db))
    with ExitStack() as stack:
        servers = archives(stack, hosts, PORT)
        # Given a scan of six one-address shards, killed -9 once two shards are recorded
        first = subprocess.Popen(scan, env=environment(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: shards_recorded(db) >= 2, 40, "two shards recorded")
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait(10)
        [(scan_id,)] = rows(db, "select id from scans")
        finished = {index for (index,) in rows(db, "select shard from scan_shards")}
        recorded = rows(db, "select host, port, facts from services")
        connections = {host: parrot.connections for host, parrot in servers.items()}
        assert 2 <= len(finished) < 6
        assert rows(db, "select complete from scans") == [(0,)]
        shard_hosts = {index: hosts[index] for index in range(6)}
        assert all(connections[shard_hosts[i]] > 0 for i in finished)

        # When the scan is resumed
        out = tmp_path / "out"
        resumed = subprocess.run(scan_command("--resume", scan_id, "--db", str(db), "-o", str(out)),
                                 env=environment(), capture_output=True, timeout=60, text=True)
        assert resumed.returncode == 0, resumed.stderr[-2000:]

        # Then no finished shard was scanned again, the others were
        for index in range(6):
            host = shard_hosts[index]
            if index in finished:
                assert servers[host].connections == connections[host], f"shard {index} rerun"
            else:
                assert servers[host].connections > connections[host], f"shard {index} not run"
        # every result recorded before the kill is still there, once per host and port
        after = rows(db, "select host, port, facts from services")
        assert set(recorded) <= set(after)
        assert len(after) == len({(h, p) for h, p, _ in after}) == 6
        assert {index for (index,) in rows(db, "select shard from scan_shards")} == set(range(6))
        result = json.loads((out / "scan.json").read_text())
        assert result["scan"]["id"] == scan_id and result["scan"]["complete"] is True
        assert result["scan"]["addresses_done"] == 6

        # and the result equals an uninterrupted scan of the same targets
        whole = tmp_path / "whole"
        subprocess.run(scan + ["-o", str(whole)], env=environment(), capture_output=True, timeout=60,
                       check=True)
        expected = outcome_keys(json.loads((whole / "scan.json").read_text()))
    assert outcome_keys(result) == expected
    assert {(h, p, "dicom", "exposed") for h in hosts for p in [PORT]} == {k[:4] for k in expected}
    assert all("dicom_study_data_exposed" in k[4] for k in expected)
    # no PHI value anywhere: not in scan.json, not in the store
    assert CANARY not in (out / "scan.json").read_text()
    for path in tmp_path.glob("phiwatch.db*"):
        assert CANARY.encode() not in path.read_bytes()


def info(scan_id: str) -> ScanInfo:
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=0, timeout=1, retries=0,
                          max_matches=10, calling_ae="PHIWATCH", called_ae="ANY-SCP",
                          guess_aet=False, byte_budget=4096)
    return ScanInfo(id=scan_id, start=datetime.now(UTC), version="0", options=options, complete=False,
                    targets=TargetSummary(specs=[], excludes=[], addresses=0, ports=[104]))


def test_shards_cut_runs_of_addresses_and_excludes_still_win():
    # Given 10.0.0.0/29 and 10.0.1.0/30 without 10.0.0.3
    targets = build_targets(["10.0.0.0/29", "10.0.1.0/30"], excludes=["10.0.0.3"])
    # When cut into shards of 4 addresses
    shards = list(sweep_shards(targets.blocks, 4))
    # Then each shard holds 4 addresses in the target set's order (the last fewer), none excluded
    assert [s.units for s in shards] == [4, 4, 3]
    flat = [str(b.address(v)) for s in shards for b in s.blocks for v in range(b.first, b.last + 1)]
    assert flat == list(targets.addresses())
    assert "10.0.0.3" not in flat
    assert len(shards[1].blocks) == 2  # a run spans the gap between two blocks
    # and the same targets always give the same shards; other content another digest
    again = list(sweep_shards(targets.blocks, 4))
    assert [s.digest for s in again] == [s.digest for s in shards]
    assert len({s.digest for s in shards}) == 3
    listed = list(list_shards(((f"10.0.0.{n}", 104) for n in range(5)), 2))
    assert [s.units for s in listed] == [2, 2, 1] and listed[2].services == (("10.0.0.4", 104),)


def test_a_service_recorded_twice_is_kept_once_with_its_latest_facts(tmp_path):
    # Given a journal that recorded a service, then, after a resume, the same host and port again
    store = Store(tmp_path / "phiwatch.db")
    journal = Journal(store, info("scan-r"), {"targets": ["127.0.0.1"]}, 1)
    [shard] = list(sweep_shards(build_targets(["127.0.0.1"]).blocks, 1))
    journal.service(ServiceDone(Service(host="127.0.0.1", port=104, protocol="dicom", status=ProbeStatus.OPEN),
                                []))
    journal.flush()
    again = Journal(store, info("scan-r"), {"targets": ["127.0.0.1"]}, 1)
    again.service(ServiceDone(Service(host="127.0.0.1", port=104, protocol="dicom", status=ProbeStatus.REJECTED),
                              []))
    again.shard_done(shard)
    # When the result is read back
    result = again.finish(info("scan-r"), ScanOutcome([], [], Progress(total=1, done=1), complete=True))
    # Then the service appears once, as last seen, and the shard is recorded with its digest
    assert [(s.host, s.port, s.status) for s in result.services] == [("127.0.0.1", 104, ProbeStatus.REJECTED)]
    assert store.shards("scan-r") == {0: (shard.digest, 1)}
    assert list(Journal(store, info("scan-r"), {}, 1).pending(iter([shard]))) == []
    store.close()


def test_a_listed_scan_resumes_only_its_unfinished_shard(tmp_path):
    # Given services from a discovery list, scanned in three shards of two
    hosts = [f"127.0.0.{n}" for n in range(101, 107)]
    listed = tmp_path / "open.txt"
    listed.write_text("".join(f"{host}:{PORT}\n" for host in hosts))
    db = tmp_path / "phiwatch.db"
    with ExitStack() as stack:
        servers = archives(stack, hosts, PORT)
        whole = run_scan(ScanRequest(targets=[], from_file=listed, shard_size=2, db=db, progress="none",
                                     timeout=2, retries=0), Console(file=io.StringIO()))
        assert len(rows(db, "select shard from scan_shards")) == 3
        # and a crash that lost the last shard's completion and one of its services
        with sqlite3.connect(db) as connection:
            connection.execute("delete from scan_shards where shard = 2")
            connection.execute("delete from services where host = ?", (hosts[5],))
            connection.execute("update scans set complete = 0")
        before = {host: parrot.connections for host, parrot in servers.items()}
        # When it is resumed, and resumed once more
        again = run_scan(ScanRequest(targets=[], resume=whole.scan.id, db=db, progress="none"),
                         Console(file=io.StringIO()))
        after = {host: parrot.connections for host, parrot in servers.items()}
        once_more = run_scan(ScanRequest(targets=[], resume=whole.scan.id, db=db, progress="none"),
                             Console(file=io.StringIO()))
    # Then only the last shard's two services were probed again, nothing the second time
    assert [h for h in hosts if after[h] > before[h]] == hosts[4:]
    assert {host: parrot.connections for host, parrot in servers.items()} == after
    # and every result is there, as in the first scan
    for result in (again, once_more):
        assert result.scan.complete and result.scan.addresses_done == 6
        assert outcome_keys(json.loads(result.model_dump_json())) == outcome_keys(
            json.loads(whole.model_dump_json()))
    assert len(rows(db, "select host, port from services")) == 6


def test_resume_refuses_targets_and_unknown_scans(tmp_path):
    db = tmp_path / "phiwatch.db"
    given_targets = subprocess.run(scan_command("--resume", "some-scan", "127.0.0.1", "--db", str(db)),
                                   env=environment(), capture_output=True, text=True, timeout=30)
    unknown = subprocess.run(scan_command("--resume", "some-scan", "--db", str(db)),
                             env=environment(), capture_output=True, text=True, timeout=30)
    assert given_targets.returncode == 2 and "give no targets" in given_targets.stderr
    assert unknown.returncode == 2 and "no resumable scan 'some-scan'" in unknown.stderr
