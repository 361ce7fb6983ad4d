"""Given a SQLite store already at the newest revision, a scan writes its journal through sqlite3
(litestore.LiteStore) instead of SQLAlchemy: the rows must be the ones `Store` writes, and every
other store must still go through `Store`."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest

from phiwatch import litestore, migrations
from phiwatch.litestore import LiteStore, open_at_head
from phiwatch.models import (
    Exposure,
    Finding,
    ProbeStatus,
    RepositoryFacts,
    ScanInfo,
    ScanOptions,
    Service,
    Severity,
    TargetSummary,
)
from phiwatch.orm import Base
from phiwatch.store import Store

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def info(scan_id: str, complete: bool = False, end: datetime | None = None) -> ScanInfo:
    options = ScanOptions(ports=[21, 104], concurrency=1, per_host=1, rate=0, timeout=1, retries=0,
                          max_matches=10, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=4096)
    return ScanInfo(id=scan_id, start=datetime(2026, 12, 6, 23, 1, 2, 345678, tzinfo=UTC), end=end,
                    version="0", options=options, complete=complete,
                    targets=TargetSummary(specs=["127.0.0.1"], excludes=[], addresses=2, ports=[21, 104]))


def found(host: str, status: ProbeStatus, studies: int) -> tuple[Service, list[Finding]]:
    service = Service(host=host, port=21, protocol="ftp", status=status,
                      repository=RepositoryFacts(access="anonymous", listing="mlsd"))
    finding = Finding(check_id="ftp_anonymous_login", title="t", severity=Severity.HIGH, host=host, port=21,
                      protocol="ftp", evidence="anonymous login accepted",
                      exposure=Exposure(studies=studies, phi_attributes=["PatientName"]), remediation="r")
    return service, [finding]


def journal(store: Store | LiteStore) -> None:
    """One scan as a journal writes it: begin, two batches (the second records a service again,
    which replaces it, and completes a shard), the end."""
    store.begin(info("scan-1"), {"targets": ["127.0.0.0/31"], "ports": "21"}, 2)
    store.record("scan-1", [found("127.0.0.1", ProbeStatus.OPEN, 0), found("127.0.0.0", ProbeStatus.OPEN, 0)])
    store.record("scan-1", [found("127.0.0.1", ProbeStatus.EXPOSED, 3)], (0, "d1g3st", 2))
    store.finish(info("scan-1", complete=True, end=datetime(2026, 12, 6, 23, 5, tzinfo=UTC)))


def table(path, name: str) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall()


def fresh_store(path) -> None:
    Store(path).close()  # created at HEAD by SQLAlchemy, as the first scan into a new file does


def test_the_journal_through_sqlite3_writes_the_rows_the_store_writes(tmp_path):
    # Given two new stores at HEAD
    orm_db, lite_db = tmp_path / "orm.db", tmp_path / "lite.db"
    fresh_store(orm_db)
    fresh_store(lite_db)
    # When the same journal is written through Store into one and through sqlite3 into the other
    orm = Store(orm_db)
    journal(orm)
    lite = open_at_head(lite_db)
    assert isinstance(lite, LiteStore)
    journal(lite)
    # Then every table holds the same rows, the shard's time of completion aside (it is now)
    for name in ("scans", "scan_plans", "services", "findings"):
        assert table(lite_db, name) == table(orm_db, name), name
    [orm_shard], [lite_shard] = table(orm_db, "scan_shards"), table(lite_db, "scan_shards")
    assert lite_shard[:-1] == orm_shard[:-1] == ("scan-1", 0, "d1g3st", 2, 1)
    assert STAMP.match(orm_shard[-1]) and STAMP.match(lite_shard[-1])
    # the service recorded twice is there once, as last seen
    assert [(r[2], r[5]) for r in table(lite_db, "services")] == [("127.0.0.0", "open"), ("127.0.0.1", "exposed")]
    # And each reads the other's rows back as the same scan
    assert Store(lite_db).load("scan-1") == lite.load("scan-1") == orm.load("scan-1")
    assert lite.shards("scan-1") == orm.shards("scan-1") == {0: ("d1g3st", 2)}
    assert lite.load("missing") is None
    lite.close()
    orm.close()


def test_the_columns_written_are_every_column_of_the_tables():
    # A revision that adds a column must change litestore too (and its HEAD, checked below)
    written = {"scans": litestore.SCAN_COLUMNS, "scan_plans": litestore.PLAN_COLUMNS,
               "services": litestore.SERVICE_COLUMNS, "findings": litestore.FINDING_COLUMNS,
               "scan_shards": litestore.SHARD_COLUMNS}
    for name, columns in written.items():
        table_ = Base.metadata.tables[name]
        generated = {c.name for c in table_.columns if c.autoincrement is True}  # the services' and findings' id
        assert set(columns) == {c.name for c in table_.columns} - generated, name
    assert litestore.HEAD == migrations.HEAD


@pytest.mark.parametrize("case", ["no file", "a URL", "an older revision", "not a database", "no revision"])
def test_any_other_store_is_left_to_sqlalchemy(tmp_path, case):
    path = tmp_path / "phiwatch.db"
    location: object = path
    if case == "a URL":
        fresh_store(path)
        location = f"sqlite:///{path}"
    elif case == "an older revision":
        fresh_store(path)
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '0003_older'")
    elif case == "not a database":
        path.write_bytes(b"MSH|^~\\&|" * 100)
    elif case == "no revision":
        sqlite3.connect(path).close()
    assert open_at_head(location) is None  # type: ignore[arg-type]
