"""More open directory listings over the medical tree, beside nginx: Apache httpd (three layouts),
lighttpd, Caddy's `file_server browse` and Python's http.server.

Apache (Debian's apache2, run with its own configuration file, not Debian's): one process,
three ports: FancyIndexing with HTMLTable, FancyIndexing in <pre>, and the plain list.
Each listing is recognised by its structure; their titles differ (Caddy's is the path).
Every file these servers write is under the plug-in's folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared
from .services import HOST, _service

APACHE, LIGHTTPD, CADDY = "/usr/sbin/apache2", "/usr/sbin/lighttpd", "/usr/bin/caddy"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
APACHE_OFFSETS = {"table": 105, "pre": 106, "plain": 107}
LIGHTTPD_OFFSET, CADDY_OFFSET, PYTHON_OFFSET = 108, 109, 118
APACHE_INDEXES = {"table": "FancyIndexing HTMLTable", "pre": "FancyIndexing", "plain": "-FancyIndexing"}


def _installed(path: str, package: str) -> Any:
    def check() -> None:
        if not Path(path).is_file():
            raise LabError(f"{path} is missing: run scripts/install-debian-deps.sh (Debian package {package})")

    return check


def _tree(folder: Path) -> tuple[Path, dict]:
    root = folder / "root"
    tree = medtree.build_tree(root)
    os.chmod(folder, 0o755)  # the servers drop to nobody
    return root, tree


def apache_base(folder: Path, modules: Iterable[str], ports: Iterable[int]) -> list[str]:
    """The lines every lab Apache begins with: its pid and mutex under `folder`, `modules` loaded,
    run as nobody, errors to its log, listening on 127.0.0.1 at `ports`."""
    return [
        f"ServerRoot {folder}",
        f"PidFile {folder / 'httpd.pid'}",
        f"Mutex file:{folder} default",
        *(f"LoadModule {m}_module {APACHE_MODULES / f'mod_{m}.so'}" for m in modules),
        "User nobody",
        "Group nogroup",
        "ServerName localhost",
        "ErrorLog /dev/stderr",
        "LogLevel warn",
        "TypesConfig /etc/mime.types",
        *(f"Listen {HOST}:{port}" for port in ports),
    ]


def _apache(folder: Path, base: int) -> Prepared:
    root, tree = _tree(folder)
    modules = ["mpm_event", "authz_core", "dir", "mime", "autoindex"]
    lines = [
        *apache_base(folder, modules, (base + offset for offset in APACHE_OFFSETS.values())),
        f"DocumentRoot {root}",
        "<Directory />",
        "  Require all granted",
        "  Options Indexes FollowSymLinks",
        "</Directory>",
    ]
    for layout, offset in APACHE_OFFSETS.items():
        lines += [f"<VirtualHost {HOST}:{base + offset}>", f"  IndexOptions {APACHE_INDEXES[layout]}",
                  "</VirtualHost>"]  # fmt: skip
    config = folder / "httpd.conf"
    config.write_text("\n".join(lines) + "\n")
    return Prepared(argv=[APACHE, "-f", str(config), "-DFOREGROUND"], facts=tree)


def _lighttpd(folder: Path, base: int) -> Prepared:
    root, tree = _tree(folder)
    config = folder / "lighttpd.conf"
    config.write_text(
        "\n".join([
            f'server.document-root = "{root}"',
            f'server.bind = "{HOST}"',
            f"server.port = {base + LIGHTTPD_OFFSET}",
            'server.modules = ("mod_dirlisting")',
            'dir-listing.activate = "enable"',
            f'server.pid-file = "{folder / "lighttpd.pid"}"',
            'server.username = "nobody"',
            'server.groupname = "nogroup"',
            'mimetype.assign = ("" => "application/octet-stream")',
        ]) + "\n"
    )  # fmt: skip
    return Prepared(argv=[LIGHTTPD, "-D", "-f", str(config)], facts=tree)


def _caddy(folder: Path, base: int) -> Prepared:
    root, tree = _tree(folder)
    config = folder / "Caddyfile"
    config.write_text(
        "{\n  admin off\n  auto_https off\n}\n"
        f"http://{HOST}:{base + CADDY_OFFSET} {{\n  bind {HOST}\n  root * {root}\n  file_server browse\n}}\n"
    )
    home = folder / "xdg"
    home.mkdir()
    argv = ["env", f"XDG_CONFIG_HOME={home}", f"XDG_DATA_HOME={home}", CADDY, "run", "--config", str(config),
            "--adapter", "caddyfile"]  # fmt: skip
    return Prepared(argv=argv, facts=tree)


def _python(folder: Path, base: int) -> Prepared:
    root, tree = _tree(folder)
    port = str(base + PYTHON_OFFSET)
    argv = [sys.executable, "-m", "phiwatch_lab.pyhttp", "--bind", HOST, "--directory", str(root), port]
    return Prepared(argv=argv, facts=tree, python=True)


def _services(name: str, offsets: dict[str, int], what: str) -> Any:
    def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            _service(
                f"{name}-{layout}" if layout else name, name, base + offset, "http",
                f"{what}{f' ({layout} layout)' if layout else ''}: an open listing of the medical tree.",
                {"access": "anonymous", "listing": "html", "files_present": tree.get("files", {}), "canary": True},
            )
            for layout, offset in offsets.items()
        ]  # fmt: skip

    return services


def _server(name: str, offsets: dict[str, int], check: Any, prepare: Any, what: str) -> LabServer:
    names = tuple(f"{name}-{layout}" if layout else name for layout in offsets)
    return LabServer(name=name, offsets=tuple(offsets.values()), check_installed=check, prepare=prepare,
                     services=_services(name, offsets, what), canary=names)  # fmt: skip


SERVERS = (
    _server("apache-index", APACHE_OFFSETS, _installed(APACHE, "apache2"), _apache, "Apache httpd 2.4 Indexes"),
    _server("lighttpd-dirlisting", {"": LIGHTTPD_OFFSET}, _installed(LIGHTTPD, "lighttpd"), _lighttpd,
            "lighttpd 1.4 dir-listing"),
    _server("caddy-browse", {"": CADDY_OFFSET}, _installed(CADDY, "caddy"), _caddy,
            "Caddy 2.6 file_server browse"),
    _server("python-http", {"": PYTHON_OFFSET}, lambda: None, _python, "Python's http.server"),
)  # fmt: skip
