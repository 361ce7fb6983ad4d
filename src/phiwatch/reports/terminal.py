"""Results on the terminal, the way nuclei shows them: one line per finding, worst first, then a
summary that says where the scan is kept and how to render it.

Findings go to stdout (pipe them); the summary and hints go to stderr. Every string a peer
could have influenced is printed without markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from ..models import UNFINISHED, Finding, ScanResult, Service
from ..severity import Severity
from ..targets import address_order
from .totals import scan_counts

STYLES = {
    Severity.CRITICAL: "bold magenta",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "green",
    Severity.INFO: "cyan",
}


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Worst first; then by address, port and check."""
    return sorted(findings, key=lambda f: (-f.severity.rank, address_order(f.host), f.port, f.check_id))


def where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def count_that_matters(finding: Finding) -> str:
    """Studies and instances, files by kind, or PHI attributes: what makes the finding weigh."""
    exposure = finding.exposure
    if exposure is None:
        return ""
    parts = []
    if exposure.studies or exposure.instances:
        instances = "unknown" if exposure.instances is None else exposure.instances
        parts.append(f"{exposure.studies} studies, {instances} instances")
    if exposure.worklist_items:
        parts.append(f"{exposure.worklist_items} worklist items")
    files = exposure.files
    kinds = [f"{n} {kind}" for kind, n in (("DICOM", files.dicom), ("HL7", files.hl7), ("X12", files.x12)) if n]
    if kinds:
        parts.append(", ".join(kinds) + " files")
    if exposure.phi_attributes:
        parts.append(f"{len(exposure.phi_attributes)} PHI attributes")
    return "; ".join(parts)


def finding_line(finding: Finding) -> Text:
    line = Text()
    line.append(f"[{finding.severity.value}]", style=STYLES[finding.severity])
    line.append(f" [{finding.check_id}] {where(finding.host, finding.port)}/{finding.protocol}")
    counts = count_that_matters(finding)
    if counts:
        line.append(f" {counts}", style="bold")
    return line


def service_line(service: Service) -> Text:
    """-v: one line per service found open (or cut short)."""
    line = Text()
    line.append(f"[{service.status.value}]", style="dim" if service.status in UNFINISHED else "blue")
    line.append(f" {where(service.host, service.port)}/{service.protocol}")
    product = _product(service)
    if product:
        line.append(f" {product}")
    if service.detail:
        line.append(f" ({service.detail})", style="dim")
    return line


def _product(service: Service) -> str | None:
    if service.dicom is not None and service.dicom.product:
        return service.dicom.product
    if service.http is not None and service.http.products:
        match = service.http.products[0]
        return f"{match.product} {match.version or ''}".strip()
    return None


def print_findings(findings: Iterable[Finding], out: Console,
                   honeypots: frozenset[tuple[str, int]] = frozenset()) -> None:
    """One line per finding; those of likely honeypots (trust) say so at the end."""
    for finding in ordered(findings):
        line = finding_line(finding)
        if (finding.host, finding.port) in honeypots:
            line.append(" (likely honeypot)", style="dim")
        out.print(line, soft_wrap=True)


def print_services(services: Iterable[Service], out: Console) -> None:
    for service in sorted(services, key=lambda s: (address_order(s.host), s.port)):
        out.print(service_line(service), soft_wrap=True)


def counts(result: ScanResult) -> dict[str, int]:
    """Services by what they say about the target, from the reports' one source (totals.scan_counts)."""
    numbers = scan_counts(result)
    return {"open": numbers.open, "exposed": numbers.exposed, "interrupted": numbers.interrupted,
            "probe_errors": numbers.probe_errors}


def summary_lines(result: ScanResult, shown: list[Finding], stored: Path | None, db_given: bool,
                  written: list[Path]) -> list[str]:
    """What a newcomer needs after the findings: counts, where the scan is, what to run next."""
    scan = result.scan
    summary = scan_counts(result, shown)
    numbers = counts(result)
    state = "complete" if scan.complete else "interrupted, partial results kept"
    elapsed = f" in {(scan.end - scan.start).total_seconds():.1f} s" if scan.end else ""
    services = f"{numbers['open']} open services, {numbers['exposed']} exposed"
    if numbers["interrupted"] or numbers["probe_errors"]:
        services += (f"; {numbers['interrupted']} probes cut short, "
                     f"{numbers['probe_errors']} failed on our side (not counted)")
    lines = [f"scan {scan.id} {state}{elapsed}: {services}"]
    by_severity = summary.by_severity
    sums = summary.exposure
    found = ", ".join(f"{n} {s.value}" for s, n in by_severity.items() if n) or "none"
    data = f"; {sums.studies} studies, {sums.instances} instances" if sums.studies or sums.instances else ""
    if sums.dicom or sums.hl7 or sums.x12:
        data += f"; files: {sums.dicom} DICOM, {sums.hl7} HL7, {sums.x12} X12"
    hidden = len(result.findings) - len(shown)
    lines.append(f"findings: {found}{data}" + (f" ({hidden} below --severity not shown)" if hidden else ""))
    if result.summary is not None and result.summary.likely_honeypots:
        from .trust_view import summary_line

        lines.append(summary_line(result))
    if written:
        folder = written[0].parent
        lines.append(f"written to {folder}/: {', '.join(p.name for p in written)}")
    if stored is not None:
        db = f" --db {stored}" if db_given else ""
        lines.append(f"stored in {stored}; render it with: phiwatch report {scan.id}{db} -o report/")
        if not scan.complete:
            lines.append(f"finish it with: phiwatch scan --resume {scan.id}{db}")
    elif written:
        lines.append(f"not stored (--no-db); render again with: phiwatch report {written[0].parent} -f sarif")
    else:
        lines.append("not stored (--no-db) and no --output: nothing of this scan is kept")
    return lines
