"""The watcher's tables in the store, beside the scans: jobs, runs, tracked findings, their events,
and the alert outbox. Keys, states, counts and dates only: never a PHI value.

The schema is created by the Alembic revisions 0002-0004 (phiwatch/migrations), or for a brand-new store
from these models: keep them equal to the revisions (tests/test_store_migrations.py compares both).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..orm import Base

# The states of a tracked finding.
NEW, OPEN, ACKNOWLEDGED, ACCEPTED_RISK, FIXED, REOPENED = (
    "new", "open", "acknowledged", "accepted_risk", "fixed", "reopened")
STATES = (NEW, OPEN, ACKNOWLEDGED, ACCEPTED_RISK, FIXED, REOPENED)
ACTIVE = (NEW, OPEN, ACKNOWLEDGED, ACCEPTED_RISK, REOPENED)  # everything but fixed

# Events: what happened to a finding in a run, or by a person's triage.
EVENTS = ("new", "fixed", "reopened", "changed", "acknowledged", "accepted_risk", "risk_expired")


class JobRow(Base):
    """A configured job: its schedule and the last and next run."""

    __tablename__ = "watch_jobs"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    every: Mapped[str] = mapped_column(String(128))  # "1h" or a cron expression
    config: Mapped[dict] = mapped_column(JSON)  # targets, ports, options (no secrets)
    last_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    next_run: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    run_requested: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RunRow(Base):
    """One run of a job: the scan it made, its status and the totals the trends are drawn from."""

    __tablename__ = "watch_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128), index=True)
    scan_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # running, complete, partial, failed
    error: Mapped[str | None] = mapped_column(String(255), nullable=True)  # one line, no peer text
    findings: Mapped[int] = mapped_column(Integer, default=0)  # findings the scan reported
    events: Mapped[int] = mapped_column(Integer, default=0)
    exposed_services: Mapped[int] = mapped_column(Integer, default=0)
    studies: Mapped[int] = mapped_column(Integer, default=0)
    files: Mapped[int] = mapped_column(Integer, default=0)
    open_findings: Mapped[int] = mapped_column(Integer, default=0)  # tracked, not fixed, after the run
    open_by_severity: Mapped[dict] = mapped_column(JSON, default=dict)


class TrackedFinding(Base):
    """A finding's identity across runs, (job, host, port, check), and its state."""

    __tablename__ = "watch_findings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    check_id: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fixed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    absent_runs: Mapped[int] = mapped_column(Integer, default=0)  # consecutive complete runs without it
    reopened: Mapped[int] = mapped_column(Integer, default=0)  # times it came back after a fix
    studies: Mapped[int | None] = mapped_column(Integer, nullable=True)
    files: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_scan_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    finding: Mapped[dict] = mapped_column(JSON)  # the latest Finding as scan.json holds it

    __table_args__ = (
        Index("ux_watch_findings_identity", "job", "host", "port", "check_id", unique=True),
        Index("ix_watch_findings_host", "host"),
        Index("ix_watch_findings_state_severity", "state", "severity"),  # 0003: the dashboard's counts
        Index("ix_watch_findings_state_fixed", "state", "fixed_at", "first_seen"),  # 0003: time to fix
        Index("ix_watch_findings_host_severity", "host", "severity"),  # 0004: the host page
    )


class EventRow(Base):
    """Something that happened to a tracked finding: in a run, or by triage."""

    __tablename__ = "watch_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("watch_findings.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    job: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)  # counts before/after, states
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_watch_events_kind_at", "kind", "at"),)  # 0003: new and fixed per week


class OutboxRow(Base):
    """An alert, written before it is sent; delivered once (its `key` is unique)."""

    __tablename__ = "watch_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)  # sink and event (or sink, run: a digest)
    sink: Mapped[str] = mapped_column(String(128))
    job: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (Index("ix_watch_outbox_pending", "delivered", "next_attempt"),)
