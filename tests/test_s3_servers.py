"""S3 probe against two real S3-compatible servers holding the medical tree, each held to the truth
of the folder its bucket was filled from (tests/truth.py).

moto (no authentication of its own) and rclone serve s3 list their buckets to anyone. SeaweedFS with no identities
(its default) answers ListBuckets with an empty list yet serves every bucket to anonymous
requests: the probe proves that from the error a random bucket name gets (NoSuchBucket, not
AccessDenied) and walks the bucket named by the user. rclone serve s3 with a key pair answers
unsigned requests with UnsupportedAlgorithm and no S3 header: it is still labelled S3.
"""

from __future__ import annotations

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus
from phiwatch.probes.identify import ProbeOptions
from phiwatch.probes.walk import FileOptions
from phiwatch_lab import rclone, seaweedfs
from phiwatch_lab import s3 as moto_lab

from .implementations import expect_like_the_truth, scan_outputs, started
from .repo_helpers import identify, no_leak

SERVERS = {  # lab server -> (the folder its bucket was filled from, the bucket, names given by the user)
    "moto-s3": ("tree", moto_lab.PUBLIC, ()),
    "seaweedfs-s3": ("root", seaweedfs.BUCKET, (seaweedfs.BUCKET,)),
    "rclone-s3": (f"buckets/{rclone.BUCKET}", rclone.BUCKET, ()),
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request):
    served, bucket, given = SERVERS[request.param]
    with started(request.param, served) as (entry, truth):
        yield request.param, entry, truth, bucket, given


def test_the_bucket_is_counted_as_the_served_folder_holds_it(server):
    name, entry, truth, bucket, given = server
    # Given an S3 server with the medical tree in a bucket, When the scanner meets it on an odd port
    svc = identify(entry["port"], options=ProbeOptions(files=FileOptions(s3_buckets=given)))
    assert svc.protocol == "s3", (svc.protocol, svc.status, svc.detail)
    facts = svc.repository
    assert facts is not None and facts.access == "anonymous"
    share = next(s for s in facts.shares if s.name == bucket)
    # Then the bucket's files are what its source folder holds under the same limits
    expect_like_the_truth(svc, share, truth, "s3_bucket_medical_files_exposed")
    checks = {f.check_id for f in evaluate(svc)}
    if name != "seaweedfs-s3":
        assert "s3_anonymous_list_buckets" in checks
        return
    # SeaweedFS: an empty bucket list, yet anonymous requests are served
    assert facts.shares[0].entries == 0 and facts.random_bucket == "NoSuchBucket"
    assert "s3_anonymous_requests_served" in checks and "s3_anonymous_list_buckets" not in checks
    # And without a bucket name, the random name's NoSuchBucket alone proves anonymous access
    alone = identify(entry["port"])
    assert alone.protocol == "s3" and alone.status is ProbeStatus.OPEN
    assert alone.repository is not None and alone.repository.random_bucket == "NoSuchBucket"
    found = {f.check_id: f for f in evaluate(alone)}
    assert set(found) == {"s3_anonymous_requests_served"}
    assert found["s3_anonymous_requests_served"].severity == "high"
    no_leak(alone.model_dump_json())


def test_a_scan_of_it_writes_the_exposure_and_no_canary_anywhere(server, tmp_path):
    name, entry, truth, bucket, given = server
    options = [option for name_ in given for option in ("--s3-bucket", name_)]
    document = scan_outputs(entry["port"], tmp_path, *options)
    (svc,) = document["services"]
    assert svc["protocol"] == "s3" and svc["status"] == "exposed", name
    finding = next(f for f in document["findings"] if f["check_id"] == "s3_bucket_medical_files_exposed")
    assert finding["exposure"]["files"]["x12"] == truth.total("x12")

def test_an_endpoint_that_asks_for_a_signature_is_s3_and_refuses():
    with started("rclone-s3-signed", f"buckets/{rclone.BUCKET}") as (entry, _):
        # Given rclone's S3 server with a key pair (its answer to unsigned requests carries no S3 header)
        svc = identify(entry["port"], options=ProbeOptions(files=FileOptions(s3_buckets=(rclone.BUCKET,))))
    # Then it is labelled S3, not plain http, and nothing is read from it
    assert svc.protocol == "s3" and svc.status is ProbeStatus.REJECTED, (svc.protocol, svc.status)
    facts = svc.repository
    assert facts is not None and facts.access == "denied" and facts.random_bucket == "UnsupportedAlgorithm"
    assert all(not share.readable and not share.files for share in facts.shares)
    assert {f.check_id for f in evaluate(svc)} == set()

