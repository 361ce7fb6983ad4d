"""The S3 probe and checks: against the lab's moto S3 server, and against scripted hostile endpoints.

The lab (phiwatch_lab.s3) runs moto's S3 server. What is modelled: anonymous ListBuckets answered
(moto's own behaviour, which AWS never shows); public buckets listed and read with ranged
GetObject; objects stored with the private ACL refused to anonymous GetObject (moto itself).
What moto does not enforce, a gate in the lab runner adds: anonymous ListObjects on
"private-records" answered 403 AccessDenied, and, for a second instance started here, anonymous
ListBuckets refused and path-style bucket requests refused (virtual-hosted style only). Not
modelled: signatures, IAM, policy conditions, Block Public Access, TLS.

S3 has no symbolic links: the medical tree's folder loop (HL7/back -> ..) is not uploaded, so the
walk sees no loop, and otherwise counts exactly what the default walk counts on the tree.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from phiwatch.checks import evaluate
from phiwatch.engine import Engine, Limits
from phiwatch.models import ProbeStatus, Protocol, Service
from phiwatch.peertext import place_name
from phiwatch.probes import BY_NAME, s3
from phiwatch.probes.identify import ProbeOptions
from phiwatch.probes.outcome import Peer
from phiwatch.probes.walk import FileOptions, Outcome, WalkLimits
from phiwatch_lab import medtree
from phiwatch_lab.canary import CANARY_PATIENT_ID

from .parrot import Parrot
from .repo_helpers import HOST
from .repo_helpers import identify as _identify
from .repo_helpers import no_leak as _no_leak
from .repo_helpers import run_probe as _run_probe

EXTRA_NAMES = ["index.html", "site.css"]  # besides the shared lab names


def run_probe(port: int, buckets: tuple[str, ...] = (), limits: WalkLimits | None = None,
              timeout: float = 2.0) -> Outcome:  # fmt: skip
    return _run_probe(s3, port, limits, timeout, buckets=buckets)


def identify(port: int, buckets: tuple[str, ...] = ()) -> Service:
    return _identify(port, options=ProbeOptions(files=FileOptions(s3_buckets=buckets)))


def no_leak(text: str) -> None:
    _no_leak(text, EXTRA_NAMES)


def by_name(outcome_shares: list) -> Names:
    return Names({share.name: share for share in outcome_shares})


class Names(dict):
    """Shares by name as a test writes them: looked up through the place-name rule (peertext)."""

    def __getitem__(self, name: str):
        return super().__getitem__(place_name(name))


# --- against the lab ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(lab_plugin) -> Iterator[dict]:
    with lab_plugin("moto-s3") as entries:
        (entry,) = entries
        yield entry


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gated(tmp_path_factory) -> Iterator[int]:
    """A second lab runner that refuses anonymous ListBuckets and path-style bucket requests."""
    folder = tmp_path_factory.mktemp("s3-gated")
    medtree.build_tree(folder / "tree")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(s3.__file__).resolve().parents[2]))
    argv = [sys.executable, "-m", "phiwatch_lab.s3", "--port", str(port), "--tree", str(folder / "tree"),
            "--deny-list-buckets", "--virtual-hosted-only"]  # fmt: skip
    with open(folder / "log", "wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (folder / "log").read_text()[-800:]
            try:
                socket.create_connection((HOST, port), timeout=0.3).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the gated S3 runner did not start"
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def lab_outcome(moto) -> Outcome:
    return run_probe(moto["port"], ("nosuch-bucket",))


@pytest.mark.lab
def test_buckets_listed_and_counted_as_the_manifest_measured(moto, lab_outcome):
    expected = moto["expected"]
    assert lab_outcome.status is ProbeStatus.EXPOSED
    facts = lab_outcome.facts
    assert facts.access == "anonymous" and facts.listing == "s3" and facts.dialect == expected["dialect"]
    shares = by_name(facts.shares)
    # The bucket list is the share "/", each bucket its own share, given names after the listed ones
    names = ["/", *expected["buckets"], "nosuch-bucket"]
    assert [share.name for share in facts.shares] == [place_name(n) for n in names]
    assert shares["/"].readable and shares["/"].entries == 3
    pacs = shares["pacs-export"]
    counts = {kind: count.model_dump() for kind, count in pacs.files.items()}
    assert counts == expected["probe_counts"]["pacs-export"]
    assert counts["dicom"]["estimated"] > 0  # the series beyond the per-folder sniff budget
    assert pacs.directories == expected["directories"]["pacs-export"]
    assert pacs.loops == expected["loops"] == 0  # no symbolic links in S3
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= set(pacs.phi_attributes["dicom"])
    assert "PID-5 patient name" in pacs.phi_attributes["hl7"]
    assert 0 < pacs.bytes_read <= pacs.files_sniffed * WalkLimits().file_budget
    www = shares["public-www"]
    assert www.readable and not www.files and www.directories == expected["directories"]["public-www"]
    assert www.files_sniffed == 3 and www.error is None  # an HTML object's DOCTYPE is data, not S3 XML
    private = shares["private-records"]
    assert expected["auth_required"] == ["private-records"]
    assert private.auth_required and not private.readable and private.error == "AccessDenied"
    missing = shares["nosuch-bucket"]
    assert not missing.readable and not missing.auth_required and missing.error == "NoSuchBucket"
    no_leak(facts.model_dump_json())


@pytest.mark.lab
def test_private_objects_refused_by_moto_itself(moto):
    """moto's own ACL check: a private object is refused to an unsigned GetObject (403)."""
    key = f"HL7/ADT_{CANARY_PATIENT_ID}_1.hl7"
    assert _get(moto["port"], f"/pacs-export/{key}").startswith(b"HTTP/1.1 200")
    assert _get(moto["port"], f"/private-records/{key}").startswith(b"HTTP/1.1 403")


def _get(port: int, path: str) -> bytes:
    from urllib.parse import quote

    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(f"GET {quote(path)} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.lab
def test_findings_for_the_lab_endpoint_and_no_leak(lab_outcome, moto):
    svc = Service(host=HOST, port=moto["port"], protocol="s3", status=lab_outcome.status,
                  repository=lab_outcome.facts)  # fmt: skip
    found = {f.check_id: f for f in evaluate(svc)}
    assert set(found) == {
        "s3_bucket_medical_files_exposed", "s3_bucket_public_listing", "s3_anonymous_list_buckets"
    }  # fmt: skip
    exposed = found["s3_bucket_medical_files_exposed"]
    assert exposed.severity == "critical" and exposed.exposure is not None
    assert "'pacs-export'" in exposed.evidence and "public-www" not in exposed.evidence
    pacs = by_name(lab_outcome.facts.shares)["pacs-export"]
    assert exposed.exposure.files.dicom == sum(c.verified + c.estimated for k, c in pacs.files.items()
                                               if k in ("dicom", "dicomdir"))  # fmt: skip
    assert (exposed.exposure.files.hl7, exposed.exposure.files.x12) == (3, 2)
    assert "put-public-access-block" in exposed.remediation and "mc anonymous set none" in exposed.remediation
    listing = found["s3_bucket_public_listing"]
    assert listing.severity == "high" and "'public-www'" in listing.evidence
    assert "pacs-export" not in listing.evidence
    assert "private-records" not in listing.evidence
    assert found["s3_anonymous_list_buckets"].severity == "medium"
    assert "3 bucket name(s)" in found["s3_anonymous_list_buckets"].evidence
    no_leak(svc.model_dump_json() + json.dumps([f.model_dump(mode="json") for f in found.values()]))


@pytest.mark.lab
def test_webrepo_path_on_a_non_default_port(moto):
    """Port 25 above the base is no S3 default: identification finds HTTP, then S3 behind it."""
    assert moto["port"] not in BY_NAME[Protocol.S3].default_ports
    svc = identify(moto["port"])
    assert svc.protocol == "s3" and svc.identified_by == "probe"
    assert svc.http is not None and svc.repository is not None
    assert svc.status is ProbeStatus.EXPOSED
    assert {f.check_id for f in evaluate(svc)} >= {"s3_bucket_medical_files_exposed", "s3_anonymous_list_buckets"}
    no_leak(svc.model_dump_json())


@pytest.mark.lab
def test_given_buckets_found_when_list_buckets_is_refused(gated):
    outcome = run_probe(gated, ("pacs-export", "public-www", "nosuch-bucket"))
    assert outcome.status is ProbeStatus.EXPOSED
    shares = by_name(outcome.facts.shares)
    assert shares["/"].auth_required and not shares["/"].readable and shares["/"].error == "AccessDenied"
    # path style is refused there: virtual-hosted style (Host: BUCKET.127.0.0.1:PORT) worked
    assert outcome.facts.dialect == "virtual-hosted"
    assert shares["pacs-export"].readable and shares["pacs-export"].files["hl7"].verified == 3
    assert shares["public-www"].readable and not shares["public-www"].files
    assert not shares["nosuch-bucket"].readable
    found = {f.check_id for f in evaluate(Service(host=HOST, port=gated, protocol="s3", status=outcome.status,
                                                   repository=outcome.facts))}  # fmt: skip
    assert found == {"s3_bucket_medical_files_exposed", "s3_bucket_public_listing"}


@pytest.mark.lab
def test_non_medical_bucket_alone_gives_no_exposure(gated):
    outcome = run_probe(gated, ("public-www",))
    assert outcome.status is ProbeStatus.OPEN and outcome.facts.access == "anonymous"
    svc = Service(host=HOST, port=gated, protocol="s3", status=outcome.status, repository=outcome.facts)
    assert {f.check_id for f in evaluate(svc)} == {"s3_bucket_public_listing"}


@pytest.mark.lab
def test_everything_refused_is_rejected(gated):
    started = time.monotonic()
    outcome = run_probe(gated)
    assert time.monotonic() - started < 5
    assert outcome.status is ProbeStatus.REJECTED and outcome.facts.access == "denied"
    assert [share.name for share in outcome.facts.shares] == ["/"]
    outcome = run_probe(gated, ("private-records",))
    assert outcome.status is ProbeStatus.REJECTED
    assert by_name(outcome.facts.shares)["private-records"].auth_required
    svc = Service(host=HOST, port=gated, protocol="s3", status=outcome.status, repository=outcome.facts)
    assert evaluate(svc) == []


@pytest.mark.lab
def test_scan_cli_end_to_end_with_given_buckets(moto, gated, tmp_path):
    names = tmp_path / "buckets.txt"
    names.write_text("# exports\npacs-export\n\nnosuch-bucket\n")
    result = subprocess.run(
        [sys.executable, "-m", "phiwatch", "scan", HOST, "-p", f"{moto['port']},{gated}",
         "--s3-bucket", "public-www", "--s3-buckets-file", str(names), "--output", str(tmp_path / "out"),
         "--db", str(tmp_path / "p.db"),
         "--timeout", "2", "--progress", "none"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads((tmp_path / "out" / "scan.json").read_text())
    by_port = {s["port"]: s for s in document["services"]}
    assert by_port[moto["port"]]["protocol"] == "s3" and by_port[moto["port"]]["status"] == "exposed"
    gated_service = by_port[gated]
    assert gated_service["protocol"] == "s3" and gated_service["status"] == "exposed"
    names = ["/", "public-www", "pacs-export", "nosuch-bucket"]
    assert [s["name"] for s in gated_service["repository"]["shares"]] == [place_name(n) for n in names]
    checks = {(f["port"], f["check_id"]) for f in document["findings"]}
    assert (gated, "s3_bucket_medical_files_exposed") in checks
    assert (gated, "s3_anonymous_list_buckets") not in checks
    assert (moto["port"], "s3_anonymous_list_buckets") in checks
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            no_leak(path.read_text(errors="replace"))
    no_leak(result.stdout + result.stderr)


# --- bucket names given by the user -------------------------------------------------------------------


def test_bad_bucket_file_lines_name_their_line(tmp_path):
    names = tmp_path / "buckets.txt"
    names.write_text("good-bucket\n# a comment\nBad_Bucket\n")
    with pytest.raises(ValueError, match="line 3"):
        s3.bucket_names([], names)
    names.write_text("ok-one\n\n192.168.1.1\n")
    with pytest.raises(ValueError, match="line 3.*IP address"):
        s3.bucket_names([], names)
    names.write_text("".join(f"bucket-{i:04d}\n" for i in range(1001)))
    with pytest.raises(ValueError, match="line 1001"):
        s3.bucket_names([], names)
    names.write_text("a" * 5000 + "\n")
    with pytest.raises(ValueError, match="line 1"):
        s3.bucket_names([], names)
    names.write_text("pacs-export\nPACS-export\n")
    result = subprocess.run(
        [sys.executable, "-m", "phiwatch", "scan", HOST, "-p", "9", "--s3-buckets-file", str(names),
         "--no-db", "--progress", "none"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "line 2" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ValueError, match="--s3-bucket"):
        s3.bucket_names(["ab"])


@pytest.mark.parametrize(
    ("name", "ok"),
    [("pacs-export", True), ("a.b-c", True), ("ab", False), ("a" * 64, False), ("-abc", False), ("a..b", False),
     ("a.-b", False), ("10.0.0.1", False), ("xn--abc", False), ("abc-s3alias", False), ("ABC", False)],
)  # fmt: skip
def test_bucket_name_rules(name, ok):
    assert (s3.bucket_name_problem(name) is None) is ok


# --- hostile endpoints ----------------------------------------------------------------------------------

BUCKETS = (b'<?xml version="1.0"?><ListAllMyBucketsResult><Buckets><Bucket><Name>b1</Name></Bucket></Buckets>'
           b"</ListAllMyBucketsResult>")  # fmt: skip


async def _request(reader: asyncio.StreamReader) -> bytes | None:
    """The request line of the next request (headers skipped); None when the client left."""
    line = await reader.readline()
    if not line:
        return None
    while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
        del header
    return line


def _answer(body: bytes, status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml\r\nx-amz-request-id: 1\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip


def s3_endpoint(listing):
    """A scripted endpoint: GET / lists bucket b1; any request for b1 is answered by `listing`."""

    async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (line := await _request(reader)) is not None:
            if line.startswith(b"GET / "):
                writer.write(_answer(BUCKETS))
                await writer.drain()
            else:
                await listing(writer)
                return

    return scenario


async def endless_keys(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nx-amz-request-id: 1\r\n"
                 b"Connection: close\r\n\r\n<ListBucketResult><Name>b1</Name><IsTruncated>false</IsTruncated>")
    for start in range(0, 400_000, 1000):  # up to 20 MB, unless the client leaves first
        writer.write(b"".join(b"<Contents><Key>IM%07d</Key><Size>9</Size></Contents>" % i
                              for i in range(start, start + 1000)))  # fmt: skip
        await writer.drain()


async def slow_body(writer: asyncio.StreamWriter) -> None:
    body = b"<ListBucketResult><Name>b1</Name>" + b"<Contents><Key>IM0000001</Key><Size>9</Size></Contents>" * 50
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(body) + 100))
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)


async def invalid_xml(writer: asyncio.StreamWriter) -> None:
    writer.write(_answer(b"<ListBucketResult><Contents><Key>DOE^JANE.dcm</Key><Size>9</Si\x00\xff<<<"))
    await writer.drain()


def test_hostile_endless_listing_is_budget_exceeded_in_bounded_memory():
    tracemalloc.start()
    try:
        with Parrot(s3_endpoint(endless_keys)) as parrot:
            started = time.monotonic()
            outcome = run_probe(parrot.port)
            elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 15
    assert peak < 40 * 1024 * 1024  # the page cap is 4 MiB; botocore never saw the rest
    assert outcome.status is ProbeStatus.OPEN  # the bucket list answered; the bucket did not fit
    share = by_name(outcome.facts.shares)["b1"]
    assert not share.readable and share.limited and share.error == "answer larger than its bound"


def test_hostile_endless_listing_within_a_small_byte_budget_stops_on_bytes():
    with Parrot(s3_endpoint(endless_keys)) as parrot:
        outcome = run_probe(parrot.port, limits=WalkLimits(total_bytes=200_000))
    share = by_name(outcome.facts.shares)["b1"]
    assert share.limited and share.error == "byte budget spent"


def test_hostile_slow_body_ends_in_time():
    with Parrot(s3_endpoint(slow_body)) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, limits=WalkLimits(walk_time=2.0), timeout=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 6
    share = by_name(outcome.facts.shares)["b1"]
    assert share.limited and share.error == "session wall time spent" and not share.readable

    async def slow_root(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
        for _ in range(5000):
            writer.write(b"<")
            await writer.drain()
            await asyncio.sleep(0.05)

    with Parrot(slow_root) as parrot:
        started = time.monotonic()
        outcome = run_probe(parrot.port, limits=WalkLimits(walk_time=1.0), timeout=1.0)
        assert time.monotonic() - started < 5
    assert outcome.status is ProbeStatus.TIMEOUT


def test_hostile_invalid_xml_is_a_protocol_error_without_names():
    with Parrot(s3_endpoint(invalid_xml)) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.OPEN
    share = by_name(outcome.facts.shares)["b1"]
    assert not share.readable and share.error == "not-s3"

    async def bad_root(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(_answer(b"<ListAllMyBucketsResult><Buckets><Bucket><Name>DOE^JANE</Na\xff<"))
        await writer.drain()

    with Parrot(bad_root) as parrot:
        outcome = run_probe(parrot.port)
    assert outcome.status is ProbeStatus.PROTOCOL_ERROR
    assert "DOE" not in outcome.facts.model_dump_json() and "DOE" not in (outcome.detail or "")


def test_hostile_entity_bomb_and_foreign_answers_are_refused():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<ListAllMyBucketsResult><Buckets><Bucket><Name>&b;</Name></Bucket></Buckets></ListAllMyBucketsResult>")

    def answer(body: bytes, status: bytes = b"200 OK", s3_header: bool = True):
        async def scenario(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _request(reader)
            head = b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(body)
            writer.write(head + (b"x-amz-request-id: 1\r\n" if s3_header else b"") + b"\r\n" + body)
            await writer.drain()

        return scenario

    cases = [
        (answer(bomb), ProbeStatus.PROTOCOL_ERROR),
        (answer(b"<html>hello</html>", s3_header=False), ProbeStatus.PROTOCOL_ERROR),
        (answer(b"<Foo><Bar/></Foo>", s3_header=False), ProbeStatus.PROTOCOL_ERROR),
        (answer(b"<html>not found</html>", b"404 Not Found", s3_header=False), ProbeStatus.PROTOCOL_ERROR),
        (answer(b"<Error><Code>AccessDenied</Code><Message>DOE^JANE</Message></Error>", b"403 Forbidden"),
         ProbeStatus.REJECTED),
    ]  # fmt: skip
    for scenario, status in cases:
        with Parrot(scenario) as parrot:
            outcome = run_probe(parrot.port)
        assert outcome.status is status, (status, outcome)
        assert "DOE" not in outcome.facts.model_dump_json()


def test_nothing_listening_is_refused():
    outcome = run_probe(_free_port())
    assert outcome.status is ProbeStatus.REFUSED


def test_recognising_s3_from_headers_or_body():
    assert s3.looks_like_s3({"server": "MinIO"}, b"")
    assert s3.looks_like_s3({"server": "AmazonS3"}, b"")
    assert s3.looks_like_s3({"x-amz-id-2": "x"}, b"")
    assert s3.looks_like_s3({}, b"<?xml?><ListAllMyBucketsResult>")
    assert s3.looks_like_s3({}, b"<Error><Code>AccessDenied</Code></Error>")
    assert not s3.looks_like_s3({"server": "nginx"}, b"<html>AccessDenied</html>")
    assert not s3.looks_like_s3({}, b"<Error><Code>SomethingElse</Code></Error>")
    assert s3.looks_like_s3({}, b'\n<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchBucket</Code>')
    assert not s3.looks_like_s3({}, b"<html><Error><Code>AccessDenied</Code></Error></html>")


def test_s3_behind_tls_on_an_odd_port_is_found_after_the_http_probe(tmp_path):
    import ssl

    from phiwatch_lab.certs import make_self_signed

    hl7 = b"MSH|^~\\&|A|B|C|D|20210101||ADT^A01|1|P|2.5\rPID|1||PW123^^^H^MR||DOE^JANE||19700101|F\r"
    listing = (b"<ListBucketResult><Name>b1</Name><IsTruncated>false</IsTruncated>"
               b"<Contents><Key>DOE_JANE.hl7</Key><Size>%d</Size></Contents></ListBucketResult>" % len(hl7))

    async def endpoint(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (line := await _request(reader)) is not None:
            target = line.split(b" ")[1] if line.count(b" ") >= 2 else b""
            if target == b"/":
                writer.write(_answer(BUCKETS))
            elif target.startswith(b"/b1?"):
                writer.write(_answer(listing))
            elif target == b"/b1/DOE_JANE.hl7":
                writer.write(_answer(hl7, b"206 Partial Content")[:-len(hl7)].replace(
                    b"Content-Length", b"Content-Range: bytes 0-%d/%d\r\nContent-Length" % (len(hl7) - 1, len(hl7))
                ) + hl7)  # fmt: skip
            else:
                writer.write(_answer(b"<Error><Code>NoSuchKey</Code></Error>", b"404 Not Found"))
            await writer.drain()

    make_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with Parrot(endpoint, ssl_context=context) as parrot:
        svc = identify(parrot.port)
    assert svc.protocol == "s3" and svc.tls is not None and svc.status is ProbeStatus.EXPOSED
    assert svc.repository is not None
    share = by_name(svc.repository.shares)["b1"]
    assert share.files["hl7"].verified == 1 and share.bytes_read == len(hl7)
    assert "DOE" not in svc.model_dump_json() and "PW123" not in svc.model_dump_json()


def test_other_web_services_cost_one_request_and_are_not_s3():
    async def web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await _request(reader) is not None:
            body = b"<html><body><Error><Code>AccessDenied</Code> is not S3 without its XML</body></html>"
            writer.write(b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

    async def main(port: int) -> object:
        engine = Engine(Limits(timeout=1.0, retries=0))
        try:
            from phiwatch.models import HttpFacts

            return await s3.on_web(engine, Peer(HOST, port, http=HttpFacts(scheme="http")), ProbeOptions())
        finally:
            engine.close()

    with Parrot(web) as parrot:
        assert asyncio.run(main(parrot.port)) is None
        assert parrot.connections == 1
