"""Apache httpd: `Options Indexes` (autoindex), WebDAV (`Dav On`), and DICOM folders served without a login.

Apache 2.4's default Options is FollowSymlinks (no Indexes); a `Require all granted` or no
`Require` with no `AuthType` leaves a section open. Includes are followed inside the given paths.
"""

from __future__ import annotations

import re
from collections import defaultdict

from .context import Context, Parsed
from .directives import Directive, Tree, parse
from .model import change, finding
from .nginx import MEDICAL_PATH
from .source import Source

KIND = "apache"
SECTIONS = {"directory", "location", "directorymatch", "locationmatch", "virtualhost", "files", "filesmatch"}


def recognise(name: str, text: str) -> bool:
    if name in {"httpd.conf", "apache2.conf", ".htaccess"}:
        return True
    return bool(re.search(r"(?mi)^\s*<(Directory|VirtualHost|Location|IfModule)\b", text)) and bool(
        re.search(r"(?mi)^\s*(DocumentRoot|Options|Require|AllowOverride|ServerName|Alias|Listen)\s", text))


def _access_section(d: Directive) -> Directive | None:
    """The nearest enclosing <Directory>, <Location>, <VirtualHost>, <Files> (not <IfModule> and the like)."""
    parent = d.parent
    while parent is not None and parent.name not in SECTIONS:
        parent = parent.parent
    return parent


def _options(direct: list[Directive]) -> tuple[Directive | None, bool]:
    """The last Options line directly in a section, and whether Indexes ends up enabled (All includes it)."""
    last: Directive | None = None
    enabled: set[str] = set()
    for d in direct:
        if d.name != "options":
            continue
        last = d
        words = [w.lower() for w in d.args]
        if any(not w.startswith(("+", "-")) for w in words):
            enabled = set()
        for word in words:
            if word.startswith("-"):
                enabled.discard(word[1:])
            else:
                enabled.add(word.lstrip("+"))
    return last, bool(enabled & {"indexes", "all"})


def _guarded(direct: list[Directive]) -> str | None:
    for d in direct:
        if d.name == "authtype":
            return "AuthType"
        if d.name == "require":
            words = [a.lower() for a in d.args]
            if words[:1] == ["not"] or words[:1] == ["method"] or words[:2] == ["all", "granted"]:
                continue  # a method filter or a negation admits anyone; all granted opens the section
            return "Require " + " ".join(d.args[:2])
    return None


def _served(section: Directive, document_root: str | None) -> str | None:
    """The folder a section serves: its own path, or the DocumentRoot when the section is above it."""
    if section.name in {"directory", "directorymatch"} and section.args:
        path = section.args[0].strip('"')
        if document_root and document_root.rstrip("/").startswith(path.rstrip("/")):
            return document_root
        return path
    return document_root


def _ports(tree: Tree) -> list[tuple[str, int]]:
    """Every Listen address (host, port), 80 when there is none."""
    out: list[tuple[str, int]] = []
    for d in tree.directives:
        if d.name == "listen" and d.args:
            host, _, port = d.args[0].rpartition(":")
            out.append((host.strip("[]"), int(port) if port.isdigit() else 80))
    return out[:16] or [("", 80)]


def audit(source: Source, ctx: Context) -> Parsed:
    tree = parse(source, ctx)
    out = Parsed(includes=tree.includes, notes=tree.notes)
    direct: dict[int, list[Directive]] = defaultdict(list)
    for d in tree.directives:
        section = _access_section(d)
        if section is not None:
            direct[id(section)].append(d)
    root = next((d for d in tree.directives if d.name == "documentroot" and d.args), None)
    document_root = root.args[0].strip('"') if root else None
    listening = _ports(tree)

    def add(check: str, evidence: str, where: Directive, fix: list, section: Directive) -> None:
        host = next((a for a in [section, *_ancestors(section)] if a.name == "virtualhost"), None)
        ports = listening
        if host is not None and host.args:
            name, _, text = host.args[0].rpartition(":")
            address = name.strip("[]") if name not in {"*", "_default_"} else ""
            ports = [(address, int(text) if text.isdigit() else 80)]
        for address, port in ports:
            out.findings.append(finding(check, evidence, where.source, where.line, fix=fix, host=address,
                                        port=port))

    for section in (d for d in tree.directives if d.name in SECTIONS):
        label = f"<{section.name.capitalize()} {' '.join(section.args)}>"
        children = direct.get(id(section), [])
        guard = _guarded(children)
        options, indexes = _options(children)
        served = _served(section, document_root)
        if indexes and options is not None:
            if guard:
                out.notes.append(f"line {options.line}: Indexes behind {guard}")
            else:
                medical = ctx.medical_files(served)
                check = "http_index_medical_files_exposed" if medical else "http_directory_listing"
                held = f"; the folder holds {medical} medical files" if medical else ""
                new = " ".join(w for w in options.args if w.lstrip("+").lower() != "indexes") or "None"
                add(check, f"Options {' '.join(options.args)} in {label} without a login: folder listings are "
                    f"public{held}", options, [change(options.source, options.line, True, f"    Options {new}")],
                    section)
        dav = next((d for d in children if d.name == "dav" and d.args and d.args[0].lower() != "off"), None)
        if dav is not None and not guard:
            add("http_webdav_write_enabled", f"Dav {dav.args[0]} in {label} without a login: anyone can upload, "
                "overwrite and delete", dav, [change(dav.source, dav.line, True, "    Dav Off")], section)
        if not guard and not indexes and section.name in {"directory", "location", "directorymatch",
                                                          "locationmatch"} and MEDICAL_PATH.search(
                                                              " ".join(section.args)):
            medical = ctx.medical_files(served)
            held = f"; the folder holds {medical} medical files" if medical else ""
            add("http_medical_folder_served", f"{label} serves what looks like DICOM or PACS data without a "
                f"login{held}", section,
                [change(section.source, section.line, False, "    AuthType Basic\n    Require valid-user")],
                section)
    return out


def _ancestors(d: Directive) -> list[Directive]:
    out: list[Directive] = []
    parent = d.parent
    while parent is not None:
        out.append(parent)
        parent = parent.parent
    return out
