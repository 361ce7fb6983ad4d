"""Given the real lab, `phiwatch scan` shows what a newcomer needs on the terminal: one line per
finding, worst first, then where the scan is kept and the command that renders it; JSON lines,
quiet and verbose modes; progress in ports with the limit that holds the scan back; and a diff
that never calls "fixed" what the newer scan did not look at. Every run is the real entry point."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from phiwatch_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.lab

PHIWATCH = str(Path(sys.executable).with_name("phiwatch"))
SEVERITIES = ["critical", "high", "medium", "low", "info"]
LINE = re.compile(r"^\[(critical|high|medium|low|info)\] \[([a-z0-9_]+)\] (127\.0\.0\.1):(\d+)/(\w+)( .*)?$")


def phiwatch(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PHIWATCH, *args], capture_output=True, text=True, timeout=timeout)


def port(lab: dict, name: str) -> int:
    return next(s["port"] for s in lab["services"] if s["name"] == name)


def no_canary(*texts: str) -> None:
    for text in texts:
        for canary in CANARY_STRINGS:
            assert canary not in text


@pytest.fixture(scope="module")
def ports(lab) -> list[str]:
    """Open Orthanc (DICOM and web), the accept-anything SCP, the locked Orthanc and the tarpit."""
    names = ["orthanc-open", "orthanc-open-http", "pynetdicom-any", "orthanc-locked", "tarpit"]
    return [str(port(lab, name)) for name in names]


@pytest.fixture(scope="module")
def scanned(lab, ports, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("terminal")
    db = out / "store.db"
    result = phiwatch("scan", lab["host"], "-p", ",".join(ports), "--timeout", "5", "--progress", "none",
                      "--db", str(db), "-o", str(out / "reports"), "--format", "sarif,csv,md")
    assert result.returncode == 0, result.stderr
    return {"result": result, "out": out, "db": db,
            "json": json.loads((out / "reports" / "scan.json").read_text())}


def test_findings_are_one_line_each_worst_first_and_match_scan_json(scanned):
    result, document = scanned["result"], scanned["json"]
    lines = result.stdout.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    ranks = [SEVERITIES.index(m.group(1)) for m in parsed if m]
    assert ranks == sorted(ranks) and ranks[0] == 0  # a critical first
    shown = sorted((m.group(2), int(m.group(4))) for m in parsed if m)
    assert shown == sorted((f["check_id"], f["port"]) for f in document["findings"])
    study = next(line for line in lines if "[dicom_study_data_exposed]" in line)
    exposed = next(f for f in document["findings"] if f["check_id"] == "dicom_study_data_exposed")
    assert f"{exposed['exposure']['studies']} studies" in study  # the count that matters
    no_canary(result.stdout, result.stderr)


def test_the_summary_says_where_the_scan_is_and_how_to_render_it(scanned, tmp_path):
    result, db, document = scanned["result"], scanned["db"], scanned["json"]
    scan_id = document["scan"]["id"]
    summary = result.stderr.splitlines()
    assert summary[0].startswith(f"scan {scan_id} complete in ")
    services = document["services"]
    exposed = sum(s["status"] == "exposed" for s in services)
    assert f"{len(services)} open services, {exposed} exposed" in summary[0]
    written = next(line for line in summary if line.startswith("written to"))
    for name in ("scan.json", "scan.schema.json", "phiwatch.sarif", "findings.csv", "report.md"):
        assert name in written and (scanned["out"] / "reports" / name).is_file()
    assert not (scanned["out"] / "reports" / "report.html").exists()  # only the formats asked for
    render = next(line for line in summary if line.startswith("stored in"))
    assert render.startswith(f"stored in {db}; render it with: phiwatch report {scan_id} --db {db} -o report/")
    command = shlex.split(render.split("render it with: ", 1)[1])
    command[command.index("-o") + 1] = str(tmp_path / "rendered")
    rendered = phiwatch(*command[1:], "-f", "html")
    assert rendered.returncode == 0, rendered.stderr
    assert (tmp_path / "rendered" / "report.html").is_file()


def test_jsonl_streams_findings_and_quiet_and_verbose_change_only_what_they_say(lab, ports, tmp_path):
    target = [lab["host"], "-p", ",".join(ports), "--timeout", "5", "--no-db"]
    streamed = phiwatch("scan", *target, "--jsonl", "--progress", "none", "-o", str(tmp_path))
    assert streamed.returncode == 0, streamed.stderr
    records = [json.loads(line) for line in streamed.stdout.splitlines()]
    document = json.loads((tmp_path / "scan.json").read_text())
    assert sorted((r["check_id"], r["port"]) for r in records) == sorted(
        (f["check_id"], f["port"]) for f in document["findings"])
    assert all(set(r) >= {"check_id", "severity", "host", "port", "evidence"} for r in records)

    quiet = phiwatch("scan", *target, "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""  # no progress, no summary
    assert quiet.stdout.splitlines() and all(LINE.match(line) for line in quiet.stdout.splitlines())

    verbose = phiwatch("scan", *target, "-v", "--progress", "none")
    services = [line for line in verbose.stdout.splitlines() if not LINE.match(line)]
    assert any(line.startswith(f"[exposed] 127.0.0.1:{port(lab, 'pynetdicom-any')}/dicom") for line in services)
    assert any(line.startswith(f"[rejected] 127.0.0.1:{port(lab, 'orthanc-locked')}/dicom") for line in services)

    critical = phiwatch("scan", *target, "--severity", "critical", "--progress", "none")
    lines = critical.stdout.splitlines()
    assert lines and all(line.startswith("[critical]") for line in lines)
    hidden = len(document["findings"]) - len(lines)
    assert f"({hidden} below --severity not shown)" in critical.stderr
    no_canary(streamed.stdout, quiet.stdout, verbose.stdout, critical.stdout, critical.stderr)


def test_report_keeps_only_the_severities_asked_for(scanned, tmp_path):
    scan_id = scanned["json"]["scan"]["id"]
    done = phiwatch("report", scan_id, "--db", str(scanned["db"]), "--severity", "high,critical", "-f", "csv",
                    "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "findings.csv").read_text().splitlines()[1:]
    wanted = [f for f in scanned["json"]["findings"] if f["severity"] in ("critical", "high")]
    assert len(rows) == len(wanted) > 0


def test_progress_counts_ports_and_names_the_limit_that_holds_back(lab, ports):
    # Given one host's five ports and one connection at a time to it
    result = phiwatch("scan", lab["host"], "-p", ",".join(ports), "--timeout", "5", "--no-db",
                      "--progress", "json", "--per-host", "1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    progress = [e for e in events if e["event"] == "progress"]
    # Then progress counts the ports to probe, ends at all of them, and says --per-host held it back
    assert {e["unit"] for e in progress} == {"ports"} and {e["total"] for e in progress} == {len(ports)}
    assert progress[-1]["done"] == len(ports)
    assert any(e.get("held_back_by") == "--per-host 1" for e in progress)
    assert progress[-1]["open"] == len(ports) - sum(
        e["status"] in ("interrupted", "probe-error") for e in events if e["event"] == "service")


def test_diff_of_a_narrower_scan_calls_nothing_fixed_it_did_not_look_at(lab, ports, scanned):
    # Given the full scan above, and a newer scan of only the accept-anything SCP's port
    newer = phiwatch("scan", lab["host"], "-p", str(port(lab, "pynetdicom-any")), "--timeout", "5",
                     "--db", str(scanned["db"]), "-q")
    assert newer.returncode == 0, newer.stderr
    stored = phiwatch("scans", "--db", str(scanned["db"]))
    rows = stored.stdout.splitlines()
    assert rows[0].split()[:2] == ["SCAN", "STARTED"] and len(rows) == 3
    old_id, new_id = rows[1].split()[0], rows[2].split()[0]
    # When they are compared
    compared = phiwatch("diff", old_id, new_id, "--db", str(scanned["db"]))
    as_json = json.loads(phiwatch("diff", old_id, new_id, "--db", str(scanned["db"]), "--json").stdout)
    # Then the scope difference comes first, nothing is "fixed", and the rest is "not rescanned"
    lines = compared.stdout.splitlines()
    assert lines[0].startswith("scope: ") and "left out 4 of the older scan's ports" in compared.stdout
    assert as_json["fixed"] == [] and as_json["new"] == []
    others = [f for f in scanned["json"]["findings"] if f["port"] != port(lab, "pynetdicom-any")]
    assert len(as_json["not_rescanned"]) == len(others) > 0
    ranks = [SEVERITIES.index(f["severity"]) for f in as_json["not_rescanned"]]
    assert ranks == sorted(ranks)
