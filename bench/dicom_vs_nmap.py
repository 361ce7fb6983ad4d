"""Benchmark: phiwatch vs nmap's dicom-ping on a farm of simulated DICOM hosts.

Starts bench/farm.py, runs both tools against the farm's network (wall time and peak RSS of
each child via os.wait4), classifies every ground-truth host per tool and prints a report plus
OUTDIR/summary.json. nmap takes about 24 minutes on the default farm: use --skip-nmap or
--nmap-xml FILE to reuse an earlier run (its wall time comes from the JSON sidecar written
next to the XML), and --nmap-only to produce such a run. Always exits 0 unless misused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHIWATCH = ROOT / ".venv" / "bin" / "phiwatch"
KINDS = ("accept-any", "called-ae-check", "silent")
NMAP_CONFIG = {
    "Any AET is accepted (Insecure)": "accept-any",
    "Called AET check enabled": "called-ae-check",
}
GOAL_SPEEDUP, AIM_SPEEDUP, GOAL_RSS_MB = 200.0, 200.0, 120.0  # with phiwatch's default options
_children: set[int] = set()  # process groups to kill on exit


class Interrupted(Exception):
    pass


@dataclass
class Run:
    cmd: list[str]
    wall_s: float
    peak_rss_kb: int
    returncode: int
    timed_out: bool
    rss_floor_kb: int  # the bench's own peak RSS at spawn: ru_maxrss cannot be lower


def own_peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def run_measured(cmd: list[str], log: Path, max_seconds: float) -> Run:
    """Run cmd in its own session; wall time and the child's ru_maxrss (KiB) via os.wait4."""
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        kill_group(proc.pid)

    print(f"$ {' '.join(cmd)}", flush=True)
    floor = own_peak_rss_kb()
    with log.open("wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _children.add(proc.pid)
    timer = threading.Timer(max_seconds, expire)
    timer.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.monotonic() - t0
    _children.discard(proc.pid)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen from waiting again
    return Run(cmd, round(wall, 3), usage.ru_maxrss, proc.returncode, timed_out.is_set(), floor)


class Farm:
    """bench/farm.py as a child process; stop() is idempotent."""

    def __init__(self, args: argparse.Namespace, truth: Path, log: Path) -> None:
        self.cmd = [sys.executable, str(HERE / "farm.py"), "--count", str(args.count),
                    "--net", args.net, "--port", str(args.port), "--seed", str(args.seed),
                    "--truth", str(truth)]
        self.log = log
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 120.0) -> None:
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                                         start_new_session=True)
        _children.add(self.proc.pid)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("READY"):
            self.stop()
            raise RuntimeError(f"farm not ready within {timeout}s: {line!r}, see {self.log}")
        print(f"farm: {line}", flush=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                proc.wait()
        _children.discard(proc.pid)


def truth_digest(truth: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(truth, sort_keys=True).encode()).hexdigest()


def phiwatch_kinds(scan_json: Path, port: int) -> dict[str, str]:
    """host -> kind from phiwatch's scan.json ('other' when open but unclassifiable)."""
    kinds: dict[str, str] = {}
    for svc in json.loads(scan_json.read_text()).get("services", []):
        if int(svc.get("port", -1)) != port:
            continue
        dicom = svc.get("dicom") or {}
        reject = dicom.get("reject") or {}
        association = dicom.get("association")
        if association == "accepted" and dicom.get("called_ae_guessed"):
            kind = "called-ae-check"  # rejected the default called AE, accepted a guessed one
        elif association == "accepted":
            kind = "accept-any"
        elif reject.get("reason_name") == "called-ae-not-recognized":
            kind = "called-ae-check"
        elif svc.get("status") == "timeout" and association in (None, "failed"):
            kind = "silent"
        else:
            kind = "other"
        kinds[svc["host"]] = kind
    return kinds


def nmap_kinds(xml_file: Path, port: int) -> dict[str, str]:
    """host -> kind from nmap XML: dicom-ping config line, or 'silent' when open without one."""
    kinds: dict[str, str] = {}
    try:
        for _event, host in ET.iterparse(xml_file, events=("end",)):
            if host.tag != "host":
                continue
            addr = host.find("address[@addrtype='ipv4']")
            for p in host.iterfind(f"ports/port[@portid='{port}']"):
                state = p.find("state")
                if addr is None or state is None or state.get("state") != "open":
                    continue
                config = p.find("script[@id='dicom-ping']/elem[@key='config']")
                kinds[addr.get("addr", "")] = (
                    "silent" if config is None else NMAP_CONFIG.get(config.text or "", "other")
                )
            host.clear()
    except ET.ParseError as exc:  # a killed nmap leaves a truncated file: keep what parsed
        print(f"WARNING: {xml_file} is incomplete ({exc}); using {len(kinds)} parsed hosts")
    return kinds


def score(truth: list[dict[str, str]], found: dict[str, str]) -> dict[str, Any]:
    truth_map = {t["host"]: t["kind"] for t in truth}
    per_kind: dict[str, dict[str, int]] = {k: {"truth": 0, "agree": 0} for k in KINDS}
    confusion: Counter[str] = Counter()
    for host, kind in truth_map.items():
        got = found.get(host, "missing")
        per_kind[kind]["truth"] += 1
        per_kind[kind]["agree"] += got == kind
        confusion[f"{kind}->{got}"] += 1
    correct = sum(v["agree"] for v in per_kind.values())
    extra = sorted(h for h in found if h not in truth_map)
    return {"correct": correct, "total": len(truth_map),
            "accuracy": round(correct / max(1, len(truth_map)), 4), "per_kind": per_kind,
            "confusion": dict(sorted(confusion.items())), "extra_hosts": len(extra),
            "extra_sample": extra[:10]}


def nmap_cmd(args: argparse.Namespace, xml_file: Path) -> list[str]:
    return ["nmap", "-n", "-Pn", "-sT", "-p", str(args.port), "--script", "dicom-ping",
            "-oX", str(xml_file), args.net]


def run_nmap(args: argparse.Namespace, out: Path, xml_file: Path, digest: str) -> dict[str, Any]:
    run = run_measured(nmap_cmd(args, xml_file), out / "nmap.log", args.max_seconds)
    version = subprocess.run(["nmap", "--version"], capture_output=True, text=True).stdout
    meta = {**asdict(run), "nmap_version": version.splitlines()[0] if version else "?",
            "count": args.count, "net": args.net, "port": args.port, "seed": args.seed,
            "truth_sha256": digest, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    xml_file.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return {**meta, "reused": False}


def reuse_nmap(args: argparse.Namespace, xml_file: Path, digest: str) -> dict[str, Any] | None:
    sidecar = xml_file.with_suffix(".meta.json")
    if not xml_file.exists() or not sidecar.exists():
        print(f"nmap: no reusable result at {xml_file} (+ {sidecar.name}); nmap not measured")
        return None
    meta = json.loads(sidecar.read_text())
    wanted = {"count": args.count, "net": args.net, "port": args.port, "seed": args.seed}
    mismatch = {k: meta.get(k) for k, v in wanted.items() if meta.get(k) != v}
    if meta.get("truth_sha256") not in (None, digest):
        mismatch["truth_sha256"] = meta.get("truth_sha256")
    if mismatch:
        print(f"WARNING: reused nmap result differs from this farm: {mismatch}")
    return {**meta, "reused": True, "reused_from": str(xml_file), "mismatch": mismatch}


def run_phiwatch(args: argparse.Namespace, out: Path) -> dict[str, Any] | None:
    if not args.phiwatch.exists():
        print(f"phiwatch: {args.phiwatch} not found; phiwatch not measured")
        return None
    for stale in ("scan.json", "bench.db"):
        (out / stale).unlink(missing_ok=True)
    cmd = [str(args.phiwatch), "scan", args.net, "-p", str(args.port), "--output", str(out),
           "--db", str(out / "bench.db")]
    for flag, value in (("--concurrency", args.concurrency), ("--rate", args.rate), ("--timeout", args.timeout)):
        if value is not None:  # unset: phiwatch's own default
            cmd += [flag, str(value)]
    run = run_measured(cmd, out / "phiwatch.log", args.phiwatch_max_seconds)
    if run.returncode != 0:
        print(f"phiwatch exited {run.returncode}; see {out / 'phiwatch.log'}")
    return asdict(run)


def mb(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MB"


def tool_cells(r: dict[str, Any] | None, rows: int) -> list[str]:
    if not r:
        return ["-"] * rows
    code = "timed out" if r.get("timed_out") else str(r["returncode"])
    cells = [f"{r['wall_s']:.2f} s", mb(r["peak_rss_kb"]), code]
    if sc := r.get("score"):
        cells.append(f"{sc['correct']}/{sc['total']} ({100 * sc['accuracy']:.1f}%)")
        cells += [f"{sc['per_kind'][k]['agree']}/{sc['per_kind'][k]['truth']}" for k in KINDS]
        cells.append(str(sc["extra_hosts"]))
    return cells + ["-"] * (rows - len(cells))


def report(summary: dict[str, Any]) -> None:
    pw, nm = summary.get("phiwatch"), summary.get("nmap")
    far = summary["farm"]
    print(f"\n== phiwatch vs nmap dicom-ping: {far['count']} hosts, seed {far['seed']}, "
          f"{far['net']} port {far['port']} ==")
    if nm and nm.get("reused"):
        print(f"nmap result REUSED from {nm['reused_from']} (recorded {nm.get('finished_at')}, "
              f"wall {nm['wall_s']:.1f} s, timed out: {nm.get('timed_out')})")
    labels = ["wall time", "peak RSS", "exit code", "accuracy", *[f"  {k}" for k in KINDS],
              "hosts not in truth"]
    print(f"{'':20}{'phiwatch':>22}{'nmap':>22}")
    columns = [tool_cells(r, len(labels)) for r in (pw, nm)]
    for label, a, b in zip(labels, *columns, strict=True):
        print(f"{label:20}{a:>22}{b:>22}")
    for name, r in (("phiwatch", pw), ("nmap", nm)):
        if r and "score" in r:
            print(f"{name} confusion (truth->found): {r['score']['confusion']}")
    floors = [r["rss_floor_kb"] for r in (pw, nm) if r and "rss_floor_kb" in r]
    if floors:
        print(f"(peak RSS is the child's ru_maxrss from os.wait4; it includes the forked image of "
              f"the bench, so it cannot read below {mb(max(floors))})")
    g = summary["goals"]
    ratio = g.get("speedup")
    print(f"speed ratio nmap/phiwatch: {'-' if ratio is None else f'{ratio:.0f}x'}")
    print(f"GOAL phiwatch >= {GOAL_SPEEDUP:.0f}x faster (aim {AIM_SPEEDUP:.0f}x): {g['speed']}")
    print(f"GOAL phiwatch accuracy >= nmap's: {g['accuracy']}")
    print(f"GOAL phiwatch peak RSS < {GOAL_RSS_MB:.0f} MB: {g['rss']}")


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def goals(pw: dict[str, Any] | None, nm: dict[str, Any] | None) -> dict[str, Any]:
    both = bool(pw and nm and "score" in pw and "score" in nm)
    ratio = nm["wall_s"] / pw["wall_s"] if both and pw and nm and pw["wall_s"] > 0 else None
    speed = None if ratio is None else ratio >= GOAL_SPEEDUP
    acc = (pw["score"]["accuracy"] >= nm["score"]["accuracy"]) if both and pw and nm else None
    rss = (pw["peak_rss_kb"] / 1024 < GOAL_RSS_MB) if pw and "score" in pw else None
    speed_txt = verdict(speed) + (" (aim reached)" if ratio and ratio >= AIM_SPEEDUP else "")
    return {"speedup": ratio, "speed": speed_txt, "accuracy": verdict(acc), "rss": verdict(rss)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000, help="simulated hosts")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--net", default="127.77.0.0/16")
    ap.add_argument("--port", type=int, default=104)
    ap.add_argument("--out", type=Path, default=HERE / "out", help="OUTDIR")
    ap.add_argument("--phiwatch", type=Path, default=PHIWATCH, help="phiwatch executable")
    ap.add_argument("--concurrency", type=int, help="phiwatch --concurrency (default: phiwatch's)")
    ap.add_argument("--rate", type=float, help="phiwatch --rate (default: phiwatch's; 0: no ceiling)")
    ap.add_argument("--timeout", type=float, help="phiwatch --timeout (default: phiwatch's)")
    ap.add_argument("--phiwatch-max-seconds", type=float, default=600)
    ap.add_argument("--max-seconds", type=float, default=3600, help="kill nmap after this")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--skip-nmap", action="store_true", help="reuse OUTDIR/nmap.xml if any")
    mode.add_argument("--nmap-xml", type=Path, help="reuse this nmap XML (+ .meta.json)")
    mode.add_argument("--nmap-only", action="store_true", help="run nmap only, record it")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    raise_nofile()

    def on_signal(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    truth_file, xml_file = out / "truth.json", out / "nmap.xml"
    farm = Farm(args, truth_file, out / "farm.log")
    summary: dict[str, Any] = {"farm": {"count": args.count, "seed": args.seed, "net": args.net,
                                        "port": args.port},
                               "phiwatch_options": {"concurrency": args.concurrency,
                                                    "rate": args.rate, "timeout": args.timeout}}
    try:
        farm.start()
        truth = json.loads(truth_file.read_text())
        digest = truth_digest(truth)
        summary["farm"]["kinds"] = dict(Counter(t["kind"] for t in truth))
        pw: dict[str, Any] | None = None
        if not args.nmap_only:
            pw = run_phiwatch(args, out)
            if pw and (out / "scan.json").exists():
                pw["score"] = score(truth, phiwatch_kinds(out / "scan.json", args.port))
        if args.nmap_xml or args.skip_nmap:
            xml_file = (args.nmap_xml or xml_file).resolve()
            nm = reuse_nmap(args, xml_file, digest)
        else:
            if shutil.which("nmap") is None:
                raise RuntimeError("nmap not installed")
            nm = run_nmap(args, out, xml_file, digest)
        if nm and xml_file.exists():
            nm["score"] = score(truth, nmap_kinds(xml_file, args.port))
        summary |= {"phiwatch": pw, "nmap": nm, "goals": goals(pw, nm)}
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        report(summary)
        print(f"\nsummary: {out / 'summary.json'}")
    except Interrupted as exc:
        print(f"interrupted by {exc}; stopping", file=sys.stderr)
        return 130
    finally:
        for pid in list(_children):
            if farm.proc is None or pid != farm.proc.pid:
                kill_group(pid)
        farm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
