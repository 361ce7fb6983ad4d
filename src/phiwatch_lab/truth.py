"""The exposure ladder the lab should produce, computed from its manifest alone (never from
phiwatch's code), for the trust tests and bench/trust_ladder.py.

Rules, each a documented fact about the lab's servers:
- a silent DICOM server (the tarpit) is known as DICOM only on a DICOM default port;
- a server that checks the called AE title rejects phiwatch's default one (ANY-SCP);
- every lab SCP that accepts an association answers C-ECHO;
- a bare DICOMweb server has no product to identify;
- a web API counts as unauthenticated when something beyond a static page shell answers
  without credentials (a DICOMweb root, an API or data page, a product's version API
  behind a login form), or a blank login opens it;
- every file repository that lets an anonymous visitor in serves the medical tree (the one
  that holds the canary).
Likely honeypots are the entries whose `expected.honeypot` is true: they leave the filtered
counts.
"""

from __future__ import annotations

from typing import Any

DICOM_DEFAULT_PORTS = (104, 2761, 2762, 4242, 11112)


def ladder_truth(services: list[dict[str, Any]]) -> dict[str, dict[str, tuple[int, int]]]:
    """family -> step -> (raw, filtered) for these manifest entries."""
    steps: dict[str, dict[str, list[bool]]] = {"dicom": {}, "web": {}, "files": {}}

    def count(family: str, step: str, entry: dict[str, Any], hit: bool) -> None:
        steps[family].setdefault(step, [])
        if hit:
            steps[family][step].append(bool(entry["expected"].get("honeypot")))

    for entry in services:
        e = entry["expected"]
        if entry["protocol"] == "dicom":
            silent = e.get("status") == "timeout"
            accepted = e.get("association") == "accepted" and not e.get("called_ae_checked")
            count("dicom", "tcp_open", entry, not silent or entry["port"] in DICOM_DEFAULT_PORTS)
            count("dicom", "association_accepted", entry, accepted)
            count("dicom", "any_called_ae", entry, accepted)
            count("dicom", "echo_answered", entry, accepted)
            count("dicom", "query_answered", entry, accepted and e.get("query") in ("exposed", "empty"))
            count("dicom", "studies_exposed", entry, accepted and e.get("query") == "exposed")
            count("dicom", "tls", entry, bool(entry.get("tls")))
        elif "access" in e:
            anonymous = e["access"] in ("anonymous", "guest")
            count("files", "reachable", entry, True)
            count("files", "anonymous_access", entry, anonymous)
            count("files", "listing", entry, anonymous)
            count("files", "medical_files_verified", entry, anonymous and bool(e.get("canary")))
        elif entry["protocol"] == "http":
            open_api = (e.get("auth") == "none" and (e.get("dicomweb") or e.get("page", "/") != "/")) or (
                e.get("blank_login") == "accepted") or ("version_path" in e and e.get("auth") == "login-form")
            count("web", "reachable", entry, True)
            count("web", "product_identified", entry, e.get("product") not in (None, "dicomweb"))
            count("web", "unauthenticated_api", entry, open_api)
            count("web", "data_listed", entry, e.get("query") == "exposed")
            if e.get("webdav") == "anonymous":  # a web product that is a file share too (Orthanc's /webdav/)
                for step in ("reachable", "anonymous_access", "listing", "medical_files_verified"):
                    count("files", step, entry, True)
    return {family: {step: (len(hits), hits.count(False)) for step, hits in rows.items()}
            for family, rows in steps.items()}
