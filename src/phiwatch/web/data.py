"""What the dashboard's pages and API show, read from the store as plain dicts (keys, states, counts
and dates: a finding's stored evidence and facts are never shown).

Both the HTML pages and /api/ call these functions, so both serve the same data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..severity import Severity
from ..store import ScanRow, ServiceRow
from ..watch import lifecycle
from ..watch.tables import ACTIVE, STATES, EventRow, JobRow, RunRow, TrackedFinding

SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]
PER_PAGE = 50
HOST_FINDINGS = 200  # a host page shows its worst 200 tracked findings; the findings page has them all


def iso(moment: datetime | None) -> str | None:
    moment = lifecycle.utc(moment)
    return moment.isoformat(timespec="seconds") if moment is not None else None


def finding_dict(row: TrackedFinding, now: datetime | None = None) -> dict[str, Any]:
    window = lifecycle.exposure_window(row, now)
    return {
        "id": row.id, "job": row.job, "host": row.host, "port": row.port, "check_id": row.check_id,
        "protocol": row.protocol, "severity": row.severity, "title": row.title, "state": row.state,
        "first_seen": iso(row.first_seen), "last_seen": iso(row.last_seen), "fixed_at": iso(row.fixed_at),
        "exposure_days": round(window.total_seconds() / 86400, 1), "studies": row.studies, "files": row.files,
        "reopened": row.reopened, "acknowledged_at": iso(row.acknowledged_at),
        "accepted_until": iso(row.accepted_until), "note": row.note,
    }


def run_dict(row: RunRow) -> dict[str, Any]:
    started, ended = lifecycle.utc(row.started), lifecycle.utc(row.ended)
    return {
        "id": row.id, "job": row.job, "scan_id": row.scan_id, "started": iso(started), "ended": iso(ended),
        "duration_s": round((ended - started).total_seconds(), 1) if started and ended else None,
        "status": row.status, "error": row.error, "findings": row.findings, "events": row.events,
        "exposed_services": row.exposed_services, "studies": row.studies, "files": row.files,
        "open_findings": row.open_findings, "open_by_severity": row.open_by_severity or {},
    }


def _point(totals: dict[str, dict[str, Any]], at: datetime | None) -> dict[str, Any]:
    point: dict[str, Any] = {"at": iso(at), "exposed_services": 0, "studies": 0, "files": 0,
                             "open_findings": 0, "open_by_severity": {s: 0 for s in SEVERITIES}}
    for run in totals.values():
        for name in ("exposed_services", "studies", "files", "open_findings"):
            point[name] += run[name] or 0
        for severity, count in (run["open_by_severity"] or {}).items():
            point["open_by_severity"][severity] = point["open_by_severity"].get(severity, 0) + count
    return point


def version(session: Session, now: datetime | None = None) -> tuple:
    """What the overview depends on, in three indexed lookups: it is the same while this is. Every run
    (started or ended) and every event (a state change by a run or by triage) changes it; so does the hour."""
    now = now or datetime.now(UTC)
    return (session.scalar(select(func.max(RunRow.id))), session.scalar(select(func.max(RunRow.ended))),
            session.scalar(select(func.max(EventRow.id))), now.strftime("%Y%m%d%H"))


def overview(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Where things stand (the latest run of each job, summed) and how they got there."""
    now = now or datetime.now(UTC)
    latest: dict[str, dict[str, Any]] = {}
    series = []
    for run in lifecycle.trend(session, limit=1000):  # oldest first; each point sums every job's last run
        latest[run.job] = {"exposed_services": run.exposed_services, "studies": run.studies,
                           "files": run.files, "open_findings": run.open_findings,
                           "open_by_severity": run.open_by_severity}
        series.append(_point(latest, run.ended))
    counts = lifecycle.state_counts(session)
    by_severity = {s: sum(counts.get(state, {}).get(s, 0) for state in ACTIVE) for s in SEVERITIES}
    median = lifecycle.median_time_to_fix(session)
    return {
        "now": _point(latest, now),
        "open_by_severity": by_severity,  # from the tracked findings themselves
        "states": {state: sum(counts.get(state, {}).values()) for state in STATES},
        "trend": series,
        "weekly": lifecycle.weekly_new_fixed(session, now=now),
        "median_time_to_fix_days": round(median.total_seconds() / 86400, 2) if median is not None else None,
    }


def findings(session: Session, filters: dict[str, Any], page: int, sort: str, descending: bool,
             per_page: int = PER_PAGE) -> dict[str, Any]:
    rows, total = lifecycle.list_findings(session, page=page, per_page=per_page, sort=sort,
                                          descending=descending, **filters)
    now = datetime.now(UTC)
    return {"findings": [finding_dict(r, now) for r in rows], "total": total, "page": page,
            "per_page": per_page, "pages": max(1, -(-total // per_page))}


def choices(session: Session) -> dict[str, list[str]]:
    """The values the findings filter offers: jobs and protocols present."""
    jobs = [j.name for j in lifecycle.jobs(session)]
    if not jobs:
        jobs = list(session.scalars(select(RunRow.job).distinct().order_by(RunRow.job)))
    from ..probes import PROTOCOLS

    protocols = sorted(str(getattr(p.name, "value", p.name)) for p in PROTOCOLS)
    return {"jobs": jobs, "protocols": protocols, "states": list(STATES), "severities": SEVERITIES}


def finding(session: Session, finding_id: int) -> dict[str, Any] | None:
    row = session.get(TrackedFinding, finding_id)
    if row is None:
        return None
    result = finding_dict(row)
    result["events"] = [{"kind": e.kind, "at": iso(e.at), "run_id": e.run_id, "detail": e.detail, "note": e.note}
                        for e in lifecycle.finding_events(session, finding_id)]
    return result


def host(session: Session, address: str, history: int = 200) -> dict[str, Any]:
    """A host's services (as its latest scans saw them), its tracked findings and their events."""
    scans = select(ServiceRow.scan_id).where(ServiceRow.host == address).distinct().subquery()
    recent = list(session.scalars(select(ScanRow.id).where(ScanRow.id.in_(select(scans.c.scan_id)))
                                  .order_by(ScanRow.started.desc()).limit(20)))
    services: dict[int, dict[str, Any]] = {}
    if recent:
        order = {scan_id: n for n, scan_id in enumerate(recent)}
        rows = session.execute(select(ServiceRow.scan_id, ServiceRow.port, ServiceRow.protocol, ServiceRow.status)
                               .where(ServiceRow.host == address, ServiceRow.scan_id.in_(recent)))
        for scan_id, port, protocol, status in sorted(rows, key=lambda r: order[r[0]]):
            services.setdefault(port, {"port": port, "protocol": protocol, "status": status, "scan_id": scan_id})
    tracked, total = lifecycle.list_findings(session, host=address, per_page=HOST_FINDINGS)  # worst first
    now = datetime.now(UTC)
    events = session.execute(
        select(EventRow.kind, EventRow.at, EventRow.job, TrackedFinding.port, TrackedFinding.check_id)
        .join(TrackedFinding, TrackedFinding.id == EventRow.finding_id)
        .where(TrackedFinding.host == address).order_by(EventRow.at.desc(), EventRow.id.desc()).limit(history))
    return {
        "host": address,
        "services": [services[p] for p in sorted(services)],
        "findings": [finding_dict(r, now) for r in tracked],
        "findings_total": total,  # the rest: /findings?host=...
        "history": [{"kind": k, "at": iso(at), "job": job, "port": port, "check_id": check}
                    for k, at, job, port, check in events],
    }


def scans(session: Session, page: int = 1, job: str | None = None, per_page: int = PER_PAGE) -> dict[str, Any]:
    page = max(1, page)
    query = select(func.count()).select_from(RunRow)
    if job:
        query = query.where(RunRow.job == job)
    total = int(session.scalar(query) or 0)
    rows = lifecycle.runs(session, job=job or None, limit=per_page, offset=(page - 1) * per_page)
    return {"runs": [run_dict(r) for r in rows], "total": total, "page": page,
            "pages": max(1, -(-total // per_page))}


def jobs(session: Session) -> list[dict[str, Any]]:
    result = []
    for job in lifecycle.jobs(session):
        result.append({"name": job.name, "every": job.every, "last_run": job.last_run,
                       "last_started": iso(job.last_started), "last_ended": iso(job.last_ended),
                       "next_run": iso(job.next_run), "run_requested": iso(job.run_requested)})
    return result


def job_exists(session: Session, name: str) -> bool:
    return session.get(JobRow, name) is not None


def scan_diff(store: Any, old_id: str, new_id: str) -> dict[str, Any] | None:
    """Two stored scans compared by diff.py: counts and finding keys (no evidence)."""
    from ..diff import complete_shards, diff_scans

    old, new = store.load(old_id), store.load(new_id)
    if old is None or new is None:
        return None
    if old.scan.start > new.scan.start:
        old, new = new, old
    done = None if new.scan.complete else complete_shards(store, new.scan.id)
    result = diff_scans(old, new, done)

    def keys(found: list) -> list[dict[str, Any]]:
        return [{"check_id": f.check_id, "severity": f.severity.value, "host": f.host, "port": f.port,
                 "protocol": f.protocol, "title": f.title} for f in found]

    return {
        "old_scan": result.old_scan, "new_scan": result.new_scan, "scope": result.scope,
        "new": keys(result.new), "fixed": keys(result.fixed), "not_rescanned": keys(result.not_rescanned),
        "first_scanned": keys(result.first_scanned), "unchanged": result.unchanged,
        "changed": [dict(keys([c.after])[0], what=c.what) for c in result.changed],
    }

