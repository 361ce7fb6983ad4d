"""The lab's S3 endpoint: moto's S3 server with a public medical export, a public web bucket and
a private bucket.

What moto models and what it does not (moto enforces no authentication unless IAM enforcement
is switched on with INITIAL_NO_AUTH_ACTION_COUNT, and then it refuses every unsigned request,
public buckets included, so that switch cannot model a public bucket next to a private one):

- modelled by moto itself: anonymous ListBuckets is answered (as a misconfigured S3-compatible
  store would; AWS never answers it); anonymous ListObjectsV2 and GetObject (with Range) on
  "pacs-export" and "public-www"; objects of "private-records" are stored with the private ACL,
  and moto refuses their anonymous GetObject (403) on its own.
- added by a thin gate in front of moto (this module): anonymous ListObjects on
  "private-records" is answered 403 AccessDenied with an S3 error document, as S3 answers for a
  bucket without a public ACL or policy. moto would list it.
- optional gate rules for tests (`--deny-list-buckets`, `--virtual-hosted-only`): anonymous
  ListBuckets refused with AccessDenied, as on AWS; path-style bucket requests refused, so that
  only virtual-hosted style (Host: BUCKET.<endpoint>) lists.
- not modelled: signatures, IAM users, bucket policies' conditions, Block Public Access, TLS.

Run as `python -m phiwatch_lab.s3 --port N --tree DIR`: the buckets are loaded in-process
before the port opens, so a listening port means the data is there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared

NAME = "moto-s3"
OFFSET = 25
PUBLIC = "pacs-export"
WWW = "public-www"
PRIVATE = "private-records"
WWW_FILES = {
    "index.html": b"<!DOCTYPE html>\n<html><head><title>Clinic</title></head><body>Opening hours</body></html>\n",
    "css/site.css": b"body { font-family: sans-serif; }\n",
    "img/logo.svg": b"<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>\n",
}
_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied'
    b"</Message><RequestId>PWLAB0000000001</RequestId><HostId>cGhpd2F0Y2gtbGFi</HostId></Error>"
)


def check_installed() -> None:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise LabError("moto is not installed: pip install 'moto[server]'") from exc


def prepare(folder: Path, base: int) -> Prepared:
    tree = medtree.build_tree(folder / "tree")
    argv = [sys.executable, "-m", "phiwatch_lab.s3", "--port", str(base + OFFSET), "--tree", str(folder / "tree")]
    return Prepared(argv=argv, facts=tree, python=True)


def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
    from .services import _service

    counts = medtree.probe_counts(tree)
    return [
        _service(
            NAME,
            NAME,
            base + OFFSET,
            "s3",
            "moto S3 server (no authentication of its own): anonymous ListBuckets answers; bucket "
            f"{PUBLIC!r} holds the lab's medical tree (DICOM with the canary, a DICOMDIR, HL7, X12, "
            f"{medtree.SERIES_SIZE} images; S3 has no symbolic links, so no loop); {WWW!r} holds web "
            f"files only; {PRIVATE!r} holds HL7 files with the private ACL (moto refuses anonymous "
            "GetObject) behind a lab gate that refuses anonymous ListObjects with AccessDenied, which "
            "moto does not model.",
            {
                "access": "anonymous",
                "listing": "s3",
                "dialect": "path-style",
                "list_buckets": True,
                "buckets": [PUBLIC, WWW, PRIVATE],  # ListBuckets order (creation)
                "files_present": tree.get("files", {}),
                # Measured with phiwatch's default walk bounds (25 files sniffed per folder).
                "probe_counts": {PUBLIC: counts, WWW: {}, PRIVATE: {}},
                "directories": {PUBLIC: 7, WWW: 3},
                "auth_required": [PRIVATE],
                "loops": 0,
                "canary": True,
                "not_modelled": ["signatures", "IAM", "policy conditions", "Block Public Access", "TLS"],
            },
        )
    ]


SERVER = LabServer(name=NAME, offsets=(OFFSET,), check_installed=check_installed, prepare=prepare,
                   services=services, canary=(NAME,))  # fmt: skip


# --- the runner -------------------------------------------------------------------------------------


def _files(root: Path) -> Iterable[tuple[str, Path]]:
    """(key, path) for every regular file; symbolic links are skipped (S3 has none)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                yield path.relative_to(root).as_posix(), path


def load(tree: Path) -> None:
    """Create the buckets in moto's in-process backend (moto's mock, then its data is kept)."""
    import botocore.session
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    try:
        client = botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", aws_access_key_id="lab", aws_secret_access_key="lab"
        )
        for bucket in (PUBLIC, WWW, PRIVATE):
            client.create_bucket(Bucket=bucket, ACL="private" if bucket == PRIVATE else "public-read")
        for bucket in (PUBLIC, WWW):
            policy = {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}  # fmt: skip
            client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        for key, path in _files(tree):
            client.put_object(Bucket=PUBLIC, Key=key, Body=path.read_bytes(), ACL="public-read")
            if key.startswith("HL7/"):
                client.put_object(Bucket=PRIVATE, Key=key, Body=path.read_bytes(), ACL="private")
        for key, body in WWW_FILES.items():
            client.put_object(Bucket=WWW, Key=key, Body=body, ACL="public-read")
    finally:
        mock.stop(remove_data=False)


def gate(app: Callable, deny_list_buckets: bool, virtual_only: bool) -> Callable:
    """What moto does not enforce for anonymous requests (see the module's docstring)."""

    def wsgi(environ: dict[str, Any], start_response: Callable) -> Any:
        anonymous = "HTTP_AUTHORIZATION" not in environ and "Signature" not in environ.get("QUERY_STRING", "")
        host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0]
        path = environ.get("PATH_INFO", "/").lstrip("/")
        label = host.split(".", 1)[0]
        virtual = "." in host and not label.isdigit() and label not in ("localhost", "")
        bucket, _, key = (label, "", path) if virtual else path.partition("/")
        refuse = anonymous and (
            (not bucket and deny_list_buckets)
            or (bool(bucket) and virtual_only and not virtual)
            or (bucket == PRIVATE and not key and environ.get("REQUEST_METHOD") in ("GET", "HEAD"))
        )
        if refuse:
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                             ("x-amz-request-id", "PWLAB0000000001")])  # fmt: skip
            return [_DENIED]
        return app(environ, start_response)

    return wsgi


def _quiet_handler() -> type:
    """moto's request handler, its log without request paths: an object key carries the tree's folder
    names, the canary patient's among them, and the lab's logs hold no patient value."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            method = getattr(self, "command", "")
            self.log("info", '"%s" %s %s', method if method.isalpha() and len(method) <= 16 else "-", code, size)

        def log_error(self, format: str, *args: Any) -> None:  # http.server quotes the request line
            code = args[0] if args and isinstance(args[0], int) else "-"
            self.log("error", "request refused: %s", code)

    return QuietHandler


def _quiet_server_log(type: str, message: str, *args: Any) -> None:
    """werkzeug's server log without a request's traceback (its frames may quote an object key):
    the first line and the exception's type only."""
    import logging

    lines = str(message).strip().splitlines() or [""]
    kind = lines[-1].split(":", 1)[0] if len(lines) > 1 else ""
    logging.getLogger("werkzeug").log(
        logging.ERROR if type == "error" else logging.INFO, "%s %s", lines[0][:80], kind[:80]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m phiwatch_lab.s3")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--deny-list-buckets", action="store_true")
    parser.add_argument("--virtual-hosted-only", action="store_true")
    args = parser.parse_args(argv)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]  # the user's AWS profile or endpoint has no say in the lab
    load(args.tree)
    app = gate(DomainDispatcherApplication(create_backend_app), args.deny_list_buckets, args.virtual_hosted_only)
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=_quiet_handler())
    server.log = _quiet_server_log  # type: ignore[method-assign]
    server.serve_forever()


if __name__ == "__main__":
    main()
