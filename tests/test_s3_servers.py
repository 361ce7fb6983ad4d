"""S3 probe against two real S3-compatible servers holding the medical tree, each held to the truth
of the folder its bucket was filled from (tests/truth.py).

moto (no authentication of its own) lists its buckets to anyone. SeaweedFS with no identities
(its default) answers ListBuckets with an empty list yet serves every bucket to anonymous
requests: the probe proves that from the error a random bucket name gets (NoSuchBucket, not
AccessDenied) and walks the bucket named by the user.
"""

from __future__ import annotations

import pytest

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus
from phiwatch.probes.identify import ProbeOptions
from phiwatch.probes.walk import FileOptions
from phiwatch_lab import s3 as moto_lab
from phiwatch_lab import seaweedfs

from .implementations import expect_like_the_truth, started
from .repo_helpers import identify, no_leak

SERVERS = {  # lab server -> (the folder its bucket was filled from, the bucket, names given by the user)
    "moto-s3": ("tree", moto_lab.PUBLIC, ()),
    "seaweedfs-s3": ("root", seaweedfs.BUCKET, (seaweedfs.BUCKET,)),
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
    if name == "seaweedfs-s3":  # an empty bucket list, yet anonymous requests are served
        assert facts.shares[0].entries == 0 and facts.random_bucket == "NoSuchBucket"
        assert "s3_anonymous_requests_served" in checks and "s3_anonymous_list_buckets" not in checks
    else:
        assert "s3_anonymous_list_buckets" in checks


def test_without_a_bucket_name_anonymous_access_is_still_proved(server):
    name, entry, _, _, _ = server
    if name != "seaweedfs-s3":
        pytest.skip("moto lists its buckets: nothing to prove from errors")
    # Given SeaweedFS and no bucket name, When the scanner meets it
    svc = identify(entry["port"])
    # Then the random bucket name's NoSuchBucket proves anonymous access: open, and said so
    assert svc.protocol == "s3" and svc.status is ProbeStatus.OPEN
    assert svc.repository is not None and svc.repository.random_bucket == "NoSuchBucket"
    found = {f.check_id: f for f in evaluate(svc)}
    assert set(found) == {"s3_anonymous_requests_served"}
    assert found["s3_anonymous_requests_served"].severity == "high"
    no_leak(svc.model_dump_json())
