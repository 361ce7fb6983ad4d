"""phiwatch.sarif: SARIF 2.1.0 for code-scanning dashboards and SIEMs.

Rules come from the check catalog (only checks that fired); results from findings.
Network services have no source file, so each result's artifact is a service URI
(dicom://host:port, http://host:port/, tcp://host:port) plus a logical location.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..checks.metadata import CatalogEntry, catalog_or_empty
from ..compliance import requirements_for
from ..geo import locate
from ..models import Finding, ScanResult, Severity, Trust
from .trust_view import trust_of

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5", Severity.HIGH: "7.5", Severity.MEDIUM: "5.0", Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}
LEVEL = {
    Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note",
    Severity.INFO: "note",
}
FINGERPRINT_KEY = "phiwatchService/v1"


def information_uri() -> str | None:
    """The project's home page from the installed package metadata ([project.urls]), if any."""
    try:
        urls = metadata.metadata("phiwatch").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository") and url.strip():
            return url.strip()
    return None


def utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as SARIF asks; naive times are taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def rule_name(check_id: str) -> str:
    return "".join(part.capitalize() for part in check_id.split("_"))


def service_uri(finding: Finding) -> str:
    try:
        ip = ipaddress.ip_address(finding.host)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        host = quote(finding.host, safe="")
    protocol = finding.protocol.lower()
    if protocol in ("http", "https"):
        return f"{protocol}://{host}:{finding.port}/"
    if protocol == "dicom":
        return f"dicom://{host}:{finding.port}"
    return f"tcp://{host}:{finding.port}"


def fingerprint(finding: Finding) -> str:
    key = "\x1f".join([finding.check_id, finding.host, str(finding.port), finding.protocol])
    if finding.location is not None:
        key += "\x1f" + "\x1f".join([finding.location.path, str(finding.location.line), finding.evidence])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _rule(check_id: str, entry: CatalogEntry | None, finding: Finding) -> dict[str, Any]:
    if entry is None:  # a finding from a check the catalog no longer lists
        return {
            "id": check_id, "name": rule_name(check_id),
            "shortDescription": {"text": finding.title},
            "help": {"text": finding.remediation},
            "defaultConfiguration": {"level": LEVEL[finding.severity]},
            "properties": {"tags": ["security"], "security-severity": SECURITY_SEVERITY[finding.severity]},
        }
    references = "\n".join(f"- {reference}" for reference in entry.references)
    return {
        "id": entry.id,
        "name": rule_name(entry.id),
        "shortDescription": {"text": entry.title},
        "fullDescription": {"text": f"{entry.description} {entry.risk}"},
        "help": {
            "text": f"{entry.remediation}\n\nReferences:\n{references}",
            "markdown": f"**Remediation.** {entry.remediation}\n\n**References**\n\n{references}",
        },
        "defaultConfiguration": {"level": LEVEL[entry.severity]},
        "properties": {
            "tags": ["security", *entry.categories],
            "security-severity": SECURITY_SEVERITY[entry.severity],
            "severity": entry.severity.value,
            "protocols": list(entry.protocols),
        },
    }


def _result(finding: Finding, index: int, trust: Trust | None = None) -> dict[str, Any]:
    exposure = finding.exposure
    properties: dict[str, Any] = {
        "severity": finding.severity.value,
        "country": locate(finding.host).label,
        "compliance": requirements_for(finding.check_id),
    }
    if exposure is not None:
        properties["exposure"] = exposure.model_dump(mode="json")
    if trust is not None:
        properties["trust"] = trust.model_dump(mode="json")
    where = f"{finding.host}:{finding.port}/{finding.protocol}"
    physical: dict[str, Any] = {"artifactLocation": {"uri": service_uri(finding)}}
    if finding.location is not None:  # a configuration audit: the file and line to annotate
        physical = {"artifactLocation": {"uri": Path(finding.location.path).as_uri()
                                         if Path(finding.location.path).is_absolute() else finding.location.path}}
        if finding.location.line:
            physical["region"] = {"startLine": finding.location.line}
        where = finding.location.path
    return {
        "ruleId": finding.check_id,
        "ruleIndex": index,
        "level": LEVEL[finding.severity],
        "message": {"text": finding.evidence or finding.title},
        "locations": [{
            "physicalLocation": physical,
            "logicalLocations": [{"name": where, "fullyQualifiedName": where, "kind": "resource"}],
        }],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding)},
        "properties": properties,
    }


def build(result: ScanResult) -> dict[str, Any]:
    catalog = catalog_or_empty()
    fired: dict[str, Finding] = {}
    for finding in result.findings:
        fired.setdefault(finding.check_id, finding)
    order = sorted(fired)
    rules = [_rule(check_id, catalog.get(check_id), fired[check_id]) for check_id in order]
    index = {check_id: position for position, check_id in enumerate(order)}
    driver: dict[str, Any] = {
        "name": "phiwatch",
        "version": result.scan.version or __version__,
        "semanticVersion": result.scan.version or __version__,
        "rules": rules,
    }
    uri = information_uri()
    if uri:
        driver["informationUri"] = uri
    invocation: dict[str, Any] = {
        "executionSuccessful": result.scan.complete,
        "startTimeUtc": utc(result.scan.start),
    }
    if result.scan.end is not None:
        invocation["endTimeUtc"] = utc(result.scan.end)
    trusts = trust_of(result)
    run_properties: dict[str, Any] = {}
    if result.summary is not None:  # the exposure ladder, raw and filtered, before the results
        run_properties["summary"] = result.summary.model_dump(mode="json")
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": driver},
            "automationDetails": {"id": f"phiwatch/{result.scan.id}"},
            "invocations": [invocation],
            "results": [_result(f, index[f.check_id], trusts.get((f.host, f.port))) for f in result.findings],
            "properties": run_properties,
        }],
    }


def render(result: ScanResult) -> str:
    return json.dumps(build(result), indent=2, ensure_ascii=False) + "\n"


def write(result: ScanResult, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "phiwatch.sarif"
    temporary = path.with_suffix(".sarif.tmp")
    temporary.write_text(render(result), encoding="utf-8")
    os.replace(temporary, path)
    return path
