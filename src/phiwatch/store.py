"""The scan store: every scan in a database (SQLAlchemy), for later comparison.

SQLite by default (a file); any SQLAlchemy URL too, e.g. postgresql+psycopg://user@host/db.
The schema is kept by Alembic (phiwatch/migrations): opening a store upgrades it.

It holds what scan.json holds: facts, attribute names and counts, never a PHI value.
It is also a scan's journal: the request that started it (`scan_plans`), each shard
as it completes (`scan_shards`) and each service with its findings as soon as it is
found, one row per (scan, host, port), so `scan --resume` can finish a scan whose
process died. SQLite runs in WAL mode: a commit survives a killed process.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .litestore import stored_result
from .models import Finding, ScanInfo, ScanResult, Service
from .orm import Base
from .paths import default_db_path

_CHUNK = 400  # services per DELETE ... IN (within SQLite's bound on variables)


class StoreError(Exception):
    """The store cannot be opened or written: one line naming the file."""


class ScanRow(Base):
    __tablename__ = "scans"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[str] = mapped_column(String(32))
    complete: Mapped[bool]
    scan: Mapped[dict] = mapped_column(JSON)


class ServiceRow(Base):
    __tablename__ = "services"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(64), index=True)
    port: Mapped[int]
    protocol: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    facts: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (Index("ux_services_scan_host_port", "scan_id", "host", "port", unique=True),)


class FindingRow(Base):
    __tablename__ = "findings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), index=True)
    check_id: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(64))
    port: Mapped[int]
    protocol: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[str] = mapped_column(Text)
    finding: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (Index("ix_findings_scan_host_port", "scan_id", "host", "port"),)


class PlanRow(Base):
    """What a scan was asked to do, so `scan --resume` can rebuild it."""

    __tablename__ = "scan_plans"
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True)
    request: Mapped[dict] = mapped_column(JSON)
    shard_size: Mapped[int]


class ShardRow(Base):
    """A shard whose every address (or listed service) was scanned and recorded."""

    __tablename__ = "scan_shards"
    scan_id: Mapped[str] = mapped_column(ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    units: Mapped[int]
    services: Mapped[int]
    finished: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _sqlite_pragmas(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across a killed process
    cursor.close()


def _scan_row(info: ScanInfo) -> ScanRow:
    return ScanRow(id=info.id, started=info.start, ended=info.end, version=info.version,
                   complete=info.complete, scan=info.model_dump(mode="json"))


def _service_values(scan_id: str, service: Service) -> dict:
    return dict(scan_id=scan_id, host=service.host, port=service.port, protocol=service.protocol,
                status=service.status.value, facts=service.model_dump(mode="json"))


def _finding_values(scan_id: str, finding: Finding) -> dict:
    return dict(scan_id=scan_id, check_id=finding.check_id, severity=finding.severity.value,
                host=finding.host, port=finding.port, protocol=finding.protocol,
                evidence=finding.evidence, finding=finding.model_dump(mode="json"))


def is_url(location: Path | str | None) -> bool:
    """A SQLAlchemy URL (scheme://...), not a file name."""
    return isinstance(location, str) and "://" in location


def store_url(location: Path | str | None) -> tuple[str, str]:
    """The SQLAlchemy URL of a store and how to name it to a user (never with a password)."""
    if location is not None and is_url(location):
        text = str(location)
        if text.startswith("postgresql://") or text.startswith("postgres://"):
            text = "postgresql+psycopg://" + text.split("://", 1)[1]  # the driver phiwatch ships
        try:
            url = make_url(text)
        except ArgumentError:
            raise StoreError("the store URL cannot be read; expected e.g. sqlite:///FILE or "
                             "postgresql+psycopg://USER@HOST:PORT/DB") from None
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return text, url.database  # named as a file, like --db FILE
        return text, url.render_as_string(hide_password=True)
    path = Path(location) if location is not None else default_db_path()
    return f"sqlite:///{path}", str(path)


class Store:
    def __init__(self, path: Path | str | None = None, memory: bool = False) -> None:
        """The store at `path`, a file or a SQLAlchemy URL (default: the user's data folder), or a
        private one in memory."""
        self.url, label = ("sqlite://", ":memory:") if memory else store_url(path)
        self.path: Path | str = Path(label) if self.url.startswith("sqlite:///") else label
        self.sqlite = self.url.startswith("sqlite:")
        try:
            self._open(memory)
        except (OSError, SQLAlchemyError, ImportError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise StoreError(f"cannot open the store {str(self.path)!r} ({reason}); "
                             "give another with --db FILE or URL, or --no-db") from None

    def _open(self, memory: bool) -> None:
        from .migrations import migrate

        if memory:  # a new private store (--no-db): nothing to migrate, so no Alembic to import
            self.engine = create_engine("sqlite://")
            Base.metadata.create_all(self.engine)
            return
        if self.sqlite:
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)
        migrate(self.engine)

    def save(self, result: ScanResult) -> None:
        """Store a whole scan, replacing whatever was stored under its id."""
        info = result.scan
        with Session(self.engine) as session, session.begin():
            session.merge(_scan_row(info))
            session.execute(delete(ServiceRow).where(ServiceRow.scan_id == info.id))
            session.execute(delete(FindingRow).where(FindingRow.scan_id == info.id))
            if result.services:
                session.execute(insert(ServiceRow), [_service_values(info.id, s) for s in result.services])
            if result.findings:
                session.execute(insert(FindingRow), [_finding_values(info.id, f) for f in result.findings])

    def begin(self, info: ScanInfo, request: dict, shard_size: int) -> None:
        """A scan starts (or resumes): its row, marked incomplete, and its request."""
        with Session(self.engine) as session, session.begin():
            session.merge(_scan_row(info))
            session.merge(PlanRow(scan_id=info.id, request=request, shard_size=shard_size))

    def record(
        self,
        scan_id: str,
        found: Iterable[tuple[Service, list[Finding]]],
        shard: tuple[int, str, int] | None = None,
    ) -> None:
        """In one transaction: services with their findings (each replacing an earlier record of
        the same host and port), then, if given, a shard (index, digest, units) marked complete."""
        found = list(found)
        services = [_service_values(scan_id, service) for service, _ in found]
        findings = [_finding_values(scan_id, f) for _, fs in found for f in fs]
        with Session(self.engine) as session, session.begin():
            for start in range(0, len(found), _CHUNK):  # an earlier record of the same service goes
                keys = [(s.host, s.port) for s, _ in found[start:start + _CHUNK]]
                session.execute(delete(ServiceRow).where(
                    ServiceRow.scan_id == scan_id, tuple_(ServiceRow.host, ServiceRow.port).in_(keys)))
                session.execute(delete(FindingRow).where(
                    FindingRow.scan_id == scan_id, tuple_(FindingRow.host, FindingRow.port).in_(keys)))
            if services:
                session.execute(insert(ServiceRow), services)
            if findings:
                session.execute(insert(FindingRow), findings)
            if shard is not None:
                index, digest, units = shard
                session.merge(ShardRow(scan_id=scan_id, shard=index, digest=digest, units=units,
                                       services=len(found), finished=datetime.now(UTC)))

    def finish(self, info: ScanInfo) -> None:
        """The scan's row gets its end, completeness and progress."""
        with Session(self.engine) as session, session.begin():
            session.merge(_scan_row(info))

    def plan(self, scan_id: str) -> tuple[ScanInfo, dict, int] | None:
        """A journaled scan's info, request and shard size; None when there is none."""
        with Session(self.engine) as session:
            row = session.get(ScanRow, scan_id)
            plan = session.get(PlanRow, scan_id)
            if row is None or plan is None:
                return None
            return ScanInfo.model_validate(row.scan), plan.request, plan.shard_size

    def shards(self, scan_id: str) -> dict[int, tuple[str, int]]:
        """Completed shards of a scan: index -> (digest, units)."""
        with Session(self.engine) as session:
            rows = session.execute(select(ShardRow.shard, ShardRow.digest, ShardRow.units)
                                   .where(ShardRow.scan_id == scan_id))
            return {index: (digest, units) for index, digest, units in rows}

    def count_services(self, scan_id: str) -> int:
        with Session(self.engine) as session:
            query = select(func.count()).select_from(ServiceRow).where(ServiceRow.scan_id == scan_id)
            return int(session.scalar(query) or 0)

    def scans(self) -> list[ScanRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ScanRow).order_by(ScanRow.started)))

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Scan id -> (services, findings) recorded, for listing scans."""
        with Session(self.engine) as session:
            services = dict(session.execute(  # type: ignore[arg-type]
                select(ServiceRow.scan_id, func.count()).group_by(ServiceRow.scan_id)).all())
            findings = dict(session.execute(  # type: ignore[arg-type]
                select(FindingRow.scan_id, func.count()).group_by(FindingRow.scan_id)).all())
        return {scan: (services.get(scan, 0), findings.get(scan, 0)) for scan in services.keys() | findings.keys()}

    def load(self, scan_id: str) -> ScanResult | None:
        with Session(self.engine) as session:
            row = session.get(ScanRow, scan_id)
            if row is None:
                return None
            services = session.scalars(select(ServiceRow.facts).where(ServiceRow.scan_id == scan_id))
            findings = session.scalars(select(FindingRow.finding).where(FindingRow.scan_id == scan_id))
            return stored_result(row.scan, services, findings)

    def close(self) -> None:
        self.engine.dispose()
