"""Start-up time: phiwatch and nmap on the same commands, run alternately, side by side.

    .venv/bin/python bench/startup.py            # 15 rounds
    .venv/bin/python bench/startup.py --rounds 31 --json bench/out/startup.json

Each round runs every command once, phiwatch and nmap alternating, so load on the machine
hits both alike. Printed per command: the median and best wall time, and the median CPU time
(user + system) of the process, which a busy machine disturbs less than wall time. Then, from
one `python -X importtime` run of the scan, the import time by top-level package: where the
start-up goes. Traffic: one connect to 127.0.0.1 port 1 (closed) per scan; nmap runs with -n.
The store and the XDG folders are temporary; the default store exists before the first round (so
`scan 127.0.0.1 -p 1` is a scan into an existing store), and "into a new store" creates one each time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PHIWATCH = str(BIN / "phiwatch")
# (label, phiwatch argv, nmap argv doing the same, or None)
COMMANDS = [
    ("help", [PHIWATCH, "--help"], ["nmap", "--help"]),
    ("scan 127.0.0.1 -p 1", [PHIWATCH, "scan", "127.0.0.1", "-p", "1"],
     ["nmap", "-n", "-Pn", "-p", "1", "127.0.0.1"]),
    # the first scan of a new store: it is created (SQLAlchemy); later scans write it through sqlite3
    ("scan -p 1 into a new store", [PHIWATCH, "scan", "127.0.0.1", "-p", "1", "--db", "{new}"], None),
    ("scan 127.0.0.1 -p 1 --no-db", [PHIWATCH, "scan", "127.0.0.1", "-p", "1", "--no-db"], None),
    ("usage error: -p 70000", [PHIWATCH, "scan", "127.0.0.1", "-p", "70000"],
     ["nmap", "-n", "-p", "70000", "127.0.0.1"]),
]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run (its output discarded); "{new}" becomes a store file not made yet."""
    if "{new}" in argv:
        store = tempfile.mktemp(suffix=".db", dir=env["XDG_DATA_HOME"])
        argv = [store if arg == "{new}" else arg for arg in argv]
    # Popen + os.wait4, not subprocess.run(timeout=...): waiting with a timeout polls every 50 ms, which
    # rounded every wall time up to the next poll. A timer kills a run that hangs.
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    guard = threading.Timer(120, proc.kill)
    guard.start()
    try:
        _, _, usage = os.wait4(proc.pid, 0)
    finally:
        guard.cancel()
    wall = time.perf_counter() - started
    proc.returncode = 0  # reaped by wait4 above: Popen must not wait for it again
    return wall, usage.ru_utime + usage.ru_stime


def import_breakdown(env: dict[str, str]) -> list[tuple[str, float]]:
    """Self import time (ms) by top-level package, for `phiwatch scan 127.0.0.1 -p 1`."""
    argv = [sys.executable, "-X", "importtime", "-m", "phiwatch", "scan", "127.0.0.1", "-p", "1", "-q"]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    totals: dict[str, float] = {}
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line[len("import time:"):].split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("nmap") is None:
        sys.exit("nmap is not installed (scripts/install-debian-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="phiwatch-startup-") as home:
        os.makedirs(f"{home}/data")
        env = {**os.environ, "XDG_DATA_HOME": f"{home}/data", "XDG_STATE_HOME": f"{home}/state",
               "XDG_CONFIG_HOME": f"{home}/config"}
        for _, argv, _ in COMMANDS:  # warm the page cache once
            timed(argv, env)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for label, mine, theirs in COMMANDS:
                samples.setdefault((label, "phiwatch"), []).append(timed(mine, env))
                if theirs is not None:
                    samples.setdefault((label, "nmap"), []).append(timed(theirs, env))
        breakdown = import_breakdown(env)
    load = os.getloadavg()
    print(f"{args.rounds} rounds; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'command':<30} {'tool':<9} {'median s':>9} {'best s':>8} {'CPU s':>7}")
    figures = []
    for (label, tool), runs in samples.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        row = {"command": label, "tool": tool, "median": statistics.median(walls), "best": min(walls),
               "cpu": statistics.median(cpus)}
        figures.append(row)
        print(f"{label:<30} {tool:<9} {row['median']:>9.3f} {row['best']:>8.3f} {row['cpu']:>7.3f}")
    print("import time of `phiwatch scan 127.0.0.1 -p 1`, by package (ms, one run):")
    print("  " + ", ".join(f"{name} {ms:.0f}" for name, ms in breakdown[:14]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rounds": args.rounds, "load": load, "figures": figures,
                                         "imports_ms": breakdown}, indent=2))


if __name__ == "__main__":
    main()
