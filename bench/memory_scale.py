"""Benchmark: phiwatch's peak RSS does not grow with the target space.

Sweeps one port over a small block and a large block of loopback (default a /20 and a /12,
1,048,576 addresses) with `--allow-large --rate 0 --retries 0 --no-db --output DIR`, nothing
listening, and prints each run's wall time and peak RSS (the child's ru_maxrss via os.wait4)
and the difference. Goal: the large sweep within 100 MB of the small one. Also checks that
each scan.json was written and counts every address. Traffic stays in 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dicom_vs_nmap import PHIWATCH, raise_nofile, run_measured

HERE = Path(__file__).resolve().parent
GOAL_MB = 100.0
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def sweep(args: argparse.Namespace, net: str, out: Path) -> dict[str, Any]:
    block = ipaddress.IPv4Network(net)
    if not block.subnet_of(LOOPBACK):
        raise SystemExit(f"{net} is not inside 127.0.0.0/8")
    folder = out / net.replace("/", "_")
    (folder / "scan.json").unlink(missing_ok=True)
    cmd = [str(args.phiwatch), "scan", net, "-p", str(args.port), "--allow-large", "--rate", "0",
           "--retries", "0", "--concurrency", str(args.concurrency), "--no-db",
           "--progress", args.progress, "--output", str(folder)]
    run = run_measured(cmd, out / f"phiwatch-{block.prefixlen}.log", args.max_seconds)
    row: dict[str, Any] = {"net": net, "addresses": block.num_addresses, **asdict(run)}
    scan_json = folder / "scan.json"
    if scan_json.exists():
        scan = json.loads(scan_json.read_text())["scan"]
        row["scan_json_bytes"] = scan_json.stat().st_size
        row["addresses_done"] = scan.get("addresses_done")
        row["complete"] = scan.get("complete")
    print(f"  {net}: {block.num_addresses} addresses, {run.wall_s:.1f} s, peak RSS "
          f"{run.peak_rss_kb / 1024:.1f} MB, exit {run.returncode}, scan.json "
          f"{row.get('scan_json_bytes', 'missing')} bytes, addresses done {row.get('addresses_done')}",
          flush=True)
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", default="127.64.0.0/20")
    ap.add_argument("--large", default="127.64.0.0/12")
    ap.add_argument("--port", type=int, default=105, help="a port nothing listens on")
    ap.add_argument("--concurrency", type=int, default=2000)
    ap.add_argument("--progress", default="json", choices=("json", "rich", "none"))
    ap.add_argument("--phiwatch", type=Path, default=PHIWATCH)
    ap.add_argument("--max-seconds", type=float, default=3600)
    ap.add_argument("--out", type=Path, default=HERE / "out-memory")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    small = sweep(args, args.small, out)
    large = sweep(args, args.large, out)
    growth = (large["peak_rss_kb"] - small["peak_rss_kb"]) / 1024
    verdict = "MET" if growth < GOAL_MB else "MISSED"
    print(f"peak RSS {small['peak_rss_kb'] / 1024:.1f} MB ({args.small}) -> "
          f"{large['peak_rss_kb'] / 1024:.1f} MB ({args.large}): {growth:+.1f} MB "
          f"(goal < {GOAL_MB:.0f} MB: {verdict})")
    summary = {"small": small, "large": large, "growth_mb": round(growth, 1), "goal": verdict}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
