"""rclone's WebDAV server in the lab: anonymous, over the medical tree, ready for the WebDAV probe.

The probe itself is another module's; this test holds the server to what such a probe will need:
an unauthenticated PROPFIND (Depth 1) answered 207 with the tree's top folders.
"""

from __future__ import annotations

import http.client

from .implementations import started


def test_rclone_webdav_answers_an_anonymous_propfind_with_the_tree():
    with started("rclone-webdav") as (entry, truth):
        conn = http.client.HTTPConnection("127.0.0.1", entry["port"], timeout=5)
        try:
            conn.request("PROPFIND", "/", headers={"Depth": "1"})
            answer = conn.getresponse()
            body = answer.read(1_000_000)
        finally:
            conn.close()
    assert answer.status == 207 and b"multistatus" in body
    for folder in (b"DICOM/", b"HL7/", b"IMAGES/", b"X12/"):
        assert b"<d:href>/" + folder + b"</d:href>" in body or b"/" + folder in body
    assert truth.total("dicom", "dicomdir") > 300  # the same tree the other servers serve
