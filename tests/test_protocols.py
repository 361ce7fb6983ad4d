"""The protocol table: identification, default ports, web-repository order, checks, options and
the catalog's protocol names all come from phiwatch.probes.PROTOCOLS."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any, get_type_hints

import pytest
from pydantic import ValidationError

from phiwatch import probes
from phiwatch.checks import all_checks, checks_for
from phiwatch.checks.metadata import CatalogEntry, load_catalog
from phiwatch.models import Protocol
from phiwatch.probes import BY_NAME, DEFAULT_PORTS, IN_TURN, OPTIONS, PROTOCOLS, WEB_REPOSITORIES
from phiwatch.probes.identify import classify_banner


def test_every_protocol_name_has_one_row_and_every_default_port_one_protocol():
    named = {n for spec in PROTOCOLS for n in (spec.name, *spec.names)}
    assert named == set(Protocol)
    assert len({spec.name for spec in PROTOCOLS}) == len(PROTOCOLS)
    ports = [p for spec in PROTOCOLS if spec.probe for p in spec.default_ports]
    assert sorted(ports) == sorted(set(ports)) == list(DEFAULT_PORTS)


def test_identification_reads_ports_and_banners_from_the_table():
    assert probes.by_port(104) is BY_NAME[Protocol.DICOM]
    assert probes.by_port(8042) is BY_NAME[Protocol.HTTP]
    assert probes.by_port(445) is BY_NAME[Protocol.SMB]
    assert probes.by_port(9000) is BY_NAME[Protocol.S3]
    assert probes.by_port(12345) is None
    assert classify_banner(b"220 ProFTPD ready\r\n") == "ftp"
    assert classify_banner(b"@RSYNCD: 31.0\n") == "rsync"
    assert classify_banner(b"SSH-2.0-OpenSSH_9.2\r\n") == "ssh"
    assert classify_banner(b"hello") == "unknown"
    assert BY_NAME[Protocol.SSH].probe is None  # recognised, not probed


def test_silent_ports_and_web_services_are_tried_in_table_order():
    assert [spec.name for spec in IN_TURN] == [Protocol.HTTP, Protocol.DICOM, Protocol.SMB]
    order = [spec.name for spec in WEB_REPOSITORIES]
    assert order.index(Protocol.DIRINDEX) < order.index(Protocol.S3)
    assert all(spec.on_http for spec in WEB_REPOSITORIES)


def test_checks_are_found_through_the_table_and_match_the_catalog_both_ways():
    catalog = load_catalog()
    assert set(all_checks()) == {check_id for check_id, entry in catalog.items() if "scan" in entry.sources}
    for spec in PROTOCOLS:
        for name in spec.names:
            for func in checks_for(name):
                entry = catalog[func.__name__]
                rows = [s for s in PROTOCOLS if any(m == func.__module__.rsplit(".", 1)[1] for m in s.checks)]
                assert set(entry.protocols) <= {n for row in rows for n in row.names}, entry.id
    # A web service's checks are the HTTP row's and the directory index row's, nothing else
    http_checks = {f.__name__ for f in checks_for("http")}
    assert {"http_index_medical_files_exposed", "http_directory_listing"} <= http_checks
    assert not {f.__name__ for f in checks_for("ftp")} & http_checks


def test_the_catalog_refuses_a_protocol_that_is_not_in_the_table():
    row = dict(load_catalog()["ftp_anonymous_access"].model_dump())
    row["protocols"] = ["gopher"]
    with pytest.raises(ValidationError):
        CatalogEntry.model_validate(row)
    row["protocols"] = ["ftp"]
    assert CatalogEntry.model_validate(row).protocols == [Protocol.FTP]


def test_per_protocol_options_come_from_the_table_into_the_scan_command():
    from phiwatch.cli import scan, with_protocol_options

    # Given the table's options, When the scan command's help is printed, Then each one is there
    flags = [option.flag for option in OPTIONS]
    assert flags == ["--s3-bucket", "--s3-buckets-file"]
    text = subprocess.run([sys.executable, "-m", "phiwatch", "scan", "--help"], capture_output=True, text=True,
                          timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    for flag in flags:
        assert flag in text
    # And the scan function has a parameter for each, which nobody wrote into its signature by hand
    hints = get_type_hints(scan, include_extras=True)
    assert {option.key for option in OPTIONS} <= set(hints)

    def command(a: int = 1, **rest: Any) -> None:
        pass

    wrapped = with_protocol_options(command)
    assert list(inspect.signature(wrapped).parameters) == ["a", *(o.key for o in OPTIONS)]
    assert all(getattr(get_type_hints(wrapped, include_extras=True)[o.key], "__metadata__", None)
               for o in OPTIONS)


def test_an_option_reaches_the_probe_options_through_its_rows_configure():
    from phiwatch.probes.options import ProbeOptions

    options = probes.configure(ProbeOptions(), {"s3_bucket": ["pacs-export", "pacs-export"]})
    assert options.files.s3_buckets == ("pacs-export",)
    with pytest.raises(ValueError, match="--s3-bucket"):
        probes.configure(ProbeOptions(), {"s3_bucket": ["NOT A BUCKET"]})
    assert probes.configure(ProbeOptions(), {}) == ProbeOptions()
