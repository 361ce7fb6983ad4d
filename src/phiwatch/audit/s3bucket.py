"""One bucket's effective exposure from all its layers: account and bucket Block Public Access,
object ownership (ACLs disabled), ACL grants and policy statements with their conditions.

Block Public Access settings (account or bucket) take effect as AWS documents them:
IgnorePublicAcls makes public ACL grants void, RestrictPublicBuckets limits a public policy
to the owner's account and AWS services; BlockPublicAcls and BlockPublicPolicy only refuse
new public ACLs and policies. BucketOwnerEnforced ownership disables ACLs altogether.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .s3policy import PublicGrant, public_grants

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
PAB_KEYS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
ACL_KINDS = {"READ": {"list"}, "WRITE": {"write", "delete"}, "READ_ACP": set(), "WRITE_ACP": {"acl"},
             "FULL_CONTROL": {"list", "write", "delete", "acl"}}


@dataclass
class BucketState:
    """What is known of one bucket; None means not known (the document or call was not available)."""

    name: str
    policy: Any = None
    acl: dict[str, Any] | None = None
    object_acls_public_read: int | None = None  # objects whose own ACL grants AllUsers READ (live audit)
    bucket_pab: dict[str, bool] | None = None
    account_pab: dict[str, bool] | None = None
    ownership: str | None = None
    logging: bool | None = None
    encryption: bool | None = None
    policy_status_public: bool | None = None


@dataclass
class Layer:
    """One reason the public can (or cannot) do something, with where it was read."""

    kinds: set[str]
    why: str
    layer: str  # policy, acl
    statement: int | None = None
    sid: str | None = None
    grant: int | None = None


@dataclass
class Verdict:
    public: list[Layer] = field(default_factory=list)  # grants in effect
    voided: list[tuple[Layer, str]] = field(default_factory=list)  # grants a block setting or ownership voids
    pab_off: list[str] = field(default_factory=list)  # Block Public Access settings not on (both levels)

    @property
    def kinds(self) -> set[str]:
        return set().union(*(layer.kinds for layer in self.public)) if self.public else set()


def _on(pab: dict[str, bool] | None, key: str) -> bool:
    return bool(pab and pab.get(key) is True)


def acl_grants(acl: dict[str, Any] | None) -> list[Layer]:
    layers: list[Layer] = []
    for index, grant in enumerate((acl or {}).get("Grants", []) or []):
        if not isinstance(grant, dict):
            continue
        grantee = grant.get("Grantee") or {}
        uri = grantee.get("URI") if isinstance(grantee, dict) else None
        if uri not in {ALL_USERS, AUTHENTICATED_USERS}:
            continue
        permission = str(grant.get("Permission", ""))
        who = "AllUsers" if uri == ALL_USERS else "AuthenticatedUsers (any AWS account)"
        kinds = ACL_KINDS.get(permission, set())
        if kinds or permission == "READ_ACP":
            layers.append(Layer(set(kinds) or {"acl-read"}, f"ACL grants {permission} to {who}", "acl",
                                grant=index))
    return layers


def evaluate(state: BucketState) -> Verdict:
    verdict = Verdict()
    ignore_acls = _on(state.bucket_pab, "IgnorePublicAcls") or _on(state.account_pab, "IgnorePublicAcls")
    restrict = _on(state.bucket_pab, "RestrictPublicBuckets") or _on(state.account_pab, "RestrictPublicBuckets")
    acls_disabled = state.ownership == "BucketOwnerEnforced"
    for layer in acl_grants(state.acl):
        if acls_disabled:
            verdict.voided.append((layer, "ObjectOwnership BucketOwnerEnforced disables ACLs"))
        elif ignore_acls:
            verdict.voided.append((layer, "IgnorePublicAcls is on"))
        else:
            verdict.public.append(layer)
    grants: list[PublicGrant] = public_grants(state.policy)
    for grant in grants:
        layer = Layer(set(grant.kinds), f"policy statement {grant.sid or grant.index + 1}: {grant.why}", "policy",
                      statement=grant.index, sid=grant.sid)
        if restrict:
            verdict.voided.append((layer, "RestrictPublicBuckets is on"))
        else:
            verdict.public.append(layer)
    for key in PAB_KEYS:
        if not (_on(state.bucket_pab, key) or _on(state.account_pab, key)):
            verdict.pab_off.append(key)
    return verdict
