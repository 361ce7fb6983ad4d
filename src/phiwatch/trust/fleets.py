"""Fleets: services whose identifying facts are identical get one cluster id.

A real vendor's installations look alike too, so a cluster is a fact to show, never a
verdict. Only what a service said about itself counts (implementation UID and version,
accepted contexts, server banners, web products); a silent port has no fingerprint.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from ..models import Service


def fingerprint(service: Service) -> str | None:
    parts: list[str] = []
    facts = service.dicom
    if facts is not None and facts.association == "accepted":
        accepted = ",".join(c.name for c in facts.contexts if c.accepted)
        parts += ["dicom", str(facts.implementation_class_uid), str(facts.implementation_version_name),
                  str(facts.max_pdu_length), accepted]
    web = service.http
    if web is not None and web.status_code is not None:
        products = ",".join(sorted(f"{m.product}/{m.version}" for m in web.products))
        parts += ["http", str(web.status_code), str(web.server), str(web.auth_scheme), str(web.auth_realm),
                  str(web.title), products]
    repository = service.repository
    if repository is not None and (repository.server or repository.dialect):
        parts += ["files", service.protocol, str(repository.server), str(repository.dialect),
                  str(repository.listing), repository.access]
    if not parts:
        return None
    return "\x1f".join(parts)


def clusters(services: list[Service]) -> dict[tuple[str, int], str]:
    """(host, port) -> cluster id, for fingerprints shared by two or more services."""
    members: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for service in services:
        found = fingerprint(service)
        if found is not None:
            members[found].append((service.host, service.port))
    ids: dict[tuple[str, int], str] = {}
    for found, keys in members.items():
        if len(keys) > 1:
            cluster = "fleet-" + hashlib.sha256(found.encode("utf-8", "replace")).hexdigest()[:10]
            for key in keys:
                ids[key] = cluster
    return ids
