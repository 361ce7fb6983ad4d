"""`phiwatch audit s3` against a real moto_server the test starts on loopback (PHIWATCH_TEST_BASE + 95).

What moto models here: buckets, objects and ranged GetObject; bucket policies, canned and
explicit ACLs (bucket and object), bucket and account (s3control) Block Public Access
documents, ownership controls, logging and encryption configurations are stored and read back;
sts GetCallerIdentity answers a fixed account. What moto does not model: the WRITE grant of the
canned public-read-write ACL (the test grants it explicitly); a default encryption
configuration (S3 applies SSE-S3 to every new bucket, moto reports none, so every bucket
here gets s3_bucket_encryption_off); policy conditions and Block Public Access are not
enforced on requests (the audit sends only the owner's own read requests, so enforcement is
not what these tests exercise). Its
GetBucketPolicyStatus calls any Allow for Principal * public, a Deny fence notwithstanding
(whether S3 itself does is not tested here); the audit notes where that status and its own
verdict differ. So these tests prove that the audit reads each layer and combines them into
the verdict, not that S3 would refuse a request: the verdict's rules are tested statement by
statement in tests/test_audit.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from phiwatch.audit.s3bucket import PAB_KEYS
from phiwatch_lab.canary import CANARY_NAME_TOKENS, canary_bytes

BASE = int(os.environ.get("PHIWATCH_TEST_BASE", "31100"))
PORT = BASE + 95
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "PWCANARYSECRETKEY-8c1d0e2f9a",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
       "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
HL7 = (b"MSH|^~\\&|RIS|HOSP|PACS|HOSP|202101011200||ADT^A01|1|P|2.5\r"
       b"PID|1||PWCANARY-7Q3Z-0001||PHIWATCHCANARY^ZELDA\r")


def _wait(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("moto_server did not start")


@pytest.fixture(scope="module", autouse=True)
def _environment_restored() -> Iterator[None]:
    """The AWS_* variables these tests set end with the module: later tests (and the lab's servers they
    start, such as SeaweedFS, which turns them into an identity) never see them."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    env = {**os.environ, **ENV}
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(PORT)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(PORT, time.monotonic() + 30)
        url = f"http://127.0.0.1:{PORT}"
        _populate(url)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _client(url: str, service: str = "s3"):  # type: ignore[no-untyped-def]
    import botocore.session

    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    session = botocore.session.Session()
    session.set_credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"])
    return session.create_client(service, endpoint_url=url, region_name="us-east-1")


def _policy(bucket: str, statements: list[dict]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _populate(url: str) -> None:
    s3 = _client(url)
    public_read = {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
                   "Resource": ["arn:aws:s3:::{b}", "arn:aws:s3:::{b}/*"]}
    for bucket in ("pacs-open", "pacs-vpce", "acl-ignored", "deny-fenced", "public-write", "quiet-www"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="pacs-open", Key="PHIWATCHCANARY^ZELDA/scan.dcm", Body=canary_bytes())
    s3.put_object(Bucket="pacs-open", Key="adt.hl7", Body=HL7)
    s3.put_bucket_policy(Bucket="pacs-open", Policy=_policy("pacs-open", [public_read]))
    s3.put_object(Bucket="pacs-vpce", Key="scan.dcm", Body=canary_bytes())
    s3.put_bucket_policy(Bucket="pacs-vpce", Policy=_policy("pacs-vpce", [
        {**public_read, "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0a1b2c3d"}}}]))
    s3.put_object(Bucket="acl-ignored", Key="scan.dcm", Body=canary_bytes())
    s3.put_bucket_acl(Bucket="acl-ignored", ACL="public-read")
    all_on = dict.fromkeys(PAB_KEYS, True)
    s3.put_public_access_block(Bucket="acl-ignored", PublicAccessBlockConfiguration=all_on)
    s3.put_object(Bucket="deny-fenced", Key="scan.dcm", Body=canary_bytes())
    s3.put_bucket_policy(Bucket="deny-fenced", Policy=_policy("deny-fenced", [
        public_read,
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::deny-fenced/*"],
         "Condition": {"NotIpAddress": {"aws:SourceIp": "10.20.0.0/24"}}},
    ]))
    # moto stores only the READ grant of the canned public-read-write ACL: the WRITE grant is given explicitly
    owner = s3.get_bucket_acl(Bucket="public-write")["Owner"]
    everyone = {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}
    s3.put_bucket_acl(Bucket="public-write", AccessControlPolicy={"Owner": owner, "Grants": [
        {"Grantee": everyone, "Permission": "READ"}, {"Grantee": everyone, "Permission": "WRITE"}]})
    s3.put_object(Bucket="quiet-www", Key="index.html", Body=b"<html>hours</html>", ACL="public-read")


def _audit(url: str, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / "out"
    env = {**os.environ, **ENV}
    done = subprocess.run([sys.executable, "-m", "phiwatch", "audit", "s3", "--endpoint-url", url, "-o", str(out),
                           *extra], env=env, capture_output=True, text=True, timeout=120)
    data = json.loads((out / "audit.json").read_text()) if (out / "audit.json").exists() else {}
    return done, data


def _by_bucket(data: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in data["findings"]:
        found.setdefault(finding["location"]["path"].removeprefix("s3://"), set()).add(finding["check_id"])
    return found


def test_each_bucket_gets_the_verdict_of_all_its_layers(endpoint, tmp_path):
    done, data = _audit(endpoint, tmp_path, "--fail-on", "critical")
    assert done.returncode == 1, done.stderr  # critical findings present
    found = _by_bucket(data)
    # Principal * for GetObject and ListBucket, medical files in the sampled heads
    assert "s3_bucket_medical_files_exposed" in found["pacs-open"]
    # the same statement pinned to one VPC endpoint: not public
    public = {"s3_bucket_medical_files_exposed", "s3_bucket_public_read", "s3_bucket_public_listing"}
    assert not public & found.get("pacs-vpce", set())
    # a public-read ACL made void by IgnorePublicAcls; every block setting on: no block finding either
    assert not found.get("acl-ignored", set()) & {"s3_bucket_public_listing", "s3_bucket_medical_files_exposed",
                                                   "s3_block_public_access_off"}
    # a public Allow fenced by a Deny for every caller outside 10.20.0.0/24
    assert not found.get("deny-fenced", set()) & {"s3_bucket_medical_files_exposed", "s3_bucket_public_read"}
    # public-read-write ACL: anyone lists and writes
    assert {"s3_bucket_public_listing", "s3_bucket_public_write"} <= found["public-write"]
    # a private bucket whose object has a public-read ACL: readable, not medical
    assert "s3_bucket_public_read" in found["quiet-www"]
    assert "s3_block_public_access_off" in found["pacs-open"]
    # every layer was read: no call the store could not answer (the account's block settings included);
    # the one note: moto's GetBucketPolicyStatus calls the Deny-fenced policy public, the evaluator does not
    notes = {f["path"]: f["message"] for f in data["files"] if f["message"]}
    assert list(notes) == ["s3://deny-fenced"]
    assert "IsPublic=True" in notes["s3://deny-fenced"] and "no public statement" in notes["s3://deny-fenced"]


def test_medical_evidence_counts_without_names_values_or_keys(endpoint, tmp_path):
    done, data = _audit(endpoint, tmp_path)
    [exposed] = [f for f in data["findings"] if f["check_id"] == "s3_bucket_medical_files_exposed"]
    assert "2 medical files" in exposed["evidence"]
    outputs = [done.stdout, done.stderr] + [p.read_text() for p in (tmp_path / "out").iterdir()]
    for text in outputs:
        for token in CANARY_NAME_TOKENS:
            assert token not in text
        assert ENV["AWS_SECRET_ACCESS_KEY"] not in text
        assert "scan.dcm" not in text and "adt.hl7" not in text


def test_only_read_calls_are_made(endpoint, tmp_path):
    """Every request the audit sends is a GET or HEAD (botocore's event hook counts them)."""
    from phiwatch.audit import s3account

    methods: list[str] = []
    real = s3account._client

    def counting(session, service, endpoint_url, region):  # type: ignore[no-untyped-def]
        client = real(session, service, endpoint_url, region)
        client.meta.events.register("before-send", lambda request, **_: methods.append(request.method))
        return client

    for key, value in ENV.items():
        os.environ[key] = value
    s3account._client = counting
    try:
        result = s3account.audit_account(endpoint_url=endpoint)
    finally:
        s3account._client = real
    assert result.findings
    assert methods and set(methods) <= {"GET", "HEAD", "POST"}
    # sts GetCallerIdentity is a POST that reads; nothing else may be one
    assert methods.count("POST") <= 1


def test_no_credentials_is_one_clear_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true"}
    done = subprocess.run([sys.executable, "-m", "phiwatch", "audit", "s3", "--endpoint-url", "http://127.0.0.1:9"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "no AWS credentials" in done.stderr
