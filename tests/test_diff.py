"""Given two scans, diff lists new, fixed and changed exposures, with an exit code for scripts."""

from __future__ import annotations

import json
import subprocess
import sys

from phiwatch.diff import diff_scans
from phiwatch.models import Exposure

from .test_store import a_result


def two_scans():
    old, new = a_result("old"), a_result("new")
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
    assert "1 new, 1 fixed, 1 changed" in failing.stdout
    same = subprocess.run([*run, str(tmp_path / "old.json"), str(tmp_path / "old.json"), "--fail-on-new",
                           "--json"], capture_output=True, text=True, timeout=60)
    assert same.returncode == 0 and json.loads(same.stdout)["new"] == []
    missing = subprocess.run([*run, str(tmp_path / "nope.json"), str(tmp_path / "old.json")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("phiwatch: error:")
