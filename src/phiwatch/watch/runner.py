"""The watcher: runs each job on its schedule through the normal scan path, updates the findings'
lifecycle, writes the alerts into the outbox in the same transaction, and has them sent at once.

SIGTERM or Ctrl-C during a scan cuts it short: the scan is stored as partial (it fixes nothing),
its events and alerts are recorded and sent, and the watcher exits.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..store import Store
from . import lifecycle
from .config import Job, WatchConfig, next_time
from .outbox import Deliverer, enqueue, enqueue_triage
from .tables import EventRow, JobRow, RunRow

Say = Callable[[str], None]


def _say(text: str) -> None:
    sys.stderr.write(f"phiwatch watch: {text}\n")
    sys.stderr.flush()


def scan_request(job: Job, store: Store) -> Any:
    """The ScanRequest of a job: its targets, ports and options, stored in the watcher's store."""
    from pydantic import TypeAdapter

    from ..request import ScanRequest

    request = TypeAdapter(ScanRequest).validate_python(
        {**job.options, "targets": list(job.targets), "ports": job.port_spec(), "excludes": list(job.excludes)})
    request.db, request.store, request.progress, request.verbosity = store.url, True, "none", -1
    return request


class Watcher:
    def __init__(self, config: WatchConfig, say: Say = _say) -> None:
        self.config = config
        self.say = say
        self.store = Store(config.store)
        self.rules = lifecycle.Rules(fixed_after=config.fixed_after, change_ratio=config.change_ratio)
        self.deliverer = Deliverer(self.store.engine, config.alerts)
        self.stop = threading.Event()
        self.scanning = False
        self.started = datetime.now(UTC)
        self._sync_jobs()

    def _sync_jobs(self) -> None:
        now = datetime.now(UTC)
        with Session(self.store.engine) as session, session.begin():
            for job in self.config.jobs:
                row = session.get(JobRow, job.name)
                described = {"targets": job.targets, "excludes": job.excludes, "ports": job.port_spec(),
                             "options": job.options, "digest": job.digest}
                if row is None:
                    session.add(JobRow(name=job.name, every=job.every, config=described, next_run=now))
                    continue
                if row.every != job.every:
                    last = lifecycle.utc(row.last_started)
                    row.next_run = next_time(job.every, last) if last else now
                row.every, row.config = job.every, described

    # ---- one run -----------------------------------------------------------------------------------

    def run_job(self, job: Job) -> RunRow:
        """Scan once, record the run, its lifecycle events and its alerts; wake the deliverer."""
        from ..diff import complete_shards
        from ..run import run_scan
        from ..targets import TargetError

        started = datetime.now(UTC)
        with Session(self.store.engine) as session, session.begin():
            run = RunRow(job=job.name, started=started, status="running", findings=0, events=0,
                         exposed_services=0, studies=0, files=0, open_findings=0, open_by_severity={})
            session.add(run)
            job_row = session.get(JobRow, job.name)
            if job_row is not None:
                job_row.last_started, job_row.run_requested = started, None
            session.flush()
            run_id = run.id
        result, error = None, None
        self.scanning = True
        try:
            from rich.console import Console

            result = run_scan(scan_request(job, self.store), Console(stderr=True, quiet=True))
        except TargetError as exc:
            error = " ".join(str(exc).split())[:255]
        except KeyboardInterrupt:
            error = "interrupted before the scan was recorded"
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the watcher
            error = f"scan failed ({type(exc).__name__})"
        finally:
            self.scanning = False
        ended = datetime.now(UTC)
        with Session(self.store.engine) as session, session.begin():
            found = session.get(RunRow, run_id)
            assert found is not None
            run = found
            events: list[EventRow | lifecycle.Event] = []
            if result is not None:
                done = None if result.scan.complete else complete_shards(self.store, result.scan.id)
                events = lifecycle.apply_run(session, job.name, run_id, result, self.rules, done, ended)
                run.scan_id, run.findings = result.scan.id, len(result.findings)
                run.status = "complete" if result.scan.complete else "partial"
            else:
                events = list(lifecycle.expire_risks(session, job.name, ended))
                run.status = "partial" if self.stop.is_set() else "failed"
                run.error = error
            for name, value in lifecycle.run_totals(session, job.name, result).items():
                setattr(run, name, value)
            run.ended, run.events = ended, len(events)
            enqueue(session, self.config.alerts, job.name, run_id, events, job.digest, ended)
            job_row = session.get(JobRow, job.name)
            if job_row is not None:
                job_row.last_run, job_row.last_ended = run_id, ended
                job_row.next_run = next_time(job.every, started)
            session.flush()
            session.expunge(run)
        self.deliverer.wake()
        self.say(f"{job.name}: run {run_id} {run.status}" + (f" ({run.error})" if run.error else "")
                 + f", {run.findings} findings, {run.events} events, {run.open_findings} open")
        return run

    # ---- the loop --------------------------------------------------------------------------------------

    def _due(self) -> list[Job]:
        now = datetime.now(UTC)
        with Session(self.store.engine) as session:
            rows = {r.name: r for r in session.scalars(select(JobRow))}
        due = []
        for job in self.config.jobs:
            row = rows.get(job.name)
            if row is None:
                continue
            next_run = lifecycle.utc(row.next_run)
            if row.run_requested is not None or next_run is None or next_run <= now:
                due.append(job)
        return due

    def triage_alerts(self) -> None:
        """Alerts for what people did in the dashboard since a day before the watcher started."""
        try:
            with Session(self.store.engine) as session, session.begin():
                if enqueue_triage(session, self.config.alerts, self.started - timedelta(days=1)):
                    self.deliverer.wake()
        except SQLAlchemyError:  # the store busy or away for a moment: the next second tries again
            pass

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        first = not self.stop.is_set()
        self.stop.set()
        self.deliverer.stopping.set()  # a last pass over the outbox, no more waiting for receivers
        if self.scanning and first:
            raise KeyboardInterrupt  # the scan stops, keeps what it found, and is stored as partial

    def _signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def once(self) -> int:
        """Every job now, then deliver; the count of alerts still pending at the end."""
        self._signals()
        for job in self.config.jobs:
            if self.stop.is_set():
                break
            self.run_job(job)
        self.triage_alerts()
        left = self.deliverer.drain(self.config.deliver_timeout if not self.stop.is_set() else 2.0)
        self.close()
        return left

    def forever(self) -> int:
        """Run jobs when due until SIGTERM or Ctrl-C; alerts are sent while jobs run."""
        self._signals()
        self.deliverer.start()
        self.say(f"watching {len(self.config.jobs)} jobs; store {self.store.path}; Ctrl-C stops")
        try:
            while not self.stop.is_set():
                try:
                    for job in self._due():
                        if self.stop.is_set():
                            break
                        self.run_job(job)
                except SQLAlchemyError as exc:  # the store away: say so, keep watching, try again later
                    self.say(f"the store cannot be used now ({type(exc).__name__}); trying again in 30 s")
                    self.stop.wait(30.0)
                self.triage_alerts()
                self.stop.wait(1.0)
        finally:
            self.deliverer.stop_loop()
            left = self.deliverer.drain(2.0)  # one last pass for the run that just ended
            self.close()
        return left

    def close(self) -> None:
        self.deliverer.close()
        self.store.close()
