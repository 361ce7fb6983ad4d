"""HTTP directory indexes as file repositories: parsers, the lab's nginx autoindex, hostile peers.

Parsers: static pages of each index style (tests/fixtures/dirindex). Against the lab's nginx
(autoindex on over the medical tree, which follows the HL7/back -> .. link): the counts the
manifest measured, the loop seen, the identify path on an odd port, findings, and neither a
canary value nor a lab file or folder name in any output. Hostile scripted peers: every
session ends in a status within its time and byte bounds.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import HttpFacts, ProbeStatus, Service
from phiwatch.peertext import peer_text
from phiwatch.probes import dirindex
from phiwatch.probes.options import ProbeOptions
from phiwatch.probes.outcome import Peer
from phiwatch.probes.walk import FileOptions, Outcome, WalkLimits
from phiwatch_lab.certs import make_self_signed
from phiwatch_lab.medtree import _small_image

from .parrot import Parrot
from .repo_helpers import HOST, identify, on_engine
from .repo_helpers import no_leak as _no_leak

FIXTURES = Path(__file__).parent / "fixtures" / "dirindex"
EXTRA_NAMES = ['/HL7', '/X12', '/IMAGES']  # besides the shared lab names


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.html").read_bytes()


def listing(name: str, folder: str) -> list[tuple[str, str, int | None]]:
    page = fixture(name)
    kind = dirindex.style(page, folder)
    assert kind is not None
    entries, cut = dirindex.parse(page, folder, kind, 2_000)
    assert not cut
    return [(item.kind, item.name, item.size) for item, _ in entries]


def run_probe(port: int, limits: WalkLimits | None = None, timeout: float = 2.0,
              tls: bool = False) -> Outcome | None:
    peer = Peer(HOST, port, tls, http=HttpFacts(scheme="https" if tls else "http"))
    options = ProbeOptions(files=FileOptions(limits or WalkLimits()))
    return on_engine(lambda engine: dirindex.probe(engine, peer, options), timeout)


def no_leak(text: str) -> None:
    _no_leak(text, EXTRA_NAMES)


# --- recognising and parsing index pages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "kind"),
    [("apache_fancy", "/", "apache"), ("apache_pre", "/", "apache"), ("apache_plain", "/exports/", "apache"),
     ("apache_list_root", "/", "generic"), ("nginx", "/exports/", "nginx"), ("iis", "/exports/", "iis"),
     ("iis_root", "/", "iis"), ("iis_longdate", "/exports/", "iis"), ("lighttpd", "/exports/", "lighttpd"),
     ("python", "/", "python"),
     ("caddy", "/", "caddy"), ("rclone", "/", "rclone")],
)
def test_index_styles_are_recognised_by_structure(name, folder, kind):
    # Given a listing page, When its links are read as a listing of its own folder
    page = fixture(name)
    shape = dirindex.shape(page, folder)
    # Then its links stay in the tree and look like a listing, whatever its title says
    assert shape.children > 0 and shape.is_index()
    assert dirindex.style(page, folder) == kind
    untitled = re.sub(rb"(?is)<title>.*?</title>|<h1>.*?</h1>|<h2>.*?</h2>", b"", page)
    assert dirindex.style(untitled, folder) is not None  # the title plays no part


def test_plain_pages_are_not_indexes():
    assert dirindex.style(fixture("plain")) is None
    assert dirindex.style(b"<html><title>Index of figures</title><a href='a.dcm'>a</a></html>") is None
    assert dirindex.style(b"") is None and dirindex.style(b"\x00\xff" * 1000) is None
    go = b'<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n<a href="a/">a/</a>\n'
    assert dirindex.style(go) == "generic"
    # A title alone no longer makes a listing; links leaving the tree outweigh a few inside it
    assert dirindex.style(b"<html><head><title>Directory Listing For [/]</title></head>") is None
    site = b"".join(b'<a href="https://example.invalid/%d">x</a>' % i for i in range(5))
    assert dirindex.style(site + b'<a href="a.dcm">a.dcm</a> 2021-03-14 10 KB') is None
    # Links with dates that are not their names: a blog, not a listing
    blog = b"<ul>" + b"".join(b'<li><a href="post-%d.html">News %d</a></li>' % (i, i) for i in range(6)) + b"</ul>"
    assert dirindex.style(blog) is None


def test_caddy_and_rclone_tables_with_sizes():
    assert listing("caddy", "/") == [
        ("d", "DICOM", None), ("d", "HL7", None), ("d", "IMAGES", None), ("d", "X12", None),
        ("f", "README.txt", 38),
    ]  # the size is "38 B" in its own cell, lines below the link
    assert listing("rclone", "/") == [
        ("d", "DICOM", None), ("d", "HL7", None), ("d", "IMAGES", None), ("d", "X12", None),
        ("f", "README.txt", 38),
    ]  # the zip download links (DICOM/?download=zip) are controls, not entries
    assert listing("apache_pre", "/")[-2:] == [("f", "README.txt", 38), ("d", "X12", None)]


def test_apache_fancy_table_with_sizes():
    assert listing("apache_fancy", "/") == [
        ("d", "DICOM", None), ("d", "HL7 feeds", None), ("f", "CT_small.dcm", 39 * 1024),
        ("f", "12345", int(1.2 * 1024**2)), ("f", "empty.txt", 0), ("f", "README.txt", 38),
    ]  # sort links (?C=N;O=D) ignored; a numeric name is not taken for a size


def test_apache_plain_list_ignores_the_parent_link():
    assert listing("apache_plain", "/exports/") == [
        ("d", "DICOM", None), ("f", "ADT_A01.hl7", None), ("f", "README.txt", None),
    ]


def test_nginx_autoindex_uses_the_link_not_the_cut_display_name():
    assert listing("nginx", "/exports/") == [
        ("d", "DICOM", None), ("d", "HL7", None), ("f", "DOE JANE 1970-01-01 MRN 0012345 CHEST.dcm", 409600),
        ("f", "claims_1.837", 512), ("f", "empty.dcm", 0),
    ]


def test_iis_root_relative_links_and_sizes_before_them():
    assert listing("iis", "/exports/") == [
        ("d", "DICOM", None), ("d", "HL7", None), ("f", "IM00001", 409600), ("f", "README.txt", 38),
    ]
    assert listing("iis_root", "/") == [("d", "Exports", None), ("f", "claims_2.837", 512)]
    # IIS's own default (DirBrowseShowLongDate) with extensions hidden: the link text is not the name,
    # the long dates in each row show a listing (a sample page written from IIS's documentation)
    assert listing("iis_longdate", "/exports/") == [
        ("d", "DICOM", None), ("f", "CT_small.dcm", 409600), ("f", "ADT_A01.hl7", 264), ("f", "README.txt", 38),
    ]


def test_lighttpd_and_python_http_server():
    assert listing("lighttpd", "/exports/") == [
        ("d", "DICOM", None), ("f", "DICOMDIR", int(10.9 * 1024)), ("f", "README.txt", int(0.1 * 1024)),
    ]
    assert listing("python", "/") == [
        ("d", "DICOM", None), ("d", "HL7", None), ("d", "back", None), ("f", "ADT été.hl7", None),
        ("f", "README.txt", None),
    ]


def test_hostile_links_are_ignored():
    page = fixture("hostile")
    entries, _ = dirindex.parse(page, "/drop/", dirindex.style(page) or "generic", 2_000)
    assert [(item.kind, item.name) for item, _ in entries] == [
        ("f", "<script>x.dcm"), ("f", "single.hl7"), ("f", "bare.837"), ("f", "dup.dcm"), ("d", "ok"),
    ]  # parent, ../, absolute, off-site, javascript:, mailto:, query, fragment, deeper, %2F and .. names: none
    assert all(url.startswith("/drop/") and url.count("/") <= 3 for _, url in entries)


def test_100000_links_are_cut_at_the_entry_cap_quickly():
    page = b"<html><head><title>Index of /</title></head><body><h1>Index of /</h1><hr><pre>\n" + b"".join(
        b'<a href="IM%06d">IM%06d</a>   14-Mar-2021 10:15   100\n' % (i, i) for i in range(100_000)
    )
    started = time.monotonic()
    entries, cut = dirindex.parse(page, "/", "nginx", 2_000)
    assert cut and len(entries) == 2_000 and time.monotonic() - started < 2
    junk = b"<title>Index of /</title>" + b"<a " * 1_000_000 + b"<a" + b"x" * 2_000_000  # unclosed tags
    started = time.monotonic()
    assert dirindex.parse(junk, "/", "generic", 2_000) == ([], False)
    assert time.monotonic() - started < 5


# --- against the lab's nginx ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx(lab_plugin):
    with lab_plugin("nginx-autoindex") as entries:
        (entry,) = entries
        yield entry, identify(entry["port"])


@pytest.mark.lab
def test_nginx_index_is_exposed_with_the_measured_counts(nginx):
    entry, svc = nginx
    expected = entry["expected"]
    # Given nginx with autoindex on, on a port no probe claims, When the scanner meets it
    assert svc.protocol == "http" and svc.identified_by == "probe"
    assert svc.http is not None and svc.http.title == "Index of /"
    # Then its files are exposed, counted as the manifest measured them
    assert svc.status is ProbeStatus.EXPOSED
    facts = svc.repository
    assert facts is not None and facts.access == "anonymous" and facts.listing == "html"
    assert facts.dialect == expected["dialect"] == "nginx" and facts.server == "nginx 1.22.1"
    (share,) = facts.shares
    assert share.name == "/" and share.readable
    counts = {kind: count.model_dump() for kind, count in share.files.items()}
    assert counts == expected["probe_counts"]
    assert counts["dicom"]["estimated"] > 0  # the series beyond the per-folder sniff budget
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= set(share.phi_attributes["dicom"])
    assert "PID-5 patient name" in share.phi_attributes["hl7"]
    assert any(name.startswith("NM1*IL") for name in share.phi_attributes["x12"])
    # And nginx's followed HL7/back -> .. is one loop: its listing equals the root's, so it is listed
    # once (8 folders, where FTP, which shows the link itself, lists 7) and never entered
    assert share.loops == expected["loops"] == 1
    assert share.directories == 8
    assert share.limited
    # And every head was a Range read within the file budget
    assert 0 < share.bytes_read <= share.files_sniffed * WalkLimits().file_budget
    assert share.files_sniffed == 36  # 4 DICOM + DICOMDIR + 3 HL7 + 2 X12 + README + 25 of the series


@pytest.mark.lab
def test_nginx_findings_and_no_name_or_value_leaks(nginx):
    _, svc = nginx
    found = {f.check_id: f for f in evaluate(svc)}
    assert "http_index_medical_files_exposed" in found and "http_directory_listing" not in found
    exposed = found["http_index_medical_files_exposed"]
    assert exposed.severity == "critical" and exposed.exposure is not None
    (share,) = svc.repository.shares  # type: ignore[union-attr]
    dicom = share.files["dicom"].verified + share.files["dicom"].estimated + share.files["dicomdir"].verified
    assert exposed.exposure.files.dicom == dicom
    assert (exposed.exposure.files.hl7, exposed.exposure.files.x12) == (3, 2)
    assert "nginx autoindex" in exposed.evidence and "1 folder loop" in exposed.evidence
    assert "autoindex off;" in exposed.remediation and "Options -Indexes" in exposed.remediation
    no_leak(svc.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in found.values()]))


@pytest.mark.lab
def test_nginx_bounds_hold_with_small_limits(nginx):
    entry, _ = nginx
    limits = WalkLimits(max_files=5, total_bytes=40_000, file_budget=4_096)
    found = run_probe(entry["port"], limits)
    assert found is not None
    (share,) = found.facts.shares
    assert share.limited and share.files_sniffed <= 5
    assert share.bytes_read <= share.files_sniffed * 4_096
    assert found.status in (ProbeStatus.EXPOSED, ProbeStatus.OPEN)


@pytest.mark.lab
def test_scanner_end_to_end_on_the_index(nginx, tmp_path):
    entry, _ = nginx
    result = subprocess.run(
        [sys.executable, "-m", "phiwatch", "scan", HOST, "-p", str(entry["port"]), "--output", str(tmp_path),
         "--db", str(tmp_path / "phiwatch.db"), "--timeout", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "scan.json").read_text())
    (service,) = [s for s in document["services"] if s["port"] == entry["port"]]
    assert service["status"] == "exposed" and service["repository"]["listing"] == "html"
    assert {f["check_id"] for f in document["findings"]} >= {"http_index_medical_files_exposed"}
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            no_leak(path.read_text(errors="replace"))


# --- scripted peers ----------------------------------------------------------------------------------------

Handler = Callable[[dict[str, str], asyncio.StreamWriter], Awaitable[None]]


def http_server(routes: dict[str, Handler], default: Handler | None = None) -> Callable:
    """One request per connection; the handler answers it (Connection: close)."""

    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readline()).decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        path = request[1] if len(request) > 1 else "/"
        await routes.get(path, default or page(b"no", "404 Not Found"))(headers, writer)

    return scenario


def page(body: bytes, status: str = "200 OK", extra: str = "", kind: str = "text/html") -> Handler:
    async def send(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 {status}\r\nServer: parrot\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra}\r\n".encode() + body
        )
        await writer.drain()

    return send


def forever(start: bytes, unit: bytes, every: float = 0.0) -> Handler:
    """200 without a length (and ignoring Range): `start`, then `unit` again and again."""

    async def send(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
        writer.write(start)
        while True:
            writer.write(unit)
            await writer.drain()
            await asyncio.sleep(every)

    return send


def index(*names: str) -> bytes:
    links = "".join(f'<a href="{name}">{name}</a>   14-Mar-2021 10:15   -\n' for name in names)
    head = "<html><head><title>Index of /</title></head><body><h1>Index of /</h1><hr><pre>\n"
    return f"{head}{links}</pre>".encode()


def test_a_plain_web_page_is_not_an_index_and_answers_at_once():
    with Parrot(http_server({"/": page(fixture("plain"))})) as parrot:
        started = time.monotonic()
        assert run_probe(parrot.port) is None
        assert time.monotonic() - started < 1.5
        assert parrot.connections == 1  # one GET /
    big = b"<html><head><title>Welcome</title></head><body>" + b"<p>news</p>\n" * 450_000  # about 5 MB
    with Parrot(http_server({"/": page(big)})) as parrot:
        started = time.monotonic()
        assert run_probe(parrot.port) is None
        assert time.monotonic() - started < 2
    for answer in (page(index("a.dcm"), "403 Forbidden"), page(index("a.dcm"), kind="application/json")):
        with Parrot(http_server({"/": answer})) as parrot:
            assert run_probe(parrot.port) is None


def test_an_index_of_harmless_files_is_an_open_listing():
    routes = {"/": page(index("README.txt", "docs/")), "/docs/": page(index("manual.pdf")),
              "/README.txt": page(b"Nothing medical here.\n", kind="text/plain")}
    with Parrot(http_server(routes, default=page(b"%PDF-1.4 x", kind="application/pdf"))) as parrot:
        found = run_probe(parrot.port)
    assert found is not None
    assert found.status is ProbeStatus.OPEN
    facts = found.facts
    assert facts.server == peer_text("parrot") and facts.dialect == "nginx"
    (share,) = facts.shares
    assert (share.directories, share.entries, share.files_sniffed, share.files) == (2, 3, 2, {})
    svc = Service(host=HOST, port=parrot.port, protocol="http", status=found.status, repository=facts)
    found_checks = {f.check_id: f for f in evaluate(svc)}
    assert set(found_checks) == {"http_directory_listing"}
    assert "3 entries in 2 folder(s)" in found_checks["http_directory_listing"].evidence


def test_same_origin_redirects_are_followed_and_others_are_not():
    image = _small_image()
    routes = {"/": page(b"", "301 Moved Permanently", "Location: /pub/\r\n"),
              "/pub/": page(index("IM00001")), "/pub/IM00001": page(image, kind="application/dicom")}
    with Parrot(http_server(routes)) as parrot:
        found = run_probe(parrot.port)
    assert found is not None and found.status is ProbeStatus.EXPOSED
    assert found.facts.shares[0].files["dicom"].verified == 1
    with Parrot(http_server({"/": page(index("IM00001"))}), host="127.0.0.2") as elsewhere:
        away = page(b"", "302 Found", f"Location: http://127.0.0.2:{elsewhere.port}/\r\n")
        with Parrot(http_server({"/": away})) as parrot:
            assert run_probe(parrot.port) is None
        assert elsewhere.connections == 0


def test_https_index(tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    routes = {"/": page(index("IM00001")), "/IM00001": page(_small_image())}
    with Parrot(http_server(routes), ssl_context=context) as parrot:
        found = run_probe(parrot.port, tls=True)
    assert found is not None and found.status is ProbeStatus.EXPOSED
    assert found.facts.tls_offered is True


def test_hostile_file_that_ignores_range_and_streams_forever():
    names = ("IM00001", "IM00002", "IM00003", "a.hl7")
    stream = forever(_small_image(), b"\x00" * 65_536)
    routes: dict[str, Handler] = {"/": page(index(*names)), **{f"/{name}": stream for name in names}}
    limits = WalkLimits(walk_time=10.0)
    tracemalloc.start()
    try:
        with Parrot(http_server(routes)) as parrot:
            started = time.monotonic()
            found = run_probe(parrot.port, limits)
            elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 5 and peak < 32 * 1024 * 1024
    assert found is not None and found.status in (ProbeStatus.EXPOSED, ProbeStatus.OPEN)
    (share,) = found.facts.shares
    assert share.files_sniffed == 4
    assert share.bytes_read == 4 * limits.file_budget  # each head stopped at the budget


def test_hostile_100000_link_listing_and_5_mb_page_are_bounded():
    links = b"".join(b'<a href="IM%06d">IM%06d</a>   14-Mar-2021 10:15   100\n' % (i, i) for i in range(100_000))
    routes = {"/": page(index() + links)}
    with Parrot(http_server(routes, default=page(b"\x01" * 100, kind="application/octet-stream"))) as parrot:
        started = time.monotonic()
        found = run_probe(parrot.port)
        assert time.monotonic() - started < 15
    assert found is not None and found.status is ProbeStatus.EXPOSED  # IM###### names: estimated
    limits = WalkLimits()
    (share,) = found.facts.shares
    assert share.entries <= limits.max_entries and share.limited
    assert share.files_sniffed == limits.per_directory
    assert share.files["dicom"].verified == 0
    assert share.files["dicom"].estimated == share.entries - limits.per_directory
    # A 5 MB page whose links come after the first 64 KiB: no structure to recognise, read no further
    late = index() + b"<!-- " + b"x" * 5_000_000 + b" -->" + b'<a href="IM000001">IM000001</a>\n'
    with Parrot(http_server({"/": page(late)})) as parrot:
        started = time.monotonic()
        assert run_probe(parrot.port) is None
        assert time.monotonic() - started < 3
    # The same with a first link early: recognised, the page read up to its 2 MiB bound
    early = index("IM000000") + b"<!-- " + b"x" * 5_000_000 + b" -->" + b'<a href="IM000001">IM000001</a>\n'
    with Parrot(http_server({"/": page(early)}, default=page(b"\x01" * 100))) as parrot:
        found = run_probe(parrot.port)
    assert found is not None and found.status is ProbeStatus.OPEN  # its one file is not DICOM
    (share,) = found.facts.shares
    assert share.entries == 1 and share.limited


def test_hostile_dripping_listing_ends_in_time():
    async def drip(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n" + index())
        for number in range(100_000):
            for byte in b'<a href="IM%05d">IM%05d</a> 14-Mar-2021 10:15 100\n' % (number, number):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.005)

    limits = WalkLimits(walk_time=2.0)
    with Parrot(http_server({"/": drip})) as parrot:
        started = time.monotonic()
        found = run_probe(parrot.port, limits, timeout=1.0)
        assert time.monotonic() - started < 5
    assert found is not None and found.status in (ProbeStatus.OPEN, ProbeStatus.EXPOSED)
    (share,) = found.facts.shares
    assert share.readable and share.limited and share.entries > 0


def test_hostile_dripping_headers_are_cut_by_the_watchdog():
    async def drip(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while True:
            writer.write(b"z")
            await writer.drain()
            await asyncio.sleep(0.05)

    with Parrot(http_server({"/": drip})) as parrot:
        started = time.monotonic()
        assert run_probe(parrot.port, WalkLimits(walk_time=1.0), timeout=1.0) is None
        assert time.monotonic() - started < 5


def test_server_text_never_reaches_the_facts():
    name = "DOE^JANE 1234.dcm"
    routes = {"/": page(index("DOE%5EJANE%201234.dcm")),
              "/DOE%5EJANE%201234.dcm": page(f"{name} is forbidden".encode(), "403 Forbidden")}
    with Parrot(http_server(routes)) as parrot:
        found = run_probe(parrot.port)
    assert found is not None and found.status is ProbeStatus.OPEN
    text = found.facts.model_dump_json() + (found.detail or "")
    assert "DOE" not in text and "JANE" not in text


def test_links_no_client_can_request_are_skipped_and_the_walk_goes_on():
    hl7 = b"MSH|^~\\&|A|B|C|D|20210314||ADT^A01|1|P|2.5.1\rPID|1||X1^^^H^MR||DOE^JANE||19700101|F\r"
    routes = {"/": page(index("\x01x.dcm", "\x7f.dcm", "a b.hl7", "%.dcm")),
              "/a%20b.hl7": page(hl7, kind="text/plain")}
    with Parrot(http_server(routes)) as parrot:
        found = run_probe(parrot.port)
    assert found is not None and found.status is ProbeStatus.EXPOSED
    (share,) = found.facts.shares
    assert share.error is None and share.files["hl7"].verified == 1
    assert "DOE" not in found.facts.model_dump_json()
