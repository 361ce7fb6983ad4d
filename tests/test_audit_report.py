"""The audit's HTML and Markdown reports read as an audit, and `phiwatch report audit.json` renders them again.

Given the sample configurations tests/test_audit.py audits (Samba guest share, Orthanc with a planted
password, nginx autoindex, vsftpd anonymous, an NFS world export, a secrets file) plus a malformed
file and a non-configuration file inside a folder named like a patient, when `phiwatch audit -o DIR`
runs, then report.html and report.md show what was audited in counts, findings by check with their
path:line and fix lines, compliance after the findings, none of the scan's sections, no secret, no
name of a file that is not a configuration; and `phiwatch report` writes the same reports again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

from phiwatch_lab.canary import CANARY_NAME_TOKENS

from .test_audit import NGINX, ORTHANC, SECRET, SHORT_SECRET, SMB_GUEST, run_cli, write

PATIENT_FOLDER = "PHIWATCHCANARY^ZELDA"


def report_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", "report", *args], capture_output=True, text=True,
                          timeout=120)


def sample_tree(root: Path) -> Path:
    conf = root / "conf"
    write(conf, "smb.conf", SMB_GUEST.format(path="/srv/imaging"))
    write(conf, "orthanc.json", ORTHANC % ("/nonexistent", SECRET))
    write(conf, "nginx.conf", NGINX)
    write(conf, "vsftpd.conf", f"anonymous_enable=YES\nrsa_private_key_passphrase={SECRET}\nssl_enable=NO\n")
    write(conf, "exports", "/srv/pacs *(rw,no_root_squash)\n")
    write(conf, "rsyncd.secrets", f"backup:{SECRET}\n")
    write(conf, "broken/nginx.conf", "http { server { location / { autoindex on;\n")
    write(conf, f"{PATIENT_FOLDER}/notes.txt", "shopping list\n")
    return conf


class Sections(HTMLParser):
    """The ids of the page's sections and whether it holds a script or an external resource."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.remote: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section" and values.get("id"):
            self.sections.append(str(values["id"]))
        if tag == "script":
            self.remote.append("script")
        for name in ("src", "href"):
            value = values.get(name) or ""
            if value and not value.startswith(("#", "data:")):
                self.remote.append(value)


def test_audit_reports_read_as_an_audit_and_report_renders_them_again(tmp_path):
    conf = sample_tree(tmp_path)
    out = tmp_path / "out"
    done = run_cli(str(conf), "-o", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads((out / "audit.json").read_text())
    findings = data["findings"]
    assert len(findings) >= 8
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()

    # what was audited: the path given, kinds and statuses in counts (the truth: audit.json's own records)
    page = Sections()
    page.feed(html)
    assert page.sections[:4] == ["summary", "audited", "fix-first", "findings"]
    assert page.sections[4:] == ["compliance"]  # no ladder, charts or services: those are the scan's
    assert not page.remote
    assert "configuration audit" in html and f"<dd id=\"audit-paths\">{conf}</dd>" in html
    kinds = {f["kind"] for f in data["files"] if f["status"] == "audited"}
    assert {"samba", "orthanc", "nginx", "vsftpd"} <= {k.split("-")[0] for k in kinds} or len(kinds) >= 5
    for kind in kinds:
        parsed = sum(f["kind"] == kind and f["status"] == "audited" for f in data["files"])
        assert f"<tr><td>{kind}</td><td class=\"num\">{parsed}</td></tr>" in html
        assert f"| {kind} | {parsed} |" in md.replace("\\_", "_").replace("\\-", "-")
    assert re.search(r'<tr data-status="malformed"><td>malformed</td><td class="num">1</td>', html)
    assert "| malformed | 1 |" in md and "| unknown kind |" in md
    assert "partial" in html and 'id="partial-note"' in html  # a malformed file: no requirement passes
    assert 'data-status="pass"' not in html

    # not the scan's shape
    for text in (html, md):
        assert "0 addresses" not in text and "Ports" not in text and "Exposed services" not in text
        assert "phiwatch exposure report" not in text and "Open services" not in text

    # every finding by check with its location and its fix lines; compliance after the findings
    for finding in findings:
        where = f"{finding['location']['path']}:{finding['location']['line']}"
        assert where in html, where
        assert f"| {where} |" in md.replace("\\_", "_"), where
    fixes = [c for f in findings for c in (f["fix"] or []) if c.get("new")]
    assert fixes and all(c["new"].strip().splitlines()[0].strip() in unescape(html) for c in fixes)
    assert "server min protocol = SMB2_02" in html and "server min protocol = SMB2\\_02" in md
    assert html.index('id="findings"') < html.index('id="compliance"')
    assert md.index("## Findings") < md.index("## Compliance")
    checks = {f["check_id"] for f in findings}
    assert len(re.findall(r'<article class="check ', html)) == len(checks)
    assert f'{len(checks)} checks, {len(findings)} findings' in html
    criticals = {f["location"]["path"] for f in findings if f["severity"] in ("critical", "high")}
    fix_first = html[html.index('id="fix-first-table"'):html.index('id="findings"')]
    assert all(f">{path}</td>" in fix_first for path in criticals)

    # no secret, no patient folder name, no canary token in any output
    texts = [p.read_text() for p in out.iterdir()]
    assert all(SECRET not in text and PATIENT_FOLDER not in text for text in texts)
    assert f'"orthanc" : "{SHORT_SECRET}"' not in "".join(texts)
    assert not any(token in text for token in CANARY_NAME_TOKENS for text in texts)

    # `phiwatch report` renders the same reports again, from the file or its folder
    for reference, name in ((out / "audit.json", "again"), (out, "again-folder")):
        again = tmp_path / name
        done = report_cli(str(reference), "-o", str(again), "-f", "html,md,csv,sarif")
        assert done.returncode == 0, done.stderr
        for report in ("report.html", "report.md", "findings.csv", "phiwatch.sarif"):
            assert (again / report).read_text() == (out / report).read_text(), report
    # a severity filter keeps only those findings, in the audit's shape
    high = tmp_path / "high"
    assert report_cli(str(out), "-o", str(high), "-f", "md", "-s", "critical,high").returncode == 0
    shown = (high / "report.md").read_text()
    assert "## What was audited" in shown and "0 addresses" not in shown
    kept = [f for f in findings if f["severity"] in ("critical", "high")]
    assert kept and all(f"| {f['location']['path']}:{f['location']['line']} |" in shown.replace("\\_", "_")
                        for f in kept)
    left_out = {f["check_id"] for f in findings} - {f["check_id"] for f in kept}
    assert left_out and not any(f"**Check:** {check}" in shown.replace("\\_", "_") for check in left_out)


def test_a_scan_folder_is_still_a_scan_and_a_foreign_json_is_refused(tmp_path):
    stray = tmp_path / "notes.json"
    stray.write_text('{"audit": 1}')
    done = report_cli(str(stray), "-o", str(tmp_path / "out"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
