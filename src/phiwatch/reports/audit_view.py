"""What the HTML and Markdown reports show of a configuration audit beyond its findings: what was
audited (the paths given, files by kind, files by status: counts only, never the names of files that
are not configurations), and each finding's location and fix lines. Plain data; each writer escapes.

The audit package builds it (phiwatch.audit.report.view); the writers take it as an optional
second argument, so one writer renders a scan or an audit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Finding, Severity

# audit.json's per-file statuses, as a reader says them, in the order the report lists them
STATUS_LABELS: dict[str, str] = {
    "audited": "parsed",
    "unknown-kind": "unknown kind",
    "binary": "binary",
    "malformed": "malformed",
    "too-large": "too large",
    "unreadable": "unreadable",
    "skipped": "skipped (beyond a bound, a link or not a regular file)",
}
# statuses that leave a configuration unread: with one of them, no requirement may pass
NOT_AUDITED = ("malformed", "too-large", "unreadable", "skipped")


@dataclass(frozen=True)
class AuditView:
    id: str
    target: str  # "files" or "s3"
    paths: list[str]
    kinds: list[tuple[str, int]]  # kind -> parsed files, most first
    statuses: list[tuple[str, int]]  # status label -> files, in STATUS_LABELS order, non-zero only
    seen: int  # files and folders seen in all
    parsed: int
    not_audited: int  # files with a NOT_AUDITED status
    bounds: str

    @property
    def complete(self) -> bool:
        """Something was parsed and nothing that may be a configuration was left unread."""
        return self.parsed > 0 and self.not_audited == 0


def location(finding: Finding) -> str:
    """path:line of a configuration finding ('' for a network finding)."""
    if finding.location is None:
        return ""
    line = finding.location.line
    return finding.location.path + (f":{line}" if line else "")


def fix_lines(finding: Finding) -> list[str]:
    """The fix as the lines to change: '- old' / '+ new' with their line numbers."""
    lines: list[str] = []
    for change in finding.fix or []:
        if change.old is not None:
            lines.append(f"line {change.line}: - {change.old.strip()}")
            if change.new is not None:
                lines.append(f"line {change.line}: + {change.new.strip()}")
        elif change.new is not None:
            for new in change.new.splitlines():
                lines.append(f"after line {change.line}: + {new.strip()}")
    return lines


@dataclass
class FileItem:
    """One configuration file with a critical or high finding: the audit's fix-first row."""

    path: str
    worst: Finding
    findings: int


def fix_first_files(findings: Iterable[Finding]) -> list[FileItem]:
    """Configuration files with a critical or high finding, worst first, then most findings, then by path."""
    by_file: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.location is not None:
            by_file.setdefault(finding.location.path, []).append(finding)
    items = []
    for path, found in by_file.items():
        found.sort(key=lambda f: (-f.severity.rank, (f.location.line or 0) if f.location else 0, f.check_id))
        if found[0].severity.rank >= Severity.HIGH.rank:
            items.append(FileItem(path, found[0], len(found)))
    items.sort(key=lambda i: (-i.worst.severity.rank, -i.findings, i.path))
    return items
