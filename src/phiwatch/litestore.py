"""A scan's journal in a SQLite store that is already at the newest schema, through the standard
library's sqlite3 instead of SQLAlchemy.

Why: importing SQLAlchemy costs a plain scan more time than the rest of its start-up together
(about 0.13 s of 0.5 s), and a scan writes its store with five statements. So a scan into an
existing SQLite file whose Alembic revision is HEAD writes through this class; every other case
(a new file, an older schema, a URL, PostgreSQL) goes through `store.Store`, which creates or
migrates the store with SQLAlchemy and Alembic. Everything else that reads a store (scans, diff,
report, watch, the dashboard) keeps using `Store`.

The rows are the ones `Store` writes, in the form SQLAlchemy gives them on SQLite (JSON as
`json.dumps` text, a timestamp as `YYYY-MM-DD HH:MM:SS.ffffff`, a boolean as 0/1).
tests/test_litestore.py writes the same journal through both and compares every table, and checks
the columns named here against the tables' metadata, so a new revision cannot leave this behind.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Finding, ScanInfo, ScanResult, Service

# The newest Alembic revision (migrations/__init__.py imports it from here; a test checks it
# against the revision scripts).
HEAD = "0004_findings_host_severity"

# The columns each statement writes: tests/test_litestore.py holds them equal to the tables' metadata.
SCAN_COLUMNS = ("id", "started", "ended", "version", "complete", "scan")
PLAN_COLUMNS = ("scan_id", "request", "shard_size")
SERVICE_COLUMNS = ("scan_id", "host", "port", "protocol", "status", "facts")
FINDING_COLUMNS = ("scan_id", "check_id", "severity", "host", "port", "protocol", "evidence", "finding")
SHARD_COLUMNS = ("scan_id", "shard", "digest", "units", "services", "finished")


def _upsert(table: str, columns: tuple[str, ...], keys: tuple[str, ...]) -> str:
    """INSERT, or UPDATE of every other column when a row with the same key exists (Session.merge)."""
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    conflict = ", ".join(keys)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({conflict}) DO UPDATE SET {updates}"


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


UPSERT_SCAN = _upsert("scans", SCAN_COLUMNS, ("id",))
UPSERT_PLAN = _upsert("scan_plans", PLAN_COLUMNS, ("scan_id",))
UPSERT_SHARD = _upsert("scan_shards", SHARD_COLUMNS, ("scan_id", "shard"))
INSERT_SERVICE = _insert("services", SERVICE_COLUMNS)
INSERT_FINDING = _insert("findings", FINDING_COLUMNS)


def _when(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy's DateTime keeps it in SQLite (the zone dropped: phiwatch's are UTC)."""
    if value is None:
        return None
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}")


def stored_result(scan: dict, services: Iterable[dict], findings: Iterable[dict]) -> ScanResult:
    """A scan read back from its records, in scan.json's order (services by address and port,
    findings by severity first), with its trust assessment (computed from the facts, never stored)."""
    from .models import ScanResult
    from .targets import address_order
    from .trust import assess

    result = ScanResult.model_validate({"scan": scan, "services": list(services), "findings": list(findings)})
    result.services.sort(key=lambda s: (address_order(s.host), s.port))
    result.findings.sort(key=lambda f: (-f.severity.rank, address_order(f.host), f.port, f.check_id))
    return assess(result)


def open_at_head(location: Path | str | None) -> LiteStore | None:
    """The store at `location` (a file; None: the default one) through sqlite3, if it is a SQLite
    file already at HEAD; None otherwise (a URL, no file yet, another revision, not a database)."""
    if isinstance(location, str) and "://" in location:
        return None
    from .paths import default_db_path

    path = Path(location) if location is not None else default_db_path()
    if not path.is_file():
        return None
    connection = None
    try:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        if revision != [(HEAD,)]:
            connection.close()
            return None
        return LiteStore(path, connection)
    except sqlite3.Error:
        if connection is not None:
            connection.close()
        return None


class LiteStore:
    """begin, record, finish, shards and load, as `Store` has them, on one sqlite3 connection."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection
        connection.execute("PRAGMA journal_mode=WAL")  # as Store's connections: a commit survives a kill
        connection.execute("PRAGMA synchronous=NORMAL")

    def _transaction(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")  # the write lock first: no upgrade deadlock with a reader
        return self.connection

    def _commit(self) -> None:
        self.connection.execute("COMMIT")

    def _scan_values(self, info: ScanInfo) -> tuple:
        return (info.id, _when(info.start), _when(info.end), info.version, int(info.complete),
                json.dumps(info.model_dump(mode="json")))

    def _write(self, statements: Iterable[tuple[str, list[tuple]]]) -> None:
        connection = self._transaction()
        try:
            for statement, rows in statements:
                if rows:
                    connection.executemany(statement, rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        self._commit()

    def begin(self, info: ScanInfo, request: dict, shard_size: int) -> None:
        """A scan starts (or resumes): its row, marked incomplete, and its request."""
        self._write([(UPSERT_SCAN, [self._scan_values(info)]),
                     (UPSERT_PLAN, [(info.id, json.dumps(request), shard_size)])])

    def record(self, scan_id: str, found: Iterable[tuple[Service, list[Finding]]],
               shard: tuple[int, str, int] | None = None) -> None:
        """In one transaction: services with their findings (each replacing an earlier record of
        the same host and port), then, if given, a shard (index, digest, units) marked complete."""
        found = list(found)
        keys = [(scan_id, service.host, service.port) for service, _ in found]
        services = [(scan_id, s.host, s.port, s.protocol, s.status.value, json.dumps(s.model_dump(mode="json")))
                    for s, _ in found]
        findings = [(scan_id, f.check_id, f.severity.value, f.host, f.port, f.protocol, f.evidence,
                     json.dumps(f.model_dump(mode="json"))) for _, fs in found for f in fs]
        shards = []
        if shard is not None:
            index, digest, units = shard
            shards.append((scan_id, index, digest, units, len(found), _when(datetime.now(UTC))))
        self._write([
            ("DELETE FROM services WHERE scan_id = ? AND host = ? AND port = ?", keys),
            ("DELETE FROM findings WHERE scan_id = ? AND host = ? AND port = ?", keys),
            (INSERT_SERVICE, services),
            (INSERT_FINDING, findings),
            (UPSERT_SHARD, shards),
        ])

    def finish(self, info: ScanInfo) -> None:
        """The scan's row gets its end, completeness and progress."""
        self._write([(UPSERT_SCAN, [self._scan_values(info)])])

    def shards(self, scan_id: str) -> dict[int, tuple[str, int]]:
        """Completed shards of a scan: index -> (digest, units)."""
        rows = self.connection.execute(
            "SELECT shard, digest, units FROM scan_shards WHERE scan_id = ?", (scan_id,))
        return {index: (digest, units) for index, digest, units in rows}

    def load(self, scan_id: str) -> ScanResult | None:
        row = self.connection.execute("SELECT scan FROM scans WHERE id = ?", (scan_id,)).fetchone()
        if row is None:
            return None
        services = self.connection.execute("SELECT facts FROM services WHERE scan_id = ?", (scan_id,))
        findings = self.connection.execute("SELECT finding FROM findings WHERE scan_id = ?", (scan_id,))
        return stored_result(json.loads(row[0]), (json.loads(s) for (s,) in services),
                             (json.loads(f) for (f,) in findings))

    def close(self) -> None:
        self.connection.close()
