"""Audit outputs: audit.json, the report formats of `phiwatch report`, the console text and --diff.

The HTML, CSV, Markdown and SARIF writers render a ScanResult; an audit is handed to them as
one (no services). The HTML and Markdown writers also take an AuditView (what was audited, in
counts) and show each finding's location and fix lines; for CSV and SARIF the location and fix are
folded into the evidence (SARIF also gets physical locations with a start line).
`phiwatch report audit.json` renders the same formats again from audit.json.
Nothing is written in place: --diff prints a unified diff, the files stay as they are.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

from ..models import Finding, ScanInfo, ScanOptions, ScanResult, TargetSummary
from ..reports.atomic import write_atomic
from ..reports.audit_view import NOT_AUDITED, STATUS_LABELS, AuditView, fix_lines
from .model import AuditedFile, AuditResult, FileStatus
from .source import MASK, redact

FORMATS = ("json", "html", "csv", "sarif", "md")


fix_text = fix_lines
# the walker's line for files it only counts (their names are not shown): "N files or folders under ..."
_COUNTED = re.compile(r"^(\d+) files or folders under this path")


def _weight(record: AuditedFile) -> int:
    found = _COUNTED.match(record.message or "") if record.kind is None else None
    return int(found.group(1)) if found else 1


def view(result: AuditResult) -> AuditView:
    """What was audited, in counts: files by kind and by status (never a name)."""
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for record in result.files:
        statuses[record.status.value] += _weight(record)
        if record.status == FileStatus.AUDITED and record.kind:
            kinds[record.kind] += 1
    info, bounds = result.audit, result.audit.bounds
    limits = (f"at most {bounds.max_files:,} files, {bounds.max_bytes:,} bytes a file, folder depth "
              f"{bounds.max_depth}, include depth {bounds.max_include_depth}; served folders "
              + ("sniffed" if bounds.sniff_served else "not read"))
    return AuditView(
        id=info.id, target=info.target, paths=list(info.paths),
        kinds=sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])),
        statuses=[(label, statuses[status]) for status, label in STATUS_LABELS.items() if statuses[status]],
        seen=sum(statuses.values()), parsed=statuses[FileStatus.AUDITED.value],
        not_audited=sum(statuses[status] for status in NOT_AUDITED),
        bounds="read-only calls to the account" if info.target == "s3" else limits)


def as_scan(result: AuditResult, folded: bool = True) -> ScanResult:
    """The audit as a scan without services; `folded` puts location and fix into the evidence."""
    findings: list[Finding] = []
    for finding in result.findings if folded else []:
        where = ""
        if finding.location:
            where = finding.location.path + (f":{finding.location.line}" if finding.location.line else "") + ": "
        fix = fix_text(finding)
        evidence = where + finding.evidence + (" Fix: " + " | ".join(fix) if fix else "")
        findings.append(finding.model_copy(update={"evidence": evidence}))
    info = result.audit
    options = ScanOptions(ports=[], concurrency=0, per_host=0, rate=0, timeout=0, retries=0, max_matches=0,
                          calling_ae="", called_ae="", guess_aet=False, byte_budget=0)
    targets = TargetSummary(specs=info.paths, excludes=[], addresses=0, ports=[])
    scan = ScanInfo(id=info.id, start=info.start, end=info.end, version=info.version, options=options,
                    targets=targets, complete=view(result).complete)
    return ScanResult(scan=scan, findings=findings if folded else list(result.findings))


def scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def write_json(result: AuditResult, directory: Path) -> Path:
    path = write_atomic(directory / "audit.json",
                        scrub(result.model_dump_json(indent=2), result.all_secrets()) + "\n")
    schema = AuditResult.model_json_schema(mode="serialization")
    write_atomic(directory / "audit.schema.json", json.dumps(schema, indent=2) + "\n")
    return path


def write(result: AuditResult, directory: Path, formats: list[str]) -> list[Path]:
    """audit.json and the scan's report formats, secrets masked before any byte reaches the disk."""
    from ..reports import AUDIT_AWARE, write_report

    written = [write_json(result, directory)] if "json" in formats else []
    folded, plain, shown = as_scan(result), as_scan(result, folded=False), view(result)
    secrets = result.all_secrets()
    for name in formats:
        if name in AUDIT_AWARE:
            written.append(write_report(name, plain, directory, lambda text: scrub(text, secrets), shown))
        elif name != "json":
            written.append(write_report(name, folded, directory, lambda text: scrub(text, secrets)))
    return written


def audit_file(reference: str) -> Path | None:
    """An audit.json named directly, or in a folder that has no scan.json: what `phiwatch report` re-renders."""
    path = Path(reference)
    if path.is_dir():
        if (path / "scan.json").exists() or not (path / "audit.json").is_file():
            return None
        return path / "audit.json"
    if path.is_file() and path.name != "scan.json":
        try:
            with path.open("rb") as handle:
                head = handle.read(4096)
        except OSError:
            return None
        if b'"audit"' in head and b'"schema_version"' in head:
            return path
    return None


def load(path: Path) -> AuditResult:
    """audit.json as written (its secrets were masked before it was written)."""
    return AuditResult.model_validate_json(path.read_bytes())


def unified_diff(result: AuditResult, max_bytes: int = 1_048_576) -> str:
    """The fixes as one unified diff per file, secrets masked in every line shown."""
    changes: dict[str, list] = defaultdict(list)
    for finding in result.findings:
        for change in finding.fix or []:
            changes[change.path].append(change)
    out: list[str] = []
    for path, items in sorted(changes.items()):
        try:
            if os.path.getsize(path) > max_bytes:
                continue
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        values, secret_lines = result.secrets_of(path)
        original = []
        for number, line in enumerate(text.splitlines(), 1):
            if number in secret_lines:
                cut = max(line.find(":"), line.find("="))
                line = (line[: cut + 1] + " " + MASK) if cut >= 0 else MASK
            original.append(redact(line, set(values)))
        fixed = list(original)
        replaced: dict[int, str | None] = {}
        inserted: dict[int, list[str]] = defaultdict(list)
        for change in items:
            if change.old is not None:
                replaced.setdefault(change.line, change.new)
            elif change.new is not None:
                for new in change.new.splitlines():
                    if new not in inserted[change.line]:
                        inserted[change.line].append(new)
        fixed = []
        for number, line in enumerate(original, 1):
            if number in replaced:
                if replaced[number] is not None:
                    fixed.append(str(replaced[number]))
            else:
                fixed.append(line)
            fixed.extend(inserted.get(number, []))
        if not original:
            fixed.extend(inserted.get(1, []))
        out.extend(difflib.unified_diff([line + "\n" for line in original], [line + "\n" for line in fixed],
                                        fromfile=f"a{path}", tofile=f"b{path}", n=2))
    return scrub("".join(out), result.all_secrets())


def console_lines(result: AuditResult) -> list[str]:
    lines: list[str] = []
    for record in result.files:
        if record.status != "audited" or record.message:
            lines.append(f"{record.path}: {record.status.value}: {record.message or ''}".rstrip(": "))
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    for finding in sorted(result.findings, key=lambda f: (order[f.severity.value],
                                                          f.location.path if f.location else "")):
        where = ""
        if finding.location:
            where = finding.location.path + (f":{finding.location.line}" if finding.location.line else "")
        service = f" ({finding.protocol} {finding.host + ':' if finding.host else 'port '}{finding.port})" if (
            finding.port) else ""
        lines.append(f"[{finding.severity.value}] {finding.check_id} {where}{service}")
        lines.append(f"    {finding.evidence}")
        lines.extend(f"    {text}" for text in fix_text(finding))
    return [scrub(line, result.all_secrets()) for line in lines]


def summary(result: AuditResult) -> str:
    counts: dict[str, int] = defaultdict(int)
    for finding in result.findings:
        counts[finding.severity.value] += 1
    statuses: dict[str, int] = defaultdict(int)
    for record in result.files:
        statuses[record.status.value] += 1
    severity = ", ".join(f"{counts[s]} {s}" for s in ("critical", "high", "medium", "low", "info") if counts[s])
    files = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    return f"audit {result.audit.id}: files: {files or 'none'}; findings: {severity or 'none'}"
