"""report.md: a Markdown summary and one section per finding, to paste into a ticket.

Evidence and host-derived strings come from hostile hosts: control and bidi characters
become '?', line breaks become spaces, HTML-significant characters become entities and
Markdown-significant ones are backslash-escaped, so nothing turns into markup, a link,
a mention or a table cell.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path

from ..compliance import fully_observed, summarise
from ..geo import ATTRIBUTION, locate, summarise_countries
from ..models import Finding, ScanResult, Severity
from .totals import exposure_by_service, total
from .trust_view import mark, trust_of, trust_view

SEVERITIES = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO]
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Every escaped string follows a prefix on its line, so line-start syntax (1. - + # ---) cannot
# start there; these are the characters that act mid-line: emphasis, code, links and images
# ([ ]), table cells (|), strikethrough, math ($), @mentions and #references; autolinks are
# broken at "://" and "www." by escaping that colon or dot.
_ESCAPED = set("\\`*_[]|~@$#")
LIMIT = 1000


def _autolink(text: str, i: int, ch: str) -> bool:
    return (ch == ":" and text[i + 1:i + 3] == "//") or (ch == "." and text[max(0, i - 3):i].lower() == "www")


def escape(value: object, limit: int = LIMIT) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    out = []
    for i, ch in enumerate(text):
        if ch in "\r\n\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs"):
            out.append("?")
        elif ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch in _ESCAPED or _autolink(text, i, ch):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _summary(result: ScanResult) -> list[str]:
    exposed = exposure_by_service(result.findings)
    sums = total(exposed)
    totals = [sums.studies, sums.instances, sums.dicom, sums.hl7, sums.x12]
    lines = ["## Summary", ""]
    lines += _table(
        ["Exposed services", "Studies", "Instances", "DICOM files", "HL7 files", "X12 files"],
        [[str(len(exposed)), *(str(n) for n in totals)]],
    )
    by_severity = Counter(f.severity for f in result.findings)
    lines += _table(["Severity", "Findings"], [[s.value, str(by_severity[s])] for s in SEVERITIES])
    places = summarise_countries(result)
    if places:
        lines += _table(["Where", "Services", "Exposures"],
                        [[escape(label), str(services), str(exposures)] for label, services, exposures in places])
        lines += [escape(ATTRIBUTION), ""]
    return lines


def _ladder(result: ScanResult) -> list[str]:
    """The exposure ladder and the raw and filtered totals: first, before any finding."""
    view = trust_view(result)
    if view is None:
        return []
    lines = ["## Exposure ladder", "",
             f"Services per step of exposure. Filtered leaves out {view.honeypots} likely honeypots"
             + (" (also left out of the rest of this report)." if view.excluded else ".")
             + (f" {view.fleets} fleets of identical-looking services." if view.fleets else ""), ""]
    for family in view.families:
        lines += _table([family.title, "Raw", "Filtered"],
                        [[row.title, str(row.raw), str(row.filtered)] for row in family.rows])
    lines += _table(["Exposure", "Raw", "Filtered"], [[label, str(raw), str(filtered)]
                                                      for label, raw, filtered in view.totals])
    return lines


def _compliance(result: ScanResult) -> list[str]:
    lines = ["## Compliance", ""]
    complete = fully_observed(result)
    if not complete:
        lines += ["The scan was cut short: no requirement is shown as passing.", ""]
    rows = []
    for summary in summarise(result.findings, complete=complete):
        failing = ", ".join(escape(r.id) for r in summary.requirements if r.status == "fail") or "none"
        rows.append([escape(summary.framework), failing, str(summary.passing), str(summary.not_assessed)])
    lines += _table(["Framework", "Failing requirements", "Passing", "Not assessed"], rows)
    return lines


def _exposure_text(finding: Finding) -> str:
    exposure = finding.exposure
    if exposure is None:
        return "none proven"
    files = exposure.files
    instances = "unknown" if exposure.instances is None else exposure.instances
    text = (f"{exposure.studies} studies, {instances} instances, files: {files.dicom} DICOM, "
            f"{files.hl7} HL7, {files.x12} X12")
    if exposure.worklist_items:
        text += f", {exposure.worklist_items} worklist items"
    if exposure.phi_attributes:
        text += "; PHI attribute names: " + ", ".join(escape(name, 80) for name in exposure.phi_attributes)
    return text


def _finding(number: int, finding: Finding, trust_text: str = "") -> list[str]:
    mapped = finding.compliance
    compliance = "; ".join(
        f"{escape(framework)} {', '.join(escape(r) for r in ids)}" for framework, ids in mapped.items() if ids
    )
    lines = [
        f"### {number}. {escape(finding.title)}",
        "",
        f"- **Severity:** {finding.severity.value}",
        f"- **Check:** {escape(finding.check_id)}",
        f"- **Service:** {escape(finding.host)} port {finding.port}, {escape(finding.protocol)}",
        f"- **Where:** {escape(locate(finding.host).label)}",
        f"- **Evidence:** {escape(finding.evidence)}",
        f"- **Exposure:** {_exposure_text(finding)}",
        f"- **Remediation:** {escape(finding.remediation)}",
        f"- **Compliance:** {compliance or 'none mapped'}",
    ]
    if trust_text:
        lines.insert(4, f"- **Trust:** {escape(trust_text)}")
    if finding.references:
        lines.append("- **References:**")
        lines += [f"  - {escape(reference)}" for reference in finding.references]
    return lines + [""]


def render(result: ScanResult) -> str:
    scan = result.scan
    lines = [
        f"# phiwatch report {escape(scan.id)}",
        "",
        f"Scan started {scan.start.isoformat(timespec='seconds')}"
        + (f", ended {scan.end.isoformat(timespec='seconds')}" if scan.end else "")
        + f"; phiwatch {escape(scan.version)}; {scan.targets.addresses} addresses"
        + ("." if scan.complete else "; incomplete scan."),
        "",
    ]
    lines += _ladder(result)
    lines += _summary(result)
    lines += _compliance(result)
    lines += ["## Findings", ""]
    ordered = sorted(result.findings, key=lambda f: (-f.severity.rank, f.host, f.port, f.check_id))
    trusts = trust_of(result)
    for number, finding in enumerate(ordered, start=1):
        lines += _finding(number, finding, mark(trusts.get((finding.host, finding.port))))
    if not ordered:
        lines += ["No findings.", ""]
    return "\n".join(lines)


def write(result: ScanResult, directory: Path) -> Path:
    from . import write_report

    return write_report("md", result, directory)
