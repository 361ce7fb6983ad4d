"""The scan store: every scan in an embedded SQLite database (SQLAlchemy), for later comparison.

It holds what scan.json holds: facts, attribute names and counts, never a PHI value.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .models import ScanResult


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "phiwatch" / "phiwatch.db"


class Base(DeclarativeBase):
    pass


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


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{self.path}")
        Base.metadata.create_all(self.engine)

    def save(self, result: ScanResult) -> None:
        info = result.scan
        with Session(self.engine) as session, session.begin():
            session.merge(
                ScanRow(
                    id=info.id,
                    started=info.start,
                    ended=info.end,
                    version=info.version,
                    complete=info.complete,
                    scan=info.model_dump(mode="json"),
                )
            )
            for service in result.services:
                session.add(
                    ServiceRow(
                        scan_id=info.id,
                        host=service.host,
                        port=service.port,
                        protocol=service.protocol,
                        status=service.status.value,
                        facts=service.model_dump(mode="json"),
                    )
                )
            for finding in result.findings:
                session.add(
                    FindingRow(
                        scan_id=info.id,
                        check_id=finding.check_id,
                        severity=finding.severity.value,
                        host=finding.host,
                        port=finding.port,
                        protocol=finding.protocol,
                        evidence=finding.evidence,
                        finding=finding.model_dump(mode="json"),
                    )
                )

    def scans(self) -> list[ScanRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(ScanRow).order_by(ScanRow.started)))

    def load(self, scan_id: str) -> ScanResult | None:
        with Session(self.engine) as session:
            row = session.get(ScanRow, scan_id)
            if row is None:
                return None
            services = session.scalars(select(ServiceRow).where(ServiceRow.scan_id == scan_id))
            findings = session.scalars(select(FindingRow).where(FindingRow.scan_id == scan_id))
            return ScanResult.model_validate(
                {
                    "scan": row.scan,
                    "services": [s.facts for s in services],
                    "findings": [f.finding for f in findings],
                }
            )

    def close(self) -> None:
        self.engine.dispose()
