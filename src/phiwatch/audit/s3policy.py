"""Who a bucket policy lets in: a small evaluator of what decides public access.

AWS calls a policy public unless every Allow is tied to fixed values of keys that name who
or where the caller is ("The meaning of public" in the S3 user guide). This evaluator
follows that: an Allow statement is public when its principal is `*` (or NotPrincipal is
used) and no condition pins it to fixed values of aws:SourceIp (a range narrower than /8
for IPv4, /32 for IPv6), aws:SourceVpc, aws:SourceVpce, aws:PrincipalOrgID,
aws:PrincipalAccount, aws:PrincipalArn, aws:SourceArn, aws:SourceAccount, aws:SourceOwner
or aws:userid with a positive operator (StringEquals, ArnEquals, IpAddress, ...). A value
with a wildcard pins nothing; NotIpAddress and StringNotEquals in an Allow pin nothing.
Then the Deny statements: a Deny for every principal whose condition denies callers
outside fixed sources (NotIpAddress aws:SourceIp, StringNotEquals aws:SourceVpce or
aws:PrincipalOrgID, ...) takes the public grant away for the actions it covers.

Why not a library: policyuniverse (last release 2023-11) and parliament (a policy linter)
were considered; neither combines a policy with its Deny fences, the ACL grants and the
Block Public Access layers into one verdict, which is what decides exposure, so phiwatch
keeps this small evaluator and tests it statement by statement.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from typing import Any

PINNING_KEYS = {"aws:sourceip", "aws:sourcevpc", "aws:sourcevpce", "aws:principalorgid", "aws:principalaccount",
                "aws:principalarn", "aws:sourcearn", "aws:sourceaccount", "aws:sourceowner", "aws:userid",
                "aws:sourceorgid", "aws:principalorgpaths"}
POSITIVE = {"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike", "ipaddress"}
NEGATIVE = {"stringnotequals", "stringnotequalsignorecase", "stringnotlike", "arnnotequals", "arnnotlike",
            "notipaddress"}
ACTIONS = {
    "read": "s3:GetObject",
    "list": "s3:ListBucket",
    "write": "s3:PutObject",
    "delete": "s3:DeleteObject",
    "acl": "s3:PutBucketAcl",
    "policy": "s3:PutBucketPolicy",
}


@dataclass(frozen=True)
class PublicGrant:
    """What the public may do under one Allow statement (action kinds: read, list, write, ...)."""

    index: int
    sid: str | None
    kinds: frozenset[str]
    why: str


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _everyone(statement: dict[str, Any]) -> bool:
    if "NotPrincipal" in statement:
        return True
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any(v == "*" or (isinstance(v, list) and "*" in v) for k, v in principal.items() if k == "AWS")
    return False


def _covered(statement: dict[str, Any]) -> set[str]:
    """The action kinds (read, list, write, ...) a statement covers."""
    if "NotAction" in statement:
        excluded = [str(a).lower() for a in _list(statement["NotAction"])]
        return {k for k, a in ACTIONS.items() if not any(fnmatch.fnmatch(a.lower(), x) for x in excluded)}
    patterns = [str(a).lower() for a in _list(statement.get("Action", []))]
    return {k for k, action in ACTIONS.items() if any(fnmatch.fnmatch(action.lower(), p) for p in patterns)}


def _fixed(key: str, values: list[Any]) -> bool:
    """Fixed values that pin the caller: no wildcard, no range as wide as /8 (IPv4) or /32 (IPv6)."""
    if not values:
        return False
    for value in values:
        text = str(value)
        if "*" in text or "?" in text:
            return False
        if key == "aws:sourceip":
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                return False
            if network.prefixlen < (8 if network.version == 4 else 32):
                return False
    return True


def _conditions(statement: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    out: list[tuple[str, str, list[Any]]] = []
    condition = statement.get("Condition") or {}
    if not isinstance(condition, dict):
        return out
    for operator, block in condition.items():
        if not isinstance(block, dict):
            continue
        base = str(operator).lower().replace("forallvalues:", "").replace("foranyvalue:", "").removesuffix(
            "ifexists")
        for key, values in block.items():
            out.append((base, str(key).lower(), _list(values)))
    return out


def _pinned(statement: dict[str, Any], operators: set[str]) -> str | None:
    for operator, key, values in _conditions(statement):
        if operator in operators and key in PINNING_KEYS and _fixed(key, values):
            return key
    return None


def statements(policy: Any) -> list[dict[str, Any]]:
    if not isinstance(policy, dict):
        return []
    return [s for s in _list(policy.get("Statement", [])) if isinstance(s, dict)]


def public_grants(policy: Any) -> list[PublicGrant]:
    """The Allow statements that let the public in, after the Deny statements that fence them."""
    all_statements = statements(policy)
    fences: list[tuple[set[str], str]] = []
    for statement in all_statements:
        if statement.get("Effect") == "Deny" and _everyone(statement):
            key = _pinned(statement, NEGATIVE)
            if key:
                fences.append((_covered(statement), key))
    grants: list[PublicGrant] = []
    for index, statement in enumerate(all_statements):
        if statement.get("Effect") != "Allow" or not _everyone(statement):
            continue
        if _pinned(statement, POSITIVE):
            continue
        kinds = _covered(statement)
        fenced = {kind for kind in kinds for covered, _ in fences if kind in covered}
        kinds -= fenced
        if not kinds:
            continue
        conditions = [f"{op} {key}" for op, key, _ in _conditions(statement)]
        why = "Principal *" + (f" with conditions that pin no caller ({', '.join(conditions)})" if conditions else
                               " without conditions")
        grants.append(PublicGrant(index, statement.get("Sid"), frozenset(kinds), why))
    return grants
