"""findings.csv: one row per finding, for spreadsheets and ticket imports.

Every cell comes from a Finding (plus its compliance mapping and the host's country).
Cells a spreadsheet would run as a formula (= + - @ tab CR LF first) get a leading '.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..geo import locate
from ..models import Finding, ScanResult, Trust
from .trust_view import trust_of

COLUMNS = [
    "scan_id", "check_id", "title", "severity", "host", "port", "protocol", "country", "evidence",
    "studies", "instances", "files_dicom", "files_hl7", "files_x12", "phi_attributes", "hipaa", "gdpr",
    "remediation", "trust_score", "likely_honeypot", "trust_reasons", "cluster",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def defuse(value: object) -> str:
    text = str(value).replace("\x00", "")
    return "'" + text if text.startswith(FORMULA_START) else text


def row(scan_id: str, finding: Finding, trust: Trust | None = None) -> list[str]:
    exposure = finding.exposure
    mapped = finding.compliance
    values: list[object] = [
        scan_id, finding.check_id, finding.title, finding.severity.value, finding.host, finding.port,
        finding.protocol, locate(finding.host).label, finding.evidence,
        exposure.studies if exposure else "",
        ("unknown" if exposure.instances is None else exposure.instances) if exposure else "",
        exposure.files.dicom if exposure else "", exposure.files.hl7 if exposure else "",
        exposure.files.x12 if exposure else "", ";".join(exposure.phi_attributes) if exposure else "",
        ";".join(mapped.get("HIPAA", [])), ";".join(mapped.get("GDPR", [])), finding.remediation,
        f"{trust.score:.3f}" if trust else "", ("yes" if trust.honeypot else "no") if trust else "",
        ";".join(r.value for r in trust.reasons) if trust else "", (trust.cluster or "") if trust else "",
    ]
    return [defuse(value) for value in values]


def render(result: ScanResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    trusts = trust_of(result)
    for finding in result.findings:
        writer.writerow(row(result.scan.id, finding, trusts.get((finding.host, finding.port))))
    return buffer.getvalue()


def write(result: ScanResult, directory: Path) -> Path:
    from . import write_report

    return write_report("csv", result, directory)
