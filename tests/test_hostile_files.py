"""Hostile file trees and hostile FTP peers: every probe ends in a status, in time, in bounded memory.

Real servers (pyftpdlib with MLSD, vsftpd with LIST) serve a tree built here: symbolic link
loops, a link out of the root, a 100,000-entry folder, a 100-level-deep tree, a file that
starts with DICM and goes on with garbage, a DICOM cut inside its header, an HL7 file of
one multi-megabyte line, a gzip bomb named .dcm (1 GB of zeros) and a zip of 100,000
entries. Scripted peers (tests/parrot.py) send what servers never do: a data channel that
drips one byte a second, a listing that never ends, 10 MB of garbage lines. `phiwatch sniff`
walks the same tree locally.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from phiwatch.engine import Engine, Limits
from phiwatch.models import ProbeStatus
from phiwatch.probes import ftp
from phiwatch.probes.options import ProbeOptions
from phiwatch.probes.outcome import Peer
from phiwatch.probes.walk import FileOptions, Outcome, WalkLimits
from phiwatch_lab import ftp as lab_ftp
from phiwatch_lab import process
from phiwatch_lab.canary import CANARY_PATIENT_ID, CANARY_PATIENT_NAME, CANARY_STRINGS, canary_bytes
from phiwatch_lab.certs import make_self_signed
from phiwatch_lab.medtree import CANARY_FOLDER

from .conftest import LAB_BASE_PORT
from .parrot import Parrot
from .test_ftp import drip, fixed, ftp_server

HOST = "127.0.0.1"
BASE = LAB_BASE_PORT + 300  # pyftpdlib on BASE, vsftpd on BASE + 1; passive ports BASE + 10 .. 29
BIG_FOLDER = 100_000
DEPTH = 100
RSS_CAP = 200 * 1024 * 1024  # bytes the test process may grow by during one probe
NAMES = ["IM000001", "PWH-", "cycle", "escape", "d099", "last.hl7", "ADT.hl7",
         CANARY_FOLDER, *CANARY_STRINGS]


def _hl7(patient: str) -> bytes:
    return (f"MSH|^~\\&|ADT1|PWHOSP|EHR|PWHOSP|20210314101500||ADT^A01|PWH1|P|2.5.1\r"
            f"PID|1||{CANARY_PATIENT_ID}^^^PWHOSP^MR||{patient}||19700101|F\r").encode()


def build_hostile_tree(root: Path) -> None:
    """The hostile tree; the gzip bomb and the zip are written streaming (a few MB on disk)."""
    (root / CANARY_FOLDER).mkdir(parents=True)
    (root / CANARY_FOLDER / "ADT.hl7").write_bytes(_hl7(CANARY_PATIENT_NAME))
    loops = root / "cycle" / "a" / "b"
    loops.mkdir(parents=True)
    os.symlink("../..", loops / "up")  # cycle/a/b/up -> cycle
    os.symlink(".", root / "cycle" / "self")
    os.symlink("/", root / "cycle" / "escape")  # out of the served root
    big = root / "big"
    big.mkdir()
    sources = [big / "IM000000", big / "IM050000"]
    for source in sources:
        source.write_bytes(b"x" * 64)
    for index in range(BIG_FOLDER):  # hard links: 100,000 names, two files (ext4 allows 65,000 links)
        path = big / f"IM{index:06d}"
        if path not in sources:
            os.link(sources[index >= 50_000], path)
    deep = root / "deep"
    for level in range(DEPTH):
        deep = deep / f"d{level:03d}"
    deep.mkdir(parents=True)
    (deep / "last.hl7").write_bytes(_hl7("DEEP^PATIENT"))
    files = root / "files"
    files.mkdir()
    (files / "PWH-garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(200_000))
    (files / "PWH-truncated.dcm").write_bytes(canary_bytes()[:300])
    with open(files / "PWH-longline.hl7", "wb") as handle:
        handle.write(b"MSH|^~\\&|" + b"A" * (5 * 1024 * 1024))
    gzip = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(files / "PWH-bomb.dcm", "wb") as handle:
        zeros = bytes(1024 * 1024)
        for _ in range(1024):
            handle.write(gzip.compress(zeros))
        handle.write(gzip.flush())
    with zipfile.ZipFile(files / "PWH-many.zip", "w") as archive:
        for index in range(BIG_FOLDER):
            archive.writestr(f"IM{index:06d}.dcm", b"")
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


class RssWatch:
    """The highest RSS of this process while the block runs, less its RSS at the start."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.start = self.peak = self.me.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.me.memory_info().rss)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.me.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start


def run_probe(port: int, limits: WalkLimits, timeout: float = 2.0) -> tuple[Outcome, float, int]:
    """The FTP probe: its outcome, its wall time, and how much this process grew meanwhile."""

    async def main() -> Outcome:
        # the service's byte budget holds the walk's (raised bounds raise both)
        budget = max(Limits().byte_budget, limits.total_bytes + limits.total_bytes // 7)
        engine = Engine(Limits(timeout=timeout, retries=0, probe_time=limits.walk_time + 2 * timeout,
                               byte_budget=budget))
        try:
            return await ftp.probe(engine, Peer(HOST, port), ProbeOptions(files=FileOptions(limits)))
        finally:
            engine.close()

    started = time.monotonic()
    with RssWatch() as rss:
        outcome = asyncio.run(main())
    return outcome, time.monotonic() - started, rss.growth


def no_leak(outcome: Outcome) -> None:
    text = outcome.facts.model_dump_json() + (outcome.detail or "")
    for name in NAMES:
        assert name not in text, name


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "root"
    build_hostile_tree(root)
    return root


@pytest.fixture(scope="module")
def servers(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """pyftpdlib (MLSD, the project's lab runner) and vsftpd (LIST) on the hostile tree."""
    for port in (BASE, BASE + 1):
        assert process.port_free(port), f"port {port} is in use"
    folder = tmp_path_factory.mktemp("hostile-servers")
    cert, key = folder / "cert.pem", folder / "key.pem"
    make_self_signed(cert, key)
    lab_ftp.check_installed()
    lab_ftp.SECURE_CHROOT.mkdir(parents=True, exist_ok=True)
    config = folder / "vsftpd.conf"
    config.write_text(lab_ftp.render_config(BASE + 1, tree, BASE + 20, BASE + 29, folder / "users"))
    config.chmod(0o600)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    records = [
        process.spawn("hostile-pyftpdlib", [
            sys.executable, "-m", "phiwatch_lab.pyftpd", "--port", str(BASE), "--root", str(tree),
            "--pasv", f"{BASE + 10}-{BASE + 19}", "--cert", str(cert), "--key", str(key),
        ], folder / "pyftpdlib.log", [BASE], cwd=folder, env=env),
        process.spawn("hostile-vsftpd", lab_ftp.command(config), folder / "vsftpd.log", [BASE + 1], cwd=folder),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not all(process.port_accepting(p) for p in (BASE, BASE + 1)):
            assert time.monotonic() < deadline, process.log_tail(folder / "pyftpdlib.log")
            time.sleep(0.1)
        yield {"mlsd": BASE, "list": BASE + 1}
    finally:
        process.stop(records)


# --- real servers, hostile tree ------------------------------------------------------------------------


@pytest.mark.parametrize("listing", ["mlsd", "list"])
def test_hostile_tree_with_default_bounds(servers, listing):
    limits = WalkLimits()
    outcome, elapsed, growth = run_probe(servers[listing], limits)
    assert elapsed < limits.walk_time  # the walk ends on its bounds, not on the wall clock
    assert growth < RSS_CAP
    assert outcome.status is ProbeStatus.EXPOSED and outcome.facts.listing == listing
    (share,) = outcome.facts.shares
    assert share.limited and share.error is None
    # cycle/a/b/up, cycle/self (and cycle/escape -> / on vsftpd, which lists links as links)
    assert share.loops >= 2
    assert share.directories <= 1 + 3 + 2 + 7 + 2  # nothing below depth 6; loop folders not entered
    assert share.entries <= limits.max_entries * share.directories
    assert share.files_sniffed <= limits.max_files
    assert share.bytes_read <= share.files_sniffed * limits.file_budget
    # the canary HL7; DICM-then-garbage and the cut header are estimates; the big folder's names too
    assert share.files["hl7"].verified >= 1
    dicom = share.files["dicom"]
    assert dicom.estimated >= limits.max_entries - limits.per_directory
    assert dicom.verified <= 1  # the DICOM cut at 300 bytes (its meta header is whole) at most
    no_leak(outcome)


@pytest.mark.parametrize("listing", ["mlsd", "list"])
def test_hostile_tree_with_raised_bounds_walks_100_levels_and_100000_entries(servers, listing):
    limits = WalkLimits(max_depth=DEPTH + 5, max_entries=BIG_FOLDER + 10, max_files=400, total_bytes=64 << 20,
                        walk_time=40.0)
    outcome, elapsed, growth = run_probe(servers[listing], limits)
    assert elapsed < limits.walk_time
    assert growth < RSS_CAP
    assert outcome.status is ProbeStatus.EXPOSED
    (share,) = outcome.facts.shares
    assert share.error is None
    assert share.directories >= DEPTH + 5  # every level of deep/ was listed
    assert share.entries >= BIG_FOLDER
    assert share.files["hl7"].verified == 3  # the canary's, the long line and the one 100 levels down
    assert share.files["dicom"].estimated >= BIG_FOLDER - limits.per_directory
    assert share.bytes_read <= share.files_sniffed * limits.file_budget
    no_leak(outcome)


# --- scripted peers: what servers never send ---------------------------------------------------------------


def endless_listing(every: float = 0.0):
    async def send(data: asyncio.StreamWriter) -> None:
        index = 0
        while True:
            data.write(b"".join(b"-rw-r--r-- 1 0 0 100 Nov 22 03:07 f%09d\r\n" % (index + i) for i in range(100)))
            index += 100
            await data.drain()
            await asyncio.sleep(every)

    return send


def test_a_data_channel_dripping_one_byte_a_second_ends_in_time():
    listing = b"-rw-r--r-- 1 0 0 100 Nov 22 03:07 IM000001\r\n"
    limits = WalkLimits(walk_time=4.0)
    with Parrot(ftp_server(fixed(listing), drip(b"\0" * 128 + b"DICM", every=1.0))) as parrot:
        outcome, elapsed, growth = run_probe(parrot.port, limits, timeout=1.5)
    assert elapsed < limits.walk_time + 2 * 1.5 + 1
    assert growth < RSS_CAP
    assert outcome.status in (ProbeStatus.OPEN, ProbeStatus.EXPOSED, ProbeStatus.TIMEOUT)
    (share,) = outcome.facts.shares
    assert share.limited and share.bytes_read <= limits.file_budget


def test_a_listing_that_never_ends_is_cut_by_entries_then_bytes():
    limits = WalkLimits(walk_time=10.0)
    with Parrot(ftp_server(endless_listing())) as parrot:
        outcome, elapsed, growth = run_probe(parrot.port, limits)
    assert elapsed < 10 and growth < RSS_CAP
    assert outcome.status is ProbeStatus.OPEN
    (share,) = outcome.facts.shares
    assert share.entries == limits.max_entries and share.limited
    tight = WalkLimits(walk_time=10.0, total_bytes=100_000)
    with Parrot(ftp_server(endless_listing())) as parrot:
        outcome, elapsed, _ = run_probe(parrot.port, tight)
    assert elapsed < 10 and outcome.status is ProbeStatus.OPEN
    (share,) = outcome.facts.shares
    assert share.limited and share.entries < 100_000 // 40


def test_a_slow_listing_that_never_ends_stops_at_the_wall_time():
    limits = WalkLimits(walk_time=3.0)
    with Parrot(ftp_server(endless_listing(every=0.5))) as parrot:
        outcome, elapsed, growth = run_probe(parrot.port, limits, timeout=1.0)
    assert elapsed < limits.walk_time + 3 and growth < RSS_CAP
    assert outcome.status in (ProbeStatus.OPEN, ProbeStatus.TIMEOUT)
    assert outcome.facts.shares and outcome.facts.shares[0].limited


def test_10_mb_of_garbage_lines_in_a_listing():
    rng = os.urandom(10 * 1024 * 1024)
    garbage = rng.replace(b"\r", b"\n")  # lines of random lengths, with NULs and high bytes
    limits = WalkLimits()
    with Parrot(ftp_server(fixed(garbage))) as parrot:
        outcome, elapsed, growth = run_probe(parrot.port, limits)
    assert elapsed < 15 and growth < RSS_CAP
    assert outcome.status in (ProbeStatus.OPEN, ProbeStatus.EXPOSED)
    (share,) = outcome.facts.shares
    assert share.readable and share.entries <= limits.max_entries
    assert share.limited  # the listing was cut at its byte bound, never buffered whole


# --- phiwatch sniff on the same tree, locally -------------------------------------------------------------


def test_cli_sniff_on_the_hostile_tree_is_bounded(tree):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "phiwatch", "sniff", str(tree), "--max-files", "3000",
                             "--json"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < 60
    summary = json.loads(result.stdout)
    assert summary["status"] == "limited" and summary["file_limit_reached"]
    assert summary["symlink_loops"] == 2 and summary["symlinks_skipped"] == 1  # up and self; escape -> /
    assert summary["directories_beyond_depth"] >= 1  # deep/ goes past --max-depth 20
    assert summary["files_sniffed"] == 3000
    assert summary["bytes_read"] <= 3000 * 65_536
    assert summary["kinds"]["hl7"]["verified"] >= 1
    for name in NAMES:
        assert name not in result.stdout and name not in result.stderr, name
