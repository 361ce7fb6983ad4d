"""--per-host against one host with many services: how long the lab's ports take at each value, and
what the progress says held the scan back.

    .venv/bin/phiwatch lab up                      # the lab on its default base, 21100
    .venv/bin/python bench/per_host.py             # --per-host 1 2 4 8 16, 3 rounds each
    .venv/bin/python bench/per_host.py --ports 28000-28082 --values 2 8 --rounds 5

Every service of the lab's loopback host is one host's ports in line behind --per-host: the
case a default must not make slow. Rounds alternate the values, so load on the machine hits
them alike. No store is written; traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PHIWATCH = str(Path(sys.executable).parent / "phiwatch")


def one(ports: str, per_host: int, timeout: float) -> tuple[float, int, int, set[str]]:
    """Seconds, services found open, ports probed, and the limits progress said held the scan back."""
    started = time.perf_counter()
    run = subprocess.run([PHIWATCH, "scan", "127.0.0.1", "-p", ports, "--per-host", str(per_host), "--no-db",
                          "--timeout", str(timeout), "--progress", "json"],
                         capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.perf_counter() - started
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    progress = [e for e in events if e.get("event") == "progress"]
    held = {e["held_back_by"] for e in progress if "held_back_by" in e}
    last = progress[-1] if progress else {"open": 0, "done": 0}
    return elapsed, last["open"], last["done"], held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", default="21100-21182", help="the lab's loopback ports")
    parser.add_argument("--values", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    runs: dict[int, list[tuple[float, int, int, set[str]]]] = {value: [] for value in args.values}
    for _ in range(args.rounds):
        for value in args.values:
            runs[value].append(one(args.ports, value, args.timeout))
    load = os.getloadavg()
    print(f"127.0.0.1 -p {args.ports}, {args.rounds} rounds; load average {load[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'--per-host':>10} {'median s':>9} {'best s':>7} {'open':>5}  held back by")
    for value, rows in runs.items():
        times = [r[0] for r in rows]
        held = sorted(set().union(*(r[3] for r in rows)))
        print(f"{value:>10} {statistics.median(times):>9.1f} {min(times):>7.1f} {rows[-1][1]:>5}  "
              f"{', '.join(held) or '-'}")


if __name__ == "__main__":
    main()
