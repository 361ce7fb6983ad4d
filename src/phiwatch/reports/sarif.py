"""phiwatch.sarif: SARIF 2.1.0 for code-scanning dashboards and SIEMs.

Rules come from the texts stored with the findings (only checks that fired); results from findings.
Network services have no source file, so each result's artifact is a service URI
(dicom://host:port, http://host:port/, tcp://host:port) plus a logical location.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
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
    """The location stored with the finding (a scan made before findings carried one: tcp://)."""
    return finding.uri or f"tcp://{quote(finding.host, safe='[]:.')}:{finding.port}"


def fingerprint(finding: Finding) -> str:
    key = "\x1f".join([finding.check_id, finding.host, str(finding.port), finding.protocol])
    if finding.location is not None:
        key += "\x1f" + "\x1f".join([finding.location.path, str(finding.location.line), finding.evidence])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _rule(finding: Finding, protocols: list[str]) -> dict[str, Any]:
    """A rule from the texts stored with the check's first finding (never today's catalog)."""
    references = "\n".join(f"- {reference}" for reference in finding.references)
    full = " ".join(text for text in (finding.description, finding.risk) if text) or finding.title
    return {
        "id": finding.check_id,
        "name": rule_name(finding.check_id),
        "shortDescription": {"text": finding.title},
        "fullDescription": {"text": full},
        "help": {
            "text": f"{finding.remediation}\n\nReferences:\n{references}",
            "markdown": f"**Remediation.** {finding.remediation}\n\n**References**\n\n{references}",
        },
        "defaultConfiguration": {"level": LEVEL[finding.severity]},
        "properties": {
            "tags": ["security", *finding.categories],
            "security-severity": SECURITY_SEVERITY[finding.severity],
            "severity": finding.severity.value,
            "protocols": protocols,
            "catalogVersion": finding.catalog_version,
        },
    }


def _result(finding: Finding, index: int, trust: Trust | None = None) -> dict[str, Any]:
    exposure = finding.exposure
    properties: dict[str, Any] = {
        "severity": finding.severity.value,
        "country": locate(finding.host).label,
        "compliance": finding.compliance,
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
    fired: dict[str, Finding] = {}
    for finding in result.findings:
        fired.setdefault(finding.check_id, finding)
    order = sorted(fired)
    protocols: dict[str, set[str]] = {}
    for finding in result.findings:
        protocols.setdefault(finding.check_id, set()).add(finding.protocol.value)
    rules = [_rule(fired[check_id], sorted(protocols[check_id])) for check_id in order]
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
    from . import write_report

    return write_report("sarif", result, directory)
