"""Each finding's life across a job's runs, and the queries the dashboard reads it with.

A finding's identity is (job, host, port, check). Its states: new (first seen), open (seen again),
acknowledged, accepted_risk (until an expiry, with a note), fixed, reopened (seen again after a fix).
It is fixed only when N consecutive complete runs (default 2) reached its host, looked at its port
and did not find it; a partial run, or a run in which the host answered nothing, never counts
towards a fix. A jump in the exposed studies or files of a finding is a `changed` event.
Every state change is an event row; events are what alerts are made of.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, insert, or_, select
from sqlalchemy.orm import Session

from ..diff import Scope
from ..models import UNFINISHED, Finding, ProbeStatus, ScanResult
from ..severity import Severity
from .tables import (
    ACCEPTED_RISK,
    ACKNOWLEDGED,
    ACTIVE,
    FIXED,
    NEW,
    OPEN,
    REOPENED,
    EventRow,
    JobRow,
    RunRow,
    TrackedFinding,
)

# A host "answered" in a run when one of its services got this far; otherwise it was unreachable.
_SILENT = frozenset({ProbeStatus.TIMEOUT, ProbeStatus.UNREACHABLE, *UNFINISHED})


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were written in UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class Rules:
    fixed_after: int = 2  # consecutive complete runs without the finding before it is fixed
    change_ratio: float = 0.1  # exposed studies or files up by more than this share: `changed`


def magnitude(finding: Finding) -> tuple[int | None, int | None]:
    """(studies, files) a finding exposes; None when it exposes none of that kind."""
    exposure = finding.exposure
    if exposure is None:
        return None, None
    studies = exposure.studies + exposure.worklist_items
    files = exposure.files.dicom + exposure.files.hl7 + exposure.files.x12
    return (studies or None), (files or None)


def _jumped(before: int | None, after: int | None, ratio: float) -> bool:
    if after is None:
        return False
    if before is None:
        return after > 0
    return after > before and after - before > ratio * before


def _event(session: Session, row: TrackedFinding, run_id: int | None, kind: str, at: datetime,
           detail: dict[str, Any] | None = None, note: str | None = None) -> EventRow:
    event = EventRow(finding_id=row.id, run_id=run_id, job=row.job, kind=kind, at=at,
                     detail=detail or {}, note=note)
    session.add(event)
    return event


def expire_risks(session: Session, job: str | None, now: datetime) -> list[EventRow]:
    """Accepted risks past their expiry are open again."""
    query = select(TrackedFinding).where(TrackedFinding.state == ACCEPTED_RISK,
                                         TrackedFinding.accepted_until <= now)
    if job is not None:
        query = query.where(TrackedFinding.job == job)
    events = []
    for row in session.scalars(query):
        row.state = OPEN
        events.append(_event(session, row, None, "risk_expired", now, {"state_before": ACCEPTED_RISK}))
    return events


@dataclass
class Event:
    """An event row as written in bulk for new findings: the attributes of EventRow."""

    id: int
    finding_id: int
    run_id: int | None
    job: str
    kind: str
    at: datetime
    detail: dict[str, Any]
    note: str | None = None


def _insert_new(session: Session, fresh: list[dict[str, Any]], run_id: int, now: datetime) -> list[Event]:
    """New tracked findings and their `new` events, two bulk INSERTs with RETURNING."""
    if not fresh:
        return []
    session.flush()
    ids = list(session.scalars(insert(TrackedFinding).returning(TrackedFinding.id, sort_by_parameter_order=True),
                               fresh))
    values = [dict(finding_id=i, run_id=run_id, job=v["job"], kind="new", at=now, detail={}, note=None)
              for i, v in zip(ids, fresh, strict=True)]
    event_ids = list(session.scalars(insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True),
                                     values))
    return [Event(id=e, **v) for e, v in zip(event_ids, values, strict=True)]


def apply_run(session: Session, job: str, run_id: int, result: ScanResult, rules: Rules,
              done: list | None = None, now: datetime | None = None) -> list[EventRow | Event]:
    """Update the job's tracked findings from one run's result; return the events (flushed, with ids)."""
    now = now or datetime.now(UTC)
    scope = Scope(result, done)
    complete = result.scan.complete
    answered = {s.host for s in result.services if s.status not in _SILENT}
    tracked = {(r.host, r.port, r.check_id): r
               for r in session.scalars(select(TrackedFinding).where(TrackedFinding.job == job))}
    events: list[EventRow | Event] = list(expire_risks(session, job, now))
    fresh: list[dict[str, Any]] = []  # new findings: inserted in bulk (a run can bring thousands)
    seen: set[tuple[str, int, str]] = set()
    for finding in result.findings:
        key = (finding.host, finding.port, finding.check_id)
        if key in seen:
            continue
        seen.add(key)
        studies, files = magnitude(finding)
        row = tracked.get(key)
        if row is None:
            fresh.append(dict(job=job, host=finding.host, port=finding.port, check_id=finding.check_id,
                              protocol=finding.protocol, severity=finding.severity.value, title=finding.title,
                              state=NEW, first_seen=now, last_seen=now, absent_runs=0, reopened=0,
                              studies=studies, files=files, last_scan_id=result.scan.id,
                              finding=finding.model_dump(mode="json")))
            continue
        if row.state == FIXED:
            row.state, row.fixed_at = REOPENED, None
            row.reopened += 1
            events.append(_event(session, row, run_id, "reopened", now))
        elif row.state in (NEW, REOPENED):
            row.state = OPEN
        changed = {name: [before, after] for name, before, after in
                   (("studies", row.studies, studies), ("files", row.files, files))
                   if _jumped(before, after, rules.change_ratio)}
        if changed and row.state != REOPENED:
            events.append(_event(session, row, run_id, "changed", now, changed))
        if row.severity != finding.severity.value:
            row.severity = finding.severity.value
        row.protocol, row.title = finding.protocol, finding.title
        row.studies, row.files = studies, files
        row.last_seen, row.absent_runs, row.last_scan_id = now, 0, result.scan.id
        row.finding = finding.model_dump(mode="json")
    events += _insert_new(session, fresh, run_id, now)
    if complete:
        for key, row in tracked.items():
            if key in seen or row.state == FIXED:
                continue
            host, port, _ = key
            if host not in answered or not scope.covers(host, port):
                continue  # not looked at, or the host was unreachable: says nothing
            row.absent_runs += 1
            if row.absent_runs >= rules.fixed_after:
                before = row.state
                row.state, row.fixed_at = FIXED, now
                events.append(_event(session, row, run_id, "fixed", now, {"state_before": before}))
    session.flush()
    return events


def run_totals(session: Session, job: str, result: ScanResult | None) -> dict[str, Any]:
    """What a run's row keeps for the trends: exposure totals and the job's open findings."""
    counts = Counter(session.scalars(select(TrackedFinding.severity).where(
        TrackedFinding.job == job, TrackedFinding.state.in_(ACTIVE))))
    totals: dict[str, Any] = {"open_findings": sum(counts.values()), "open_by_severity": dict(counts)}
    if result is not None and result.summary is not None:
        raw = result.summary.raw
        totals.update(exposed_services=raw.exposed_services, studies=raw.studies,
                      files=raw.files.dicom + raw.files.hl7 + raw.files.x12)
    return totals


# ---- triage -------------------------------------------------------------------------------------

class TriageError(ValueError):
    """A triage request that cannot apply: one line."""


def _tracked(session: Session, finding_id: int) -> TrackedFinding:
    row = session.get(TrackedFinding, finding_id)
    if row is None:
        raise TriageError(f"no tracked finding {finding_id}")
    return row


def acknowledge(session: Session, finding_id: int, note: str | None = None,
                now: datetime | None = None) -> EventRow:
    """Someone knows about it. A fixed finding cannot be acknowledged."""
    now = now or datetime.now(UTC)
    row = _tracked(session, finding_id)
    if row.state == FIXED:
        raise TriageError("a fixed finding needs no acknowledgement")
    before = row.state
    row.state, row.acknowledged_at = ACKNOWLEDGED, now
    if note:
        row.note = note
    event = _event(session, row, None, "acknowledged", now, {"state_before": before}, note)
    session.flush()
    return event


def accept_risk(session: Session, finding_id: int, until: datetime, note: str,
                now: datetime | None = None) -> EventRow:
    """Accepted until `until`, with a note saying why; open again after it."""
    now = now or datetime.now(UTC)
    until = utc(until) or until
    if until <= now:
        raise TriageError("the expiry of an accepted risk must lie in the future")
    if not note.strip():
        raise TriageError("accepting a risk needs a note")
    row = _tracked(session, finding_id)
    if row.state == FIXED:
        raise TriageError("a fixed finding has no risk to accept")
    before = row.state
    row.state, row.accepted_until, row.note = ACCEPTED_RISK, until, note
    event = _event(session, row, None, "accepted_risk", now,
                   {"state_before": before, "until": until.isoformat()}, note)
    session.flush()
    return event


def request_run(session: Session, job: str, now: datetime | None = None) -> None:
    """Ask the watcher to run a job now (it picks the request up within a second or two)."""
    row = session.get(JobRow, job)
    if row is None:
        raise TriageError(f"no job named {job!r}")
    row.run_requested = now or datetime.now(UTC)
    session.flush()


# ---- reading ------------------------------------------------------------------------------------

def exposure_window(row: TrackedFinding, now: datetime | None = None) -> timedelta:
    """From first seen to fixed (or to now, while it is not fixed)."""
    end = utc(row.fixed_at) or now or datetime.now(UTC)
    start = utc(row.first_seen)
    assert start is not None
    return end - start


SORTS = {
    "severity": None,  # worst first (by rank, computed below)
    "first_seen": TrackedFinding.first_seen,
    "last_seen": TrackedFinding.last_seen,
    "host": TrackedFinding.host,
    "state": TrackedFinding.state,
    "check": TrackedFinding.check_id,
}


def _severity_rank() -> Any:
    from sqlalchemy import case

    return case({s.value: s.rank for s in Severity}, value=TrackedFinding.severity, else_=0)


def findings_query(state: str | list[str] | None = None, severity: str | list[str] | None = None,
                   protocol: str | None = None, job: str | None = None, host: str | None = None,
                   search: str | None = None) -> Select:
    """The tracked findings matching every filter given (lists: any of)."""
    query = select(TrackedFinding)
    for column, wanted in ((TrackedFinding.state, state), (TrackedFinding.severity, severity)):
        if wanted:
            query = query.where(column.in_([wanted] if isinstance(wanted, str) else wanted))
    for column, exact in ((TrackedFinding.protocol, protocol), (TrackedFinding.job, job),
                          (TrackedFinding.host, host)):
        if exact:
            query = query.where(column == exact)
    if search:
        # the words as typed: % and _ match themselves, not any text
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(or_(*(func.lower(column).like(pattern, escape="\\") for column in
                                  (TrackedFinding.check_id, TrackedFinding.title, TrackedFinding.host))))
    return query


def list_findings(session: Session, *, page: int = 1, per_page: int = 50, sort: str = "severity",
                  descending: bool = True, **filters: Any) -> tuple[list[TrackedFinding], int]:
    """One page of tracked findings and how many match in all."""
    query = findings_query(**filters)
    page, per_page = max(1, page), max(1, min(per_page, 1000))
    column = SORTS.get(sort, None)
    if column is None:
        return _by_severity(session, query, (page - 1) * per_page, per_page, descending)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    query = query.order_by(column.desc() if descending else column.asc(), TrackedFinding.id)
    rows = list(session.scalars(query.offset((page - 1) * per_page).limit(per_page)))
    return rows, total


def _by_severity(session: Session, query: Select, offset: int, limit: int,
                 descending: bool) -> tuple[list[TrackedFinding], int]:
    """Sorted by severity rank, then id: counted per severity, then read from each severity the page
    touches in id order, which the severity indexes give without sorting every matching row."""
    matching = query.subquery()
    counted = session.execute(select(matching.c.severity, func.count()).group_by(matching.c.severity))
    ranks = {s.value: s.rank for s in Severity}
    groups = sorted(((str(severity), int(count)) for severity, count in counted),
                    key=lambda g: (ranks.get(g[0], 0), g[0]), reverse=descending)
    rows: list[TrackedFinding] = []
    start = 0
    for severity, count in groups:
        if len(rows) < limit and offset < start + count:
            skip = max(0, offset - start)
            part = query.where(TrackedFinding.severity == severity).order_by(TrackedFinding.id)
            rows.extend(session.scalars(part.offset(skip).limit(limit - len(rows))))
        start += count
    return rows, start


def finding_events(session: Session, finding_id: int) -> list[EventRow]:
    return list(session.scalars(select(EventRow).where(EventRow.finding_id == finding_id)
                                .order_by(EventRow.at, EventRow.id)))


def host_findings(session: Session, host: str) -> list[TrackedFinding]:
    return list(session.scalars(select(TrackedFinding).where(TrackedFinding.host == host)
                                .order_by(_severity_rank().desc(), TrackedFinding.port)))


def runs(session: Session, job: str | None = None, limit: int = 100, offset: int = 0) -> list[RunRow]:
    query = select(RunRow).order_by(RunRow.started.desc(), RunRow.id.desc())
    if job is not None:
        query = query.where(RunRow.job == job)
    return list(session.scalars(query.offset(offset).limit(limit)))


def jobs(session: Session) -> list[JobRow]:
    return list(session.scalars(select(JobRow).order_by(JobRow.name)))


def trend(session: Session, job: str | None = None, limit: int = 1000) -> list[RunRow]:
    """Finished runs, oldest first, with their totals: the overview's time series."""
    query = select(RunRow).where(RunRow.ended.is_not(None)).order_by(RunRow.started.desc()).limit(limit)
    if job is not None:
        query = query.where(RunRow.job == job)
    return list(reversed(list(session.scalars(query))))


def weekly_new_fixed(session: Session, weeks: int = 12, now: datetime | None = None) -> list[dict[str, Any]]:
    """New and fixed events per ISO week, the last `weeks` weeks, oldest first. Counted by the database
    (one GROUP BY over week buckets), so a history of millions of events costs one indexed query."""
    from sqlalchemy import case

    now = now or datetime.now(UTC)
    since = now - timedelta(weeks=weeks)
    monday = datetime.combine((since - timedelta(days=since.weekday())).date(), datetime.min.time(), UTC)
    starts = [monday + timedelta(weeks=n) for n in range(weeks + 2) if monday + timedelta(weeks=n) <= now]
    labels = ["{}-W{:02d}".format(*start.isocalendar()[:2]) for start in starts]
    bucket = case(*[(EventRow.at < start, n - 1) for n, start in enumerate(starts) if n > 0],
                  else_=len(starts) - 1)
    counts: dict[str, Counter] = {}
    rows = session.execute(select(EventRow.kind, bucket, func.count()).where(
        EventRow.kind.in_(("new", "fixed")), EventRow.at >= since).group_by(EventRow.kind, bucket))
    for kind, index, count in rows:
        counts.setdefault(labels[int(index)], Counter())[kind] += int(count)
    return [{"week": week, "new": c["new"], "fixed": c["fixed"]} for week, c in sorted(counts.items())]


def _fix_seconds(session: Session) -> Any:
    """The exposure window of a fixed finding in seconds, as this database computes it; None: unknown."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return (func.julianday(TrackedFinding.fixed_at) - func.julianday(TrackedFinding.first_seen)) * 86400.0
    if name == "postgresql":
        return func.extract("epoch", TrackedFinding.fixed_at - TrackedFinding.first_seen)
    return None


def median_time_to_fix(session: Session, job: str | None = None) -> timedelta | None:
    """Median exposure window of the findings fixed so far; None when none is. The database sorts the
    windows and hands back the middle one or two (SQLite, PostgreSQL); others are read in full."""
    where = [TrackedFinding.state == FIXED, TrackedFinding.fixed_at.is_not(None)]
    if job is not None:
        where.append(TrackedFinding.job == job)
    seconds = _fix_seconds(session)
    if seconds is None:
        query = select(TrackedFinding.first_seen, TrackedFinding.fixed_at).where(*where)
        windows = [(utc(fixed) - utc(first)).total_seconds()  # type: ignore[operator]
                   for first, fixed in session.execute(query)]
        return timedelta(seconds=statistics.median(windows)) if windows else None
    count = int(session.scalar(select(func.count()).select_from(TrackedFinding).where(*where)) or 0)
    if count == 0:
        return None
    middle = [float(v) for v in session.scalars(select(seconds).where(*where).order_by(seconds)
                                                .offset((count - 1) // 2).limit(2 - count % 2))]
    return timedelta(seconds=round(statistics.mean(middle), 3))  # julianday: milliseconds at best


def state_counts(session: Session, job: str | None = None) -> dict[str, dict[str, int]]:
    """state -> severity -> count."""
    query = select(TrackedFinding.state, TrackedFinding.severity, func.count()).group_by(
        TrackedFinding.state, TrackedFinding.severity)
    if job is not None:
        query = query.where(TrackedFinding.job == job)
    table: dict[str, dict[str, int]] = {}
    for state, severity, count in session.execute(query):
        table.setdefault(state, {})[severity] = int(count)
    return table


__all__ = [
    "ACCEPTED_RISK", "ACKNOWLEDGED", "ACTIVE", "FIXED", "NEW", "OPEN", "REOPENED", "Rules", "TriageError",
    "accept_risk", "acknowledge", "apply_run", "exposure_window", "finding_events", "findings_query",
    "host_findings", "jobs", "list_findings", "median_time_to_fix", "request_run", "run_totals", "runs",
    "state_counts", "trend", "weekly_new_fixed",
]
