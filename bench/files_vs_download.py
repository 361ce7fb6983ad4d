"""phiwatch's file-repository probe against a plain download of the same share.

    .venv/bin/python bench/files_vs_download.py                  # 10,000 files (about 3 GB on disk)
    .venv/bin/python bench/files_vs_download.py --files 2000     # smaller
    .venv/bin/python bench/files_vs_download.py --keep DIR       # build the tree in DIR and keep it

It builds a tree under a temporary folder: DICOM instances of realistic size (100-500 KB, with
pixel data) in patient/study/series folders, plus HL7 ADT and X12 837 files (2% each); serves it
with vsftpd (anonymous, read-only, loopback); then measures, in one run:

- phiwatch's FTP probe with its bounds raised so that every file is sniffed (files sniffed per
  second, bytes read per file, wall time, peak RSS of the probing process);
- a plain download of every file (ftplib, LIST then RETR, the way a mirror client does it) into
  a temporary folder (bytes, wall time, peak RSS).

Samba is measured the same way once phiwatch has an SMB probe (probes/smb.py); until then the
SMB row reads "pending". Traffic stays on 127.0.0.1. The page cache is warm (the tree was just
written): the figures are the tools' costs over loopback, not a disk's or a network's.
"""

from __future__ import annotations

import argparse
import asyncio
import ftplib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from phiwatch_lab import ftp as lab_ftp
from phiwatch_lab import process

HOST = "127.0.0.1"
PER_SERIES = 100
HL7 = (
    b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ADT^A01|MSG%06d|P|2.5.1\r"
    b"PID|1||BENCH%06d^^^HOSP^MR||BENCH^PATIENT||19700101|F\r"
    b"PV1|1|I\r"
)
X12 = (
    b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*P*:~"
    b"GS*HC*SUB*REC*20240101*1200*1*X*005010X222A1~ST*837*0001*005010X222A1~"
    b"NM1*IL*1*BENCH*PATIENT****MI*%06d~DMG*D8*19700101*F~CLM*%06d*100~SE*5*0001~GE*1*1~IEA*1*000000001~"
)


def _dicom(index: int, size: int, noise: bytes) -> bytes:
    """A CT instance of about `size` bytes: a real header, then 8-bit pixels (512 columns)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = f"BENCH^P{index // 1000:04d}", f"BENCH{index // 1000:06d}"
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.Modality = "19700101", "F", "20240101", "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.{index // 1000}", generate_uid()
    ds.InstanceNumber = index % PER_SERIES + 1
    rows = max(1, size // 512)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = rows, 512, 8, 8, 7
    ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
    start = (index * 7919) % (len(noise) - rows * 512)
    ds.PixelData = noise[start:start + rows * 512]
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def build_tree(root: Path, files: int, min_kb: int, max_kb: int, seed: int = 7) -> dict:
    """Write the tree; returns its counts per kind and its bytes."""
    rng = random.Random(seed)
    noise = rng.randbytes(max_kb * 1024 * 2)
    counts = {"dicom": 0, "hl7": 0, "x12": 0}
    total = 0
    for index in range(files):
        folder = root / f"PT{index // 1000:04d}" / f"ST{index // 500:05d}" / f"SE{index // PER_SERIES:05d}"
        if index % PER_SERIES == 0:
            folder.mkdir(parents=True, exist_ok=True)
        roll = index % 50
        if roll == 0:
            data, name, kind = HL7 % (index, index), f"ADT{index:06d}.hl7", "hl7"
        elif roll == 1:
            data, name, kind = X12 % (index, index), f"CLM{index:06d}.837", "x12"
        else:
            data = _dicom(index, rng.randint(min_kb, max_kb) * 1024, noise)
            name, kind = f"IM{index:06d}.dcm", "dicom"
        (folder / name).write_bytes(data)
        counts[kind] += 1
        total += len(data)
    for dirpath, _dirs, names in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in names:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return {"files": counts, "bytes": total}


# --- the two clients, each in its own process (peak RSS via wait4) ------------------------------------------


def probe_main(protocol: str, port: int, files: int) -> None:
    """Child: phiwatch's FTP or SMB probe with every file within its bounds; prints its facts as JSON."""
    import importlib

    from phiwatch.engine import Engine, Limits
    from phiwatch.probes.options import ProbeOptions
    from phiwatch.probes.outcome import Peer
    from phiwatch.probes.walk import FileOptions, WalkLimits

    module = importlib.import_module(f"phiwatch.probes.{protocol}")

    limits = WalkLimits(max_depth=8, max_entries=files + 100, max_files=files + 100, per_directory=files + 100,
                        total_bytes=files * 65_536, walk_time=3_600.0)
    started = time.monotonic()

    async def main():
        engine = Engine(Limits(timeout=10.0, retries=0, probe_time=3_700.0, byte_budget=limits.total_bytes * 2))
        try:
            return await module.probe(engine, Peer(HOST, port), ProbeOptions(files=FileOptions(limits)))
        finally:
            engine.close()

    outcome = asyncio.run(main())
    shares = outcome.facts.shares
    counts: dict[str, dict[str, int]] = {}
    for share in shares:
        for kind, count in share.files.items():
            total = counts.setdefault(kind, {"verified": 0, "estimated": 0})
            total["verified"] += count.verified
            total["estimated"] += count.estimated
    print(json.dumps({
        "status": outcome.status.value, "wall": time.monotonic() - started,
        "files_sniffed": sum(s.files_sniffed for s in shares), "bytes_read": sum(s.bytes_read for s in shares),
        "counts": counts, "limited": any(s.limited for s in shares),
    }))


def download_main(port: int, target: str) -> None:
    """Child: LIST every folder, RETR every file into target; prints files, bytes and wall time."""
    started = time.monotonic()
    client = ftplib.FTP()
    client.connect(HOST, port, timeout=30)
    client.login()
    files = total = 0
    stack = ["/"]
    while stack:
        folder = stack.pop()
        lines: list[str] = []
        client.retrlines(f"LIST {folder}", lines.append)
        for line in lines:
            parts = line.split(None, 8)
            if len(parts) < 9:
                continue
            path = f"{folder.rstrip('/')}/{parts[8]}"
            if line.startswith("d"):
                stack.append(path)
            elif line.startswith("-"):
                local = Path(target) / path.lstrip("/")
                local.parent.mkdir(parents=True, exist_ok=True)
                with open(local, "wb") as handle:
                    client.retrbinary(f"RETR {path}", handle.write, blocksize=262_144)
                files += 1
                total += local.stat().st_size
    client.quit()
    print(json.dumps({"files": files, "bytes": total, "wall": time.monotonic() - started}))


def run_child(args: list[str], command: list[str] | None = None) -> tuple[dict, float, int]:
    """Run this script (or `command`) as a child; its JSON line, its wall time, its peak RSS in KiB."""
    started = time.monotonic()
    argv = command or [sys.executable, __file__, *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {argv[:3]} failed ({proc.returncode})")
    wall = time.monotonic() - started
    return (json.loads(out.strip().splitlines()[-1]) if command is None else {"wall": wall}), wall, usage.ru_maxrss


def _wait_port(port: int, record: process.ProcessRecord, log: Path) -> None:
    deadline = time.monotonic() + 20
    while not process.port_accepting(port):
        if time.monotonic() > deadline or not process.record_alive(record):
            process.stop([record])
            raise SystemExit(f"{record.name} did not start: {process.log_tail(log)}")
        time.sleep(0.1)


# --- the bench ---------------------------------------------------------------------------------------------


def serve_ftp(root: Path, folder: Path, base: int) -> process.ProcessRecord:
    lab_ftp.check_installed()
    lab_ftp.SECURE_CHROOT.mkdir(parents=True, exist_ok=True)
    config = folder / "vsftpd.conf"
    config.write_text(lab_ftp.render_config(base, root, base + 10, base + 99, folder / "users"))
    config.chmod(0o600)
    record = process.spawn("bench-vsftpd", lab_ftp.command(config), folder / "vsftpd.log", [base], cwd=folder)
    _wait_port(base, record, folder / "vsftpd.log")
    return record


def _counted(target: Path, wall: float) -> dict:
    paths = [p for p in target.rglob("*") if p.is_file()]
    return {"files": len(paths), "bytes": sum(p.stat().st_size for p in paths), "wall": wall}


def measure_smb(folder: Path, work: Path, port: int, files: int) -> dict | str:
    """smbd (the lab's guest configuration: share `imaging` is the tree) against smbclient mget."""
    if importlib.util.find_spec("phiwatch.probes.smb") is None:
        return "pending: phiwatch has no SMB probe (probes/smb.py) yet"
    from phiwatch_lab import samba

    samba.check_installed()
    for name in samba.STATE_DIRS:
        (folder / "state" / name).mkdir(parents=True, exist_ok=True)
    for name in ("public", "finance"):
        (folder / name).mkdir(exist_ok=True)
    config = folder / "smb.conf"
    config.write_text(samba.render_config(folder, port, guest=True))
    log = work / "smbd.log"
    record = process.spawn("bench-smbd", [sys.executable, "-m", "phiwatch_lab.samba", str(config)], log, [port],
                           cwd=work)
    try:
        _wait_port(port, record, log)
        probe, probe_wall, probe_rss = run_child(["_probe", "smb", str(port), str(files)])
        target = work / "smb-download"
        target.mkdir()
        command = ["smbclient", f"//{HOST}/imaging", "-p", str(port), "-N",
                   "-c", f"recurse ON; prompt OFF; lcd {target}; mget *"]
        _, wall, rss = run_child([], command)
        download = _counted(target, wall)
        shutil.rmtree(target, ignore_errors=True)
    finally:
        process.stop([record])
    return {
        "probe": {**probe, "process_wall": probe_wall, "peak_rss_kib": probe_rss},
        "download": {**download, "process_wall": wall, "peak_rss_kib": rss},
    }


def measure_ftp(root: Path, work: Path, base: int, files: int) -> dict:
    record = serve_ftp(root, work, base)
    try:
        probe, probe_wall, probe_rss = run_child(["_probe", "ftp", str(base), str(files)])
        target = work / "download"
        download, download_wall, download_rss = run_child(["_download", str(base), str(target)])
        shutil.rmtree(target, ignore_errors=True)
    finally:
        process.stop([record])
    return {
        "probe": {**probe, "process_wall": probe_wall, "peak_rss_kib": probe_rss},
        "download": {**download, "process_wall": download_wall, "peak_rss_kib": download_rss},
    }


def _rows(name: str, figures: dict) -> list[tuple[str, str]]:
    p, d = figures["probe"], figures["download"]
    mb = 1e6
    per_file = p["bytes_read"] / max(1, p["files_sniffed"]) / 1024
    return [
        (f"{name} probe status", f"{p['status']} (limited={p['limited']}), counts {p['counts']}"),
        (f"{name} probe", f"{p['files_sniffed']} files sniffed in {p['wall']:.1f} s"
                          f" ({p['files_sniffed'] / max(p['wall'], 1e-9):.0f} files/s),"
                          f" {p['bytes_read'] / mb:.1f} MB read ({per_file:.1f} KiB per file),"
                          f" peak RSS {p['peak_rss_kib'] / 1024:.0f} MB"),
        (f"{name} download", f"{d['files']} files in {d['wall']:.1f} s ({d['files'] / max(d['wall'], 1e-9):.0f}"
                             f" files/s), {d['bytes'] / mb:.0f} MB, peak RSS {d['peak_rss_kib'] / 1024:.0f} MB"),
        (f"{name} ratios", f"bytes download/probe {d['bytes'] / max(1, p['bytes_read']):.1f}x,"
                           f" wall download/probe {d['wall'] / max(p['wall'], 1e-9):.2f}x (loopback)"),
        (f"{name} at 100 Mbit/s", f"computed, not measured: the bytes alone take {p['bytes_read'] * 8 / 1e8:.0f} s"
                                  f" (probe), {d['bytes'] * 8 / 1e8:.0f} s (download)"),
    ]


def report(tree: dict, ftp_figures: dict, smb_figures: dict | str) -> str:
    rows = [("tree", f"{sum(tree['files'].values())} files, {tree['bytes'] / 1e6:.0f} MB: {tree['files']}")]
    rows += _rows("FTP", ftp_figures)
    rows += _rows("SMB", smb_figures) if isinstance(smb_figures, dict) else [("SMB", smb_figures)]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_probe":
        return probe_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "_download":
        return download_main(int(sys.argv[2]), sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--min-kb", type=int, default=100)
    parser.add_argument("--max-kb", type=int, default=500)
    parser.add_argument("--base-port", type=int, default=39_400,
                        help="vsftpd; smbd on +1; vsftpd's passive ports +10 .. +99")
    parser.add_argument("--no-smb", action="store_true", help="FTP only")
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    if not 10 <= args.files <= 100_000 or not 1 <= args.min_kb <= args.max_kb <= 4096:
        parser.error("--files 10..100000, 1 <= --min-kb <= --max-kb <= 4096")
    work = Path(tempfile.mkdtemp(prefix="phiwatch-bench-files-"))
    os.chmod(work, 0o755)
    folder = args.keep or work / "shares"
    root = folder / "imaging"  # the SMB share `imaging` of the lab's guest configuration; the FTP root
    try:
        started = time.monotonic()
        tree = build_tree(root, args.files, args.min_kb, args.max_kb)
        print(f"built {root} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        ftp_figures = measure_ftp(root, work, args.base_port, args.files)
        smb_figures = (
            "skipped (--no-smb)" if args.no_smb else measure_smb(folder, work, args.base_port + 1, args.files)
        )
        print(report(tree, ftp_figures, smb_figures))
        if args.json:
            document = {"tree": tree, "ftp": ftp_figures, "smb": smb_figures}
            args.json.write_text(json.dumps(document, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
