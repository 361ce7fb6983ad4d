"""report.html: one self-contained page, opened in real headless Chromium (Debian's chromium and
chromium-driver, no network): it renders the right numbers, its SVG charts are visible, hostile text
from scanned hosts stays text, nothing runs and the console stays clean."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from phiwatch.models import (
    AssociationReject,
    ContextResult,
    DicomFacts,
    DicomWebExposure,
    Exposure,
    FileCounts,
    Finding,
    HttpFacts,
    ProbeStatus,
    ProductMatch,
    RejectReason,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    StudyExposure,
    TargetSummary,
    TlsFacts,
)
from phiwatch.reports import html

from .chromium import headless_chromium

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

SCRIPT_TAG = "<script>alert(1)</script>"
IMG_TAG = "<img src=x onerror=alert(1)>"
HOSTILE_SERVER = f"nginx {SCRIPT_TAG}"
HOSTILE_TITLE = f"PACS {IMG_TAG} login"
HOSTILE_EVIDENCE = f"server said {SCRIPT_TAG} and {IMG_TAG}"
HOSTILE_PRODUCT = '"><svg onload=alert(1)>'


def _catalog_finding(check_id: str, service: Service, evidence: str, exposure: Exposure | None = None) -> Finding:
    from phiwatch.checks import Observation, make_finding
    from phiwatch.checks.metadata import load_catalog

    entry = load_catalog()[check_id]
    return make_finding(entry, service.host, service.port, service.protocol, Observation(evidence, exposure))


def sample_result() -> ScanResult:
    start = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    options = ScanOptions(ports=[104, 443, 4242, 8042, 11112], concurrency=64, per_host=4, rate=100.0, timeout=2.0,
                          retries=1, max_matches=200, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=1 << 20)
    info = ScanInfo(id="20250314T092653Z-abc123", start=start, end=start + timedelta(minutes=2, seconds=5),
                    version="0.1.0", options=options,
                    targets=TargetSummary(specs=["127.0.0.1", "10.1.2.0/24", "192.0.2.10", "8.8.8.8"],
                                          excludes=[], addresses=259, ports=options.ports),
                    complete=True, addresses_done=259)
    orthanc = Service(
        host="127.0.0.1", port=4242, protocol="dicom", status=ProbeStatus.EXPOSED, identified_by="probe",
        dicom=DicomFacts(
            called_ae="ANY-SCP", calling_ae="PHIWATCH", association="accepted",
            implementation_class_uid="1.2.826.0.1.3680043.2.1143", implementation_version_name="DCMTK 367",
            vendor="Orthanc project", product="Orthanc 1.12.1",
            contexts=[ContextResult(name="study-root-find", abstract_syntax="1.2.840.10008.5.1.4.1.2.2.1",
                                    accepted=True, result=0)],
            echo_status=0, released=True,
            query=StudyExposure(status="exposed", information_model="study-root", studies=3, instances=42,
                                modalities=["CT", "MR"], phi_attributes=["PatientName", "PatientID",
                                                                         "PatientBirthDate"]),
        ),
    )
    web = Service(
        host="8.8.8.8", port=443, protocol="https", status=ProbeStatus.EXPOSED, identified_by="probe",
        # Built past the peer-text gate on purpose: the report must escape whatever reaches it
        tls=TlsFacts.model_construct(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", subject="CN=pacs",
                                     issuer="CN=pacs", alt_names=[],
                     self_signed=True, expired=False),
        http=HttpFacts.model_construct(
            scheme="https", status_code=200, server=HOSTILE_SERVER, title=HOSTILE_TITLE, auth_scheme=None,
            auth_realm=None, login_form=False, blank_login=None, default_login_user=None, default_logins_tried=0,
            cors_wildcard_credentials=False, vulnerabilities=[], requests=0, error=None,
            products=[ProductMatch(product="Orthanc Explorer", version="1.12.1", path="/app/explorer.html",
                                   kind="ui"),
                      ProductMatch(product=HOSTILE_PRODUCT, path="/", kind="ui")],
            open_paths=["/app/explorer.html"],
            dicomweb=[DicomWebExposure(root="/dicom-web", status_code=200, result="exposed", studies=5,
                                       instances=100, phi_attributes=["PatientName"])],
        ),
    )
    locked = Service(
        host="10.1.2.3", port=104, protocol="dicom", status=ProbeStatus.REJECTED, identified_by="port",
        dicom=DicomFacts(called_ae="ANY-SCP", calling_ae="PHIWATCH", association="rejected",
                         reject=AssociationReject(result=1, source=1, reason=7,
                                                  reason_name=RejectReason.CALLED_AE_NOT_RECOGNIZED,
                                                  permanent=True)),
    )
    refusing = Service(
        host="10.1.2.3", port=11112, protocol="dicom", status=ProbeStatus.QUERY_REFUSED, identified_by="probe",
        dicom=DicomFacts(called_ae="ANY-SCP", calling_ae="PHIWATCH", association="accepted",
                         vendor="OFFIS", product="DCMTK 3.6.7",
                         query=StudyExposure(status="refused", refusal="status", failure_status=0xA700)),
    )
    login = Service(
        host="192.0.2.10", port=8042, protocol="http", status=ProbeStatus.ACCEPTED, identified_by="probe",
        http=HttpFacts(scheme="http", status_code=401, server="Orthanc", auth_scheme="Basic",
                       products=[ProductMatch(product="Orthanc", path="/system", kind="api")]),
    )
    findings = [
        _catalog_finding("dicom_study_data_exposed", orthanc,
                         "One STUDY-level C-FIND (study-root) returned 3 studies linking 42 instances.",
                         Exposure(studies=3, instances=42, files=FileCounts(dicom=42, hl7=2, x12=1),
                                  phi_attributes=["PatientName", "PatientID", "PatientBirthDate"])),
        _catalog_finding("dicom_any_called_ae_accepted", orthanc,
                         "Association accepted for the arbitrary called AE title 'ANY-SCP'."),
        _catalog_finding("dicom_no_tls", orthanc,
                         "Association accepted over plain TCP; the service did not use TLS."),
        _catalog_finding("dicomweb_studies_exposed", web, HOSTILE_EVIDENCE,
                         Exposure(studies=5, instances=100, phi_attributes=["PatientName"])),
        _catalog_finding("web_credentials_over_http", login,
                         "Orthanc asks for credentials (HTTP Basic) over plain HTTP."),
        _catalog_finding("dicom_query_refused", refusing,
                         "Association accepted; the C-FIND was refused (status)."),
    ]
    return ScanResult(scan=info, services=[orthanc, web, locked, refusing, login], findings=findings)


# --- rendering without a browser -----------------------------------------------------------


def test_hostile_text_is_escaped_and_nothing_runs_or_fetches():
    page = html.render(sample_result())
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "onerror=alert" not in page.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<svg onload" not in page
    # Nothing is fetched: no external URL in any src/href, and the CSP forbids it anyway.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.IGNORECASE)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page


def test_write_puts_report_html_in_the_directory(tmp_path):
    path = html.write(sample_result(), tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_empty_scan_renders():
    result = sample_result()
    empty = ScanResult(scan=result.scan.model_copy(update={"complete": False, "addresses_done": 7}))
    page = html.render(empty)
    assert "partial" in page and "No findings." in page and "<svg" not in page


def test_place_labels_by_address_class():
    assert html.place_of("127.0.0.1").label == "Loopback"
    assert html.place_of("10.1.2.3").kind == "private"
    assert html.place_of("192.0.2.10").kind == "reserved"
    assert html.place_of("not-an-address").kind == "unknown"


def test_port_ranges():
    assert html.port_ranges([11112, 104, 21100, 21101, 21102, 4242]) == "104, 4242, 11112, 21100-21102"
    assert html.port_ranges([]) == ""


def test_clean_neutralises_controls_and_bidi_overrides():
    assert html.clean("a\u202eb\x00c\x1b[31md") == "a?b?c?[31md"
    assert html.clean("line\r\none\ttwo") == "line one two"
    assert html.clean("x" * 500, 10) == "x" * 9 + "…"


# --- real browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile"), "1280,900", keep_dialogs=True) as driver:
        yield driver


def _open(driver, path: Path) -> None:
    driver.get_log("browser")  # nothing from earlier pages counts
    driver.get(path.resolve().as_uri())


def _no_dialog(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - raises when no dialog is open


def _severe(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def test_the_harness_sees_a_dialog(browser, tmp_path):
    """Control: a page that runs alert() and logs an error is caught, so the checks below mean something."""
    control = tmp_path / "control.html"
    control.write_text("<!DOCTYPE html><title>control</title><script>console.error('control'); alert(1)</script>",
                       encoding="utf-8")
    _open(browser, control)
    assert browser.switch_to.alert.text == "1"
    browser.switch_to.alert.dismiss()
    assert any("control" in entry["message"] for entry in _severe(browser))  # and sees console errors


def test_report_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    path = html.write(sample_result(), tmp_path)
    _open(browser, path)
    _no_dialog(browser)

    assert browser.title == "phiwatch report 20250314T092653Z-abc123"
    assert browser.execute_script("return document.readyState") == "complete"

    def tile(name: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, f"#tile-{name} [data-value]").text.strip()

    assert tile("exposed") == "2"  # Orthanc over DICOM, the DICOMweb server
    assert tile("studies") == "8"  # 3 + 5
    assert tile("instances") == "142"  # 42 + 100
    assert tile("files") == "45"  # 42 DICOM + 2 HL7 + 1 X12
    assert "DICOM 42 · HL7 2 · X12 1" in browser.find_element(By.ID, "tile-files").text
    assert tile("findings") == "6"
    severities = {b.get_attribute("data-severity"): b.text for b in
                  browser.find_elements(By.CSS_SELECTOR, "#tile-findings [data-severity]")}
    expected = Counter(f.severity.value for f in sample_result().findings)
    levels = ("critical", "high", "medium", "low", "info")
    assert severities == {s: f"{s.upper()} {expected.get(s, 0)}" for s in levels}
    assert tile("hosts") == "4"

    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")
    ids = {c.find_element(By.XPATH, "..").get_attribute("id") for c in charts}
    assert {"chart-severity", "chart-protocol", "chart-products", "chart-country"} <= ids
    for svg in charts:
        assert svg.get_attribute("role") == "img" and svg.get_attribute("aria-label")
        assert svg.find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert svg.is_displayed()
        assert svg.size["width"] > 100 and svg.size["height"] > 20
        bars = [b for b in svg.find_elements(By.CSS_SELECTOR, "rect.bar") if float(b.get_attribute("width")) > 0]
        assert bars, svg.get_attribute("aria-label")
        assert all(b.size["width"] > 0 and b.size["height"] > 0 for b in bars)
    labels = browser.find_element(By.ID, "chart-country").get_attribute("textContent")
    assert "Loopback" in labels and "Private network" in labels
    assert html.place_of("8.8.8.8").kind == "public"
    assert html.place_of("8.8.8.8").label in labels  # a country from the offline database
    products = browser.find_element(By.ID, "chart-products").get_attribute("textContent")
    assert "Orthanc 1.12.1" in products and "DCMTK 3.6.7" in products

    # Hostile text is visible as literal text, in the services table and in the finding.
    visible = browser.find_element(By.TAG_NAME, "body").text
    for hostile in (HOSTILE_SERVER, HOSTILE_TITLE, HOSTILE_EVIDENCE):
        assert hostile in visible
    assert HOSTILE_PRODUCT in visible
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.find_elements(By.CSS_SELECTOR, "img, iframe, object, embed, link[rel=stylesheet]") == []
    assert browser.find_elements(By.CSS_SELECTOR, "svg svg") == []  # the hostile <svg onload> stayed text
    _no_dialog(browser)

    # Findings come grouped by check, worst check first, with the catalog's text once and PHI attribute *names*.
    articles = browser.find_elements(By.CSS_SELECTOR, "article.check")
    ranks = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
    order = [ranks[a.get_attribute("data-severity")] for a in articles]
    assert order == sorted(order, reverse=True)
    assert len(articles) == len({f.check_id for f in sample_result().findings})
    exposed = browser.find_element(By.CSS_SELECTOR, 'article.check[data-check="dicom_study_data_exposed"]')
    text = exposed.get_attribute("textContent")
    for wanted in ("PatientName", "PatientBirthDate", "Remediation", "DICOM PS3.15", "127.0.0.1:4242"):
        assert wanted in text, wanted
    for wanted in ("3 studies", "42 instances", "42 DICOM files", "dicom · Loopback"):
        assert wanted in exposed.text, wanted
    if importlib.util.find_spec("phiwatch.compliance") is not None:
        from phiwatch.compliance import requirements_for

        mapped = requirements_for("dicom_study_data_exposed")
        for framework, ids in mapped.items():
            for requirement in ids:
                assert requirement in text, (framework, requirement)
        compliance = browser.find_element(By.ID, "compliance").text
        assert "HIPAA" in compliance and "GDPR" in compliance and "fail" in compliance
    # The fix-first table: the two services that gave out data, worst first, with their counts
    fix = browser.find_elements(By.CSS_SELECTOR, "#fix-first-table tbody tr")
    # (both critical: the one that gives away more first)
    assert [r.find_element(By.CSS_SELECTOR, "span.addr").text for r in fix] == ["127.0.0.1", "8.8.8.8"]
    assert "3 studies" in fix[0].text and "45" not in fix[0].text.split("studies")[0]
    assert "42 DICOM files" in fix[0].text and "5 studies" in fix[1].text
    services = browser.find_element(By.ID, "services-table").text
    assert "query-refused" in services and "rejected" in services and "TLSv1.3, self-signed" in services

    assert _severe(browser) == []
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1280, 900)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 120, 12000))
    assert browser.save_screenshot(str(ARTIFACTS / "report.png"))


# --- a real lab scan, read top-down in Chromium at 1280 px ----------------------------------------

SCREEN = (1280, 800)
OLD_PX_PER_FINDING = 690  # the card-per-finding layout, measured on a full lab scan (47,083 px, 68 findings)


@pytest.fixture(scope="module")
def lab_report(lab, tmp_path_factory):
    """Every lab service scanned through the real CLI, which writes report.html itself; its console
    summary kept to compare the report's counts with."""
    out = tmp_path_factory.mktemp("lab-report")
    local = [s["port"] for s in lab["services"] if s.get("host", lab["host"]) == lab["host"]]
    elsewhere = [s for s in lab["services"] if s.get("host", lab["host"]) != lab["host"]]
    hosts = [lab["host"], *sorted({s["host"] for s in elsewhere})]
    ports = ",".join([*sorted({str(s["port"]) for s in elsewhere}), f"{min(local)}-{max(local)}"])
    done = subprocess.run([sys.executable, "-m", "phiwatch", "scan", *hosts, "-p", ports, "--output", str(out),
                           "--format", "json,html,md", "--no-db", "--timeout", "2", "--progress", "none"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = ScanResult.model_validate(json.loads((out / "scan.json").read_text()))
    return {"out": out, "path": out / "report.html", "result": result, "stderr": done.stderr}


def _console_numbers(stderr: str) -> dict[str, int]:
    """The console's summary: 'N open services, M exposed' and 'findings: 3 critical, 2 high, ...'."""
    services = re.search(r"(\d+) open services, (\d+) exposed", stderr)
    found = re.search(r"^findings: (.*?)(;|$)", stderr, re.M)
    assert services and found, stderr
    numbers = {"open": int(services[1]), "exposed": int(services[2])}
    for count, severity in re.findall(r"(\d+) (critical|high|medium|low|info)", found[1]):
        numbers[severity] = int(count)
    return numbers


def _wrapped_addresses(driver) -> list[str]:
    """Addresses drawn on more than one line: more than one box, or taller than one line."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('.addr')).filter(e => {
          const style = getComputedStyle(e);
          const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.6;
          return e.getClientRects().length > 1 || e.getBoundingClientRect().height > line + 1;
        }).map(e => e.textContent);""")


def _top(element) -> float:
    return float(element.rect["y"])


def _shoot(driver, name: str, top: int, height: int) -> Path:
    """A 1280 px wide band of the page, kept in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    driver.set_window_size(SCREEN[0], height)
    driver.execute_script("window.scrollTo(0, arguments[0])", top)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))
    driver.set_window_size(*SCREEN)
    return path


@pytest.mark.lab
def test_a_lab_scan_report_reads_top_down_in_chromium_at_1280_px(lab_report, browser):
    from selenium.webdriver.common.by import By

    from phiwatch_lab.canary import CANARY_STRINGS

    result: ScanResult = lab_report["result"]
    page = lab_report["path"].read_text(encoding="utf-8")
    for canary in CANARY_STRINGS:  # no planted patient value in the page, in any case
        assert canary.lower() not in page.lower(), canary
    browser.set_window_size(*SCREEN)
    _open(browser, lab_report["path"])
    _no_dialog(browser)
    assert browser.execute_script("return document.documentElement.clientWidth") == SCREEN[0] or \
        browser.execute_script("return window.innerWidth") == SCREEN[0]
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert _severe(browser) == []

    # Then the sections come in reading order: summary, ladder, fix first, findings by check, compliance
    order = [browser.find_element(By.ID, name) for name in ("summary", "ladder", "fix-first", "findings",
                                                             "compliance", "charts", "services")]
    tops = [_top(section) for section in order]
    assert tops == sorted(tops), tops

    # And the summary says what the console said, from the same numbers
    console = _console_numbers(lab_report["stderr"])
    tile = {t.get_attribute("id"): t for t in browser.find_elements(By.CSS_SELECTOR, ".tile")}
    assert tile["tile-exposed"].find_element(By.CSS_SELECTOR, "[data-value]").text == str(console["exposed"])
    assert f"of {console['open']} open services" in tile["tile-exposed"].text
    assert tile["tile-findings"].find_element(By.CSS_SELECTOR, "[data-value]").text == str(len(result.findings))
    shown = {b.get_attribute("data-severity"): int(b.text.split()[-1])
             for b in tile["tile-findings"].find_elements(By.CSS_SELECTOR, "[data-severity]")}
    severities = {s: n for s, n in console.items() if s not in ("open", "exposed")}
    assert {s: n for s, n in shown.items() if n} == severities

    # And the fix-first table lists every exposed service, worst first, with the count that matters
    rows = browser.find_elements(By.CSS_SELECTOR, "#fix-first-table tbody tr")
    exposed = {(s.host, s.port) for s in result.services if s.status.value == "exposed"}
    listed = {(r.find_element(By.CSS_SELECTOR, "span.addr").text, int(r.find_elements(By.TAG_NAME, "td")[1].text))
              for r in rows}
    assert exposed <= listed
    ranks = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}
    worst = [ranks[r.get_attribute("data-severity")] for r in rows]
    assert worst == sorted(worst, reverse=True)
    # (likely honeypots after the real services of the same severity, marked short: verdict and score)
    order = [(-ranks[r.get_attribute("data-severity")], "honeypot" in (r.get_attribute("class") or ""))
             for r in rows]
    assert order == sorted(order)
    for row in rows:
        if "honeypot" in (row.get_attribute("class") or ""):
            assert re.fullmatch(r"likely honeypot \d\.\d\d", row.find_element(By.CSS_SELECTOR, ".trust-mark").text)
    counts: dict[str, list[str]] = {}
    for row in rows:
        cells = row.find_elements(By.TAG_NAME, "td")
        counts.setdefault(cells[2].text, []).append(cells[5].text)
    assert any("studies" in c and "instances" in c for c in counts["dicom"])
    assert any("worklist items" in c for c in counts["dicom"])
    for files in ("ftp", "smb", "rsync", "s3"):  # file repositories show files by kind, never "0 studies"
        assert any("DICOM files" in c for c in counts[files]), files
        assert not any("studies" in c for c in counts[files]), files

    # And each check's details appear once, followed by the services it fired on
    checks = {f.check_id for f in result.findings}
    articles = browser.find_elements(By.CSS_SELECTOR, "article.check")
    assert sorted(a.get_attribute("data-check") for a in articles) == sorted(checks)
    body = browser.find_element(By.TAG_NAME, "body").get_attribute("textContent")
    for article in articles:
        fired = [f for f in result.findings if f.check_id == article.get_attribute("data-check")]
        assert len(article.find_elements(By.CSS_SELECTOR, "table.affected tbody tr")) == len(fired)
        remediation = article.find_element(By.CSS_SELECTOR, ".remediation p").get_attribute("textContent")
        assert body.count(remediation) == 1, article.get_attribute("data-check")
    web_pacs = [a for a in articles if a.get_attribute("data-check") == "web_pacs_detected"]
    assert web_pacs and len(web_pacs[0].find_elements(By.CSS_SELECTOR, "tbody tr")) > 1  # one card, many rows
    files_check = next(a for a in articles if a.get_attribute("data-check") == "ftp_medical_files_exposed")
    assert "DICOM files" in files_check.text and "studies" not in files_check.text.split("Counts")[-1]
    # The check table names hosts
    hosts = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#checks td.hosts")]
    assert hosts and all(re.search(r"\d+\.\d+\.\d+\.\d+", h) for h in hosts), hosts

    # And no address wraps: every address is one line high
    assert len(browser.find_elements(By.CSS_SELECTOR, ".addr")) > len(result.findings)
    assert _wrapped_addresses(browser) == []
    # (control: squeezed addresses that may break are caught)
    browser.execute_script("""const style = document.createElement('style');
        style.textContent = '.addr { white-space: normal !important; overflow-wrap: anywhere !important; '
            + 'display: inline-block; width: 3ch; }';
        document.head.appendChild(style);""")
    assert _wrapped_addresses(browser)
    _open(browser, lab_report["path"])

    # And compliance passes nothing from informational findings alone
    for row in browser.find_elements(By.CSS_SELECTOR, "table.requirements tr[data-status='pass']"):
        assert row.find_elements(By.TAG_NAME, "td")[2].text == "—", row.text

    # And the page is far shorter than the card-per-finding layout
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    assert height < 0.6 * OLD_PX_PER_FINDING * len(result.findings), (height, len(result.findings))
    (ARTIFACTS / "lab-report-height.txt").parent.mkdir(exist_ok=True)
    (ARTIFACTS / "lab-report-height.txt").write_text(
        f"{height} px = {height / SCREEN[1]:.1f} screens of {SCREEN[0]}x{SCREEN[1]}; "
        f"{len(result.findings)} findings, {len(checks)} checks\n")
    fix_top = int(_top(browser.find_element(By.ID, "fix-first")))
    findings_top = int(_top(browser.find_element(By.ID, "findings")))
    compliance_top = int(_top(browser.find_element(By.ID, "compliance")))
    _shoot(browser, "lab-report-top.png", 0, 1600)
    _shoot(browser, "lab-report-fix-first.png", fix_top - 20, 1600)
    _shoot(browser, "lab-report-findings.png", findings_top - 20, 1600)
    _shoot(browser, "lab-report-compliance.png", compliance_top - 20, 1600)
    shutil.copy(lab_report["path"], ARTIFACTS / "lab-report.html")
    shutil.copy(lab_report["out"] / "report.md", ARTIFACTS / "lab-report.md")


@pytest.mark.lab
def test_the_markdown_report_of_a_lab_scan_follows_the_same_order(lab_report):
    from phiwatch_lab.canary import CANARY_STRINGS

    text = (lab_report["out"] / "report.md").read_text(encoding="utf-8")
    for canary in CANARY_STRINGS:
        assert canary.lower() not in text.lower(), canary
    headings = ["## Summary", "## Exposure ladder", "## Fix first", "## Findings", "## Compliance"]
    positions = [text.index(f"\n{h}\n") for h in headings]
    assert positions == sorted(positions)
    result: ScanResult = lab_report["result"]
    assert text.count("\n### ") == len({f.check_id for f in result.findings})
    console = _console_numbers(lab_report["stderr"])
    summary = text.split("\n## Summary\n")[1].split("\n## ")[0]
    assert f"| {console['open']} | {console['exposed']} |" in summary
    assert "0 studies" not in text
