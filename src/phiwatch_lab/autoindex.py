"""The lab's open HTTP directory index: Debian's nginx with `autoindex on` over the medical tree.

nginx follows symbolic links by default (`disable_symlinks off`), so the tree's HL7/back -> ..
loop is served as a folder whose listing is the root's: the walk must see it as a loop.
Every path nginx writes (error log, pid, temporary files) is under the plug-in's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared
from .services import HOST, _service

NGINX = "/usr/sbin/nginx"
NAME = "nginx-autoindex"
OFFSET = 26


def check_installed() -> None:
    if not Path(NGINX).is_file():
        raise LabError("nginx is not installed: run scripts/install-debian-deps.sh (Debian package nginx-light)")


def render_config(folder: Path, root: Path, port: int) -> str:
    temp = folder / "temp"
    lines = [
        "master_process off;",
        "worker_processes 1;",
        f"error_log {folder / 'error.log'} warn;",
        f"pid {folder / 'nginx.pid'};",
        *(["user root;"] if os.geteuid() == 0 else []),
        "events { worker_connections 256; }",
        "http {",
        "    access_log off;",
        "    server_tokens on;",
        f"    client_body_temp_path {temp / 'body'};",
        f"    proxy_temp_path {temp / 'proxy'};",
        f"    fastcgi_temp_path {temp / 'fastcgi'};",
        f"    uwsgi_temp_path {temp / 'uwsgi'};",
        f"    scgi_temp_path {temp / 'scgi'};",
        "    default_type application/octet-stream;",
        "    server {",
        f"        listen {HOST}:{port};",
        "        server_name localhost;",
        f"        root {root};",
        "        autoindex on;",
        "        location / { }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def prepare(folder: Path, base: int) -> Prepared:
    root = folder / "root"
    tree = medtree.build_tree(root)
    (folder / "temp").mkdir(exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(render_config(folder, root, base + OFFSET))
    argv = [NGINX, "-p", str(folder), "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
    return Prepared(argv=argv, facts=tree)


def services(base: int, facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _service(
            NAME,
            NAME,
            base + OFFSET,
            "http",
            "nginx 1.22 with autoindex on over the medical tree: DICOM images with the canary (in a folder "
            "named after the canary patient), a DICOMDIR, HL7 ADT and X12 837 files with canary values, "
            f"a folder loop (HL7/back -> .., followed by nginx) and {medtree.SERIES_SIZE} small images "
            "IM00001.. in IMAGES/SE000001.",
            {
                "access": "anonymous",
                "listing": "html",
                "dialect": "nginx",
                "files_present": facts.get("files", {}),
                "loops": 1,
                # The default walk sniffs 25 files per folder; the rest of the series is counted by name.
                "probe_counts": medtree.probe_counts(facts),
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
)
