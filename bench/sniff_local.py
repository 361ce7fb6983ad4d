"""How fast `phiwatch.content.walk.sniff_path` sniffs a local tree, and how much it reads per file.

    .venv/bin/python bench/sniff_local.py                 # builds a 10,000-file tree in a temp folder
    .venv/bin/python bench/sniff_local.py --files 50000
    .venv/bin/python bench/sniff_local.py --path /some/tree --max-files 100000

The built tree mixes what a medical file share holds: small DICOM images (the lab canary),
some DICOM files larger than the byte budget, HL7 ADT messages, X12 837 claims and junk,
laid out as DICOMDIR-style folders. Prints one JSON object: files, files per second, bytes
read per file, and the summary's counts. The page cache is warm for the built tree (it was
just written): the figure is the sniffer's cost, not the disk's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from phiwatch.content.walk import sniff_path
from phiwatch_lab.canary import build_canary_dataset, canary_bytes

HL7 = (
    b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ADT^A01|MSG%06d|P|2.5.1\r"
    b"PID|1||BENCH%06d^^^HOSP^MR||BENCH^PATIENT||19700101|F\r"
    b"PV1|1|I\r"
)
ISA = b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*P*:~"
X12 = (
    ISA + b"GS*HC*SUB*REC*20240101*1200*1*X*005010X222A1~ST*837*0001*005010X222A1~"
    b"NM1*IL*1*BENCH*PATIENT****MI*%06d~DMG*D8*19700101*F~CLM*%06d*100~SE*5*0001~GE*1*1~IEA*1*000000001~"
)


def _big_dicom() -> bytes:
    """The canary with 256x256 16-bit pixels (about 130 KB): larger than the default budget."""
    from io import BytesIO

    ds = build_canary_dataset()
    ds.Rows = ds.Columns = 256
    ds.PixelData = bytes(256 * 256 * 2)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def build_tree(root: Path, files: int, seed: int = 7) -> dict[str, int]:
    rng = random.Random(seed)
    small, big = canary_bytes(), _big_dicom()
    made = {"dicom": 0, "dicom-big": 0, "hl7": 0, "x12": 0, "junk": 0}
    for index in range(files):
        series = root / "DICOM" / f"PT{index // 2000:06d}" / f"ST{index // 500:06d}" / f"SE{index // 100:06d}"
        if index % 100 == 0:
            series.mkdir(parents=True, exist_ok=True)
        roll = rng.random()
        if roll < 0.80:
            path, data, key = series / f"IM{index:06d}", small, "dicom"
        elif roll < 0.85:
            path, data, key = series / f"IM{index:06d}", big, "dicom-big"
        elif roll < 0.90:
            path, data, key = series / f"msg{index:06d}.hl7", HL7 % (index, index), "hl7"
        elif roll < 0.95:
            path, data, key = series / f"claim{index:06d}.837", X12 % (index, index), "x12"
        else:
            path, data, key = series / f"note{index:06d}.bin", rng.randbytes(4096), "junk"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        made[key] += 1
    return made


def measure(path: Path, budget: int, max_files: int) -> dict[str, object]:
    started = time.perf_counter()
    summary = sniff_path(path, byte_budget=budget, max_files=max_files)
    elapsed = time.perf_counter() - started
    sniffed = summary.files_sniffed
    return {
        "files_sniffed": sniffed,
        "seconds": round(elapsed, 3),
        "files_per_second": round(sniffed / elapsed, 1) if elapsed else None,
        "bytes_read": summary.bytes_read,
        "bytes_read_per_file": round(summary.bytes_read / sniffed, 1) if sniffed else None,
        "status": summary.status,
        "kinds": {kind: count.model_dump() for kind, count in summary.kinds.items()},
        "content_statuses": summary.content_statuses,
        "errors": summary.errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=10_000, help="files in the built tree (default 10000)")
    parser.add_argument("--path", type=Path, help="sniff this existing tree instead of building one")
    parser.add_argument("--budget", type=int, default=65_536, help="bytes read per file (default 65536)")
    parser.add_argument("--max-files", type=int, default=None, help="sniff_path max_files (default: --files)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the best is reported (default 3)")
    args = parser.parse_args(argv)
    max_files = args.max_files or max(args.files, 10_000)
    if args.path:
        runs = [measure(args.path, args.budget, max_files) for _ in range(args.runs)]
        report: dict[str, object] = {"tree": "given"}
    else:
        with tempfile.TemporaryDirectory(prefix="phiwatch-sniff-bench-") as folder:
            started = time.perf_counter()
            made = build_tree(Path(folder), args.files)
            report = {"tree": "built", "built": made, "build_seconds": round(time.perf_counter() - started, 2)}
            runs = [measure(Path(folder), args.budget, max_files) for _ in range(args.runs)]
    best = min(runs, key=lambda run: float(run["seconds"]))  # type: ignore[arg-type]
    report.update(best)
    report["runs_seconds"] = [run["seconds"] for run in runs]
    report["cpus"] = os.cpu_count()
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
