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
