"""The dashboard over a large synthetic history: p95 latency of the overview, a filtered findings page and
a host page, and the serve process's resident memory.

    .venv/bin/python bench/dashboard.py                      # SQLite, 1,000 scans, 1,000,000 finding rows
    .venv/bin/python bench/dashboard.py --tracked 1000000    # also 1,000,000 tracked findings
    .venv/bin/python bench/dashboard.py --postgres           # a real PostgreSQL started for the run
    .venv/bin/python bench/dashboard.py --url postgresql+psycopg://USER@127.0.0.1:PORT/DB

The history: `--jobs` jobs share `--scans` runs, each run a stored scan with `--per-scan` finding rows
(the store's findings table: scans x per-scan rows) and its services; `--tracked` tracked findings
(identities job, host, port, check) with their new, fixed and triage events; the runs' trend totals.
A real `phiwatch serve` process answers `--requests` requests per page over loopback; its RSS is read
after them. Everything goes to --out (bench/out/ is git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from phiwatch.store import FindingRow, ScanRow, ServiceRow, Store  # noqa: E402
from phiwatch.watch.tables import JobRow, RunRow, TrackedFinding  # noqa: E402

SEVERITIES = ["critical", "high", "medium", "low", "info"]
SEVERITY_WEIGHTS = [1, 3, 6, 10, 20]
PROTOCOLS = [("dicom", 104), ("http", 8042), ("ftp", 21), ("smb", 445), ("rsync", 873), ("s3", 9000)]
TOKEN = "bench-token-0123456789abcdef"


def _batches(rows, size: int = 20_000):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(store: Store, scans: int, per_scan: int, tracked: int, jobs: int, hosts: int, seed: int) -> dict:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=scans // jobs + 1)
    job_names = [f"segment-{j}" for j in range(jobs)]
    host_names = [f"10.{20 + h // 65536}.{h // 256 % 256}.{h % 256}" for h in range(hosts)]
    checks = [f"check_{n:03d}" for n in range(max(1, tracked // hosts))]
    engine = store.engine
    t0 = time.monotonic()
    with engine.begin() as connection:
        connection.execute(insert(JobRow), [{"name": j, "every": "1d", "config": {}, "last_run": None,
                                             "next_run": now + timedelta(hours=n)}
                                            for n, j in enumerate(job_names)])
        runs, scan_rows, services, findings = [], [], [], []
        for n in range(scans):
            job = job_names[n % jobs]
            started = start + timedelta(days=n // jobs, minutes=n % jobs)
            scan_id = f"{started:%Y%m%dT%H%M%SZ}-{n:06x}"
            scan_rows.append({"id": scan_id, "started": started, "ended": started + timedelta(minutes=7),
                              "version": "bench", "complete": n % 23 != 0,
                              "scan": {"id": scan_id, "start": started.isoformat(), "targets": [job]}})
            open_now = max(0, tracked // 2 - n * tracked // (4 * scans))
            runs.append({"job": job, "scan_id": scan_id, "started": started,
                         "ended": started + timedelta(minutes=7),
                         "status": "complete" if n % 23 else "partial",
                         "error": None if n % 97 else "scan failed (TimeoutError)", "findings": per_scan,
                         "events": rng.randint(0, 50), "exposed_services": rng.randint(50, 80),
                         "studies": rng.randint(10_000, 12_000), "files": rng.randint(2_000, 3_000),
                         "open_findings": open_now // jobs,
                         "open_by_severity": {s: open_now // jobs // 5 for s in SEVERITIES}})
        connection.execute(insert(ScanRow), scan_rows)
        connection.execute(insert(RunRow), runs)
        per_service = 10
        for n, scan in enumerate(scan_rows):
            first_host = (n * (per_scan // per_service)) % hosts
            for k in range(per_scan // per_service):
                host = host_names[(first_host + k) % hosts]
                protocol, port = PROTOCOLS[(first_host + k) % len(PROTOCOLS)]
                services.append({"scan_id": scan["id"], "host": host, "port": port, "protocol": protocol,
                                 "status": "exposed", "facts": {"host": host, "port": port, "protocol": protocol}})
                for c in range(per_service):
                    check = checks[(k + c) % len(checks)]
                    severity = SEVERITIES[c % 5]
                    findings.append({"scan_id": scan["id"], "check_id": check, "severity": severity, "host": host,
                                     "port": port, "protocol": protocol, "evidence": "count=3",
                                     "finding": {"check_id": check, "severity": severity, "host": host,
                                                 "port": port, "protocol": protocol, "title": check}})
            if len(findings) >= 50_000:
                connection.execute(insert(ServiceRow), services)
                connection.execute(insert(FindingRow), findings)
                services, findings = [], []
        if findings:
            connection.execute(insert(ServiceRow), services)
            connection.execute(insert(FindingRow), findings)

        def tracked_rows():
            n = 0
            for host_index, host in enumerate(host_names):
                protocol, port = PROTOCOLS[host_index % len(PROTOCOLS)]
                for check in checks:
                    if n >= tracked:
                        return
                    first = start + timedelta(hours=rng.randint(0, 24 * (scans // jobs)))
                    roll = rng.random()
                    state = ("fixed" if roll < 0.45 else "open" if roll < 0.8 else "acknowledged" if roll < 0.9
                             else "accepted_risk" if roll < 0.95 else "new" if roll < 0.98 else "reopened")
                    fixed_at = (min(now, first + timedelta(hours=rng.randint(1, 2000)))
                                if state == "fixed" else None)
                    yield {"job": job_names[host_index % jobs], "host": host, "port": port, "check_id": check,
                           "protocol": protocol, "severity": rng.choices(SEVERITIES, SEVERITY_WEIGHTS)[0],
                           "title": f"Synthetic finding {check}", "state": state, "first_seen": first,
                           "last_seen": fixed_at or now, "fixed_at": fixed_at, "absent_runs": 0, "reopened": 0,
                           "studies": rng.randint(0, 500) or None, "files": None, "acknowledged_at": None,
                           "accepted_until": now + timedelta(days=30) if state == "accepted_risk" else None,
                           "note": None, "last_scan_id": None, "finding": {"check_id": check}}
                    n += 1

        for batch in _batches(tracked_rows()):
            connection.execute(insert(TrackedFinding), batch)
        empty = "'{}'" if store.sqlite else "CAST('{}' AS JSON)"
        for kind, at, where in (("new", "first_seen", "1=1"), ("fixed", "fixed_at", "fixed_at IS NOT NULL"),
                                ("acknowledged", "first_seen", "state = 'acknowledged'")):
            connection.execute(text(
                f"INSERT INTO watch_events (finding_id, run_id, job, kind, at, detail, note) "
                f"SELECT id, NULL, job, '{kind}', {at}, {empty}, NULL FROM watch_findings WHERE {where}"))
    counts = {}
    with engine.connect() as connection:
        for table in ("scans", "findings", "services", "watch_runs", "watch_findings", "watch_events"):
            counts[table] = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    counts["fill_seconds"] = round(time.monotonic() - t0, 1)
    counts["sample_host"] = host_names[hosts // 3]
    return counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(url: str, host: str, requests: int, out: Path) -> dict:
    port = _free_port()
    config = out / "dashboard.yaml"
    config.write_text(json.dumps({"store": url, "jobs": [{"name": "segment-0", "targets": ["127.0.0.1"]}],
                                  "dashboard": {"listen": f"127.0.0.1:{port}", "token_env": "BENCH_TOKEN"}}))
    env = dict(os.environ, BENCH_TOKEN=TOKEN)
    server = subprocess.Popen([sys.executable, "-m", "phiwatch", "serve", str(config)], env=env,
                              stdout=subprocess.DEVNULL, stderr=open(out / "serve.log", "w"))  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    pages = {
        "overview": "/",
        "findings (state=open, severity=high, page 3)": "/findings?state=open&severity=high&page=3",
        "findings (search, sorted by first seen)": "/findings?search=check_01&sort=first_seen",
        f"host {host}": f"/hosts/{host}",
        "api overview": "/api/overview",
    }
    results: dict = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            for name, path in pages.items():
                t = time.perf_counter()
                first = client.get(path)
                cold = (time.perf_counter() - t) * 1000
                assert first.status_code == 200, (name, first.status_code)
                times = []
                for _ in range(requests):
                    t = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200
                times.sort()
                results[name] = {"first_ms": round(cold, 1), "p50_ms": round(statistics.median(times), 1),
                                 "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
                                 "max_ms": round(times[-1], 1), "bytes": len(first.content)}
        results["rss_mb"] = round(psutil.Process(server.pid).memory_info().rss / 2**20, 1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--per-scan", type=int, default=1000)
    parser.add_argument("--tracked", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--url", help="a store URL (default: a new SQLite file in --out)")
    parser.add_argument("--postgres", action="store_true",
                        help="start a PostgreSQL server (Debian's postgresql, initdb in a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="measure an existing store, fill nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out-dashboard")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.postgres:
        sys.path.insert(0, str(ROOT / "tests"))
        import pgserver

        with pgserver.postgres() as url:
            run(args, url)
        return
    run(args, args.url or f"sqlite:///{args.out}/dashboard.db")


def run(args: argparse.Namespace, url: str) -> None:
    if url.startswith("sqlite:") and not args.url and not args.reuse:
        Path(f"{args.out}/dashboard.db").unlink(missing_ok=True)
    store = Store(url)
    if args.reuse:
        counts = {"sample_host": f"10.20.{args.hosts // 3 // 256}.{args.hosts // 3 % 256}"}
    else:
        counts = fill(store, args.scans, args.per_scan, args.tracked, args.jobs, args.hosts, args.seed)
    store.close()
    print(json.dumps(counts), flush=True)
    results = measure(url, counts["sample_host"], args.requests, args.out)
    summary = {"store": url.split("://")[0], "history": counts, "pages": results}
    name = "summary-postgresql.json" if url.startswith("postgresql") else "summary.json"
    (args.out / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
