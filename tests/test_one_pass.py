"""One pass from facts to report: checks run once per service, in the scanner; each finding carries
what every output shows (texts, compliance, location, catalog version) from the moment it is made;
the store keeps it; every writer renders only that. An old scan keeps the texts it was made with."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from phiwatch import checks, journal, scanner
from phiwatch.checks import catalog_version, metadata
from phiwatch.models import ScanResult
from phiwatch.reports import write_reports
from phiwatch.run import ScanRequest, run_scan
from phiwatch.store import Store

FORMATS = ["html", "md", "csv", "sarif"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def open_index(tmp_path: Path) -> Iterator[int]:
    """A real directory index (Python's http.server) holding one HL7 file: an open listing."""
    root = tmp_path / "www"
    (root / "exports").mkdir(parents=True)
    (root / "exports" / "adt.hl7").write_bytes(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r")
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.request_queue_size = 64
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def scan(port: int, tmp_path: Path) -> ScanResult:
    request = ScanRequest(targets=["127.0.0.1"], ports=str(port), timeout=2.0, output=tmp_path / "out",
                          db=tmp_path / "scans.db", progress="none")
    return run_scan(request, Console(file=open("/dev/null", "w")))


def test_checks_run_once_per_service_and_findings_are_complete_when_made(open_index, tmp_path, monkeypatch):
    # Given a count of every evaluation of a service's checks
    calls: list[str] = []
    real = checks.evaluate

    def counting(service):
        calls.append(f"{service.host}:{service.port}")
        return real(service)

    monkeypatch.setattr(scanner, "evaluate", counting)
    assert not hasattr(journal, "evaluate")  # the journal records what the scanner made
    # When one open web service is scanned and recorded
    result = scan(open_index, tmp_path)
    # Then its checks ran once, and what the store kept is what the scan made
    assert calls == [f"127.0.0.1:{open_index}"]
    assert {f.check_id for f in result.findings} >= {"http_index_medical_files_exposed"}
    for finding in result.findings:
        entry = metadata.load_catalog()[finding.check_id]
        assert (finding.title, finding.description, finding.risk, finding.remediation) == (
            entry.title, entry.description, entry.risk, entry.remediation)
        assert finding.references == entry.references and finding.categories == entry.categories
        assert finding.uri == f"http://127.0.0.1:{open_index}/"
        assert finding.catalog_version == catalog_version()
        assert set(finding.compliance) <= {"HIPAA", "GDPR"}
    assert any(f.compliance.get("HIPAA") for f in result.findings)


def test_an_old_scan_renders_with_the_texts_it_was_made_with(open_index, tmp_path, monkeypatch):
    # Given a scan made and stored with today's catalog
    made = scan(open_index, tmp_path)
    listing = next(f for f in made.findings if f.check_id == "http_index_medical_files_exposed")
    old = (listing.title, listing.risk, listing.remediation)
    # When the catalog's texts and the compliance mapping change after the scan
    changed = {
        check_id: entry.model_copy(update={
            "title": "CHANGED TITLE after the scan", "risk": "CHANGED RISK text, written after the scan.",
            "remediation": "CHANGED REMEDIATION text, written after the scan.",
            "description": "CHANGED DESCRIPTION text, written after the scan."})
        for check_id, entry in metadata.load_catalog().items()
    }
    monkeypatch.setattr(metadata, "load_catalog", lambda: changed)
    monkeypatch.setattr(checks, "load_catalog", lambda: changed)
    monkeypatch.setattr(checks, "requirements_for", lambda check_id: {"HIPAA": ["CHANGED-REQ"], "GDPR": []})
    # ... (a finding made now would carry the new texts)
    fresh = checks.make_finding(changed["http_index_medical_files_exposed"], "127.0.0.1", 1, "http",
                                checks.Observation("e"))
    assert fresh.title == "CHANGED TITLE after the scan" and fresh.compliance == {"HIPAA": ["CHANGED-REQ"]}
    # And the old scan is re-rendered from the store, in every format
    store = Store(tmp_path / "scans.db")
    try:
        loaded = store.load(made.scan.id)
    finally:
        store.close()
    assert loaded is not None
    paths = write_reports(loaded, tmp_path / "again", FORMATS)
    # Then every output shows the texts and requirements the scan was made with, none of today's
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert "CHANGED" not in text, path.name
        assert old[0] in text or path.suffix == ".csv" and old[0].replace('"', '""') in text, path.name
    html_text = (tmp_path / "again" / "report.html").read_text(encoding="utf-8")
    assert listing.risk.split(".")[0] in html_text.replace("&#39;", "'").replace("&quot;", '"')
