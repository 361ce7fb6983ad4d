"""Country and network view: address classes without the database, countries from the bundled one."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from phiwatch import geo
from phiwatch.models import (
    Exposure,
    Finding,
    ProbeStatus,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    Severity,
    TargetSummary,
)

NOT_PUBLIC = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "private",
    "fd00::1": "private",
    "::ffff:10.0.0.1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "192.0.2.1": "reserved",
    "198.51.100.1": "reserved",
    "203.0.113.1": "reserved",
    "2001:db8::1": "reserved",
    "0.0.0.0": "reserved",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "::": "reserved",
    "not-an-address": "unknown",
    "": "unknown",
}


@pytest.fixture
def no_database(monkeypatch):
    def refuse():
        raise AssertionError("the database must not be consulted for this address")

    geo.locate.cache_clear()
    monkeypatch.setattr(geo, "_database", refuse)
    yield
    geo.locate.cache_clear()


@pytest.mark.parametrize(("address", "kind"), sorted(NOT_PUBLIC.items()))
def test_non_public_addresses_are_labelled_without_the_database(no_database, address, kind):
    location = geo.locate(address)
    assert location.kind == kind
    assert location.country_code is None
    assert location.country_name == geo.LABELS[kind]
    assert location.label == geo.LABELS[kind]


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "9.9.9.9", "2001:4860:4860::8888",
                                     "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_get_a_two_letter_country(address):
    location = geo.locate(address)
    assert location.kind == "public"
    assert location.country_code is not None
    assert len(location.country_code) == 2 and location.country_code.isalpha() and location.country_code.isupper()
    assert location.country_name
    assert location.label == f"{location.country_name} ({location.country_code})"


def test_lookups_are_local(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("no network traffic allowed")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    geo.locate.cache_clear()
    geo._database.cache_clear()
    assert geo.locate("8.8.4.4").kind == "public"
    assert "GeoLite2" in geo.database_source()


def test_importing_geo_does_not_load_the_database():
    code = "import sys, phiwatch.geo; sys.exit(1 if 'geoip2fast' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_locate_is_cached():
    geo.locate.cache_clear()
    first = geo.locate("1.1.1.1")
    assert geo.locate("1.1.1.1") is first


def test_summarise_countries(no_database):
    options = ScanOptions(ports=[104], concurrency=1, per_host=1, rate=1.0, timeout=1.0, retries=0,
                          max_matches=10, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=65536)
    info = ScanInfo(id="s", start=datetime(2025, 1, 1, tzinfo=UTC), version="0.1.0", options=options,
                    targets=TargetSummary(specs=["x"], excludes=[], addresses=3, ports=[104]))

    def service(host: str) -> Service:
        return Service(host=host, port=104, protocol="dicom", status=ProbeStatus.EXPOSED)

    def finding(host: str, exposed: bool) -> Finding:
        return Finding(check_id="dicom_study_data_exposed", title="t" * 10, severity=Severity.CRITICAL, host=host,
                       port=104, protocol="dicom", evidence="e", remediation="r",
                       exposure=Exposure(studies=1) if exposed else None)

    result = ScanResult(
        scan=info,
        services=[service("10.0.0.1"), service("10.0.0.2"), service("127.0.0.1")],
        findings=[finding("10.0.0.1", True), finding("10.0.0.2", False), finding("127.0.0.1", True)],
    )
    assert geo.summarise_countries(result) == [("Private network", 2, 1), ("Loopback", 1, 1)]
