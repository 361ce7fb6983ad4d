"""Time the journal's writes: services and findings recorded into the store in shard-sized batches.

    python bench/store_record.py [--services 1000] [--batch 83] [--db PATH]

The services are synthetic (open DICOM services on 127.77.x.y, two findings each); the store is
in memory unless --db is given. Prints the total and per-batch time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from phiwatch.models import Finding, ScanInfo, ScanOptions, Service, Severity, TargetSummary
from phiwatch.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=83, help="services per shard (8192 farm addresses hold ~83)")
    ap.add_argument("--db", type=Path, help="an SQLite file (default: in memory)")
    args = ap.parse_args()
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=0, timeout=1, retries=0, max_matches=1,
                          calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False, byte_budget=1)
    info = ScanInfo(id="bench-store", start=datetime.now(UTC), version="bench", options=options,
                    targets=TargetSummary(specs=[], excludes=[], addresses=0, ports=[104]))
    found = []
    for i in range(args.services):
        host = f"127.77.{i // 256}.{i % 256}"
        service = Service(host=host, port=104, protocol="dicom", status="exposed", detail="bench")
        findings = [Finding(check_id=check, title=check, severity=Severity.HIGH, host=host, port=104,
                            protocol="dicom", evidence="bench", remediation="bench")
                    for check in ("dicom_no_tls", "dicom_any_called_ae_accepted")]
        found.append((service, findings))
    with tempfile.TemporaryDirectory() as folder:
        store = Store(args.db or Path(folder) / "unused.db", memory=args.db is None)
        store.begin(info, {}, args.batch)
        started = time.perf_counter()
        for index, start in enumerate(range(0, len(found), args.batch)):
            store.record(info.id, found[start:start + args.batch], (index, "bench", args.batch))
        total = time.perf_counter() - started
        store.close()
    batches = -(-len(found) // args.batch)
    print(f"{len(found)} services, {2 * len(found)} findings in {batches} batches: {total:.3f} s "
          f"({1000 * total / batches:.1f} ms per batch)")


if __name__ == "__main__":
    main()
