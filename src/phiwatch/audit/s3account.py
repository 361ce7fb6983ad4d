"""`phiwatch audit s3`: the owner's own S3 account, read-only, with the owner's credentials.

Credentials come from botocore's usual chain (environment, shared files, `--profile`,
instance roles); `--endpoint-url` points at an S3-compatible store. Only read calls are
made: sts GetCallerIdentity, s3control GetPublicAccessBlock, ListBuckets, and per bucket
GetPublicAccessBlock, GetBucketPolicy, GetBucketPolicyStatus, GetBucketAcl,
GetBucketOwnershipControls, GetBucketLogging, GetBucketEncryption. For a bucket outsiders
can read, a bounded sample of object heads (ListObjectsV2 with MaxKeys, then GetObject with
Range bytes=0-16383) is sniffed for DICOM, HL7 and X12; only counts are kept, never a key
or a value. A call the store does not support is noted and its layer counted as unknown.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from .. import __version__
from ..content import sniff
from ..models import Finding, LineChange, Location
from .model import AuditBounds, AuditedFile, AuditInfo, AuditResult, FileStatus
from .s3bucket import BucketState, Layer, evaluate
from .s3docs import verdict_findings

HEAD_BYTES = 16_384
MEDICAL_KINDS = {"dicom", "dicomdir", "hl7", "x12"}
MAX_BUCKETS = 1_000


class AccountError(Exception):
    """No credentials, an unreachable endpoint, or ListBuckets refused: one line, exit 2."""


def _client(session: Any, service: str, endpoint_url: str | None, region: str | None) -> Any:
    from botocore.config import Config

    # an S3-compatible endpoint: path-style addressing, and no account-id host prefix for s3control
    config = Config(retries={"max_attempts": 2}, connect_timeout=10, read_timeout=30,
                    s3={"addressing_style": "path"} if endpoint_url else None,
                    inject_host_prefix=endpoint_url is None)
    client = session.create_client(service, endpoint_url=endpoint_url, region_name=region or "us-east-1",
                                   config=config)
    if service == "s3control" and endpoint_url:
        # s3control's endpoint rules put the account id in front of the host name; an S3-compatible
        # endpoint given by address has no such names, so the request goes to the endpoint as given
        # (rewritten before signing, so the signature covers the host it is sent to)
        client.meta.events.register("before-sign.s3-control", _endpoint_as_given(endpoint_url))
    return client


def _endpoint_as_given(endpoint_url: str) -> Any:
    from urllib.parse import urlsplit, urlunsplit

    wanted = urlsplit(endpoint_url)

    def rewrite(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        if parts.netloc != wanted.netloc:
            request.url = urlunsplit((parts.scheme, wanted.netloc, parts.path, parts.query, parts.fragment))

    return rewrite


def _call(notes: list[str], what: str, func: Any, **kwargs: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(answer, None), or (None, error code) for an answer that says 'not configured', 'denied' or similar."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return func(**kwargs), None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "error"))
        return None, code
    except (BotoCoreError, OSError, ValueError) as exc:
        notes.append(f"{what}: {exc.__class__.__name__}")
        return None, exc.__class__.__name__


NOT_CONFIGURED = {"NoSuchPublicAccessBlockConfiguration", "NoSuchBucketPolicy", "OwnershipControlsNotFoundError",
                  "ServerSideEncryptionConfigurationNotFoundError", "NoSuchOwnershipControls"}


def bucket_state(s3: Any, name: str, account_pab: dict[str, bool] | None, notes: list[str]) -> BucketState:
    state = BucketState(name=name, account_pab=account_pab)
    answer, code = _call(notes, "GetPublicAccessBlock", s3.get_public_access_block, Bucket=name)
    if answer:
        state.bucket_pab = dict(answer.get("PublicAccessBlockConfiguration") or {})
    elif code in NOT_CONFIGURED:
        state.bucket_pab = {}
    else:
        notes.append(f"bucket {name!r}: GetPublicAccessBlock unavailable ({code})")
    answer, code = _call(notes, "GetBucketPolicy", s3.get_bucket_policy, Bucket=name)
    if answer and isinstance(answer.get("Policy"), str):
        try:
            state.policy = json.loads(answer["Policy"])
        except ValueError:
            notes.append(f"bucket {name!r}: its policy is not JSON")
    elif code not in NOT_CONFIGURED and code is not None:
        notes.append(f"bucket {name!r}: GetBucketPolicy unavailable ({code})")
    answer, code = _call(notes, "GetBucketPolicyStatus", s3.get_bucket_policy_status, Bucket=name)
    if answer:
        state.policy_status_public = bool((answer.get("PolicyStatus") or {}).get("IsPublic"))
    answer, code = _call(notes, "GetBucketAcl", s3.get_bucket_acl, Bucket=name)
    state.acl = {"Grants": answer.get("Grants", [])} if answer else None
    answer, code = _call(notes, "GetBucketOwnershipControls", s3.get_bucket_ownership_controls, Bucket=name)
    if answer:
        rules = (answer.get("OwnershipControls") or {}).get("Rules") or [{}]
        state.ownership = rules[0].get("ObjectOwnership")
    answer, code = _call(notes, "GetBucketLogging", s3.get_bucket_logging, Bucket=name)
    if answer is not None:
        state.logging = bool(answer.get("LoggingEnabled"))
    answer, code = _call(notes, "GetBucketEncryption", s3.get_bucket_encryption, Bucket=name)
    if answer is not None:
        state.encryption = bool(answer.get("ServerSideEncryptionConfiguration"))
    elif code in NOT_CONFIGURED:
        state.encryption = False
    return state


def _keys(s3: Any, name: str, sample: int, notes: list[str]) -> list[str]:
    answer, code = _call(notes, "ListObjectsV2", s3.list_objects_v2, Bucket=name, MaxKeys=max(1, sample))
    if answer is None:
        notes.append(f"bucket {name!r}: objects not listed ({code})")
        return []
    return [str(item["Key"]) for item in answer.get("Contents", [])[:sample] if item.get("Size", 0)]


def sample_heads(s3: Any, name: str, keys: list[str], notes: list[str]) -> int:
    """Medical files among the sampled objects' first 16 KiB (ranged GETs); only the count is kept."""
    medical = 0
    for key in keys:
        head = f"bytes=0-{HEAD_BYTES - 1}"
        answer, code = _call(notes, "GetObject", s3.get_object, Bucket=name, Key=key, Range=head)
        if answer is None:
            continue
        body = answer["Body"]
        try:
            data = body.read(HEAD_BYTES)
        finally:
            body.close()
        kind = sniff(data, key).kind
        medical += kind in MEDICAL_KINDS
    return medical


def public_object_acls(s3: Any, name: str, keys: list[str], notes: list[str]) -> int:
    from .s3bucket import ALL_USERS, AUTHENTICATED_USERS

    count = 0
    for key in keys:
        answer, _ = _call(notes, "GetObjectAcl", s3.get_object_acl, Bucket=name, Key=key)
        grants = answer.get("Grants", []) if answer else []
        if any(isinstance(g, dict) and (g.get("Grantee") or {}).get("URI") in {ALL_USERS, AUTHENTICATED_USERS}
               and g.get("Permission") in {"READ", "FULL_CONTROL"} for g in grants):
            count += 1
    return count


def audit_account(*, profile: str | None = None, endpoint_url: str | None = None, region: str | None = None,
                  buckets: list[str] | None = None, sample: int = 20) -> AuditResult:
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound

    started = datetime.now(UTC)
    sample = max(0, min(sample, 200))
    try:
        session = botocore.session.Session(profile=profile)
        if session.get_credentials() is None:
            raise AccountError("no AWS credentials found (environment, shared files, --profile)")
        s3 = _client(session, "s3", endpoint_url, region)
        listed = s3.list_buckets()
    except ProfileNotFound as exc:
        raise AccountError(f"profile not found: {profile}") from exc
    except ClientError as exc:
        raise AccountError(f"ListBuckets refused: {exc.response.get('Error', {}).get('Code', 'error')}") from exc
    except (BotoCoreError, OSError) as exc:
        raise AccountError(f"S3 not reachable: {exc.__class__.__name__}") from exc
    notes: list[str] = []
    account_pab: dict[str, bool] | None = None
    sts = _client(session, "sts", endpoint_url, region)
    identity, code = _call(notes, "GetCallerIdentity", sts.get_caller_identity)
    account = str(identity.get("Account")) if identity else None
    if account:
        control = _client(session, "s3control", endpoint_url, region)
        answer, code = _call(notes, "GetPublicAccessBlock (account)", control.get_public_access_block,
                             AccountId=account)
        if answer:
            account_pab = dict(answer.get("PublicAccessBlockConfiguration") or {})
        elif code in NOT_CONFIGURED:
            account_pab = {}
        else:
            notes.append(f"account Block Public Access unavailable ({code})")
    names = [str(b["Name"]) for b in listed.get("Buckets", [])][:MAX_BUCKETS]
    if buckets:
        names = [n for n in names if n in set(buckets)]
    findings: list[Finding] = []
    files: list[AuditedFile] = []
    for name in names:
        bucket_notes: list[str] = []
        state = bucket_state(s3, name, account_pab, bucket_notes)
        keys = _keys(s3, name, sample, bucket_notes) if sample else []
        verdict = evaluate(state)
        policy_public = any(layer.layer == "policy" for layer in verdict.public) or any(
            layer.layer == "policy" for layer, _ in verdict.voided)
        if state.policy_status_public is not None and state.policy_status_public != policy_public:
            word = "a" if policy_public else "no"
            bucket_notes.append(f"S3's policy status says IsPublic={state.policy_status_public}, phiwatch's "
                                f"evaluator found {word} public statement: review the policy")
        if keys and state.ownership != "BucketOwnerEnforced" and not (
                (state.bucket_pab or {}).get("IgnorePublicAcls") or (account_pab or {}).get("IgnorePublicAcls")):
            public_objects = public_object_acls(s3, name, keys, bucket_notes)
            if public_objects:
                verdict.public.append(Layer({"read"}, f"{public_objects} of {len(keys)} sampled objects have ACLs "
                                            "granting READ to AllUsers", "object-acl"))
        medical = sample_heads(s3, name, keys, bucket_notes) if verdict.kinds & {"read", "list"} else None
        location = Location(path=f"s3://{name}", line=None)

        def where(topic: str, layer: Layer | None, location: Location = location) -> tuple[
                None, None, Location, list[LineChange] | None]:
            return None, None, location, None

        found = verdict_findings(state, verdict, where, medical=medical)
        findings.extend(found)
        files.append(AuditedFile(path=location.path, kind="s3-bucket", status=FileStatus.AUDITED,
                                 findings=len(found), message="; ".join(bucket_notes)[:500] or None,
                                 parser="botocore (read-only calls)"))
    if notes:
        files.append(AuditedFile(path="s3://", kind="s3-account", status=FileStatus.AUDITED,
                                 message="; ".join(notes)[:500], parser="botocore (read-only calls)"))
    info = AuditInfo(id=f"audit-{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}", start=started,
                     end=datetime.now(UTC), version=__version__, paths=[endpoint_url or "s3"],
                     bounds=AuditBounds(), target="s3")
    return AuditResult(audit=info, files=files, findings=findings)
