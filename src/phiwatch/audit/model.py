"""What an audit produces: findings in scan.json's shape with a location, per-file statuses, audit.json."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..checks import Observation, make_finding
from ..checks.metadata import load_catalog
from ..models import Finding, LineChange, Location
from .source import Source, redact


class FileStatus(StrEnum):
    AUDITED = "audited"  # recognised and evaluated
    UNKNOWN = "unknown-kind"  # not a configuration phiwatch knows
    BINARY = "binary"
    TOO_LARGE = "too-large"
    UNREADABLE = "unreadable"
    MALFORMED = "malformed"  # recognised, but its syntax could not be parsed
    SKIPPED = "skipped"  # beyond a bound (files, depth), a link, or not a regular file


class AuditedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    kind: str | None = None
    status: FileStatus
    message: str | None = Field(None, description="One clear line when the file was not fully audited")
    findings: int = 0
    includes: list[str] = Field([], description="Included files that were read with it")
    parser: str | None = Field(None, description="What parsed it, e.g. testparm, crossplane, phiwatch")


class AuditBounds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_files: int = 20_000
    max_bytes: int = 1_048_576
    max_depth: int = 16
    max_include_depth: int = 8
    sniff_served: bool = False


class AuditInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    start: datetime
    end: datetime | None = None
    version: str
    paths: list[str]
    bounds: AuditBounds
    target: Literal["files", "s3"] = "files"


class AuditResult(BaseModel):
    """The output contract of `phiwatch audit`: audit.json."""

    model_config = ConfigDict(extra="forbid", title="phiwatch audit")

    schema_version: Literal[1] = 1
    audit: AuditInfo
    files: list[AuditedFile] = []
    findings: list[Finding] = []
    # per file: the secret values and secret lines its parser found; kept in memory only, to mask them
    _secrets: dict[str, tuple[frozenset[str], frozenset[int]]] = PrivateAttr(default_factory=dict)

    def secrets_of(self, path: str) -> tuple[frozenset[str], frozenset[int]]:
        return self._secrets.get(path, (frozenset(), frozenset()))

    def all_secrets(self) -> set[str]:
        return set().union(*(values for values, _ in self._secrets.values())) if self._secrets else set()


def finding(
    check_id: str,
    evidence: str,
    source: Source | None,
    line: int | None,
    *,
    fix: list[LineChange] | None = None,
    host: str = "",
    port: int = 0,
    protocol: str | None = None,
    location: Location | None = None,
) -> Finding:
    """A finding for a catalog check, at a file's line, with its texts from the catalog."""
    entry = load_catalog()[check_id]
    if "audit" not in entry.sources:
        raise KeyError(f"{check_id} is not an audit check in the catalog")
    secrets = source.secrets if source else set()
    where = location or (Location(path=str(source.path), line=line) if source else None)
    made = make_finding(entry, host, port, protocol or entry.protocols[0], Observation(redact(evidence, secrets)))
    return made.model_copy(update={"location": where, "fix": fix})


def change(source: Source, line: int, old: bool, new: str | None) -> LineChange:
    """A line change in `source`: replace line `line` (old=True) or insert after it (old=False)."""
    return LineChange(
        path=str(source.path),
        line=line,
        old=source.show_line(line) if old else None,
        new=source.show(new) if new is not None else None,
    )
