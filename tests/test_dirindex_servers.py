"""Directory listings of seven real web servers over the same medical tree, each held to the truth
of the folder it serves (tests/truth.py).

nginx autoindex, Apache httpd Indexes in its three layouts (FancyIndexing with HTMLTable,
FancyIndexing in <pre>, the plain list), lighttpd dir-listing, Caddy's `file_server browse`,
rclone's `serve http` and Python's http.server. Their titles differ ("Index of /", "/",
"Directory listing for /"); each is recognised by its structure. IIS has no server here: its
page shape is tested from a sample page written from its documentation (test_dirindex.py).
"""

from __future__ import annotations

import pytest

from .implementations import expect_like_the_truth, scan_outputs, started
from .repo_helpers import identify

SERVERS = {  # lab server -> (its services, the style phiwatch names)
    "nginx-autoindex": {"nginx-autoindex": "nginx"},
    "apache-index": {"apache-index-table": "apache", "apache-index-pre": "apache",
                     "apache-index-plain": "generic"},
    "lighttpd-dirlisting": {"lighttpd-dirlisting": "lighttpd"},
    "caddy-browse": {"caddy-browse": "caddy"},
    "rclone-http": {"rclone-http": "rclone"},
    "python-http": {"python-http": "python"},
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request):
    with started(request.param) as (_, truth):
        yield request.param, truth


def _entries(name: str) -> list[dict]:
    from phiwatch_lab import plugins

    from .implementations import BASE

    lab = next(s for s in (*plugins.servers(), *plugins.implementations()) if s.name == name)
    return lab.services(BASE, {})


def test_each_listing_is_recognised_and_counted_as_the_served_folder_holds_it(server):
    name, truth = server
    for entry in _entries(name):
        # Given an open listing of the medical tree, When the scanner meets it on an odd port
        svc = identify(entry["port"])
        # Then it is a directory index of the expected style, whatever its title
        assert svc.protocol == "http", (entry["name"], svc.status, svc.detail)
        facts = svc.repository
        assert facts is not None and facts.listing == "html"
        assert facts.dialect == SERVERS[name][entry["name"]]
        (share,) = facts.shares
        # And every kind is counted as the folder holds it under the same limits
        expect_like_the_truth(svc, share, truth, "http_index_medical_files_exposed", ("/HL7", "/X12", "/IMAGES"))


def test_a_scan_of_it_writes_the_exposure_and_no_canary_anywhere(server, tmp_path):
    name, truth = server
    entry = _entries(name)[0]
    document = scan_outputs(entry["port"], tmp_path)
    (svc,) = document["services"]
    assert svc["protocol"] == "http" and svc["status"] == "exposed", name
    finding = next(f for f in document["findings"] if f["check_id"] == "http_index_medical_files_exposed")
    assert finding["exposure"]["files"]["hl7"] == truth.total("hl7")
