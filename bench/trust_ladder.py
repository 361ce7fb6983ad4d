"""bench: the exposure ladder against ground truth, and what the honeypot signals cost.

1. The lab (unless --no-lab): `phiwatch_lab` up on --lab-base in a temporary state folder,
   one scan of every service, its `summary.ladder` compared step by step with the truth the
   lab computes from its own manifest (phiwatch_lab/truth.py), and every real server's trust.
2. The farm (bench/farm.py, --count hosts): --rounds pairs of scans, one with the honeypot
   signals and one with --no-honeypot-signals, in alternating order; each scan's ladder
   against the farm's truth.json, the services marked honeypot (none should be), and the
   wall and CPU time of each phiwatch process. Goal: the signals cost under 10% of the scan's
   wall time (median with / median without, same run).

Usage: .venv/bin/python bench/trust_ladder.py [--rounds 5] [--count 1000] [--net 127.79.0.0/16]
[--lab-base 27500] [--no-lab] [--out bench/out-trust]. Traffic stays in 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_vs_nmap import Farm, Interrupted, raise_nofile  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHIWATCH = ROOT / ".venv" / "bin" / "phiwatch"
GOAL_COST = 0.10
REAL_HIGH = 0.8


def measured(cmd: list[str], log: Path) -> dict[str, Any]:
    """Wall time from spawn to exit, and the child's CPU seconds (os.wait4)."""
    print(f"$ {' '.join(cmd)}", flush=True)
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": round(time.monotonic() - started, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "returncode": proc.returncode}


def ladder_of(document: dict[str, Any]) -> dict[str, dict[str, tuple[int, int]]]:
    return {family: {s["step"]: (s["raw"], s["filtered"]) for s in steps}
            for family, steps in document["summary"]["ladder"].items()}


def farm_truth(truth: list[dict[str, str]]) -> dict[str, dict[str, tuple[int, int]]]:
    """The farm's ladder from its kinds: every host has port 104 open (a DICOM port), accept-any
    hosts accept any called AE and answer C-ECHO, nothing offers a query, TLS, web or files."""
    kinds = Counter(row["kind"] for row in truth)
    hosts, accepting = len(truth), kinds["accept-any"]
    dicom = {"tcp_open": hosts, "association_accepted": accepting, "any_called_ae": accepting,
             "echo_answered": accepting, "query_answered": 0, "studies_exposed": 0, "tls": 0}
    zero = {"web": ("reachable", "product_identified", "unauthenticated_api", "data_listed"),
            "files": ("reachable", "anonymous_access", "listing", "medical_files_verified")}
    result = {"dicom": {step: (n, n) for step, n in dicom.items()}}
    result.update({family: {step: (0, 0) for step in steps} for family, steps in zero.items()})
    return result


def lab_part(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from phiwatch_lab import control
    from phiwatch_lab.truth import ladder_truth

    state = Path(tempfile.mkdtemp(prefix="trust-lab-"))
    manifest = control.up(state, base_port=args.lab_base)
    try:
        host = manifest["host"]
        local = [s["port"] for s in manifest["services"] if s.get("host", host) == host]
        elsewhere = [s for s in manifest["services"] if s.get("host", host) != host]
        hosts = [host, *sorted({s["host"] for s in elsewhere})]
        ports = ",".join([*sorted({str(s["port"]) for s in elsewhere}), f"{min(local)}-{max(local)}"])
        folder = out / "lab"
        run = measured([str(PHIWATCH), "scan", *hosts, "-p", ports, "--no-db", "--progress", "none",
                        "--output", str(folder)], out / "lab.log")
        document = json.loads((folder / "scan.json").read_text())
    finally:
        control.down(state)
    truth = ladder_truth(manifest["services"])
    found = ladder_of(document)
    by_address = {(s["host"], s["port"]): s for s in document["services"]}
    scores = {}
    for entry in manifest["services"]:
        service = by_address.get((entry.get("host", host), entry["port"]))
        if service is not None and service["protocol"] == "dicom":
            trust = service["trust"]
            scores[entry["name"]] = {"score": trust["score"], "honeypot": trust["honeypot"],
                                     "expected_honeypot": bool(entry["expected"].get("honeypot"))}
    real_marked = [n for n, s in scores.items() if s["honeypot"] and not s["expected_honeypot"]]
    honeypots_missed = [n for n, s in scores.items() if s["expected_honeypot"] and not s["honeypot"]]
    return {"scan": run, "ladder": found, "truth": truth, "ladder_equals_truth": found == truth,
            "dicom_scores": scores, "real_marked_honeypot": real_marked, "honeypots_missed": honeypots_missed}


def farm_part(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    truth_file = out / "truth.json"
    farm = Farm(argparse.Namespace(count=args.count, net=args.net, port=104, seed=args.seed), truth_file,
                out / "farm.log")
    farm.start()
    runs: list[dict[str, Any]] = []
    try:
        truth = json.loads(truth_file.read_text())
        expected = farm_truth(truth)
        for round_number in range(args.rounds):
            order = ("on", "off") if round_number % 2 == 0 else ("off", "on")
            for mode in order:
                folder = out / f"farm-{round_number}-{mode}"
                cmd = [str(PHIWATCH), "scan", args.net, "-p", "104", "--no-db", "--progress", "none",
                       "--output", str(folder)]
                if mode == "off":
                    cmd.append("--no-honeypot-signals")
                run = measured(cmd, out / f"farm-{round_number}-{mode}.log")
                document = json.loads((folder / "scan.json").read_text())
                run.update(mode=mode, round=round_number, ladder_equals_truth=ladder_of(document) == expected,
                           honeypots=document["summary"]["likely_honeypots"],
                           services=len(document["services"]))
                runs.append(run)
                print(f"  round {round_number} signals {mode}: {run['wall_s']:.2f} s wall, {run['cpu_s']:.2f} s "
                      f"CPU, ladder {'=' if run['ladder_equals_truth'] else '!='} truth, "
                      f"{run['honeypots']} marked honeypot", flush=True)
    finally:
        farm.stop()
    on = [r for r in runs if r["mode"] == "on"]
    off = [r for r in runs if r["mode"] == "off"]
    wall_on, wall_off = statistics.median(r["wall_s"] for r in on), statistics.median(r["wall_s"] for r in off)
    cpu_on, cpu_off = statistics.median(r["cpu_s"] for r in on), statistics.median(r["cpu_s"] for r in off)
    paired = [next(r["wall_s"] for r in on if r["round"] == n) / next(r["wall_s"] for r in off if r["round"] == n)
              for n in range(args.rounds)]
    return {"runs": runs, "truth": expected, "median_wall_on_s": wall_on, "median_wall_off_s": wall_off,
            "paired_wall_ratios": [round(x, 3) for x in paired],
            "median_paired_cost": round(statistics.median(paired) - 1, 4),
            "wall_cost": round(wall_on / wall_off - 1, 4), "median_cpu_on_s": cpu_on, "median_cpu_off_s": cpu_off,
            "cpu_cost": round(cpu_on / cpu_off - 1, 4),
            "ladder_equals_truth": all(r["ladder_equals_truth"] for r in runs),
            "honeypots_marked": sum(r["honeypots"] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--net", default="127.79.0.0/16")
    parser.add_argument("--lab-base", type=int, default=27500)
    parser.add_argument("--no-lab", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "out-trust")
    args = parser.parse_args(argv)
    if not args.net.startswith("127."):
        parser.error("--net must be inside 127.0.0.0/8")
    args.out.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    summary: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "cpus": os.cpu_count(), "load_before": os.getloadavg(),
                               "args": {k: str(v) for k, v in vars(args).items()}}
    try:
        if not args.no_lab:
            summary["lab"] = lab_part(args, args.out)
            lab = summary["lab"]
            print(f"lab: ladder {'equals' if lab['ladder_equals_truth'] else 'DIFFERS FROM'} the manifest's "
                  f"truth; real servers marked honeypot: {lab['real_marked_honeypot'] or 'none'}; lab honeypots "
                  f"missed: {lab['honeypots_missed'] or 'none'}", flush=True)
        summary["farm"] = farm = farm_part(args, args.out)
    except (Interrupted, KeyboardInterrupt):
        print("interrupted")
        return 130
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    met = farm["wall_cost"] < GOAL_COST and farm["ladder_equals_truth"] and farm["honeypots_marked"] == 0
    print(f"farm ({args.count} hosts, {args.rounds} rounds): median wall with signals "
          f"{farm['median_wall_on_s']:.2f} s, without {farm['median_wall_off_s']:.2f} s: "
          f"cost {farm['wall_cost'] * 100:+.1f}% wall (median of the rounds' own ratios "
          f"{farm['median_paired_cost'] * 100:+.1f}%), "
          f"{farm['cpu_cost'] * 100:+.1f}% CPU; ladder {'=' if farm['ladder_equals_truth'] else '!='} truth in "
          f"every scan; {farm['honeypots_marked']} services marked honeypot")
    print(f"goal (signals < {GOAL_COST:.0%} of the farm scan's wall time, ladder = truth, no honeypot): "
          f"{'MET' if met else 'MISSED'}; summary in {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
