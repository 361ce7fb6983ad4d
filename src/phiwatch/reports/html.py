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
from ..models import Finding, ProbeStatus, ScanResult, Service, Severity
from ..targets import address_order
from .totals import exposure_by_service, total
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


@dataclass
class FrameworkView:
    framework: str
    name: str
    version: str
    failing: int
    passing: int
    not_assessed: int
    requirements: list[RequirementRow]
    unassessed: list[str]


def framework_views(summaries: Iterable[FrameworkSummary], titles: dict[str, str]) -> list[FrameworkView]:
    views = []
    for item in summaries:
        rows: list[RequirementRow] = []
        unassessed: list[str] = []
        for requirement in item.requirements:
            if requirement.status == "not-assessed":
                unassessed.append(clean(requirement.id, 60))
                continue
            counts = [(s.value, requirement.findings.get(s, 0)) for s in SEVERITIES]
            rows.append(RequirementRow(
                id=clean(requirement.id, 60),
                title=clean(requirement.title, 120),
                status=requirement.status,
                counts=[(s, n) for s, n in counts if n],
                checks=[titles.get(c, clean(c, 64)) for c in requirement.checks],
            ))
        rows.sort(key=lambda r: {"fail": 0, "pass": 1}[r.status])
        views.append(FrameworkView(
            framework=clean(item.framework, 40),
            name=clean(item.name, 120),
            version=clean(item.version, 120),
            failing=item.failing,
            passing=item.passing,
            not_assessed=item.not_assessed,
            requirements=rows,
            unassessed=unassessed,
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
class FindingView:
    anchor: str
    check_id: str
    title: str
    severity: str
    colour: str
    host: str
    port: int
    protocol: str
    location: str
    evidence: str
    studies: int | None
    instances: int | None
    worklist_items: int
    files: list[tuple[str, int]]
    phi_attributes: list[str]
    description: str | None
    risk: str | None
    categories: list[str]
    remediation: str
    references: list[str]
    requirements: list[tuple[str, list[str]]]


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


def build_context(result: ScanResult) -> dict[str, Any]:
    """Everything the template shows, as plain strings and numbers."""
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

    exposure = {key: counts for key, counts in exposure_by_service(findings).items() if any(vars(counts).values())}
    exposed_keys = set(exposure) | {(s.host, s.port) for s in services if s.status is ProbeStatus.EXPOSED}
    truncated = any(
        (s.dicom is not None and s.dicom.query is not None and s.dicom.query.truncated)
        or (s.http is not None and any(d.truncated for d in s.http.dicomweb))
        for s in services
    )
    totals = vars(total(exposure))
    at_least = "≥ " if truncated else ""
    answering = [s for s in services if s.status not in SILENT]
    severity_counts = Counter(f.severity for f in findings)
    hosts_with_findings = {f.host for f in findings}
    hosts_answering = {s.host for s in answering}

    tiles = [
        Tile("Exposed services", str(len(exposed_keys)), f"of {plural(len(answering), 'service')} answering",
             "exposed"),
        Tile("Studies", f"{at_least}{totals['studies']:,}", "listed without authentication", "studies"),
        Tile("Instances", f"{at_least}{totals['instances']:,}", "images linked to those studies", "instances"),
        Tile(
            "Files",
            f"{totals['dicom'] + totals['hl7'] + totals['x12']:,}",
            f"DICOM {totals['dicom']:,} · HL7 {totals['hl7']:,} · X12 {totals['x12']:,}",
            "files",
        ),
        Tile(
            "Findings",
            str(len(findings)),
            "",
            "findings",
            [(s.value, severity_counts.get(s, 0), SEVERITY_COLOURS[s]) for s in SEVERITIES],
        ),
        Tile(
            "Hosts with findings",
            str(len(hosts_with_findings)),
            f"of {plural(len(hosts_answering), 'host')} answering; "
            f"{plural(result.scan.targets.addresses, 'address', 'addresses')} scanned",
            "hosts",
        ),
    ]

    protocol_counts: Counter[str] = Counter(clean(s.protocol, 20) for s in answering)
    product_counts: Counter[str] = Counter()
    for s in answering:
        for name in _products(s):
            product_counts[name] += 1
    location_counts: Counter[str] = Counter(where(h).label for h in hosts_answering)
    exposed_location_counts: Counter[str] = Counter(where(h).label for h, _ in exposed_keys)
    charts = [
        bar_chart("chart-severity", "Findings by severity", "Every finding, by the catalog's severity.",
                  [(s.value, severity_counts.get(s, 0), SEVERITY_COLOURS[s]) for s in SEVERITIES]),
        bar_chart("chart-protocol", "Services by protocol", "Services that answered, by identified protocol.",
                  _ranked(protocol_counts)),
        bar_chart("chart-products", "Products and versions",
                  "Services by product fingerprint (DICOM implementation, web PACS pages).",
                  _ranked(product_counts)),
        bar_chart("chart-country", "Hosts by country or network",
                  "Hosts with at least one answering service, by location.", _ranked(location_counts)),
    ]
    if exposed_location_counts:
        charts.append(bar_chart("chart-exposed-country", "Exposed services by country or network",
                                "Services that gave out study data, by location of the host.",
                                _ranked(exposed_location_counts)))
    charts = [c for c in charts if c.bars and any(b.value for b in c.bars)]

    finding_views: list[FindingView] = []
    for index, f in enumerate(findings, 1):
        e = f.exposure
        requirements = [(clean(fw, 40), [clean(i, 60) for i in ids]) for fw, ids in f.compliance.items() if ids]
        finding_views.append(
            FindingView(
                anchor=f"finding-{index}",
                check_id=clean(f.check_id, 64),
                title=clean(f.title, 160),
                severity=f.severity.value,
                colour=SEVERITY_COLOURS[f.severity],
                host=clean(f.host, 80),
                port=f.port,
                protocol=clean(f.protocol, 20),
                location=where(f.host).label,
                evidence=clean(f.evidence, 2000),
                studies=e.studies if e is not None else None,
                instances=e.instances if e is not None else None,
                worklist_items=e.worklist_items if e is not None else 0,
                files=[(k, v) for k, v in (("DICOM", e.files.dicom), ("HL7", e.files.hl7), ("X12", e.files.x12))
                       if v] if e is not None else [],
                phi_attributes=[clean(a, 64) for a in (e.phi_attributes if e is not None else [])],
                description=f.description or None,
                risk=f.risk or None,
                categories=list(f.categories),
                remediation=clean(f.remediation, 4000),
                references=[clean(r, 300) for r in f.references],
                requirements=requirements,
            )
        )

    titles = {f.check_id: clean(f.title, 160) for f in findings}
    frameworks = framework_views(summarise(result.findings, complete=fully_observed(result)), titles)

    # Check-level overview: one row per check, the services it hit.
    overview: dict[str, dict[str, Any]] = {}
    for f in findings:
        row = overview.setdefault(
            f.check_id,
            {"title": clean(f.title, 160), "severity": f.severity.value, "colour": SEVERITY_COLOURS[f.severity],
             "services": 0, "hosts": set(), "anchor": ""},
        )
        row["services"] += 1
        row["hosts"].add(f.host)
    first_anchor: dict[str, str] = {}
    for view in finding_views:
        first_anchor.setdefault(view.check_id, view.anchor)
    checks = [
        {**row, "hosts": len(row["hosts"]), "anchor": first_anchor.get(clean(check_id, 64), "")}
        for check_id, row in overview.items()
    ]

    service_rows = []
    for s in services:
        items = by_service.get((s.host, s.port), [])
        worst = max(items, key=lambda f: f.severity.rank).severity if items else None
        service_rows.append(
            ServiceRow(
                host=clean(s.host, 80),
                location=where(s.host).label,
                port=s.port,
                protocol=clean(s.protocol, 20),
                status=s.status.value,
                silent=s.status in SILENT,
                products=_products(s),
                identification=_identification(s),
                tls=_tls(s),
                worst=worst.value if worst else None,
                findings=len(items),
            )
        )

    info = result.scan
    specs = [clean(s, 120) for s in info.targets.specs]
    return {
        "scan": {
            "id": clean(info.id, 80),
            "start": _when(info.start),
            "end": _when(info.end),
            "duration": _duration(info.start, info.end),
            "version": clean(info.version, 40),
            "complete": info.complete,
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
        "checks": checks,
        "findings": finding_views,
        "services": service_rows,
        "frameworks": frameworks,
        "attribution": ATTRIBUTION,
        "severity_colours": {s.value: c for s, c in SEVERITY_COLOURS.items()},
        "trust": trust_view(result),
        "trust_marks": {
            f"{clean(s.host, 80)}:{s.port}": {"text": clean(mark(s.trust), 400), "honeypot": s.trust.honeypot}
            for s in services if s.trust is not None and mark(s.trust)
        },
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


def render(result: ScanResult) -> str:
    template = _environment().get_template("report.html.j2")
    return template.render(**build_context(result))


def write(result: ScanResult, directory: Path) -> Path:
    from . import write_report

    return write_report("html", result, directory)
