"""Given bad input, the CLI answers with one clear line and exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest


def phiwatch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phiwatch", *args],
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "1.2.3.4.5"],
        ["scan", "127.0.0.1", "-p", "70000"],
        ["scan", "127.0.0.1", "--timeout", "abc"],
        ["scan", "127.0.0.1", "--bogus"],
        ["scan", "10.0.0.0/8"],
        ["scan", "127.0.0.1", "--calling-ae", "WAY-TOO-LONG-AE-TITLE"],
        ["scan", "127.0.0.1", "--rate", "-5"],
        ["scan", "-iL", "/nonexistent/list.txt"],
        ["scan"],
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args):
    result = phiwatch(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("phiwatch: error:")


def test_large_scan_needs_the_flag():
    result = phiwatch("scan", "10.0.0.0/15")
    assert "--allow-large" in result.stderr


def test_schema_is_a_valid_json_schema_with_the_contract():
    result = phiwatch("schema")
    document = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(document)
    assert set(document["required"]) >= {"scan"}
    assert {"scan", "services", "findings"} <= set(document["properties"])
    finding = document["$defs"]["Finding"]["properties"]
    assert {"check_id", "title", "severity", "host", "port", "protocol", "evidence",
            "exposure"} <= set(finding)


def test_ctrl_c_stops_cleanly_and_keeps_what_is_done(tmp_path):
    import signal
    import time

    from .parrot import Parrot
    from .test_hostile_dicom import garbage, silent

    # Given one quick service and one that never answers
    with Parrot(garbage) as quick, Parrot(silent) as slow:
        process = subprocess.Popen(
            [sys.executable, "-m", "phiwatch", "scan", "127.0.0.1", "-p",
             f"{quick.port},{slow.port}", "-o", str(tmp_path), "--no-db", "--progress", "json",
             "--timeout", "5"],
            stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 20
        assert process.stderr is not None
        for line in process.stderr:  # wait until the quick service is recorded
            if '"event": "service"' in line or time.monotonic() > deadline:
                break
        # When the user presses Ctrl-C
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    # Then the scan stops at once, marked partial, with the finished service kept
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    document = json.loads((tmp_path / "scan.json").read_text())
    assert document["scan"]["complete"] is False
    assert [s["port"] for s in document["services"]] == [quick.port]


def test_scan_from_a_service_list_probes_only_listed_services_and_excludes_win(tmp_path):
    from .parrot import Parrot
    from .test_hostile_dicom import garbage

    with Parrot(garbage) as listed, Parrot(garbage) as unlisted, Parrot(garbage) as excluded:
        services = tmp_path / "found.txt"
        services.write_text(f"# from a discovery run\n127.0.0.1:{listed.port}\n127.0.0.3:{excluded.port}\n")
        out = tmp_path / "out"
        result = phiwatch("scan", "--from", str(services), "--exclude", "127.0.0.3", "-o", str(out),
                          "--no-db", "--timeout", "1", "--progress", "none")
        assert result.returncode == 0, result.stderr
        document = json.loads((out / "scan.json").read_text())
        assert [(s["host"], s["port"]) for s in document["services"]] == [("127.0.0.1", listed.port)]
        assert document["scan"]["targets"]["services"] == 1
        assert unlisted.connections == 0 and excluded.connections == 0

    broken = tmp_path / "broken.txt"
    broken.write_text("127.0.0.1:104\n127.0.0.1:70000\n")
    failed = phiwatch("scan", "--from", str(broken))
    assert failed.returncode == 2 and "line 2" in failed.stderr and "Traceback" not in failed.stderr


def test_sniff_counts_files_by_kind_and_prints_no_value(tmp_path):
    from phiwatch_lab.canary import CANARY_STRINGS, canary_bytes

    folder = tmp_path / "share" / "DICOM"
    folder.mkdir(parents=True)
    (folder / "IM00001.dcm").write_bytes(canary_bytes())
    result = phiwatch("sniff", str(tmp_path / "share"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kinds"]["dicom"]["verified"] == 1
    assert "PatientName" in summary["phi_attributes"]["dicom"]
    for canary in CANARY_STRINGS:
        assert canary not in result.stdout and canary not in result.stderr
    assert phiwatch("sniff", str(tmp_path / "missing")).returncode == 1


def test_lab_scan_hint_covers_every_host_and_port():
    from phiwatch_lab.cli import scan_hint

    manifest = {"host": "127.0.0.1", "services": [
        {"name": "a", "port": 21100}, {"name": "b", "port": 21127},
        {"name": "nfs", "port": 2049, "host": "100.65.73.178"},
        {"name": "rpcbind", "port": 111, "host": "100.65.73.178"},
    ]}
    assert scan_hint(manifest) == "phiwatch scan 127.0.0.1 100.65.73.178 -p 111,2049,21100-21127"
    assert scan_hint({"host": "127.0.0.1", "services": [{"port": 5}]}) == "phiwatch scan 127.0.0.1 -p 5-5"
