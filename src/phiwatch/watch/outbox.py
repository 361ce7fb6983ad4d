"""The alert outbox: alerts are rows in the store, written in the transaction that records the run's
events, then sent. A failed send is retried with a growing delay (1 s, 2 s, 4 s ... at most 5 min)
until the receiver takes it; sent alerts are marked delivered in batches (one UPDATE ... WHERE id IN
per transaction, on one connection kept for it) while the next ones are sent.

Each row's key (sink and event, or sink and run for a digest) is unique, so an alert is written once;
a watcher killed between a send and its mark could send that alert again after a restart, at most
RESEND_BOUND of them (those in flight and those sent but not yet marked): the
`X-Phiwatch-Delivery` header (and the e-mail's Message-ID) carry the key so a receiver can drop it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.orm import Session

from .alerts import AlertError, Sender, digest_payload, event_payload, sender, wanted
from .config import Alert
from .lifecycle import Event
from .tables import EventRow, OutboxRow, TrackedFinding

MAX_DELAY = 300.0
BATCH = 2000
WORKERS = 8  # parallel sends
UNMARKED = 24  # sent alerts waiting for their mark before a sender waits for it
RESEND_BOUND = WORKERS + UNMARKED  # the most alerts a kill -9 can make go out a second time


def backoff(attempts: int) -> float:
    return min(MAX_DELAY, 2.0 ** max(0, attempts - 1))


def enqueue(session: Session, alerts: list[Alert], job: str, run_id: int | None,
            events: Iterable[EventRow | Event], digest: bool, now: datetime | None = None) -> int:
    """Outbox rows for these events, one per alert that wants each (or one digest per alert)."""
    now = now or datetime.now(UTC)
    made = 0
    events = list(events)
    ids = sorted({event.finding_id for event in events})
    rows: dict[int, Any] = {}
    table = TrackedFinding.__table__
    for start in range(0, len(ids), 500):  # one query per 500 findings, plain rows, not one per event
        rows.update((r.id, r) for r in session.execute(select(table).where(
            table.c.id.in_(ids[start:start + 500]))))
    items: list[tuple[EventRow | Event, dict[str, Any], str]] = []
    for event in events:
        row = rows.get(event.finding_id)
        if row is not None:
            items.append((event, event_payload(event, row), row.severity))
    for alert in alerts:
        assert alert.name
        chosen = [(e, p) for e, p, severity in items if wanted(alert, e.kind, severity, job)]
        if not chosen:
            continue
        if alert.digest if alert.digest is not None else digest:
            key = f"{alert.name}|{job}|run-{run_id}|digest"
            payloads = [(key, digest_payload(job, run_id, [p for _, p in chosen]))]
        else:
            payloads = [(f"{alert.name}|event-{e.id}", p) for e, p in chosen]
        values = [dict(key=key[:255], sink=alert.name, job=job, run_id=run_id, payload={"id": key, **payload},
                       created=now, attempts=0, next_attempt=now) for key, payload in payloads]
        session.execute(insert(OutboxRow), values)
        made += len(values)
    return made


TRIAGE = ("acknowledged", "accepted_risk", "risk_expired")


def enqueue_triage(session: Session, alerts: list[Alert], since: datetime) -> int:
    """Alerts for triage events (made by the dashboard, outside any run) since `since` that have none
    yet; the outbox keys say which have one."""
    if not any(kind in alert.events for alert in alerts for kind in TRIAGE):
        return 0
    events = list(session.scalars(select(EventRow).where(
        EventRow.run_id.is_(None), EventRow.kind.in_(TRIAGE), EventRow.at >= since).order_by(EventRow.id)))
    if not events:
        return 0
    keys = [f"{alert.name}|event-{event.id}" for alert in alerts for event in events]
    present = set(session.scalars(select(OutboxRow.key).where(OutboxRow.key.in_(keys))))
    made = 0
    for alert in alerts:
        missing = [e for e in events if f"{alert.name}|event-{e.id}" not in present]
        for job in sorted({e.job for e in missing}):
            made += enqueue(session, [alert], job, None, [e for e in missing if e.job == job], False)
    return made


class Deliverer:
    """Sends due outbox rows, several at once; `wake()` after a run makes it look at once."""

    def __init__(self, engine: Engine, alerts: list[Alert], workers: int = WORKERS) -> None:
        self.engine = engine
        self.alerts = {a.name: a for a in alerts if a.name}
        self.senders: dict[str, Sender] = {}
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="phiwatch-alert")
        self.event = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.sent: list[int] = []  # sent, not yet marked delivered
        self.writing = threading.Lock()  # one outbox write at a time here: no SQLite busy-waits
        self.marks: Connection | None = None  # kept open for the marks (under `writing`)

    def _sender(self, name: str) -> Sender:
        with self.lock:
            if name not in self.senders:
                self.senders[name] = sender(self.alerts[name])
            return self.senders[name]

    def pending(self) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(OutboxRow).where(
                OutboxRow.delivered.is_(None), OutboxRow.sink.in_(list(self.alerts)))) or 0)

    def next_due(self) -> datetime | None:
        with Session(self.engine) as session:
            when = session.scalar(select(func.min(OutboxRow.next_attempt)).where(
                OutboxRow.delivered.is_(None), OutboxRow.sink.in_(list(self.alerts))))
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when

    def deliver_due(self) -> tuple[int, int]:
        """Send every due row once: (delivered, failed). One finding's alerts to one receiver go in
        order (a chain); different chains go in parallel."""
        self._flush_marks(wait=True)  # marks a store hiccup left unwritten: those rows are not sent again
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            rows = list(session.execute(
                select(OutboxRow.id, OutboxRow.key, OutboxRow.sink, OutboxRow.payload, OutboxRow.attempts)
                .where(OutboxRow.delivered.is_(None), OutboxRow.sink.in_(list(self.alerts)))
                .order_by(OutboxRow.id).limit(BATCH)))
            due_ids = set(session.scalars(select(OutboxRow.id).where(
                OutboxRow.delivered.is_(None), OutboxRow.next_attempt <= now,
                OutboxRow.sink.in_(list(self.alerts))).order_by(OutboxRow.id).limit(BATCH)))
        chains: dict[tuple[str, object], list[tuple]] = {}
        for row in rows:
            finding = row.payload.get("finding", {}).get("id") if row.payload.get("event") != "digest" else None
            key = (row.sink, finding if finding is not None else f"row-{row.id}")
            chains.setdefault(key, []).append(tuple(row))
        ready = [chain for chain in chains.values() if chain[0][0] in due_ids]  # an earlier one waits: all wait
        results = [r for sent in self.pool.map(self._send_chain, ready) for r in sent]
        self._flush_marks(wait=True)  # nothing reported sent before it is marked
        delivered = sum(results)
        return delivered, len(results) - delivered

    def _send_chain(self, chain: list[tuple]) -> list[bool]:
        sent = []
        for row in chain:
            ok = self._send_one(*row)
            sent.append(ok)
            if not ok:
                break
        return sent

    def _send_one(self, row_id: int, key: str, sink: str, payload: dict[str, Any], attempts: int) -> bool:
        try:
            self._sender(sink).send(key, payload)
        except AlertError as exc:
            delay = backoff(attempts + 1)
            self._flush_marks(wait=True)  # the marks of earlier sends first
            with self.writing:
                self._write(update(OutboxRow).where(OutboxRow.id == row_id).values(
                    attempts=attempts + 1, last_error=str(exc)[:255],
                    next_attempt=datetime.now(UTC) + timedelta(seconds=delay)))
            return False
        with self.lock:
            self.sent.append(row_id)
            waiting = len(self.sent)
        self._flush_marks(wait=waiting >= UNMARKED)
        return True

    def _flush_marks(self, wait: bool) -> None:
        """Mark every send finished so far, one UPDATE per transaction. Without `wait`, a sender whose
        marks someone else is writing goes on sending; at UNMARKED waiting marks, senders wait."""
        if not self.writing.acquire(blocking=wait):
            return
        try:
            while True:
                with self.lock:
                    ids, self.sent = self.sent, []
                if not ids:
                    return
                try:
                    self._write(update(OutboxRow).where(OutboxRow.id.in_(ids), OutboxRow.delivered.is_(None))
                                .values(delivered=datetime.now(UTC), attempts=OutboxRow.attempts + 1,
                                        last_error=None))
                except Exception:
                    with self.lock:  # not marked: they wait for the next flush (or go out again)
                        self.sent[:0] = ids
                    raise
        finally:
            self.writing.release()

    def _write(self, statement: Any) -> None:
        """One statement in its own transaction on the kept connection (caller holds `writing`)."""
        if self.marks is None:
            self.marks = self.engine.connect()
            if self.marks.dialect.name == "postgresql":
                # These writes need not wait for the server's disk: the watcher may die, the commit
                # stands; only a crash of the database server itself could lose the last marks, and
                # then those alerts go out again (with their key), never fewer.
                self.marks.exec_driver_sql("SET synchronous_commit TO OFF")
                self.marks.commit()
        try:
            with self.marks.begin():
                self.marks.execute(statement)
        except Exception:
            self.marks.invalidate()
            self.marks.close()
            self.marks = None
            raise

    def wake(self) -> None:
        self.event.set()

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="phiwatch-outbox", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.event.clear()
            try:
                self.deliver_due()
                due = self.next_due()
            except Exception:  # noqa: BLE001 - a store hiccup: try again shortly, never die
                due = None
            wait = 1.0 if due is None else max(0.0, min(1.0, (due - datetime.now(UTC)).total_seconds()))
            self.event.wait(wait)

    def drain(self, timeout: float) -> int:
        """Deliver until nothing is pending or `timeout` passes; the count still pending."""
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        while True:
            self.deliver_due()
            left = self.pending()
            due = self.next_due()
            if left == 0 or due is None or due >= deadline:
                return left
            pause = max(0.0, (due - datetime.now(UTC)).total_seconds())
            if self.stopping.wait(min(pause, 1.0)):
                return left

    def stop_loop(self) -> None:
        """The background loop ends (after the send it is in); the senders stay open for a last drain."""
        self.stopping.set()
        self.event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None

    def close(self) -> None:
        self.stop_loop()
        self.pool.shutdown(wait=True)
        for one in self.senders.values():
            one.close()
        with self.writing:
            if self.marks is not None:
                self.marks.close()
                self.marks = None
