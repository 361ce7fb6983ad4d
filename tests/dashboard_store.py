"""A watcher's store made of real scans of lab servers, for the dashboard's tests.

Each run is recorded as the watcher records one (a run row, the lifecycle applied to the scan, the
totals kept for the trends, the job's last and next run), with the run dated `at` so that weeks pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console
from sqlalchemy.orm import Session

from phiwatch.request import ScanRequest
from phiwatch.run import run_scan
from phiwatch.store import Store
from phiwatch.watch import lifecycle
from phiwatch.watch.tables import JobRow, RunRow

JOB = "lab-segment"


def scan_and_record(store: Store, ports: list[int], at: datetime, job: str = JOB) -> RunRow:
    request = ScanRequest(targets=["127.0.0.1"], ports=",".join(map(str, ports)), db=store.url, store=True,
                          progress="none", verbosity=-1, timeout=3.0, formats=[])
    with Session(store.engine) as session, session.begin():
        if session.get(JobRow, job) is None:
            session.add(JobRow(name=job, every="1d", config={"targets": ["127.0.0.1"], "ports": ports}))
        run = RunRow(job=job, started=at, status="running", findings=0, events=0, exposed_services=0,
                     studies=0, files=0, open_findings=0, open_by_severity={})
        session.add(run)
        session.flush()
        run_id = run.id
    result = run_scan(request, Console(stderr=True, quiet=True))
    ended = at + timedelta(seconds=30)
    with Session(store.engine) as session, session.begin():
        run = session.get(RunRow, run_id)
        assert run is not None
        events = lifecycle.apply_run(session, job, run_id, result, lifecycle.Rules(), None, ended)
        run.scan_id, run.findings = result.scan.id, len(result.findings)
        run.status = "complete" if result.scan.complete else "partial"
        for name, value in lifecycle.run_totals(session, job, result).items():
            setattr(run, name, value)
        run.ended, run.events = ended, len(events)
        job_row = session.get(JobRow, job)
        assert job_row is not None
        job_row.last_run, job_row.last_started, job_row.last_ended = run_id, at, ended
        job_row.next_run = at + timedelta(days=1)
        session.flush()
        session.expunge(run)
    return run


def history(store: Store, lab_plugin, weeks: int = 3) -> dict:
    """pyftpdlib (anonymous FTP with medical files) stays up; rsyncd is up for the first two runs, then
    stopped: its findings are new, then open, then fixed after two complete runs that reached the host.
    Returns the ports and runs: {"ftp": port, "rsync": port, "runs": [RunRow, ...]}."""
    start = datetime.now(UTC) - timedelta(weeks=weeks)
    runs = []
    with lab_plugin("pyftpdlib-mlsd") as ftp_entries:
        ftp_port = ftp_entries[0]["port"]
        with lab_plugin("rsyncd") as rsync_entries:
            rsync_port = rsync_entries[0]["port"]
            ports = [ftp_port, rsync_port]
            for n in range(2):
                runs.append(scan_and_record(store, ports, start + timedelta(days=3 * n)))
        for n in range(2, 5):
            runs.append(scan_and_record(store, ports, start + timedelta(days=3 * n)))
    return {"ftp": ftp_port, "rsync": rsync_port, "runs": runs}


