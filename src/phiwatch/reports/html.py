"""report.html: one self-contained page (inline CSS and SVG charts, no script, no fetch).

Everything a scanned host chose (banners, server headers, titles, product names,
evidence, AE titles) is hostile text. The template is rendered with autoescape on
and nothing in it is marked safe: the charts are SVG elements written in the template
from numbers computed here, with their labels escaped like any other text. A strict
Content-Security-Policy forbids scripts and every network fetch as a second line.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..compliance import FrameworkSummary, fully_observed, summarise
from ..geo import ATTRIBUTION, locate
from ..models import UNFINISHED, Finding, ProbeStatus, ScanResult, Service, Severity
from ..targets import address_order
from .audit_view import STATUS_LABELS, AuditView, fix_first_files, fix_lines
from .audit_view import location as location_of
from .digest import by_check, fix_first
from .totals import ScanCounts, count_parts, scan_counts
from .trust_view import mark, trust_view

SEVERITIES = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO]
SEVERITY_COLOURS = {
    Severity.CRITICAL: "#991b1b",
    Severity.HIGH: "#c2410c",
    Severity.MEDIUM: "#a16207",
    Severity.LOW: "#1d4ed8",
    Severity.INFO: "#475569",
}
BAR_COLOUR = "#0f766e"
# Connections that got nowhere, and probes cut short on our side: listed, not counted as answering.
SILENT = {ProbeStatus.REFUSED, ProbeStatus.TIMEOUT, ProbeStatus.UNREACHABLE, ProbeStatus.INTERRUPTED,
          ProbeStatus.PROBE_ERROR}
MAX_BARS = 12
LABEL_CHARS = 30
HOSTS_NAMED = 4  # the check table names this many hosts, then 'and N more'


# --- hostile text ----------------------------------------------------------------------


_WHITESPACE = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def clean(value: object, limit: int = 300) -> str:
    """Text for display: control and format characters (bidi overrides too) become '?', bounded.

    Escaping is the template's job (autoescape); this only keeps text legible and honest.
    """
    text = str(value).replace("\r\n", " ").translate(_WHITESPACE)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "".join("?" if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") else ch for ch in text)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- where a host is ------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    kind: str  # public, private, loopback, link-local, reserved, multicast, unknown
    label: str  # "Germany (DE)", "Private network", ...


def place_of(address: str) -> Place:
    found = locate(address)
    return Place(found.kind, clean(found.label, 80))


@dataclass
class RequirementRow:
    id: str
    title: str
    status: str  # fail, pass, not-assessed
    counts: list[tuple[str, int]]  # severity -> findings, non-zero only, worst first
    checks: list[str]
    reason: str


@dataclass
class FrameworkView:
    framework: str
    name: str
    version: str
    failing: int
    passing: int
    not_assessed: int
    partial: bool
    requirements: list[RequirementRow]
    unassessed: list[tuple[str, list[str]]]  # reason -> requirement ids with no finding at all


def framework_views(summaries: Iterable[FrameworkSummary], titles: dict[str, str],
                    ranks: dict[str, int] | None = None) -> list[FrameworkView]:
    """Requirements with a verdict or with findings in a table (failing first, their checks worst
    first); the rest, without any finding, listed by the reason they were not assessed."""
    ranks = ranks or {}
    order = {"fail": 0, "not-assessed": 1, "pass": 2}
    views = []
    for item in summaries:
        rows: list[RequirementRow] = []
        unassessed: dict[str, list[str]] = {}
        for requirement in item.requirements:
            counts = [(s.value, requirement.findings.get(s, 0)) for s in SEVERITIES]
            if requirement.status == "not-assessed" and not any(n for _, n in counts):
                unassessed.setdefault(clean(requirement.reason or "no reason given", 120), []).append(
                    clean(requirement.id, 60))
                continue
            rows.append(RequirementRow(
                id=clean(requirement.id, 60),
                title=clean(requirement.title, 120),
                status=requirement.status,
                counts=[(s, n) for s, n in counts if n],
                checks=[titles.get(c, clean(c, 64))
                        for c in sorted(requirement.checks, key=lambda c: (-ranks.get(c, 0), c))],
                reason=clean(requirement.reason, 120),
            ))
        rows.sort(key=lambda r: order.get(r.status, 1))
        views.append(FrameworkView(
            framework=clean(item.framework, 40),
            name=clean(item.name, 120),
            version=clean(item.version, 120),
            failing=item.failing,
            passing=item.passing,
            not_assessed=item.not_assessed,
            partial=item.partial,
            requirements=rows,
            unassessed=list(unassessed.items()),
        ))
    return views


# --- charts ---------------------------------------------------------------------------


@dataclass
class Bar:
    label: str
    full_label: str
    value: int
    colour: str
    y: int = 0
    width: float = 0.0
    value_x: float = 0.0


@dataclass
class Chart:
    id: str
    title: str
    caption: str
    bars: list[Bar]
    width: int = 560
    height: int = 0
    label_width: int = 210
    bar_area: int = 290
    row: int = 28
    top: int = 8

    @property
    def aria_label(self) -> str:
        parts = ", ".join(f"{b.full_label}: {b.value}" for b in self.bars)
        return f"{self.title}. {parts}" if parts else f"{self.title}. No data."


def bar_chart(chart_id: str, title: str, caption: str, rows: Iterable[tuple[str, int, str]]) -> Chart:
    """A horizontal bar chart; more than MAX_BARS rows fold into one 'other' bar."""
    items = list(rows)
    if len(items) > MAX_BARS:
        rest = items[MAX_BARS - 1 :]
        items = items[: MAX_BARS - 1] + [(f"{len(rest)} others", sum(v for _, v, _ in rest), "#64748b")]
    chart = Chart(chart_id, title, caption, [])
    peak = max((v for _, v, _ in items), default=0) or 1
    for index, (label, value, colour) in enumerate(items):
        width = round(chart.bar_area * value / peak, 1)
        if value > 0:
            width = max(width, 2.0)
        chart.bars.append(
            Bar(
                label=_short(label),
                full_label=label,
                value=value,
                colour=colour,
                y=chart.top + index * chart.row,
                width=width,
                value_x=chart.label_width + width + 6,
            )
        )
    chart.height = chart.top * 2 + max(len(chart.bars), 1) * chart.row
    return chart


def _ranked(counter: Counter[str]) -> list[tuple[str, int, str]]:
    return [(label, count, BAR_COLOUR) for label, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]


# --- view model -----------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    if moment.tzinfo is not None:
        return moment.strftime("%Y-%m-%d %H:%M:%S %Z").replace("UTC+00:00", "UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: datetime, end: datetime | None) -> str:
    if end is None:
        return "unfinished"
    seconds = max(int((end - start).total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def port_ranges(ports: Iterable[int]) -> str:
    ordered = sorted(set(ports))
    parts: list[str] = []
    start = previous = None
    for port in [*ordered, None]:
        if port is not None and previous is not None and port == previous + 1:
            previous = port
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = port
    return ", ".join(parts)


def _products(service: Service) -> list[str]:
    names: list[str] = []
    if service.dicom is not None:
        vendor, product = service.dicom.vendor, service.dicom.product
        if product and vendor and vendor.split()[0].lower() not in product.lower():
            names.append(f"{vendor} {product}")  # "OFFIS DCMTK 3.6.7", but not "Orthanc project Orthanc"
        elif product or vendor:
            names.append(str(product or vendor))
        elif service.dicom.implementation_version_name:
            names.append(f"DICOM implementation {service.dicom.implementation_version_name}")
    if service.http is not None:
        versioned = {m.product for m in service.http.products if m.version}
        for match in service.http.products:
            if match.version:
                names.append(f"{match.product} {match.version}")
            elif match.product not in versioned:  # "Orthanc" beside "Orthanc 1.10.1" says nothing new
                names.append(match.product)
    unique = list(dict.fromkeys(clean(n, 80) for n in names))
    return unique


def _tls(service: Service) -> str:
    if service.tls is None:
        if service.http is not None and service.http.scheme == "https":
            return "HTTPS"
        if service.dicom is not None and service.dicom.tls:
            return "yes"
        return "none"
    tls = service.tls
    notes = [tls.version or "TLS"]
    if tls.self_signed:
        notes.append("self-signed")
    if tls.expired:
        notes.append("expired")
    return ", ".join(clean(n, 40) for n in notes)


def address(host: str, port: int) -> str:
    """host:port as the console writes it ([v6]:port); shown on one line, never wrapped."""
    host = clean(host, 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class ServiceRow:
    host: str
    location: str
    port: int
    protocol: str
    status: str
    silent: bool
    products: list[str]
    identification: list[tuple[str, str]]
    tls: str
    worst: str | None
    findings: int


@dataclass
class FixRow:
    """One line of the to-do list: a service, its worst finding and what it gives away."""

    address: str
    host: str
    port: int
    protocol: str
    product: str
    worst: str
    worst_title: str
    worst_anchor: str
    counts: list[tuple[str, str]]
    findings: int
    exposed: bool
    mark: str
    honeypot: bool


@dataclass
class Affected:
    """One service a check fired on."""

    address: str
    protocol: str
    location: str
    evidence: str
    counts: list[tuple[str, str]]
    phi_attributes: list[str]
    phi_in_evidence: bool  # the evidence names them all already
    remediation: str | None  # only when it differs from the check's
    mark: str
    honeypot: bool
    where: str = ""  # an audit finding: path:line
    service: str = ""  # an audit finding about a listening service: its port (and address when bound to one)
    fix: list[str] = field(default_factory=list)  # an audit finding: the lines to change


@dataclass
class CheckGroup:
    """A check that fired: its texts once, then every service it fired on."""

    anchor: str
    check_id: str
    title: str
    severity: str
    description: str | None
    risk: str | None
    remediation: str
    references: list[str]
    categories: list[str]
    requirements: list[tuple[str, list[str]]]
    affected: list[Affected]
    hosts: list[str]

    @property
    def has_counts(self) -> bool:
        return any(a.counts for a in self.affected)

    @property
    def hosts_text(self) -> str:
        shown = self.hosts[:HOSTS_NAMED]
        more = len(self.hosts) - len(shown)
        return ", ".join(shown) + (f" and {more} more" if more else "")


@dataclass
class Tile:
    label: str
    value: str
    note: str = ""
    id: str = ""
    breakdown: list[tuple[str, int, str]] = field(default_factory=list)


def _identification(service: Service) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if service.http is not None:
        if service.http.server:
            rows.append(("Server", clean(service.http.server, 160)))
        if service.http.title:
            rows.append(("Title", clean(service.http.title, 160)))
        if service.http.status_code is not None:
            rows.append(("HTTP", str(service.http.status_code)))
        if service.http.auth_scheme:
            rows.append(("Auth", clean(service.http.auth_scheme, 40)))
    if service.dicom is not None:
        rows.append(("Called AE", clean(service.dicom.called_ae, 20)))
        rows.append(("Association", service.dicom.association))
        if service.dicom.implementation_version_name:
            rows.append(("Implementation", clean(service.dicom.implementation_version_name, 40)))
    if service.banner and service.http is None and service.dicom is None:
        rows.append(("Banner", clean(service.banner, 160)))
    if service.detail:
        rows.append(("Detail", clean(service.detail, 160)))
    return rows


def _requirements(finding: Finding) -> list[tuple[str, list[str]]]:
    return [(clean(fw, 40), [clean(i, 60) for i in ids]) for fw, ids in finding.compliance.items() if ids]


def _short_mark(service: Service | None) -> str:
    """The fix-first table's trust mark: the verdict and score; the reasons are in the findings."""
    trust = service.trust if service is not None else None
    if trust is None or not trust.reasons:
        return ""
    return f"likely honeypot {trust.score:.2f}" if trust.honeypot else f"trust {trust.score:.2f}"


def _affected(f: Finding, remediation: str, location: str, trust: tuple[str, bool]) -> Affected:
    evidence = clean(f.evidence, 2000)
    phi = [clean(a, 64) for a in (f.exposure.phi_attributes if f.exposure else [])]
    own = clean(f.remediation, 4000)
    return Affected(
        address=address(f.host, f.port), protocol=clean(f.protocol, 20), location=location, evidence=evidence,
        counts=count_parts(f.exposure), phi_attributes=phi, phi_in_evidence=all(name in evidence for name in phi),
        remediation=own if own != remediation else None, mark=trust[0], honeypot=trust[1],
        where=clean(location_of(f), 400), fix=[clean(line, 400) for line in fix_lines(f)],
        service=(f"{clean(f.protocol, 20)} " + (address(f.host, f.port) if f.host else f"port {f.port}"))
        if f.port else "")


def _tiles(result: ScanResult, numbers: ScanCounts, truncated: bool, hosts_with_findings: int,
           hosts_open: int) -> list[Tile]:
    sums = numbers.exposure
    at_least = "≥ " if truncated else ""
    open_note = f"of {plural(numbers.open, 'open service')}"
    if numbers.unfinished:
        open_note += f"; {plural(numbers.unfinished, 'probe')} cut short or failed on our side, not counted"
    instances_note = "in those studies"
    if numbers.unknown_instances:
        instances_note += f"; {plural(numbers.unknown_instances, 'service')} did not say how many (not counted)"
    tiles = [
        Tile("Exposed services", str(numbers.exposed), open_note, "exposed"),
        Tile("Studies", f"{at_least}{sums.studies:,}", "listed without authentication", "studies"),
        Tile("Instances", f"{at_least}{sums.instances:,}", instances_note, "instances"),
    ]
    if sums.worklist_items:
        tiles.append(Tile("Worklist items", f"{at_least}{sums.worklist_items:,}", "scheduled procedures listed",
                          "worklist"))
    tiles += [
        Tile("Files", f"{sums.files:,}", f"DICOM {sums.dicom:,} · HL7 {sums.hl7:,} · X12 {sums.x12:,}", "files"),
        Tile("Findings", f"{numbers.findings:,}", "", "findings",
             [(s.value, numbers.by_severity.get(s, 0), SEVERITY_COLOURS[s]) for s in SEVERITIES]),
        Tile("Hosts with findings", str(hosts_with_findings),
             f"of {plural(hosts_open, 'host')} with open services; "
             f"{plural(result.scan.targets.addresses, 'address', 'addresses')} scanned", "hosts"),
    ]
    return tiles


@dataclass
class FileRow:
    """The audit's fix-first row: a configuration file, its worst finding and where it is."""

    path: str
    worst: str
    worst_title: str
    worst_anchor: str
    where: str
    findings: int


def _audit_context(audit: AuditView, groups: list[CheckGroup], anchors: dict[tuple[str, int, str], str],
                   result: ScanResult, numbers: ScanCounts) -> dict[str, Any]:
    """What an audit shows instead of the scan's header, tiles, fix-first table, charts and services."""
    rows = [FileRow(path=clean(item.path, 400), worst=item.worst.severity.value,
                    worst_title=clean(item.worst.title, 160),
                    worst_anchor=anchors.get((item.worst.host, item.worst.port, item.worst.check_id), ""),
                    where=clean(location_of(item.worst), 400), findings=item.findings)
            for item in fix_first_files(result.findings)]
    files_with_findings = {f.location.path for f in result.findings if f.location is not None}
    tiles = [
        Tile("Configurations parsed", f"{audit.parsed:,}", f"of {plural(audit.seen, 'file')} seen", "parsed"),
        Tile("Not fully audited", f"{audit.not_audited:,}", "malformed, too large, unreadable or skipped",
             "not-audited"),
        Tile("Findings", f"{numbers.findings:,}", "", "findings",
             [(s.value, numbers.by_severity.get(s, 0), SEVERITY_COLOURS[s]) for s in SEVERITIES]),
        Tile("Files with findings", f"{len(files_with_findings):,}", f"of {plural(audit.parsed, 'configuration')}",
             "files"),
    ]
    return {
        "audit": {
            "id": clean(audit.id, 80),
            "target": audit.target,
            "paths": [clean(p, 200) for p in audit.paths[:12]],
            "more_paths": max(len(audit.paths) - 12, 0),
            "kinds": [(clean(k, 60), n) for k, n in audit.kinds],
            "statuses": audit.statuses,
            "status_labels": STATUS_LABELS,
            "seen": audit.seen,
            "parsed": audit.parsed,
            "not_audited": audit.not_audited,
            "complete": audit.complete,
            "bounds": clean(audit.bounds, 300),
        },
        "tiles": tiles,
        "fix_files": rows,
    }


def build_context(result: ScanResult, audit: AuditView | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain strings and numbers; with `audit`, an audit's report."""
    places: dict[str, Place] = {}

    def where(host: str) -> Place:
        if host not in places:
            places[host] = place_of(host)
        return places[host]

    findings = sorted(
        result.findings, key=lambda f: (-f.severity.rank, address_order(f.host), f.port, f.check_id)
    )
    services = sorted(result.services, key=lambda s: (address_order(s.host), s.port))
    by_service: dict[tuple[str, int], list[Finding]] = defaultdict(list)
    for finding in findings:
        by_service[(finding.host, finding.port)].append(finding)
    marks = {(s.host, s.port): (clean(mark(s.trust), 400), s.trust.honeypot)
             for s in services if s.trust is not None and mark(s.trust)}

    numbers = scan_counts(result)
    truncated = any(
        (s.dicom is not None and s.dicom.query is not None and s.dicom.query.truncated)
        or (s.http is not None and any(d.truncated for d in s.http.dicomweb))
        for s in services
    )
    answering = [s for s in services if s.status not in SILENT and s.status not in UNFINISHED]
    severity_counts = numbers.by_severity
    hosts_with_findings = {f.host for f in findings}
    hosts_open = {s.host for s in services if s.status not in UNFINISHED}
    tiles = _tiles(result, numbers, truncated, len(hosts_with_findings), len(hosts_open))

    # Findings by check: the check's texts once, then the services it fired on.
    groups: list[CheckGroup] = []
    anchors: dict[tuple[str, int, str], str] = {}
    for number, found in enumerate(by_check(findings), 1):
        first = found[0]
        group = CheckGroup(  # the texts the finding was made with (checks.make_finding), once per check
            anchor=f"check-{number}", check_id=clean(first.check_id, 64), title=clean(first.title, 160),
            severity=first.severity.value, description=first.description or None, risk=first.risk or None,
            remediation=clean(first.remediation, 4000), references=[clean(r, 300) for r in first.references],
            categories=list(first.categories), requirements=_requirements(first), affected=[], hosts=[])
        groups.append(group)
        if audit is not None:  # each location once, in file and line order
            found = sorted(found, key=lambda f: (f.location.path if f.location else "",
                                                 (f.location.line or 0) if f.location else 0))
        for f in found:
            anchors[(f.host, f.port, f.check_id)] = group.anchor
            group.affected.append(_affected(f, group.remediation, where(f.host).label,
                                            marks.get((f.host, f.port), ("", False))))
            host = clean(f.location.path if audit is not None and f.location else f.host, 200)
            if host not in group.hosts:
                group.hosts.append(host)

    # Fix first: every exposed service and every service with a critical or high finding, worst first.
    fix_rows = []
    for item in fix_first(result):
        key = (item.host, item.port)
        trust_text, honeypot = _short_mark(item.service), key in marks and marks[key][1]
        worst = item.worst
        fix_rows.append(FixRow(
            address=address(*key), host=clean(item.host, 80), port=item.port, protocol=clean(item.protocol, 20),
            product=", ".join(_products(item.service)) if item.service else "",
            worst=worst.severity.value if worst else "",
            worst_title=clean(worst.title, 160) if worst else "data returned",
            worst_anchor=anchors.get((item.host, item.port, worst.check_id), "") if worst else "",
            counts=count_parts(item.exposure), findings=item.findings, exposed=item.exposed, mark=trust_text,
            honeypot=honeypot))

    protocol_counts: Counter[str] = Counter(clean(s.protocol, 20) for s in answering)
    product_counts: Counter[str] = Counter()
    for s in answering:
        for name in _products(s):
            product_counts[name] += 1
    location_counts: Counter[str] = Counter(where(h).label for h in hosts_open)
    exposed_location_counts: Counter[str] = Counter(where(h).label for h, _ in numbers.exposed_keys)
    charts = [
        bar_chart("chart-severity", "Findings by severity", "Every finding, by the catalog's severity.",
                  [(s.value, severity_counts.get(s, 0), SEVERITY_COLOURS[s]) for s in SEVERITIES]),
        bar_chart("chart-protocol", "Services by protocol", "Services that answered, by identified protocol.",
                  _ranked(protocol_counts)),
        bar_chart("chart-products", "Products and versions",
                  "Services by product fingerprint (DICOM implementation, web pages, file servers).",
                  _ranked(product_counts)),
        bar_chart("chart-country", "Hosts by country or network",
                  "Hosts with at least one open service, by location.", _ranked(location_counts)),
    ]
    if exposed_location_counts:
        charts.append(bar_chart("chart-exposed-country", "Exposed services by country or network",
                                "Services that gave out patient data, by location of the host.",
                                _ranked(exposed_location_counts)))
    charts = [c for c in charts if c.bars and any(b.value for b in c.bars)]

    titles = {f.check_id: clean(f.title, 160) for f in findings}
    complete = fully_observed(result)
    ranks = {f.check_id: f.severity.rank for f in findings}
    frameworks = framework_views(summarise(result.findings, complete=complete), titles, ranks)

    service_rows = []
    for s in services:
        items = by_service.get((s.host, s.port), [])
        worst_severity = items[0].severity if items else None
        service_rows.append(
            ServiceRow(
                host=clean(s.host, 80),
                location=where(s.host).label,
                port=s.port,
                protocol=clean(s.protocol, 20),
                status=s.status.value,
                silent=s.status in SILENT or s.status in UNFINISHED,
                products=_products(s),
                identification=_identification(s),
                tls=_tls(s),
                worst=worst_severity.value if worst_severity else None,
                findings=len(items),
            )
        )

    info = result.scan
    specs = [clean(s, 120) for s in info.targets.specs]
    audit_context = _audit_context(audit, groups, anchors, result, numbers) if audit is not None else {
        "audit": None, "fix_files": []}
    return {
        "scan": {
            "id": clean(info.id, 80),
            "start": _when(info.start),
            "end": _when(info.end),
            "duration": _duration(info.start, info.end),
            "version": clean(info.version, 40),
            "complete": info.complete,
            "fully_observed": complete,
            "unfinished": numbers.unfinished,
            "addresses": info.targets.addresses,
            "addresses_text": plural(info.targets.addresses, "address", "addresses"),
            "addresses_done": info.addresses_done,
            "specs": specs[:12],
            "more_specs": max(len(specs) - 12, 0),
            "excludes": [clean(s, 120) for s in info.targets.excludes[:12]],
            "ports": _short(port_ranges(info.targets.ports), 200),
            "port_count": len(set(info.targets.ports)),
            "try_default_logins": info.options.try_default_logins,
            "max_matches": info.options.max_matches,
        },
        "tiles": tiles,
        "truncated": truncated,
        "charts": charts,
        "fix_first": fix_rows,
        "groups": groups,
        "findings_count": len(findings),
        "services": service_rows,
        "frameworks": frameworks,
        "attribution": ATTRIBUTION,
        "severity_colours": {s.value: c for s, c in SEVERITY_COLOURS.items()},
        "trust": trust_view(result),
        "trust_marks": {
            f"{clean(s.host, 80)}:{s.port}": {"text": clean(mark(s.trust), 400), "honeypot": s.trust.honeypot}
            for s in services if s.trust is not None and mark(s.trust)
        },
        **audit_context,
    }


# --- rendering ------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("phiwatch.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(result: ScanResult, audit: AuditView | None = None) -> str:
    template = _environment().get_template("report.html.j2")
    return template.render(**build_context(result, audit))


def write(result: ScanResult, directory: Path) -> Path:
    from . import write_report

    return write_report("html", result, directory)
