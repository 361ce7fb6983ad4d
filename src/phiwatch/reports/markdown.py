"""report.md: the HTML report's order in Markdown, to paste into a ticket: summary, exposure ladder,
the services to fix first, findings grouped by check (texts once, then the services), compliance.
Given an AuditView, the same order for a configuration audit: what was audited (counts), the files
to fix first, findings by check with their location and fix lines, compliance.

Evidence and host-derived strings come from hostile hosts: control and bidi characters
become '?', line breaks become spaces, HTML-significant characters become entities and
Markdown-significant ones are backslash-escaped, so nothing turns into markup, a link,
a mention or a table cell.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from ..compliance import INFO_ONLY, fully_observed, summarise
from ..geo import ATTRIBUTION, locate, summarise_countries
from ..models import Exposure, Finding, ScanResult, Severity, Trust
from .audit_view import AuditView, fix_first_files, fix_lines, location
from .digest import by_check, fix_first
from .totals import count_parts, scan_counts
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
    numbers = scan_counts(result)
    sums = numbers.exposure
    lines = ["## Summary", ""]
    lines += _table(
        ["Open services", "Exposed services", "Studies", "Instances", "Worklist items", "DICOM files", "HL7 files",
         "X12 files"],
        [[str(n) for n in (numbers.open, numbers.exposed, sums.studies, sums.instances, sums.worklist_items,
                           sums.dicom, sums.hl7, sums.x12)]],
    )
    if numbers.unfinished:
        lines += [f"{numbers.unfinished} probes were cut short or failed on our side: not counted as open.", ""]
    lines += _table(["Severity", "Findings"], [[s.value, str(numbers.by_severity[s])] for s in SEVERITIES])
    places = summarise_countries(result)
    if places:
        lines += _table(["Where", "Services", "Exposures"],
                        [[escape(label), str(services), str(exposures)] for label, services, exposures in places])
        lines += [escape(ATTRIBUTION), ""]
    return lines


def _where(host: str, port: int) -> str:
    return escape(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def _counts(exposure: Exposure | None) -> str:
    return ", ".join(f"{number} {what}" for number, what in count_parts(exposure))


def _fix_first(result: ScanResult) -> list[str]:
    items = fix_first(result)
    lines = ["## Fix first", ""]
    if not items:
        return lines + ["No service gave out data, and no critical or high finding.", ""]
    lines += ["Every service that gave out data without authentication, and every service with a critical or high "
              "finding, worst first.", ""]
    rows = []
    for item in items:  # no product column: this report prints no fact a service told about itself
        worst = item.worst
        rows.append([_where(item.host, item.port), escape(item.protocol),
                     f"{worst.severity.value}: {escape(worst.title)}" if worst else "data returned",
                     _counts(item.exposure) or "-", str(item.findings)])
    return lines + _table(["Service", "Protocol", "Worst finding", "Exposed", "Findings"], rows)


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


def _audited(audit: AuditView) -> list[str]:
    """What an audit read, in counts: never the name of a file that is not a configuration."""
    lines = ["## What was audited", "",
             "Counts only: files that are not configurations are never named (folders of medical data are often "
             "named after patients).", ""]
    lines += _table(["Configurations parsed, by kind", "Files"],
                    [[escape(kind), str(count)] for kind, count in audit.kinds] or [["none recognised", "0"]])
    lines += _table(["Files by status", "Files"],
                    [[escape(status), str(count)] for status, count in audit.statuses] + [["seen in all",
                                                                                             str(audit.seen)]])
    if not audit.complete:
        files = "1 file" if audit.not_audited == 1 else f"{audit.not_audited} files"
        lines += [f"{files} could not be fully audited: what was not read is not in this report."
                  if audit.parsed else "No configuration was parsed.", ""]
    return lines


def _audit_fix_first(result: ScanResult) -> list[str]:
    items = fix_first_files(result.findings)
    lines = ["## Fix first", ""]
    if not items:
        return lines + ["No configuration has a critical or high finding.", ""]
    lines += ["Every configuration with a critical or high finding, worst first.", ""]
    rows = [[escape(item.path), f"{item.worst.severity.value}: {escape(item.worst.title)}",
             escape(location(item.worst)), str(item.findings)] for item in items]
    return lines + _table(["Configuration", "Worst finding", "Where", "Findings"], rows)


def _compliance(result: ScanResult, audit: AuditView | None = None) -> list[str]:
    lines = ["## Compliance", ""]
    complete = fully_observed(result)
    if audit is not None:
        lines += ["A requirement passes only when every configuration found was read and none of its checks fired "
                  "in them; it speaks for the configurations audited here only.", ""]
        if not complete:
            lines += ["Not every configuration could be read: no requirement is shown as passing.", ""]
    elif not complete:
        lines += ["The scan was cut short: no requirement is shown as passing.", ""]
    rows = []
    for summary in summarise(result.findings, complete=complete):
        failing = ", ".join(escape(r.id) for r in summary.requirements if r.status == "fail") or "none"
        review = ", ".join(escape(r.id) for r in summary.requirements if r.reason == INFO_ONLY) or "none"
        rows.append([escape(summary.framework), failing, str(summary.passing), str(summary.not_assessed), review])
    lines += _table(["Framework", "Failing requirements", "Passing", "Not assessed",
                     "Only informational findings (review)"], rows)
    return lines


def _check(number: int, group: list[Finding], trusts: dict[tuple[str, int], Trust],
           audit: bool = False) -> list[str]:
    """One check: its texts once, then a row per service (an audit: per location) it fired on."""
    first = group[0]
    description, risk = first.description, first.risk  # the texts the finding was made with
    compliance = "; ".join(f"{escape(framework)} {', '.join(escape(r) for r in ids)}"
                           for framework, ids in first.compliance.items() if ids)
    services = ("location" if audit else "service") + ("" if len(group) == 1 else "s")
    lines = [f"### {number}. {escape(first.title)}", "",
             f"- **Severity:** {first.severity.value}, {len(group)} {services}",
             f"- **Check:** {escape(first.check_id)}"]
    if description:
        lines.append(f"- **What it means:** {escape(description)}")
    if risk:
        lines.append(f"- **Risk:** {escape(risk)}")
    lines += [f"- **Remediation:** {escape(first.remediation)}",
              f"- **Compliance:** {compliance or 'none mapped'}"]
    if first.references:
        lines.append("- **References:**")
        lines += [f"  - {escape(reference)}" for reference in first.references]
    lines.append("")
    if audit:
        return lines + _locations(group, first)
    rows = []
    for finding in group:
        exposure = _counts(finding.exposure)
        if finding.exposure is not None and finding.exposure.phi_attributes:
            exposure += ("; " if exposure else "") + "PHI attribute names: " + ", ".join(
                escape(name, 80) for name in finding.exposure.phi_attributes)
        evidence = escape(finding.evidence)
        if finding.remediation != first.remediation:
            evidence += f" Remediation here: {escape(finding.remediation)}"
        trust_text = mark(trusts.get((finding.host, finding.port)))
        rows.append([_where(finding.host, finding.port), escape(finding.protocol),
                     escape(locate(finding.host).label), evidence, exposure or "-",
                     f"**Trust:** {escape(trust_text)}" if trust_text else "-"])
    return lines + _table(["Service", "Protocol", "Where", "Evidence", "Counts", "Trust"], rows)


def _locations(group: list[Finding], first: Finding) -> list[str]:
    """An audit check's rows: location, evidence and the lines to change, in file and line order."""
    rows = []
    for finding in sorted(group, key=lambda f: (f.location.path if f.location else "",
                                                (f.location.line or 0) if f.location else 0)):
        evidence = escape(finding.evidence)
        if finding.remediation != first.remediation:
            evidence += f" Remediation here: {escape(finding.remediation)}"
        # escaped text, not code spans: a backslash escape would show inside a code span
        fix = "<br>".join(escape(line, 400) for line in fix_lines(finding)) or "see the remediation"
        rows.append([escape(location(finding)) or "-", evidence, fix])
    return _table(["Location", "Evidence", "Fix: lines to change"], rows)


def _render_audit(result: ScanResult, audit: AuditView) -> str:
    scan = result.scan
    paths = ", ".join(escape(p, 200) for p in audit.paths[:12])
    lines = [
        f"# phiwatch configuration audit {escape(audit.id)}",
        "",
        f"Audit started {scan.start.isoformat(timespec='seconds')}"
        + (f", ended {scan.end.isoformat(timespec='seconds')}" if scan.end else "")
        + f"; phiwatch {escape(scan.version)}; audited: {paths or 'nothing'}"
        + (f" and {len(audit.paths) - 12} more" if len(audit.paths) > 12 else "")
        + f"; {audit.parsed} of {audit.seen} files parsed" + ("." if audit.complete else "; partial audit."),
        "",
        f"Limits: {escape(audit.bounds)}. Nothing was changed in the files audited; secret values are masked.",
        "",
    ]
    lines += _audited(audit)
    lines += ["## Findings by severity", ""]
    lines += _table(["Severity", "Findings"],
                    [[s.value, str(sum(f.severity == s for f in result.findings))] for s in SEVERITIES])
    lines += _audit_fix_first(result)
    lines += ["## Findings", ""]
    groups = by_check(result.findings)
    for number, group in enumerate(groups, start=1):
        lines += _check(number, group, {}, audit=True)
    if not groups:
        lines += ["No findings.", ""]
    lines += _compliance(result, audit)
    return "\n".join(lines)


def render(result: ScanResult, audit: AuditView | None = None) -> str:
    if audit is not None:
        return _render_audit(result, audit)
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
    lines += _summary(result)
    lines += _ladder(result)  # before the fix-first table and the findings, as in report.html
    lines += _fix_first(result)
    lines += ["## Findings", ""]
    groups = by_check(result.findings)
    trusts = trust_of(result)
    for number, group in enumerate(groups, start=1):
        lines += _check(number, group, trusts)
    if not groups:
        lines += ["No findings.", ""]
    lines += _compliance(result)
    return "\n".join(lines)


def write(result: ScanResult, directory: Path) -> Path:
    from . import write_report

    return write_report("md", result, directory)
