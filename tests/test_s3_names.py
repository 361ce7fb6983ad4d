"""S3 bucket names found elsewhere in a scan: an endpoint that serves anonymous requests but lists no
bucket (SeaweedFS with no identities) is walked with the names its host's other services gave.
"""

from __future__ import annotations

import asyncio

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import HttpFacts, ProbeStatus, RepositoryFacts, Service, ShareFacts
from phiwatch.peertext import place_name
from phiwatch.probes import bucket_names, s3
from phiwatch.scanner import ScanConfig, Scanner
from phiwatch_lab import seaweedfs

from .implementations import expect_like_the_truth, started
from .parrot import Parrot
from .repo_helpers import run_probe


def test_names_in_pages_scripts_and_cors_origins():
    page = (b'<a href="https://scans-2021.s3.amazonaws.com/x.dcm">x</a> <a href="https://s3.eu-west-1.amazonaws.com/'
            b'pacs.backup/">y</a> s3://Exports-Old/ <script>var cfg = {"bucketName": "dicom-inbox"};</script>'
            b' s3://1.2.3.4/ s3://a/ https://evil.example/notabucket')  # fmt: skip
    assert bucket_names.in_text(page, "https://cors-origin.s3.amazonaws.com") == [
        "scans-2021", "pacs.backup", "exports-old", "dicom-inbox", "cors-origin"]  # fmt: skip
    assert bucket_names.in_text(b"s3://x" * 1_000_000) == []  # too short to be a name, and bounded
    many = b" ".join(b"s3://bucket-%03d/" % i for i in range(500))
    assert len(bucket_names.in_text(many)) == bucket_names.MAX_HINTS


def test_names_other_services_give():
    smb = Service(host="h", port=445, protocol="smb", status=ProbeStatus.OPEN,
                  repository=RepositoryFacts(access="guest", shares=[ShareFacts(name="pacs-export"),
                                                                     ShareFacts(name="IPC$")]))
    web = Service(host="h", port=80, protocol="http", status=ProbeStatus.OPEN,
                  http=HttpFacts(scheme="http", bucket_names=[place_name("viewer-assets")]))
    web.http._bucket_hints = ["viewer-assets"]  # type: ignore[union-attr]  # the raw names, in memory only
    assert bucket_names.from_service(smb) == ["pacs-export"]  # IPC$ is no bucket name
    assert bucket_names.from_service(web) == ["viewer-assets"]


def test_bucket_names_found_elsewhere_on_the_host_open_the_bucket():
    page = (b'<html><head><title>Viewer</title><script>const config = {bucket: "' + seaweedfs.BUCKET.encode()
            + b'"};</script></head><body><a href="s3://pacs-export-old/">old</a></body></html>')  # fmt: skip

    async def web(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(page), page))  # fmt: skip
        await writer.drain()

    def scan(ports: list[int]) -> dict[int, object]:
        scanner = Scanner(ScanConfig(ports=ports))
        outcome = asyncio.run(scanner.run_services([("127.0.0.1", p) for p in ports], len(ports)))
        return {s.port: s for s in outcome.services}

    with started("seaweedfs-s3") as (entry, truth), Parrot(web) as parrot:
        # Given SeaweedFS (no bucket list) and, on the same host, a web page whose script names the bucket
        found = scan([entry["port"], parrot.port])
        alone = scan([entry["port"]])
    svc = found[entry["port"]]
    # Then the endpoint, held back until the host was done, was walked with the names the page gave
    assert svc.protocol == "s3" and svc.status is ProbeStatus.EXPOSED  # type: ignore[attr-defined]
    facts = svc.repository  # type: ignore[attr-defined]
    assert facts.hinted_buckets == 2 and facts.random_bucket == "NoSuchBucket"
    share = next(s for s in facts.shares if s.name == place_name(seaweedfs.BUCKET))
    expect_like_the_truth(svc, share, truth, "s3_bucket_medical_files_exposed")  # type: ignore[arg-type]
    names = {place_name(seaweedfs.BUCKET), place_name("pacs-export-old")}
    assert set(found[parrot.port].http.bucket_names) == names  # type: ignore[attr-defined]
    # And without the page, the same endpoint is only proved open
    assert alone[entry["port"]].status is ProbeStatus.OPEN  # type: ignore[attr-defined]


def _error(code: bytes, status: bytes) -> bytes:
    body = b"<?xml version='1.0'?><Error><Code>" + code + b"</Code><Message>m</Message></Error>"
    head = b"HTTP/1.1 %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
    return head + body


def endpoint(random_answer: bytes):
    """No bucket listed (an empty ListAllMyBucketsResult); any bucket request gets `random_answer`."""
    empty = b"<?xml version='1.0'?><ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>"

    async def scenario(reader, writer):
        while line := await reader.readline():
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            if line.startswith(b"GET / "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nx-amz-request-id: 1\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(empty), empty))  # fmt: skip
            else:
                writer.write(random_answer)
            await writer.drain()

    return scenario


@pytest.mark.parametrize(
    ("answer", "code", "status", "checks"),
    [
        (_error(b"NoSuchBucket", b"404 Not Found"), "NoSuchBucket", ProbeStatus.OPEN,
         {"s3_anonymous_requests_served"}),
        # An empty bucket list answered, buckets refused: open, and nothing to report
        (_error(b"AccessDenied", b"403 Forbidden"), "AccessDenied", ProbeStatus.OPEN, set()),
        (_error(b"x" * 5000, b"404 Not Found"), "HTTP 404", ProbeStatus.OPEN, set()),  # no code to trust
    ],
)
def test_a_random_bucket_names_answer_tells_anonymous_access(answer, code, status, checks):
    with Parrot(endpoint(answer)) as parrot:
        outcome = run_probe(s3, parrot.port)
    assert outcome.facts.random_bucket == code and outcome.status is status
    svc = Service(host="127.0.0.1", port=parrot.port, protocol="s3", status=outcome.status,
                  repository=outcome.facts)
    assert {f.check_id for f in evaluate(svc)} == checks
