"""Benchmark: a TCP sweep of one port over a /16 of loopback, phiwatch vs `nmap -sT`.

Both tools sweep the same addresses in one run, alternating for several rounds: wall time and
peak RSS of each child (os.wait4), and the ratio phiwatch/nmap per round. Variant `closed`:
nothing listens, every connect is refused. Variant `open`: a child binds listeners on a few
hundred addresses of the block (each sends one line and closes); both tools' open sets are
compared with the listeners and with each other. Traffic stays in 127.0.0.0/8 and nmap
always runs with -n. Exits 0 unless misused.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dicom_vs_nmap import PHIWATCH, _children, kill_group, raise_nofile, run_measured

HERE = Path(__file__).resolve().parent
GOAL_RATIO = 2.0  # phiwatch wall time at most twice nmap's
BANNER = b"BENCH-LISTENER\r\n"


def listener_addresses(net: str, count: int, seed: int) -> list[str]:
    block = ipaddress.IPv4Network(net)
    if not block.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        raise SystemExit("--net must be inside 127.0.0.0/8")
    values = random.Random(seed).sample(range(1, block.num_addresses - 1), count)
    return sorted((str(block.network_address + v) for v in values), key=ipaddress.IPv4Address)


def serve(net: str, port: int, count: int, seed: int) -> None:
    """Child mode: one listener per address; each connection gets one line, then a close."""

    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER)
        writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(greet, host, port, backlog=1024)
                   for host in listener_addresses(net, count, seed)]
        print(f"READY n={len(servers)}", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class Listeners:
    def __init__(self, args: argparse.Namespace, log: Path) -> None:
        self.cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--net", args.net,
                    "--port", str(args.port), "--listeners", str(args.listeners),
                    "--seed", str(args.seed)]
        self.log = log
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Listeners:
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                         start_new_session=True)
        _children.add(self.proc.pid)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("READY"):
            self.__exit__()
            raise RuntimeError(f"listeners not ready: {line!r}, see {self.log}")
        print(f"listeners: {line}", flush=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
        _children.discard(proc.pid)


def nmap_open(xml_file: Path, port: int) -> set[str]:
    found: set[str] = set()
    for _event, host in ET.iterparse(xml_file, events=("end",)):
        if host.tag != "host":
            continue
        addr = host.find("address[@addrtype='ipv4']")
        state = host.find(f"ports/port[@portid='{port}']/state")
        if addr is not None and state is not None and state.get("state") == "open":
            found.add(addr.get("addr", ""))
        host.clear()
    return found


def phiwatch_open(scan_json: Path, port: int) -> set[str]:
    services = json.loads(scan_json.read_text()).get("services", [])
    return {s["host"] for s in services if int(s.get("port", -1)) == port}


def commands(args: argparse.Namespace, out: Path) -> tuple[list[str], list[str]]:
    nmap = ["nmap", "-n", "-Pn", "-sT", "-p", str(args.port), *args.nmap_flags.split(),
            "-oX", str(out / "nmap.xml"), args.net]
    phiwatch = [str(args.phiwatch), "scan", args.net, "-p", str(args.port), "--db", str(out / "sweep.db"),
                "--progress", "json", "--output", str(out / "phiwatch")]
    for flag, value in (("--concurrency", args.concurrency), ("--rate", args.rate), ("--retries", args.retries),
                        ("--timeout", args.timeout)):  # fmt: skip
        if value is not None:  # unset: phiwatch's own default
            phiwatch += [flag, str(value)]
    return nmap, phiwatch


def one_variant(args: argparse.Namespace, out: Path, truth: set[str] | None) -> dict[str, Any]:
    nmap_cmd, phiwatch_cmd = commands(args, out)
    rounds: list[dict[str, Any]] = []
    for number in range(1, args.rounds + 1):
        order = [("nmap", nmap_cmd), ("phiwatch", phiwatch_cmd)]
        if number % 2 == 0:
            order.reverse()  # alternate who goes first: neither always gets a warm cache
        row: dict[str, Any] = {"round": number}
        for name, cmd in order:
            run = run_measured(cmd, out / f"{name}.log", args.max_seconds)
            row[name] = asdict(run)
            if run.returncode != 0:
                print(f"{name} exited {run.returncode}; see {out / (name + '.log')}")
        row["ratio"] = round(row["phiwatch"]["wall_s"] / max(1e-6, row["nmap"]["wall_s"]), 3)
        nm, pw = nmap_open(out / "nmap.xml", args.port), phiwatch_open(out / "phiwatch" / "scan.json", args.port)
        row["open"] = {"nmap": len(nm), "phiwatch": len(pw), "both": len(nm & pw),
                       "only_nmap": len(nm - pw), "only_phiwatch": len(pw - nm)}
        if truth is not None:
            row["open"] |= {"listeners": len(truth), "nmap_matches_listeners": nm == truth,
                            "phiwatch_matches_listeners": pw == truth}
        print(f"  round {number}: nmap {row['nmap']['wall_s']:.2f} s "
              f"{row['nmap']['peak_rss_kb'] / 1024:.1f} MB | phiwatch {row['phiwatch']['wall_s']:.2f} s "
              f"{row['phiwatch']['peak_rss_kb'] / 1024:.1f} MB | ratio {row['ratio']:.2f} | open "
              f"{json.dumps(row['open'])}", flush=True)
        rounds.append(row)
    ratios = [r["ratio"] for r in rounds]
    return {"rounds": rounds, "median_ratio": statistics.median(ratios), "worst_ratio": max(ratios),
            "nmap_median_s": statistics.median(r["nmap"]["wall_s"] for r in rounds),
            "phiwatch_median_s": statistics.median(r["phiwatch"]["wall_s"] for r in rounds)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="127.77.0.0/16", help="a block inside 127.0.0.0/8")
    ap.add_argument("--port", type=int, default=105)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per variant, alternating tools")
    ap.add_argument("--listeners", type=int, default=300, help="listening addresses (open variant)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--variants", default="closed,open", help="closed, open or both")
    ap.add_argument("--concurrency", type=int, help="phiwatch --concurrency (default: phiwatch's)")
    ap.add_argument("--rate", type=float, help="phiwatch --rate (default: phiwatch's; 0: no ceiling)")
    ap.add_argument("--retries", type=int, help="phiwatch --retries (default: phiwatch's)")
    ap.add_argument("--timeout", type=float, help="phiwatch --timeout (default: phiwatch's)")
    ap.add_argument("--nmap-flags", default="", help="extra nmap flags, e.g. '--min-rate 50000'")
    ap.add_argument("--phiwatch", type=Path, default=PHIWATCH)
    ap.add_argument("--max-seconds", type=float, default=600, help="kill a tool after this")
    ap.add_argument("--out", type=Path, default=HERE / "out-sweep")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.net, args.port, args.listeners, args.seed)
        return 0
    listener_addresses(args.net, 1, args.seed)  # refuses a block outside loopback
    if shutil.which("nmap") is None or not args.phiwatch.exists():
        raise SystemExit("needs nmap and phiwatch")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    version = subprocess.run(["nmap", "--version"], capture_output=True, text=True).stdout.splitlines()
    summary: dict[str, Any] = {"net": args.net, "port": args.port, "nmap": version[0] if version else "?",
                               "phiwatch_options": {"concurrency": args.concurrency, "rate": args.rate,
                                                    "retries": args.retries, "timeout": args.timeout}}
    try:
        for variant in args.variants.split(","):
            print(f"variant {variant}:", flush=True)
            if variant == "closed":
                summary[variant] = one_variant(args, out, None)
            elif variant == "open":
                with Listeners(args, out / "listeners.log"):
                    truth = set(listener_addresses(args.net, args.listeners, args.seed))
                    summary[variant] = one_variant(args, out, truth)
            else:
                raise SystemExit(f"unknown variant {variant!r}")
            result = summary[variant]
            verdict = "MET" if result["worst_ratio"] <= GOAL_RATIO else "MISSED"
            print(f"  median nmap {result['nmap_median_s']:.2f} s, phiwatch {result['phiwatch_median_s']:.2f} s;"
                  f" ratio phiwatch/nmap median {result['median_ratio']:.2f}, worst {result['worst_ratio']:.2f}"
                  f" (goal <= {GOAL_RATIO}: {verdict})", flush=True)
    finally:
        for pid in list(_children):
            kill_group(pid)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"summary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
