"""WebDAV: anonymous PROPFIND listings walked with the shared bounded walk, against real servers
(Apache httpd mod_dav and rclone from the lab, Orthanc's own /webdav/ tree), negative controls (a
share that asks for a login, PROPFIND refused) and hostile peers (an endless multistatus, a tree
without end, entity expansion, a huge document). Counts are held to a local walk of the served
folder (tests/truth.py), never to phiwatch's own numbers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import HttpFacts, ProbeStatus, Service
from phiwatch.probes import WEB_REPOSITORIES, webdav
from phiwatch.probes.options import FileOptions, ProbeOptions, WalkLimits
from phiwatch.probes.outcome import Outcome, Peer
from phiwatch_lab import control

from .implementations import expect_like_the_truth, logs_hold_no_canary, started
from .parrot import Parrot
from .repo_helpers import HOST, identify, no_leak, on_engine
from .truth import local_truth

BASE = int(os.environ.get("PHIWATCH_TEST_BASE", "31100")) + 400
EXPOSED = "webdav_medical_files_exposed"
WEBDAV_CHECKS = {EXPOSED, "webdav_anonymous_listing"}


def run_probe(port: int, limits: WalkLimits | None = None, timeout: float = 2.0) -> Outcome | None:
    peer = Peer(HOST, port, http=HttpFacts(scheme="http"))
    options = ProbeOptions(files=FileOptions(limits or WalkLimits()))
    return on_engine(lambda engine: webdav.probe(engine, peer, options), timeout)


@contextmanager
def apache() -> Iterator[tuple[dict[str, dict], Path]]:
    """The lab's Apache mod_dav plug-in alone: its three services by name, and the folder it serves."""
    folder = Path(tempfile.mkdtemp(prefix="phiwatch-apache-webdav-"))
    folder.chmod(0o755)
    try:
        with control.single("apache-webdav", folder, BASE) as entries:
            yield {e["name"]: e for e in entries}, folder / "apache-webdav" / "root"
        logs_hold_no_canary(folder / "logs")  # Apache stopped: its log is complete
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- real servers ------------------------------------------------------------------------------------


def test_the_table_asks_web_services_for_webdav():
    assert "webdav" in [spec.name.value for spec in WEB_REPOSITORIES]


@pytest.mark.lab
def test_apache_mod_dav_open_share_is_walked_and_held_to_the_truth():
    with apache() as (entries, served):
        # Given Apache's anonymous share of the medical tree, When its port is identified and probed
        svc = identify(entries["apache-webdav-open"]["port"])
        # Then it is a web service whose files are a WebDAV share, counted exactly like a local walk
        assert svc.protocol == "http" and svc.repository is not None
        assert svc.repository.listing == "webdav" and svc.repository.access == "anonymous"
        (share,) = svc.repository.shares
        expect_like_the_truth(svc, share, local_truth(served), EXPOSED)


@pytest.mark.lab
def test_a_share_that_asks_for_a_login_and_one_that_refuses_propfind_are_not_reported():
    with apache() as (entries, _):
        for name in ("apache-webdav-login", "apache-webdav-refused"):
            svc = identify(entries[name]["port"])
            assert svc.repository is None, name  # no listing: nothing walked, nothing counted
            assert not {f.check_id for f in evaluate(svc)} & WEBDAV_CHECKS, name
            assert run_probe(entries[name]["port"]) is None


@pytest.mark.lab
def test_rclone_webdav_is_a_second_implementation_held_to_the_same_truth():
    with started("rclone-webdav") as (entry, truth):
        svc = identify(entry["port"])
        assert svc.repository is not None and svc.repository.listing == "webdav"
        (share,) = svc.repository.shares
        expect_like_the_truth(svc, share, truth, EXPOSED)


@pytest.mark.lab
def test_orthanc_serves_its_studies_under_webdav_and_no_patient_name_leaves(lab):
    # Given the lab's open Orthanc, whose WebDAV tree names folders after patients
    entry = next(s for s in lab["services"] if s["name"] == "orthanc-open-http")
    svc = identify(entry["port"])
    # Then its /webdav/ tree is found and its DICOM files counted from their heads
    assert svc.repository is not None and svc.repository.listing == "webdav", svc.detail
    assert svc.repository.dialect == "orthanc"
    (share,) = svc.repository.shares
    assert share.files.get("dicom") is not None and share.files["dicom"].verified > 0
    assert "PatientName" in share.phi_attributes.get("dicom", [])
    findings = {f.check_id: f for f in evaluate(svc)}
    assert EXPOSED in findings and "Orthanc" in findings[EXPOSED].evidence
    assert "dicomweb_studies_exposed" in findings  # the web service's other findings stay
    # And no canary value (the patient's name, its folder) reaches the service or the findings
    no_leak(svc.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in findings.values()]))


# --- hostile peers -----------------------------------------------------------------------------------

Handler = Callable[[str, str, asyncio.StreamWriter], Awaitable[None]]
MULTI = b'<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'


def response(href: str, folder: bool = False, size: int = 10) -> bytes:
    kind = b"<D:collection/>" if folder else b""
    length = b"" if folder else b"<D:getcontentlength>%d</D:getcontentlength>" % size
    return (b"<D:response><D:href>" + href.encode() + b"</D:href><D:propstat><D:prop><D:resourcetype>" + kind
            + b"</D:resourcetype>" + length + b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
            b"</D:response>")  # fmt: skip


def dav_server(handler: Handler) -> Callable:
    """One request per connection: reads the request line, headers and body, then lets `handler` answer."""

    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, path, *_ = (await reader.readline()).decode("latin-1").split() + ["", ""]
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value)
        if length:
            await reader.readexactly(min(length, 65536))
        await handler(method, path, writer)

    return scenario


def multistatus(body: bytes) -> Handler:
    async def send(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        if method != "PROPFIND":
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)  # fmt: skip
        await writer.drain()

    return send


def measured(port: int, limits: WalkLimits | None = None,
             timeout: float = 2.0) -> tuple[Outcome | None, float, int]:  # fmt: skip
    tracemalloc.start()
    started_at = time.monotonic()
    try:
        outcome = run_probe(port, limits, timeout)
        return outcome, time.monotonic() - started_at, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_endless_multistatus_is_cut_by_bytes_and_what_came_is_counted():
    async def endless(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        if method != "PROPFIND" or path != "/":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n"
                     + MULTI + response("/", folder=True))  # fmt: skip
        number = 0
        try:
            while not writer.is_closing() and number < 10_000_000:
                chunk = b"".join(response(f"/note{number + i}.txt") for i in range(200))
                number += 200
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass  # the client stopped reading at its bound

    with Parrot(dav_server(endless)) as parrot:
        limits = WalkLimits(max_entries=100_000, total_bytes=2 * 1024 * 1024, walk_time=20)
        outcome, elapsed, peak = measured(parrot.port, limits, timeout=5.0)
    assert outcome is not None and outcome.facts.listing == "webdav"
    (share,) = outcome.facts.shares
    assert share.limited and 1000 < share.entries <= 100_000
    assert elapsed < 20 and peak < 64 * 1024 * 1024
    assert outcome.status is ProbeStatus.OPEN  # no medical file: an open listing, not an exposure


def test_a_tree_without_end_stops_at_the_depth_bound():
    async def deep(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        below = f"{path}level{path.count('/')}/"  # every folder holds one more, named apart from its parent's
        body = MULTI + response(path, folder=True) + response(below, folder=True) + b"</D:multistatus>"
        await multistatus(body)(method, path, writer)

    with Parrot(dav_server(deep)) as parrot:
        outcome, elapsed, _ = measured(parrot.port, WalkLimits(max_depth=6, walk_time=20), timeout=3.0)
        requests = parrot.connections
    assert outcome is not None
    (share,) = outcome.facts.shares
    assert share.directories <= 8 and requests <= 12  # depth 6, one folder each: never deeper
    assert share.limited and elapsed < 20


def test_entity_expansion_is_refused_before_it_expands():
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i else b"&lol;") * 10)
                       for i in range(1, 10))
            + b']>\n<D:multistatus xmlns:D="DAV:"><D:response><D:href>/&lol9;</D:href></D:response>'
              b"</D:multistatus>")  # fmt: skip
    with Parrot(dav_server(multistatus(bomb))) as parrot:
        outcome, elapsed, peak = measured(parrot.port)
    assert outcome is None  # not taken for a WebDAV listing at all
    assert elapsed < 5 and peak < 16 * 1024 * 1024


def test_a_huge_document_costs_no_more_than_the_listing_bound():
    # Given one href of 40 MB (a single text node, sent a megabyte at a time), then a valid entry
    block = b"A" * (1024 * 1024)

    async def huge(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n"
                     + MULTI + b"<D:response><D:href>/")  # fmt: skip
        try:
            for _ in range(40):
                writer.write(block)
                await writer.drain()
            writer.write(b"</D:href></D:response>" + response("/x.txt") + b"</D:multistatus>")
            await writer.drain()
        except ConnectionError:
            pass  # the client stopped reading at its bound

    with Parrot(dav_server(huge)) as parrot:
        outcome, elapsed, peak = measured(parrot.port, WalkLimits(walk_time=20), timeout=5.0)
    assert outcome is not None and outcome.facts.shares[0].limited
    assert peak < 48 * 1024 * 1024 and elapsed < 20


def test_a_plain_web_page_and_a_refused_propfind_are_not_webdav():
    async def plain(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        body = b"<html><title>hello</title></html>"
        status = b"405 Method Not Allowed" if method == "PROPFIND" else b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body)  # fmt: skip
        await writer.drain()

    with Parrot(dav_server(plain)) as parrot:
        assert run_probe(parrot.port) is None
    with Parrot(dav_server(multistatus(b"<html>not xml at all"))) as parrot:
        assert run_probe(parrot.port) is None


def test_names_from_the_peer_steer_the_walk_and_never_reach_the_facts():
    secret = "Doe^Jane 19700101"
    body = MULTI + response("/", folder=True) + response("/" + secret.replace(" ", "%20") + "/", folder=True)

    async def tree(method: str, path: str, writer: asyncio.StreamWriter) -> None:
        inner = MULTI + response(path, folder=True) + response(path + "%3Cscript%3E.dcm", size=132)
        await multistatus(body + b"</D:multistatus>" if path == "/" else inner + b"</D:multistatus>")(
            method, path, writer)

    with Parrot(dav_server(tree)) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome is not None
    text = json.dumps(outcome.facts.model_dump(mode="json"))
    assert "Doe" not in text and "script" not in text
    svc = Service(host=HOST, port=1, protocol="http", status=outcome.status, repository=outcome.facts)
    assert "Doe" not in json.dumps([f.model_dump(mode="json") for f in evaluate(svc)])
