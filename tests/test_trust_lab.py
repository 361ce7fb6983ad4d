"""Given the real lab servers and the lab's honeypot-like servers, a scan's trust and exposure
ladder hold: real servers keep a high score, the honeypots are marked with the reasons their
documented behaviour gives, and every step of the ladder equals a truth computed from the
lab's manifest (not from phiwatch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from phiwatch.models import ScanResult
from phiwatch.probes import BY_NAME, Protocol
from phiwatch.store import Store
from phiwatch_lab.canary import CANARY_STRINGS
from phiwatch_lab.truth import DICOM_DEFAULT_PORTS, ladder_truth

pytestmark = pytest.mark.lab

# The synthetic values the lab honeypots serve: they must never reach an output either.
HONEYPOT_VALUES = ["HONEY^POT", "HP-0001", "HPACC1", "1.2.826.0.1.3680043.8.498.4242"]
REAL_DICOM = ["orthanc-open", "orthanc-locked", "orthanc-default", "dcmqrscp", "pynetdicom-any", "pynetdicom-tls"]
HIGH = 0.8


def phiwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", *args], capture_output=True, text=True, timeout=300)


def host_of(lab: dict, entry: dict) -> str:
    return entry.get("host", lab["host"])


@pytest.fixture(scope="module")
def lab_trust(lab, tmp_path_factory):
    """One scan of the whole lab through the CLI, stored and written."""
    out = tmp_path_factory.mktemp("trust-lab")
    local = [s["port"] for s in lab["services"] if host_of(lab, s) == lab["host"]]
    elsewhere = [s for s in lab["services"] if host_of(lab, s) != lab["host"]]
    hosts = [lab["host"], *sorted({s["host"] for s in elsewhere})]
    ports = ",".join([*sorted({str(s["port"]) for s in elsewhere}), f"{min(local)}-{max(local)}"])
    result = phiwatch("scan", *hosts, "-p", ports, "--output", str(out), "--db", str(out / "phiwatch.db"),
                      "--timeout", "5", "--progress", "none")
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "scan.json").read_text())
    by_address = {(s["host"], s["port"]): s for s in document["services"]}
    services = {e["name"]: by_address.get((host_of(lab, e), e["port"])) for e in lab["services"]}
    return {"out": out, "process": result, "json": document, "services": services, "lab": lab}


def test_real_dicom_servers_keep_a_high_score(lab_trust):
    for name in REAL_DICOM:
        trust = lab_trust["services"][name]["trust"]
        assert trust["score"] >= HIGH and not trust["honeypot"], (name, trust)


def test_no_real_server_of_the_lab_is_marked_a_honeypot(lab_trust):
    real = [e["name"] for e in lab_trust["lab"]["services"] if not e["expected"].get("honeypot")]
    assert len(real) > 30
    marked = [n for n in real if lab_trust["services"][n] and lab_trust["services"][n]["trust"]["honeypot"]]
    assert marked == []


def test_the_lab_honeypots_are_marked_with_their_documented_reasons(lab_trust):
    honeypots = [e for e in lab_trust["lab"]["services"] if e["expected"].get("honeypot")]
    assert {e["expected"]["kind"] for e in honeypots} == {"canned", "persona", "canned-bare"}
    for entry in honeypots:
        service = lab_trust["services"][entry["name"]]
        trust = service["trust"]
        assert trust["honeypot"] and trust["score"] < 0.2, (entry["name"], trust)
        assert set(entry["expected"]["trust_reasons"]) <= set(trust["reasons"]), entry["name"]
        assert service["dicom"]["query"]["studies"] == entry["expected"]["studies"]
    canned = [lab_trust["services"][e["name"]]["trust"]["cluster"] for e in honeypots
              if e["expected"]["kind"].startswith("canned")]
    assert canned[0] is not None and len(set(canned)) == 1  # one fleet: identical fingerprints


def test_the_labs_idea_of_dicom_ports_is_phiwatchs():
    assert tuple(DICOM_DEFAULT_PORTS) == tuple(BY_NAME[Protocol.DICOM].default_ports)


def test_the_exposure_ladder_equals_the_truth_from_the_manifest(lab_trust):
    truth = ladder_truth(lab_trust["lab"]["services"])
    ladder = {family: {s["step"]: (s["raw"], s["filtered"]) for s in steps}
              for family, steps in lab_trust["json"]["summary"]["ladder"].items()}
    assert ladder == truth
    assert truth["dicom"]["studies_exposed"][0] > truth["dicom"]["studies_exposed"][1] > 0


def test_raw_and_filtered_figures_are_side_by_side_in_every_output(lab_trust):
    out: Path = lab_trust["out"]
    summary = lab_trust["json"]["summary"]
    assert summary["likely_honeypots"] == 3
    assert summary["raw"]["studies"] - summary["filtered"]["studies"] == 9  # three honeypots, 3 studies each
    assert f"studies raw {summary['raw']['studies']} / filtered {summary['filtered']['studies']}" in (
        lab_trust["process"].stderr)
    html = (out / "report.html").read_text()
    assert html.index('id="ladder"') < html.index('id="findings"') and "likely honeypot" in html
    report = phiwatch("report", str(out), "-f", "md,csv,sarif", "-o", str(out / "reports"))
    assert report.returncode == 0, report.stderr
    markdown = (out / "reports" / "report.md").read_text()
    assert markdown.index("## Exposure ladder") < markdown.index("## Findings")


def test_the_store_gives_back_the_same_trust(lab_trust):
    store = Store(lab_trust["out"] / "phiwatch.db")
    loaded = store.load(lab_trust["json"]["scan"]["id"])
    store.close()
    assert loaded is not None
    assert loaded.summary == ScanResult.model_validate(lab_trust["json"]).summary


def test_no_canary_nor_honeypot_value_reaches_any_output(lab_trust):
    out: Path = lab_trust["out"]
    blobs = {"scan.json": (out / "scan.json").read_bytes(), "report.html": (out / "report.html").read_bytes(),
             "phiwatch.db": (out / "phiwatch.db").read_bytes(),
             "console": (lab_trust["process"].stdout + lab_trust["process"].stderr).encode()}
    for name, blob in blobs.items():
        for value in [*CANARY_STRINGS, *HONEYPOT_VALUES]:
            assert value.upper().encode() not in blob.upper(), f"{value!r} leaked into {name}"


@pytest.fixture(scope="module")
def honeypot_hosts(lab_plugin):
    with lab_plugin("honeypot-hosts") as entries:
        yield entries


def _scan_hosts(entries: list[dict], out: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    hosts = sorted({e["host"] for e in entries})
    ports = ",".join(sorted({str(e["port"]) for e in entries}))
    result = phiwatch("scan", *hosts, "-p", ports, "--no-db", "--progress", "none", "--output", str(out), *flags)
    return result, json.loads((out / "scan.json").read_text())


def test_hosts_sharing_canned_studies_and_a_contradicted_persona(honeypot_hosts, tmp_path):
    result, document = _scan_hosts(honeypot_hosts, tmp_path, "--fail-on", "critical")
    assert result.returncode == 1  # critical findings on the honeypots count without --exclude-honeypots
    by_address = {(s["host"], s["port"]): s for s in document["services"]}
    for entry in honeypot_hosts:
        trust = by_address[(entry["host"], entry["port"])]["trust"]
        assert trust["honeypot"] == entry["expected"]["honeypot"], entry["name"]
        assert set(entry["expected"].get("trust_reasons", [])) <= set(trust["reasons"]), entry["name"]
    assert document["summary"]["fleets"] == 1


def test_exclude_honeypots_drops_them_from_outputs_counts_and_exit_code(honeypot_hosts, tmp_path):
    result, document = _scan_hosts(honeypot_hosts, tmp_path, "--exclude-honeypots", "--fail-on", "critical")
    assert result.returncode == 0, result.stderr
    assert [s["protocol"] for s in document["services"]] == ["http"]
    assert all(f["protocol"] == "http" for f in document["findings"])
    summary = document["summary"]
    assert summary["honeypots_excluded"] and summary["likely_honeypots"] == 3
    dicom = {s["step"]: (s["raw"], s["filtered"]) for s in summary["ladder"]["dicom"]}
    assert dicom["studies_exposed"] == (3, 0)


def test_jsonl_with_exclude_honeypots_streams_none_of_their_findings(honeypot_hosts, tmp_path):
    # Given hosts of which three are honeypots, When the findings are streamed as JSON lines
    streamed, _ = _scan_hosts(honeypot_hosts, tmp_path, "--jsonl", "--exclude-honeypots")
    everything, document = _scan_hosts(honeypot_hosts, tmp_path, "--jsonl")
    lines = [json.loads(line) for line in streamed.stdout.splitlines()]
    # Then none of the honeypots' findings is among them (they are sent once the scan is assessed)
    honeypots = {(s["host"], s["port"]) for s in document["services"] if s["trust"]["honeypot"]}
    assert len(honeypots) == 3
    assert lines and all((f["host"], f["port"]) not in honeypots for f in lines)
    # and without the flag every finding is streamed, the honeypots' too
    every = [json.loads(line) for line in everything.stdout.splitlines()]
    assert {(f["host"], f["port"]) for f in every} & honeypots
    assert len(every) == len(document["findings"]) > len(lines)


def test_without_the_signals_nothing_extra_is_asked(honeypot_hosts, tmp_path):
    _, document = _scan_hosts(honeypot_hosts, tmp_path, "--no-honeypot-signals")
    dicom = [s for s in document["services"] if s["protocol"] == "dicom"]
    assert dicom and all(c["name"] != "unknown-sop-class" for s in dicom for c in s["dicom"]["contexts"])
    assert all(s["dicom"]["query"]["answers"] is None for s in dicom)
    # the association alone still tells the canned servers apart (no class UID, a known fingerprint)
    assert sum(s["trust"]["honeypot"] for s in dicom) == 3
