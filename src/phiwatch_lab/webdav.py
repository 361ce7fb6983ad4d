"""The lab's WebDAV shares: Debian's Apache httpd with mod_dav over the medical tree, three ports.

- base + 75: an anonymous share (Dav On, no login): PROPFIND lists the medical tree.
- base + 76: the same tree behind a login (AuthType Basic, a random password): negative control.
- base + 77: the same tree with PROPFIND refused (403; GET still serves files): negative control.

Apache runs with its own configuration file (not Debian's), drops to nobody, and writes its pid,
mutex and lock database under the plug-in's folder.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared
from .services import HOST, _service
from .webservers import APACHE, APACHE_MODULES, apache_base

NAME = "apache-webdav"
OFFSETS = {"open": 75, "login": 76, "refused": 77}
LOADED = ("mpm_event", "authz_core", "authn_core", "authn_file", "auth_basic", "authz_user", "mime", "dav",
          "dav_fs")  # fmt: skip


def check_installed() -> None:
    missing = [p for p in (Path(APACHE), APACHE_MODULES / "mod_dav_fs.so") if not p.is_file()]
    if missing:
        raise LabError(f"{missing[0]} is missing: run scripts/install-debian-deps.sh (Debian package apache2)")


def render_config(folder: Path, root: Path, base: int) -> str:
    share = [f"  DocumentRoot {root}", f"  <Directory {root}>", "    Dav On", "    Options None"]
    lines = [
        *apache_base(folder, LOADED, (base + offset for offset in OFFSETS.values())),
        f"DavLockDB {folder / 'lock' / 'davlock'}",
        f"<VirtualHost {HOST}:{base + OFFSETS['open']}>", *share, "    Require all granted", "  </Directory>",
        "</VirtualHost>",
        f"<VirtualHost {HOST}:{base + OFFSETS['login']}>", *share, "    AuthType Basic",
        '    AuthName "phiwatch lab WebDAV"', f"    AuthUserFile {folder / 'htpasswd'}", "    Require valid-user",
        "  </Directory>", "</VirtualHost>",
        f"<VirtualHost {HOST}:{base + OFFSETS['refused']}>", *share, "    Require method GET HEAD OPTIONS",
        "  </Directory>", "</VirtualHost>",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def prepare(folder: Path, base: int) -> Prepared:
    root = folder / "root"
    tree = medtree.build_tree(root)
    os.chmod(folder, 0o755)  # Apache drops to nobody
    lock = folder / "lock"
    lock.mkdir()
    os.chmod(lock, 0o777)
    password = secrets.token_urlsafe(24)  # never used by phiwatch: the share must stay closed to it
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    (folder / "htpasswd").write_text(f"lab-{secrets.token_hex(4)}:{{SHA}}{digest}\n")
    config = folder / "httpd.conf"
    config.write_text(render_config(folder, root, base))
    return Prepared(argv=[APACHE, "-f", str(config), "-DFOREGROUND"], facts=tree)


def services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    tree = "the medical tree (DICOM with the canary in a folder named after the canary patient, HL7, X12)"
    return [
        _service(
            f"{NAME}-open", NAME, base + OFFSETS["open"], "http",
            f"Apache httpd 2.4 mod_dav, anonymous WebDAV share of {tree}.",
            {"access": "anonymous", "listing": "webdav", "files_present": facts.get("files", {}), "canary": True},
        ),
        _service(
            f"{NAME}-login", NAME, base + OFFSETS["login"], "http",
            "Apache httpd 2.4 mod_dav, the same share behind a login: negative control (no WebDAV finding).",
            {"access": "denied"},
        ),
        _service(
            f"{NAME}-refused", NAME, base + OFFSETS["refused"], "http",
            "Apache httpd 2.4 mod_dav with PROPFIND refused (403): negative control (no WebDAV finding).",
            {"access": "denied"},
        ),
    ]  # fmt: skip


SERVER = LabServer(
    name=NAME,
    offsets=tuple(OFFSETS.values()),
    check_installed=check_installed,
    prepare=prepare,
    services=services,
    canary=(f"{NAME}-open", f"{NAME}-login", f"{NAME}-refused"),
)
