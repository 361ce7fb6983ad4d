"""Given two scans, diff lists new, fixed and changed exposures, with an exit code for scripts."""

from __future__ import annotations

import json
import subprocess
import sys

from phiwatch.diff import diff_scans
from phiwatch.models import Exposure

from .test_store import a_result


def covering(result, specs=("127.0.0.0/24",), ports=(104, 11112)):
    """The same result, its scan having covered these targets and ports."""
    targets = result.scan.targets.model_copy(update={"specs": list(specs), "ports": list(ports)})
    return result.model_copy(update={"scan": result.scan.model_copy(update={"targets": targets})})


def two_scans():
    old, new = covering(a_result("old")), covering(a_result("new"))
    fixed = old.findings[0].model_copy(update={"check_id": "dicom_no_tls", "port": 11112})
    old.findings.append(fixed)
    grown = new.findings[0].model_copy(update={"exposure": Exposure(
        studies=30, instances=9, phi_attributes=["PatientName", "PatientBirthDate"])})
    appeared = new.findings[0].model_copy(update={"host": "127.0.0.9"})
    new.findings = [grown, appeared]
    return old, new


def test_diff_tells_new_fixed_and_changed_apart():
    old, new = two_scans()
    result = diff_scans(old, new)
    assert [f.host for f in result.new] == ["127.0.0.9"]
    assert [f.check_id for f in result.fixed] == ["dicom_no_tls"]
    [change] = result.changed
    assert change.what == ["studies 3 -> 30", "new PHI attributes: PatientBirthDate"]
    assert result.unchanged == 0
    assert diff_scans(old, old).new == [] and diff_scans(old, old).unchanged == 2


def test_diff_command_exit_code_for_scripts(tmp_path):
    old, new = two_scans()
    (tmp_path / "old.json").write_text(old.model_dump_json())
    (tmp_path / "new.json").write_text(new.model_dump_json())
    run = [sys.executable, "-m", "phiwatch", "diff"]
    failing = subprocess.run([*run, str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--fail-on-new"],
                             capture_output=True, text=True, timeout=60)
    assert failing.returncode == 1, failing.stderr
    assert "1 new, 1 fixed, 1 changed, 0 unchanged, 0 not rescanned" in failing.stdout
    same = subprocess.run([*run, str(tmp_path / "old.json"), str(tmp_path / "old.json"), "--fail-on-new",
                           "--json"], capture_output=True, text=True, timeout=60)
    assert same.returncode == 0 and json.loads(same.stdout)["new"] == []
    missing = subprocess.run([*run, str(tmp_path / "nope.json"), str(tmp_path / "old.json")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("phiwatch: error:")


def test_findings_outside_the_newer_scans_scope_are_not_rescanned_never_fixed():
    # Given a scan of two hosts on two ports, and a newer scan of one host on one port
    old, _ = two_scans()
    elsewhere = old.findings[0].model_copy(update={"host": "127.0.0.7"})
    old.findings.append(elsewhere)
    new = covering(a_result("new"), specs=["127.0.0.1"], ports=[104])
    # When they are compared
    result = diff_scans(old, new)
    # Then nothing the newer scan did not look at is "fixed", and the scope difference is said
    assert result.fixed == []
    assert sorted((f.host, f.port) for f in result.not_rescanned) == [("127.0.0.1", 11112), ("127.0.0.7", 104)]
    assert any("left out 1 of the older scan's ports (11112)" in note for note in result.scope)
    assert any("2 older findings are outside" in note for note in result.scope)
    assert result.unchanged == 1


def test_a_partial_newer_scan_fixes_only_what_it_probed_to_the_end():
    from phiwatch.models import ProbeStatus

    old, _ = two_scans()
    new = covering(a_result("new"))
    new.scan.complete = False
    new.findings = []
    new.services[0] = new.services[0].model_copy(update={"status": ProbeStatus.INTERRUPTED})
    result = diff_scans(old, new)
    assert result.fixed == [] and len(result.not_rescanned) == 2
    assert "partial" in result.scope[0]
    finished = covering(a_result("new"))
    finished.scan.complete = False
    finished.findings = []
    result = diff_scans(old, finished)  # 127.0.0.1:104 probed to the end without the finding
    assert [(f.host, f.port) for f in result.fixed] == [("127.0.0.1", 104)]
    assert [(f.host, f.port) for f in result.not_rescanned] == [("127.0.0.1", 11112)]


def test_diff_text_says_the_scope_first_and_sorts_by_severity():
    from phiwatch.diff import diff_text
    from phiwatch.models import Severity

    old, _ = two_scans()
    low = old.findings[0].model_copy(update={"check_id": "dicom_no_tls", "severity": Severity.LOW,
                                              "host": "127.0.0.5"})
    old.findings.insert(0, low)
    new = covering(a_result("new"), specs=["127.0.0.1"], ports=[104])
    lines = diff_text(diff_scans(old, new))
    assert lines[0].startswith("scope: ")
    rows = [line.split()[2] for line in lines if line.startswith("  not rescanned")]
    assert rows == ["critical", "low"]  # 127.0.0.1:11112 (critical) before 127.0.0.5 (low)


def test_a_partial_stored_scan_counts_its_complete_shards_as_covered(tmp_path):
    from phiwatch.cluster import sweep_shards
    from phiwatch.diff import complete_shards
    from phiwatch.store import Store
    from phiwatch.targets import build_targets

    # Given an older scan with findings on two hosts, and a newer one stopped after its first shard
    old = covering(a_result("old"), specs=["127.0.0.0/30"], ports=[104])
    old.findings.append(old.findings[0].model_copy(update={"host": "127.0.0.2"}))
    new = covering(a_result("new"), specs=["127.0.0.0/30"], ports=[104])
    new.scan.complete, new.services, new.findings = False, [], []
    store = Store(tmp_path / "s.db")
    store.begin(new.scan, {"targets": ["127.0.0.0/30"], "excludes": []}, 2)
    first = next(sweep_shards(build_targets(["127.0.0.0/30"]).blocks, 2))
    store.record(new.scan.id, [], (first.index, first.digest, first.units))
    # When the diff knows the complete shards
    done = complete_shards(store, new.scan.id)
    store.close()
    result = diff_scans(old, new, done)
    # Then the host of the complete shard is fixed, the other one not rescanned
    assert [f.host for f in result.fixed] == ["127.0.0.1"]
    assert [f.host for f in result.not_rescanned] == ["127.0.0.2"]
    assert diff_scans(old, new).fixed == []  # without the shards, nothing is called fixed
