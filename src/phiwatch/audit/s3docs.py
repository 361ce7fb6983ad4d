"""S3 bucket documents as the AWS CLI prints them, alone or as a bucket's set.

Recognised: `get-bucket-policy` ({"Policy": "<json>"}) or a bare policy, `get-bucket-acl`
(Owner, Grants), `get-public-access-block` (PublicAccessBlockConfiguration; a file whose name
says "account" is the account's), `get-bucket-policy-status`, `get-bucket-ownership-controls`,
`get-bucket-logging`, `get-bucket-encryption`, and phiwatch's own bucket set (one object with
Bucket, Policy, Acl, PublicAccessBlock, AccountPublicAccessBlock, OwnershipControls, Logging,
Encryption). The documents of one folder are one bucket's set, judged together.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models import Finding, LineChange, Location
from .context import ConfigError, Context, Parsed
from .jsonc import key_line, load
from .model import FileStatus, change, finding
from .s3bucket import BucketState, Layer, Verdict, evaluate
from .source import Source

KIND = "s3"
DOC_KINDS = ("policy", "acl", "public-access-block", "policy-status", "ownership", "logging", "encryption", "set")


def doc_kind(name: str, data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    keys = set(data)
    if keys & {"Bucket", "Acl", "PublicAccessBlock", "AccountPublicAccessBlock"} and keys & {
            "Policy", "Acl", "PublicAccessBlock", "OwnershipControls"}:
        return "set"
    if "Statement" in keys or (keys == {"Policy"} and isinstance(data["Policy"], str)):
        return "policy"
    if "Grants" in keys and ("Owner" in keys or isinstance(data["Grants"], list)):
        return "acl"
    if "PublicAccessBlockConfiguration" in keys or {"BlockPublicAcls", "RestrictPublicBuckets"} <= keys:
        return "public-access-block"
    if "PolicyStatus" in keys:
        return "policy-status"
    if "OwnershipControls" in keys:
        return "ownership"
    if "LoggingEnabled" in keys:
        return "logging"
    if "ServerSideEncryptionConfiguration" in keys:
        return "encryption"
    return None


def recognise(name: str, text: str) -> bool:
    if text.lstrip()[:1] != "{":
        return False
    try:
        return doc_kind(name, json.loads(text)) is not None
    except (ValueError, RecursionError):
        return False


@dataclass
class Doc:
    source: Source
    kind: str
    data: Any
    clean: str


def read_doc(source: Source) -> Doc:
    data, clean = load(source.text)
    kind = doc_kind(source.path.name, data)
    if kind is None:
        raise ConfigError(FileStatus.UNKNOWN, "JSON, but not an S3 document phiwatch knows")
    if kind == "policy" and isinstance(data.get("Policy"), str):
        try:
            data = json.loads(data["Policy"])
        except ValueError as exc:
            raise ConfigError(FileStatus.MALFORMED, "the Policy string is not JSON") from exc
    return Doc(source, kind, data, clean)


def _pab(data: Any) -> dict[str, bool] | None:
    if not isinstance(data, dict):
        return None
    inner = data.get("PublicAccessBlockConfiguration", data)
    return {k: v for k, v in inner.items() if isinstance(v, bool)} if isinstance(inner, dict) else None


def state_of(name: str, docs: list[Doc]) -> BucketState:
    state = BucketState(name=name)
    for doc in docs:
        data = doc.data
        if doc.kind == "set":
            state.name = str(data.get("Bucket", name))
            policy = data.get("Policy")
            state.policy = json.loads(policy) if isinstance(policy, str) else policy
            state.acl = data.get("Acl") or data.get("ACL")
            state.bucket_pab = _pab(data.get("PublicAccessBlock"))
            state.account_pab = _pab(data.get("AccountPublicAccessBlock"))
            rules = ((data.get("OwnershipControls") or {}).get("Rules") or [{}])
            state.ownership = rules[0].get("ObjectOwnership") if rules and isinstance(rules[0], dict) else None
            if "Logging" in data:
                state.logging = bool((data.get("Logging") or {}).get("LoggingEnabled"))
        elif doc.kind == "policy":
            state.policy = data
        elif doc.kind == "acl":
            state.acl = data
        elif doc.kind == "public-access-block":
            if "account" in doc.source.path.name.lower():
                state.account_pab = _pab(data)
            else:
                state.bucket_pab = _pab(data)
        elif doc.kind == "ownership":
            rules = (data.get("OwnershipControls") or {}).get("Rules") or [{}]
            state.ownership = rules[0].get("ObjectOwnership") if isinstance(rules[0], dict) else None
        elif doc.kind == "logging":
            state.logging = bool(data.get("LoggingEnabled"))
        elif doc.kind == "encryption":
            state.encryption = bool(data.get("ServerSideEncryptionConfiguration"))
        elif doc.kind == "policy-status":
            state.policy_status_public = bool((data.get("PolicyStatus") or {}).get("IsPublic"))
    return state


Where = Callable[[str, Layer | None], tuple[Source | None, int | None, Location | None, list[LineChange] | None]]


def verdict_findings(state: BucketState, verdict: Verdict, where: Where, medical: int | None = None,
                     host: str = "", port: int = 443) -> list[Finding]:
    """Findings for one bucket's verdict; `where` says which document and line each reason stands at."""
    out: list[Finding] = []
    voided = "; ".join(f"{layer.why} is void: {reason}" for layer, reason in verdict.voided)
    note = f" ({voided})" if voided else ""

    def add(check: str, evidence: str, layer: Layer | None, topic: str) -> None:
        source, line, location, fix = where(topic, layer)
        out.append(finding(check, evidence + note, source, line, fix=fix, location=location, host=host,
                           port=port, protocol="s3"))

    def reasons(kind: str) -> tuple[str, Layer]:
        layers = [layer for layer in verdict.public if kind in layer.kinds]
        return "; ".join(layer.why for layer in layers), layers[0]

    bucket = f"Bucket {state.name!r}"
    if medical and verdict.kinds & {"list", "read"}:
        why, layer = reasons("list" if "list" in verdict.kinds else "read")
        add("s3_bucket_medical_files_exposed", f"{bucket}: anyone can read it ({why}); a bounded sample of "
            f"object heads holds {medical} medical files", layer, "public")
    elif "list" in verdict.kinds:
        why, layer = reasons("list")
        add("s3_bucket_public_listing", f"{bucket}: anyone can list its objects ({why})", layer, "public")
    if "read" in verdict.kinds and not medical:
        why, layer = reasons("read")
        add("s3_bucket_public_read", f"{bucket}: anyone can read its objects ({why})", layer, "public")
    if verdict.kinds & {"write", "delete", "acl"}:
        kind = next(k for k in ("write", "delete", "acl") if k in verdict.kinds)
        why, layer = reasons(kind)
        add("s3_bucket_public_write", f"{bucket}: anyone can {kind} ({why})", layer, "public")
    if (state.bucket_pab is not None or state.account_pab is not None) and verdict.pab_off:
        add("s3_block_public_access_off", f"{bucket}: Block Public Access settings off at both the account and "
            f"the bucket: {', '.join(verdict.pab_off)}", None, "pab")
    if state.logging is False:
        add("s3_bucket_access_logging_off", f"{bucket}: server access logging is off", None, "logging")
    if state.encryption is False:
        add("s3_bucket_encryption_off", f"{bucket}: no default encryption configuration", None, "encryption")
    return out


def audit_set(name: str, docs: list[Doc]) -> list[Finding]:
    state = state_of(name, docs)
    verdict = evaluate(state)
    by_kind = {doc.kind: doc for doc in docs}
    whole = by_kind.get("set")

    def where(topic: str, layer: Layer | None) -> tuple[Source | None, int | None, Location | None,
                                                         list[LineChange] | None]:
        pab_doc = whole or by_kind.get("public-access-block")
        if topic == "pab" and pab_doc is not None:
            flips = [change(pab_doc.source, key_line(pab_doc.clean, key), True,
                            pab_doc.source.line(key_line(pab_doc.clean, key)).replace("false", "true"))
                     for key in verdict.pab_off if f'"{key}"' in pab_doc.clean]
            first = key_line(pab_doc.clean, verdict.pab_off[0]) if verdict.pab_off else 1
            return pab_doc.source, first, None, (flips or None)
        if layer is not None and layer.layer == "policy":
            doc = whole or by_kind.get("policy")
            if doc is not None:
                line = key_line(doc.clean, "Sid", 1) if layer.sid is None else _sid_line(doc, layer.sid)
                principal = _after(doc, line, '"Principal"')
                fix = [change(doc.source, principal, True, '      "Principal": {"AWS": "arn:aws:iam::<account-id>:'
                              'root"},')] if principal else None
                return doc.source, line, None, fix
        if layer is not None and layer.layer == "acl":
            doc = whole or by_kind.get("acl")
            if doc is not None:
                return doc.source, _grant_line(doc, layer.grant or 0), None, None
        doc = whole or (docs[0] if docs else None)
        return (doc.source if doc else None), 1, None, None

    return verdict_findings(state, verdict, where)


def _sid_line(doc: Doc, sid: str) -> int:
    needle = '"Sid"'
    for number, line in enumerate(doc.clean.splitlines(), 1):
        if needle in line and json.dumps(sid) in line:
            return number
    return 1


def _after(doc: Doc, line: int, needle: str) -> int | None:
    for number, text in enumerate(doc.clean.splitlines(), 1):
        if number >= line and needle in text:
            return number
    return None


def _grant_line(doc: Doc, index: int) -> int:
    count = -1
    for number, text in enumerate(doc.clean.splitlines(), 1):
        if '"Grantee"' in text:
            count += 1
            if count == index:
                return number
    return 1


def audit(source: Source, ctx: Context) -> Parsed:
    """One document alone (the walker groups a folder's documents with audit_set instead)."""
    doc = read_doc(source)
    return Parsed(findings=audit_set(Path(source.path).parent.name, [doc]))
