"""The lab's pyftpdlib server: anonymous read-only FTP with MLSD and AUTH TLS offered (not required).

It serves the medical tree (lab/medtree.py). pyftpdlib lists with MLSD and follows the
tree's symbolic link (HL7/back -> ..) as a folder, so the loop shows as a folder whose
listing repeats the root's.

Run alone: python -m phiwatch_lab.pyftpd --port P --root DIR --pasv LOW-HIGH --cert C --key K
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from . import medtree
from .certs import make_self_signed
from .errors import LabError
from .plugins import LabServer, Prepared

NAME = "pyftpdlib-mlsd"
OFFSET = 27
PASV_OFFSETS = (65, 69)
BANNER = "PHIWATCH LAB FTP MLSD"


def check_installed() -> None:
    try:
        import OpenSSL  # noqa: F401  (pyftpdlib's TLS handler needs pyOpenSSL)
        from pyftpdlib.handlers import TLS_FTPHandler  # noqa: F401
    except ImportError as exc:
        raise LabError(f"pyftpdlib TLS support is missing ({exc.name}): pip install pyftpdlib pyopenssl") from exc


def prepare(folder: Path, base: int) -> Prepared:
    root = folder / "root"
    tree = medtree.build_tree(root)
    cert, key = folder / "cert.pem", folder / "key.pem"
    make_self_signed(cert, key)
    low, high = (base + offset for offset in PASV_OFFSETS)
    argv = [
        sys.executable, "-m", "phiwatch_lab.pyftpd", "--port", str(base + OFFSET), "--root", str(root),
        "--pasv", f"{low}-{high}", "--cert", str(cert), "--key", str(key),
    ]  # fmt: skip
    return Prepared(argv=argv, facts=tree, python=True)


def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
    from .services import _service

    return [
        _service(
            NAME,
            NAME,
            base + OFFSET,
            "ftp",
            "pyftpdlib, anonymous read-only, MLSD listings, AUTH TLS offered but not required, "
            "serving the medical tree (canary DICOM, DICOMDIR, HL7, X12, a 300-image series). "
            "The link HL7/back -> .. is listed as a folder repeating the root.",
            {
                "access": "anonymous",
                "login": "anonymous",
                "listing": "mlsd",
                "mlsd": True,
                "tls_offered": True,
                "tls_required": False,
                "files_present": tree.get("files", {}),
                "loops": 1,
                "probe_counts": medtree.probe_counts(tree),
                "canary": True,
            },
        )
    ]


SERVER = LabServer(
    name=NAME,
    offsets=(OFFSET,),
    check_installed=check_installed,
    prepare=prepare,
    services=services,
    canary=(NAME,),
    reserved=tuple(range(PASV_OFFSETS[0], PASV_OFFSETS[1] + 1)),
)


def serve(port: int, root: Path, pasv: tuple[int, int], cert: Path, key: Path, host: str = "127.0.0.1") -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import TLS_FTPHandler
    from pyftpdlib.log import config_logging
    from pyftpdlib.servers import FTPServer

    config_logging(level=logging.WARNING)  # no per-command lines: they would quote the tree's names
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(root), perm="elr")  # list, change folder, retrieve: nothing else

    class Handler(TLS_FTPHandler):
        pass

    Handler.authorizer = authorizer
    Handler.certfile = str(cert)
    Handler.keyfile = str(key)
    Handler.tls_control_required = False
    Handler.tls_data_required = False
    Handler.banner = BANNER
    Handler.passive_ports = list(range(pasv[0], pasv[1] + 1))
    Handler.masquerade_address = host
    server = FTPServer((host, port), Handler)
    server.max_cons = 64
    server.max_cons_per_ip = 32
    try:
        server.serve_forever(handle_exit=True)
    finally:
        server.close_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="phiwatch_lab.pyftpd", description="The lab's pyftpdlib server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--pasv", required=True, help="LOW-HIGH passive data ports")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    low, _, high = args.pasv.partition("-")
    serve(args.port, args.root, (int(low), int(high or low)), args.cert, args.key, args.host)


if __name__ == "__main__":
    main()
