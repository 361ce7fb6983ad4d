"""Given bad input, the CLI answers with one clear line and exit 2, never a traceback; given the
habits of nmap and nuclei users, it understands them. Every run goes through the installed
`phiwatch` entry point; runs that feed words or file names run without a network (`unshare -n`),
so nothing can be resolved in DNS."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

PHIWATCH = str(Path(sys.executable).with_name("phiwatch"))
OFFLINE = ["unshare", "-n"] if os.geteuid() == 0 and shutil.which("unshare") else None


def phiwatch(*args: str, timeout: float = 60, offline: bool = False, env: dict | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real entry point; `offline` runs it in a network namespace of its own (no DNS possible)."""
    if offline and OFFLINE is None:
        pytest.skip("needs root and unshare to run without a network")
    prefix = OFFLINE if offline else []
    return subprocess.run([*(prefix or []), PHIWATCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=stdin)


def one_line_usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("phiwatch: error:")
    return result.stderr


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
        ["scan", "127.0.0.1", "-s", "urgent"],
        ["scan", "127.0.0.1", "-o", "/tmp/x", "--format", "pdf"],
        ["scan", "127.0.0.1", "-v", "-q"],
        ["report", "some-scan-id", "--severity", "bad"],
        ["checks", "--severity", "nope"],
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args):
    one_line_usage_error(phiwatch(*args, offline=True))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["scan", "127.0.0.1", "-oX", "scan.xml"], "did you mean -oX"),
        (["scan", "127.0.0.1", "-oN", "scan.nmap"], "did you mean -oN"),
        (["scan", "targets.txt"], "'targets.txt' looks like a file name"),
        (["scan", "./hosts"], "'./hosts' looks like a file name"),
        (["scan", "127.0.0.1", "--exclude", "do-not-probe.csv"], "looks like a file name"),
        (["scan", "127.0.0.0/30", "--exclude", "127.0.0.0-3"], "every target is excluded"),
        (["scan", "127.0.0.1", "-p-", "--exclude", "127.0.0.1"], "every target is excluded"),
    ],
)
def test_file_names_are_never_resolved_and_nmap_habits_get_a_hint(args, said):
    # Run without any network: a name that reached the resolver would fail as "cannot resolve"
    stderr = one_line_usage_error(phiwatch(*args, offline=True))
    assert said in stderr
    assert "cannot resolve" not in stderr


def test_the_resolver_is_never_called_for_file_names(monkeypatch):
    import socket

    from phiwatch import targets

    def no_dns(*_args, **_kwargs):
        raise AssertionError("a file name reached the resolver")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    for spec in ["scan.xml", "targets.txt", "hosts.lst", "out.gnmap", "./hosts", "~/list", "a/b"]:
        with pytest.raises(targets.TargetError):
            targets.parse_spec(spec)
    assert targets.numeric_blocks("pacs.example.org") is None  # a host name: resolved only by parse_spec


def test_list_file_errors_name_the_file_and_the_line(tmp_path):
    listed = tmp_path / "targets.txt"
    listed.write_text("127.0.0.1  # the lab\n\n127.0.0.2, 1.2.3.4.5\n")
    stderr = one_line_usage_error(phiwatch("scan", "-iL", str(listed), offline=True))
    assert f"{str(listed)!r} line 3: bad target '1.2.3.4.5'" in stderr
    excluded = tmp_path / "never.txt"
    excluded.write_text("10.0.0.1\nnotes.txt\n")
    stderr = one_line_usage_error(phiwatch("scan", "127.0.0.1", "--exclude-file", str(excluded), offline=True))
    assert f"{str(excluded)!r} line 2: 'notes.txt' looks like a file name" in stderr
    stderr = one_line_usage_error(phiwatch("scan", "-iL", "-", stdin="127.0.0.1\nreport.html\n", offline=True))
    assert "standard input line 2: 'report.html' looks like a file name" in stderr
    output = tmp_path / "found.xml"  # a scanner's output given as a target: not read word by word
    output.write_text('<?xml version="1.0"?>\n<nmaprun scanner="nmap">\nhello world\n</nmaprun>\n')
    stderr = one_line_usage_error(phiwatch("scan", str(output), offline=True))
    assert "looks like a scanner's output" in stderr and "--from" in stderr


def test_ports_in_nmap_spelling():
    from phiwatch.targets import parse_ports

    assert parse_ports("-") == list(range(1, 65536))
    assert parse_ports("-3,65534-") == [1, 2, 3, 65534, 65535]


@pytest.mark.parametrize(
    ("flag", "path"),
    [("--output", "/proc/phiwatch-out"), ("--db", "/proc/phiwatch/x.db"), ("--log-file", "/proc/phiwatch/x.log"),
     ("--output", "FILE"), ("--db", "DIR")],
)
def test_unwritable_outputs_fail_before_the_first_packet(tmp_path, flag, path):
    from .parrot import Parrot
    from .test_hostile_dicom import garbage

    afile = tmp_path / "a-file"
    afile.write_text("x")
    path = {"FILE": str(afile / "out"), "DIR": str(tmp_path)}.get(path, path)
    with Parrot(garbage) as peer:
        result = phiwatch("scan", "127.0.0.1", "-p", str(peer.port), flag, path)
        assert peer.connections == 0  # nothing was sent
    stderr = one_line_usage_error(result)
    assert flag in stderr or "store" in stderr


def test_help_version_and_plain_placeholders():
    short, long = phiwatch("-h"), phiwatch("--help")
    assert short.returncode == 0 and short.stdout == long.stdout and "scan" in short.stdout
    assert phiwatch("--version").stdout.strip().startswith("phiwatch ")
    page = phiwatch("scan", "-h").stdout
    for command in (["scan"], ["report"], ["diff"], ["sniff"], ["audit"], ["lab", "up"]):
        shown = phiwatch(*command, "-h")
        assert shown.returncode == 0, command
        for python_type in ("<list[", "<int>", "<str>", "<float>", "<path>", "<bool>", "<list"):
            assert python_type not in shown.stdout, (command, python_type)
    for placeholder in ("-p, --ports PORTS", "-iL, --input-list FILE", "--per-host N", "-o, --output DIR",
                        "[TARGETS]..."):
        assert placeholder in page, placeholder


def test_shell_completion_is_on():
    # Given bash asking what follows "phiwatch sc", When the completion hook answers
    result = phiwatch(env={"_PHIWATCH_COMPLETE": "complete_bash", "COMP_WORDS": "phiwatch sc", "COMP_CWORD": "1"})
    # Then it offers the scan commands
    assert result.returncode == 0, result.stderr
    assert "scan" in result.stdout.split() and "scans" in result.stdout.split()
    assert "--install-completion" in phiwatch("--help").stdout


def test_checks_lists_the_catalog_worst_first():
    from phiwatch.checks.metadata import load_catalog

    catalog = load_catalog()
    listed = json.loads(phiwatch("checks", "--json").stdout)
    assert sorted(row["id"] for row in listed) == sorted(catalog)
    ranks = [catalog[row["id"]].severity.rank for row in listed]
    assert ranks == sorted(ranks, reverse=True)
    assert all(row["title"] == catalog[row["id"]].title and row["protocols"] for row in listed)
    table = phiwatch("checks", "--severity", "critical")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "SEVERITY", "PROTOCOLS", "TITLE"]
    assert len(lines) - 1 == sum(e.severity.value == "critical" for e in catalog.values())
    assert all(" critical " in line for line in lines[1:])


def test_the_man_page_is_generated_from_the_commands(tmp_path):
    page = phiwatch("man").stdout
    assert page.startswith(".TH PHIWATCH 1")
    for command in ("phiwatch scan", "phiwatch diff", "phiwatch checks", "phiwatch lab up"):
        assert f'.SS "{command}"' in page, command
    assert "\\-\\-per\\-host N" in page and "\\-iL, \\-\\-input\\-list FILE" in page
    assert phiwatch("man", "-o", str(tmp_path / "phiwatch.1")).returncode == 0
    assert (tmp_path / "phiwatch.1").read_text() == page
    if shutil.which("man"):  # man(1) renders it without a warning
        shown = subprocess.run(["man", "--warnings", "-l", str(tmp_path / "phiwatch.1")], capture_output=True,
                               text=True, timeout=60, env={**os.environ, "MANWIDTH": "100"})
        assert shown.returncode == 0 and "--per-host" in shown.stdout.replace("\u2010", "-")
        assert "warning" not in shown.stderr


def test_a_config_file_sets_a_teams_defaults(tmp_path):
    from .parrot import Parrot
    from .test_hostile_dicom import garbage

    config_home = tmp_path / "config"
    (config_home / "phiwatch").mkdir(parents=True)
    (config_home / "phiwatch" / "config.toml").write_text('[scan]\nno-db = true\nprogress = "none"\ntimeout = 1\n')
    env = {"XDG_CONFIG_HOME": str(config_home), "XDG_DATA_HOME": str(tmp_path / "data")}
    with Parrot(garbage) as peer:
        # Given the default config file, When a scan runs without those options
        result = phiwatch("scan", "127.0.0.1", "-p", str(peer.port), env=env)
        # Then they apply: nothing stored, no progress lines
        assert result.returncode == 0, result.stderr
        assert "not stored (--no-db)" in result.stderr and '"event"' not in result.stderr
        assert not (tmp_path / "data").exists()
        # And a file given with --config adds its own, the command line winning over both
        team = tmp_path / "team.toml"
        team.write_text('[scan]\nseverity = "critical"\nno-db = false\n')
        result = phiwatch("scan", "127.0.0.1", "-p", str(peer.port), "--config", str(team), "--db",
                          str(tmp_path / "s.db"), env=env)
        assert result.returncode == 0, result.stderr
        assert "stored in" in result.stderr and (tmp_path / "s.db").exists()
        # And before the command, --config applies the same way
        quiet = tmp_path / "quiet.toml"
        quiet.write_text('[scan]\nquiet = true\n')
        result = phiwatch("--config", str(quiet), "scan", "127.0.0.1", "-p", str(peer.port), env=env)
        assert result.returncode == 0 and result.stderr == ""
    bad = tmp_path / "bad.toml"
    for text, said in (('[scan]\nper_hots = 3\n', "[scan] has no option 'per_hots'"),
                       ("[scna]\n", "no command [scna]"), ("[scan\n", "is not TOML")):
        bad.write_text(text)
        assert said in one_line_usage_error(phiwatch("scan", "127.0.0.1", "--config", str(bad), env=env))
    assert "is not TOML" in one_line_usage_error(phiwatch("--config", str(bad), "scans", env=env))


def test_scans_lists_with_a_header_or_says_there_are_none(tmp_path):
    store = tmp_path / "empty.db"
    empty = phiwatch("scans", "--db", str(store))
    assert empty.returncode == 0 and empty.stdout.strip() == f"no scans in {store}"


def test_large_scan_needs_the_flag():
    result = phiwatch("scan", "10.0.0.0/15", offline=True)
    assert "--allow-large" in one_line_usage_error(result)


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
             "--timeout", "5", "--format", "md,html"],
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
    # Then the scan stops at once, marked partial, with the finished service kept and the one cut
    # short saying so, counted neither as open nor as the target's error
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    document = json.loads((tmp_path / "scan.json").read_text())
    assert document["scan"]["complete"] is False
    statuses = {s["port"]: s["status"] for s in document["services"]}
    assert statuses[slow.port] == "interrupted" and statuses[quick.port] not in ("interrupted", "probe-error")
    assert "1 open services" in stderr and "1 probes cut short" in stderr
    # And its reports show no compliance requirement as passing
    markdown = (tmp_path / "report.md").read_text()
    assert "The scan was cut short: no requirement is shown as passing." in markdown
    rows = [line.split("|") for line in markdown.splitlines() if line.startswith(("| HIPAA", "| GDPR"))]
    assert rows and all(row[3].strip() == "0" for row in rows)  # the "Passing" column
    html = (tmp_path / "report.html").read_text()
    assert ">0 passing<" in html and "of 1 open service;" in html  # the cut-short one not counted (console)


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
    result = phiwatch("sniff", str(tmp_path / "share"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kinds"]["dicom"]["verified"] == 1
    assert "PatientName" in summary["phi_attributes"]["dicom"]
    human = phiwatch("sniff", str(tmp_path / "share"))
    assert human.returncode == 0, human.stderr
    assert "DICOM" in human.stdout and "1 verified" in human.stdout
    assert "PHI attributes in DICOM:" in human.stdout and "PatientName" in human.stdout
    for canary in CANARY_STRINGS:
        for text in (result.stdout, result.stderr, human.stdout, human.stderr):
            assert canary not in text
    assert "IM00001" not in human.stdout  # no file name
    assert "cannot sniff" in one_line_usage_error(phiwatch("sniff", str(tmp_path / "missing")))
    assert phiwatch("sniff", str(tmp_path / "missing"), "--json").returncode == 1


def test_lab_scan_targets_are_every_host_and_every_service_port():
    from phiwatch_lab.cli import scan_targets

    manifest = {"host": "127.0.0.1", "services": [
        {"port": 21180}, {"port": 21100}, {"port": 21100}, {"port": 2049, "host": "100.65.73.178"},
        {"port": 111, "host": "100.65.73.178"}]}  # fmt: skip
    assert scan_targets(manifest) == (["127.0.0.1", "100.65.73.178"], [111, 2049, 21100, 21180])


def test_lab_scan_hint_covers_every_host_and_port():
    from phiwatch_lab.cli import scan_hint

    manifest = {"host": "127.0.0.1", "services": [
        {"name": "a", "port": 21100}, {"name": "b", "port": 21127},
        {"name": "nfs", "port": 2049, "host": "100.65.73.178"},
        {"name": "rpcbind", "port": 111, "host": "100.65.73.178"},
    ]}
    assert scan_hint(manifest) == "phiwatch scan 127.0.0.1 100.65.73.178 -p 111,2049,21100-21127"
    assert scan_hint({"host": "127.0.0.1", "services": [{"port": 5}]}) == "phiwatch scan 127.0.0.1 -p 5-5"


def test_scan_defaults_follow_the_engine():
    from phiwatch.engine import DEFAULT_RATE
    from phiwatch.run import ScanRequest

    assert ScanRequest(targets=[]).rate == DEFAULT_RATE


def imported_by(*args: str) -> set[str]:
    """Modules a fresh `phiwatch ARGS` imported (from python -X importtime)."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "phiwatch", *args], capture_output=True,
                         text=True, timeout=120)
    return {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}


def test_start_up_imports_only_what_the_command_uses(tmp_path):
    heavy = {"sqlalchemy", "pydicom", "pynetdicom", "phiwatch_lab", "dask", "distributed", "jinja2",
             "phiwatch.store", "phiwatch.reports.html", "rich.progress"}
    # --help and a usage error load no model, store, protocol library, report writer or plug-in
    for args in (["--help"], ["scan", "127.0.0.1", "-p", "70000"]):
        modules = imported_by(*args)
        assert modules & (heavy | {"phiwatch.models"}) == set(), args
        assert not any(m.startswith("phiwatch_lab") for m in modules), args
    # a scan that writes no report and runs on no cluster loads neither the report code nor Dask
    scanned = imported_by("scan", "127.0.0.1", "-p", "1", "--no-db", "-q")
    unused = {"dask", "distributed", "jinja2", "phiwatch.reports.html", "rich.progress", "alembic"}
    assert unused & scanned == set() and not any(m.startswith("phiwatch_lab") for m in scanned)
    assert "phiwatch.scanner" in scanned  # it did scan
    # the lab's commands load when they are asked for
    assert any(m.startswith("phiwatch_lab") for m in imported_by("lab", "--help"))


def test_a_fault_of_phiwatch_is_one_line_with_its_type_only(tmp_path):
    import sqlite3

    from phiwatch.store import Store

    from .test_store import a_result

    # Given a store whose one scan was damaged by hand
    store = Store(tmp_path / "s.db")
    store.save(a_result("damaged"))
    store.close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE scans SET scan = '{\"id\": \"damaged\"}'")
    # When it is rendered, Then one line names the error's type, never its message, exit 1
    result = phiwatch("report", "damaged", "--db", str(tmp_path / "s.db"), "-o", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = "phiwatch: error: internal error (ValidationError); PHIWATCH_DEBUG=1 shows where"
    assert result.stderr.strip() == said
    debug = phiwatch("report", "damaged", "--db", str(tmp_path / "s.db"), "-o", str(tmp_path / "out"),
                     env={"PHIWATCH_DEBUG": "1"})
    assert "Traceback" in debug.stderr
