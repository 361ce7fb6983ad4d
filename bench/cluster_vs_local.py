"""Benchmark: a scan spread over a Dask cluster of two workers against the same scan in one process.

Starts bench/farm.py, a Dask scheduler on 127.0.0.1 (no dashboard) and --workers workers
(``--nthreads 1 --no-nanny``), then for --rounds rounds runs, in turn,
``phiwatch scan NET -p PORT --concurrency C --rate R --timeout T --no-db --output DIR`` in one
process and the same scan with ``--cluster tcp://127.0.0.1:PORT --shard-size S`` for every
--shard-sizes value. Prints each run's wall time, the ratio cluster/local within the round, peak
RSS (psutil, sampled every 50 ms) of the coordinator and of each worker, CPU seconds of the
coordinator, the workers and the scheduler, and accuracy per host against the farm's truth (the
classification of dicom_vs_nmap.py). Writes OUTDIR/summary.json; stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dicom_vs_nmap import (  # noqa: E402
    KINDS,
    Farm,
    Interrupted,
    kill_group,
    phiwatch_kinds,
    raise_nofile,
    score,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHIWATCH = ROOT / ".venv" / "bin" / "phiwatch"
SAMPLE_S = 0.05  # one /proc read per process per sample: cheap next to the scan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def rss(proc: psutil.Process) -> int:
    """Resident set size in bytes, 0 once the process is gone. The coordinator and the workers
    (no nanny) start no child processes, so a process's own RSS is the whole figure."""
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0


class PeakRss:
    """Samples the RSS of named processes in a thread; keeps each one's peak (bytes)."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.peak = {name: rss(p) for name, p in procs.items()}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(SAMPLE_S):
            for name, proc in self.procs.items():
                self.peak[name] = max(self.peak[name], rss(proc))

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.thread.join()


@dataclass
class Run:
    label: str
    round: int
    shard_size: int | None
    wall_s: float
    returncode: int
    timed_out: bool
    coordinator_rss_mb: float
    coordinator_cpu_s: float
    worker_rss_mb: dict[str, float] = field(default_factory=dict)
    worker_cpu_s: float = 0.0
    scheduler_cpu_s: float = 0.0
    score: dict[str, Any] | None = None


class Cluster:
    """A Dask scheduler and workers on 127.0.0.1, each in its own session; stop() is idempotent."""

    def __init__(self, out: Path, workers: int, nthreads: int) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.out, self.count, self.nthreads = out, workers, nthreads
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _start(self, name: str, argv: list[str]) -> None:
        with (self.out / f"{name}.log").open("wb") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True, env=environment())

    def start(self, timeout: float = 60.0) -> None:
        self._start("scheduler", [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                  "127.0.0.1", "--port", str(self.port), "--no-dashboard"])
        for n in range(self.count):
            # One thread per worker (default): the scan's limits are per task, so per worker
            # process; no nanny: the figures are the worker's own, without a monitor process.
            self._start(f"worker-{n + 1}", [sys.executable, "-m", "distributed.cli.dask_worker",
                                            self.address, "--host", "127.0.0.1", "--nthreads",
                                            str(self.nthreads),
                                            "--no-nanny", "--no-dashboard", "--name", f"w{n + 1}"])
        from dask.distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(self.count, timeout=timeout)
            # Long-lived workers have imported phiwatch before a scan comes: do it here, untimed
            client.run(warm)
        print(f"cluster: scheduler {self.address}, {self.count} workers (--nthreads {self.nthreads} "
              "--no-nanny), phiwatch imported on each", flush=True)

    def workers(self) -> dict[str, psutil.Process]:
        return {n: psutil.Process(p.pid) for n, p in self.procs.items() if n.startswith("worker")}

    def scheduler(self) -> psutil.Process:
        return psutil.Process(self.procs["scheduler"].pid)

    def stop(self) -> None:
        procs, self.procs = self.procs, {}
        for proc in procs.values():  # workers first would be kinder, but every one gets SIGTERM
            if proc.poll() is None:
                kill_group(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                kill_group(proc.pid)
                proc.wait()


def warm() -> bool:
    import phiwatch.cluster  # noqa: F401

    return True


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@contextmanager
def cpu_delta(procs: list[psutil.Process]) -> Iterator[list[float]]:
    before = sum(cpu_seconds(p) for p in procs)
    box = [0.0]
    yield box
    box[0] = sum(cpu_seconds(p) for p in procs) - before


def scan_cmd(args: argparse.Namespace, out: Path) -> list[str]:
    return [str(args.phiwatch), "scan", args.net, "-p", str(args.port), "--concurrency",
            str(args.concurrency), "--rate", str(args.rate), "--timeout", str(args.timeout),
            "--no-db", "--progress", "none", "--output", str(out)]


def run_scan(args: argparse.Namespace, cluster: Cluster, label: str, rnd: int,
             shard: int | None) -> Run:
    out = args.out / f"{label}-r{rnd}"
    (out / "scan.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    cmd = scan_cmd(args, out)
    if shard is not None:
        cmd += ["--cluster", cluster.address, "--shard-size", str(shard)]
    workers, scheduler = cluster.workers(), cluster.scheduler()
    print(f"$ {' '.join(cmd)}", flush=True)
    with (out / "phiwatch.log").open("wb") as log, cpu_delta(list(workers.values())) as wcpu, \
            cpu_delta([scheduler]) as scpu:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=environment())
        timer = threading.Timer(args.max_seconds, kill_group, (proc.pid,))
        timer.start()
        try:
            with PeakRss({"coordinator": psutil.Process(proc.pid), **workers}) as peak:
                _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    mib = {name: round(v / 2**20, 1) for name, v in peak.peak.items()}
    run = Run(label, rnd, shard, round(wall, 3), proc.returncode, wall >= args.max_seconds,
              mib.pop("coordinator"), round(usage.ru_utime + usage.ru_stime, 2),
              mib if shard is not None else {}, round(wcpu[0], 2) if shard is not None else 0.0,
              round(scpu[0], 2) if shard is not None else 0.0)
    if (out / "scan.json").exists():
        run.score = score(args.truth, phiwatch_kinds(out / "scan.json", args.port))
    return run


def accuracy(run: Run) -> str:
    sc = run.score
    if not sc:
        return "no scan.json"
    kinds = " ".join(f"{sc['per_kind'][k]['agree']}/{sc['per_kind'][k]['truth']}" for k in KINDS)
    return f"{sc['correct']}/{sc['total']} ({kinds})"


def report(runs: list[Run], args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== cluster ({args.workers} workers x {args.nthreads} threads) vs one process: {args.count} "
          f"hosts, seed {args.seed}, {args.net} port {args.port}; --concurrency {args.concurrency} "
          f"--rate {args.rate:g} --timeout {args.timeout:g}; {os.cpu_count()} CPUs ==")
    print(f"{'run':14}{'rnd':>4}{'wall s':>9}{'/local':>8}{'coord RSS':>11}{'coord CPU':>10}"
          f"{'workers RSS MB':>18}{'wrk CPU':>9}{'sch CPU':>9}  accuracy (accept/called/silent)")
    local = {r.round: r.wall_s for r in runs if r.shard_size is None}
    for r in runs:
        ratio = "" if r.shard_size is None else f"{r.wall_s / local[r.round]:.2f}"
        wrss = "/".join(f"{v:.0f}" for v in r.worker_rss_mb.values()) or "-"
        wcpu = f"{r.worker_cpu_s:.1f}" if r.shard_size is not None else "-"
        scpu = f"{r.scheduler_cpu_s:.1f}" if r.shard_size is not None else "-"
        code = "" if r.returncode == 0 else f" exit {r.returncode}"
        print(f"{r.label:14}{r.round:>4}{r.wall_s:>9.2f}{ratio:>8}{r.coordinator_rss_mb:>8.1f} MB"
              f"{r.coordinator_cpu_s:>10.1f}{wrss:>18}{wcpu:>9}{scpu:>9}  {accuracy(r)}{code}")
    medians: dict[str, Any] = {}
    base = statistics.median(local.values())
    print(f"\nmedian local wall: {base:.2f} s")
    for shard in args.shard_sizes:
        walls = [r.wall_s for r in runs if r.shard_size == shard]
        if not walls:
            continue
        med = statistics.median(walls)
        ok = med <= base
        medians[str(shard)] = {"median_wall_s": med, "ratio": round(med / base, 3), "goal_met": ok}
        print(f"--shard-size {shard}: median cluster wall {med:.2f} s, ratio cluster/local "
              f"{med / base:.2f}; GOAL cluster no slower than one process: {'MET' if ok else 'MISSED'}")
    all_right = all(r.score and r.score["correct"] == r.score["total"] for r in runs)
    print(f"every run classified every host right: {'yes' if all_right else 'NO'}")
    return {"median_local_wall_s": base, "cluster": medians, "all_accurate": all_right}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000, help="simulated hosts")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--net", default="127.77.0.0/16")
    ap.add_argument("--port", type=int, default=104)
    ap.add_argument("--out", type=Path, default=HERE / "out-cluster", help="OUTDIR")
    ap.add_argument("--phiwatch", type=Path, default=PHIWATCH, help="phiwatch executable")
    ap.add_argument("--concurrency", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=0, help="phiwatch --rate (0: unlimited)")
    ap.add_argument("--timeout", type=float, default=3.0, help="phiwatch --timeout")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nthreads", type=int, default=1,
                    help="threads per worker; above 1 each task keeps the scan's full limits")
    ap.add_argument("--shard-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[4096, 8192],
                    help="comma-separated --shard-size values for the cluster runs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=300, help="kill one scan after this")
    args = ap.parse_args(argv)
    if not 1 <= args.rounds <= 10 or not 1 <= args.workers <= 8 or not 1 <= args.nthreads <= 16:
        ap.error("--rounds must be 1..10, --workers 1..8 and --nthreads 1..16")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    raise_nofile()

    def on_signal(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    farm = Farm(args, args.out / "truth.json", args.out / "farm.log")
    cluster = Cluster(args.out, args.workers, args.nthreads)
    runs: list[Run] = []
    try:
        farm.start()
        args.truth = json.loads((args.out / "truth.json").read_text())
        cluster.start()
        for rnd in range(1, args.rounds + 1):
            runs.append(run_scan(args, cluster, "local", rnd, None))
            for shard in args.shard_sizes:
                runs.append(run_scan(args, cluster, f"cluster-{shard}", rnd, shard))
        verdicts = report(runs, args)
        options = {k: v for k, v in vars(args).items() if k not in ("truth", "out", "phiwatch")}
        summary = {"options": options, "cpus": os.cpu_count(), "runs": [asdict(r) for r in runs],
                   **verdicts}
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"\nsummary: {args.out / 'summary.json'}")
    except Interrupted as exc:
        print(f"interrupted by {exc}; stopping", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
        farm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
