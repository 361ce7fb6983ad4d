"""Alert latency: from the end of a run to the receiver, with 1,000 events in one run.

    .venv/bin/python bench/alert_latency.py                  # 1000 events, 3 rounds, SQLite
    .venv/bin/python bench/alert_latency.py --events 1000 --rounds 5 --store postgresql+psycopg://...
    .venv/bin/python bench/alert_latency.py --rounds 3 --postgres   # SQLite and a PostgreSQL it starts

With --postgres, the bench starts a PostgreSQL server of its own (tests/pgserver.py: Debian's
postgresql, a temporary folder, a loopback port) and each round runs on SQLite and on a fresh
PostgreSQL database, side by side.

Each round is a fresh store and one `Watcher.run_job` whose scan reports `--events` findings of
distinct services (the scan itself is replaced by that result: only what follows a scan is timed:
the lifecycle update, the outbox rows written in the run's transaction, the deliverer waking, the
HTTP posts). The receiver is a threaded HTTP server (keep-alive) on 127.0.0.1, in a process
of its own, that notes when each alert arrived. Side by side in one run: one webhook alert per
event, and digest mode (one alert per run).
Latency = arrival time - the run's recorded end; the figure is the p95 over the round's alerts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phiwatch.run as run_module
from phiwatch.models import (
    Finding,
    ProbeStatus,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    Severity,
    TargetSummary,
)
from phiwatch.watch.config import parse
from phiwatch.watch.runner import Watcher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RECEIVER = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver does

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        arrived = time.time()
        sys.stdout.write(f"{arrived} {len(body.get('events', [body]))}\n")
        sys.stdout.flush()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Receiver:
    """A webhook receiver in a process of its own (not competing with the watcher for one interpreter):
    it prints each alert's arrival time, read here by a thread."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int]] = []
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            arrived, count = text.split()
            self.arrivals.append((float(arrived), int(count)))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def synthetic(count: int) -> ScanResult:
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=0, timeout=1, retries=0, max_matches=10,
                          calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False, byte_budget=4096)
    now = datetime.now(UTC)
    info = ScanInfo(id=now.strftime("%Y%m%dT%H%M%S%fZ"), start=now, end=now, version="bench", options=options,
                    targets=TargetSummary(specs=["127.0.0.0/16"], excludes=[], addresses=65536, ports=[104]))
    hosts = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(count)]
    return ScanResult(
        scan=info,
        services=[Service(host=h, port=104, protocol="dicom", status=ProbeStatus.EXPOSED) for h in hosts],
        findings=[Finding(check_id="dicom_study_data_exposed", title="Study data exposed",
                          severity=Severity.CRITICAL, host=h, port=104, protocol="dicom", evidence="e",
                          remediation="r") for h in hosts])


def one_round(events: int, digest: bool, store: str | None) -> dict[str, Any]:
    receiver = Receiver()
    folder = tempfile.mkdtemp(prefix="phiwatch-bench-")
    config = parse(json.dumps({
        "store": store or f"sqlite:///{folder}/watch.db",
        "jobs": [{"name": "bench", "targets": ["127.1.0.0/16"], "ports": [104], "digest": digest}],
        "alerts": [{"type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/hook"}],
    }))
    result = synthetic(events)
    run_module.run_scan = lambda request, console, out=None: result  # type: ignore[assignment]
    watcher = Watcher(config, say=lambda _: None)
    watcher.deliverer.start()
    try:
        run = watcher.run_job(config.jobs[0])
        assert run.ended is not None
        ended = (run.ended if run.ended.tzinfo else run.ended.replace(tzinfo=UTC)).timestamp()
        want = 1 if digest else events
        deadline = time.time() + 60
        while len(receiver.arrivals) < want and time.time() < deadline:
            time.sleep(0.01)
    finally:
        watcher.deliverer.stop_loop()
        watcher.close()
        receiver.stop()
    latencies = sorted(t - ended for t, _ in receiver.arrivals)
    alerts = sum(n for _, n in receiver.arrivals)
    p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)] if latencies else float("nan")
    return {"mode": "digest" if digest else "per-event", "posts": len(latencies), "events_carried": alerts,
            "p50_s": round(statistics.median(latencies), 3) if latencies else None, "p95_s": round(p95, 3),
            "max_s": round(latencies[-1], 3) if latencies else None}


@contextmanager
def postgres_databases() -> Iterator[Any]:
    """A PostgreSQL server for this run; yields a function making a fresh, empty database's URL."""
    from sqlalchemy import create_engine
    from tests import pgserver

    with pgserver.postgres() as url:
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        made = iter(range(1, 10_000))

        def fresh() -> str:
            name = f"bench_{next(made)}"
            with admin.connect() as connection:
                connection.exec_driver_sql(f"CREATE DATABASE {name}")
            return url.rsplit("/", 1)[0] + "/" + name

        try:
            yield fresh
        finally:
            admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default=None, help="a SQLAlchemy URL of an EMPTY database (default: SQLite)")
    parser.add_argument("--postgres", action="store_true",
                        help="also a PostgreSQL server started here, a fresh database per round")
    args = parser.parse_args()
    rows = []
    with postgres_databases() if args.postgres else nullcontext(None) as fresh:
        for index in range(args.rounds):
            for digest in (False, True):  # side by side, alternating
                stores: list[tuple[str, str | None]] = []
                if args.store and not (index or digest):
                    stores.append(("given", args.store))  # one round: later ones would find the findings open
                elif not args.store:
                    stores.append(("sqlite", None))
                if fresh is not None:
                    stores.append(("postgresql", fresh()))
                for name, url in stores:
                    row = one_round(args.events, digest, url)
                    row["store"], row["round"] = name, index + 1
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    verdict: dict[str, Any] = {"events": args.events}
    for name in sorted({r["store"] for r in rows}):
        worst = max(r["p95_s"] for r in rows if r["mode"] == "per-event" and r["store"] == name)
        verdict[f"worst_p95_per_event_s_{name}"] = worst
    verdict["under_2s"] = all(v < 2.0 for k, v in verdict.items() if k.startswith("worst"))
    print(json.dumps(verdict))
    return 0 if verdict["under_2s"] else 1


if __name__ == "__main__":
    sys.exit(main())
