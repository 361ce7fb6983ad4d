"""Apache httpd: `Options Indexes` (autoindex), WebDAV (`Dav On`), and DICOM folders served without a login.

Apache 2.4's default Options is FollowSymlinks (no Indexes); a `Require all granted` or no
`Require` with no `AuthType` leaves a section open. Includes are followed inside the given paths.
"""

from __future__ import annotations

import re

from .context import Context, Parsed
from .directives import Directive, Tree, parse, within
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


def _options(tree: Tree, section: Directive | None) -> tuple[Directive | None, bool]:
    """The last Options line directly in a section, and whether Indexes ends up enabled (All includes it)."""
    last: Directive | None = None
    enabled: set[str] = set()
    for d in tree.directives:
        if d.name != "options" or section is None or not _directly_in(tree, d, section):
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


def _directly_in(tree: Tree, d: Directive, section: Directive) -> bool:
    if not within(d, section):
        return False
    inner = [s for s in tree.directives if s.name in SECTIONS and s is not section and within(s, section)]
    return not any(within(d, s) for s in inner)


def _guarded(tree: Tree, section: Directive) -> str | None:
    inside = [d for d in tree.directives if _directly_in(tree, d, section)]
    for d in inside:
        if d.name == "authtype":
            return "AuthType"
        if d.name == "require":
            words = [a.lower() for a in d.args]
            if words[:1] == ["not"] or words[:1] == ["method"] or words[:2] == ["all", "granted"]:
                continue  # a method filter or a negation admits anyone; all granted opens the section
            return "Require " + " ".join(d.args[:2])
    return None


def _served(tree: Tree, section: Directive) -> str | None:
    if section.name in {"directory", "directorymatch"} and section.args:
        return section.args[0].strip('"')
    root = next((d for d in tree.directives if d.name == "documentroot" and d.args), None)
    return root.args[0].strip('"') if root else None


def _listen(tree: Tree) -> tuple[str, int]:
    listen = next((d for d in tree.directives if d.name == "listen" and d.args), None)
    if listen is None:
        return "", 80
    host, _, port = listen.args[0].rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 80


def audit(source: Source, ctx: Context) -> Parsed:
    tree = parse(source, ctx)
    out = Parsed(includes=tree.includes, notes=tree.notes)
    host, port = _listen(tree)
    for section in (d for d in tree.directives if d.name in SECTIONS):
        label = f"<{section.name.capitalize()} {' '.join(section.args)}>"
        guard = _guarded(tree, section)
        options, indexes = _options(tree, section)
        served = _served(tree, section)
        if indexes and options is not None:
            if guard:
                out.notes.append(f"line {options.line}: Indexes behind {guard}")
            else:
                medical = ctx.medical_files(served)
                check = "http_index_medical_files_exposed" if medical else "http_directory_listing"
                held = f"; the folder holds {medical} medical files" if medical else ""
                new = " ".join(w for w in options.args if w.lstrip("+").lower() != "indexes") or "None"
                out.findings.append(finding(
                    check, f"Options {' '.join(options.args)} in {label} without a login: folder listings are "
                    f"public{held}", options.source, options.line,
                    fix=[change(options.source, options.line, True, f"    Options {new}")], host=host, port=port,
                ))
        dav = next((d for d in tree.directives if d.name == "dav" and _directly_in(tree, d, section)
                    and d.args and d.args[0].lower() != "off"), None)
        if dav is not None and not guard:
            out.findings.append(finding(
                "http_webdav_write_enabled", f"Dav {dav.args[0]} in {label} without a login: anyone can upload, "
                "overwrite and delete", dav.source, dav.line,
                fix=[change(dav.source, dav.line, True, "    Dav Off")], host=host, port=port,
            ))
        if not guard and not indexes and section.name in {"directory", "location", "directorymatch",
                                                          "locationmatch"} and MEDICAL_PATH.search(
                                                              " ".join(section.args)):
            medical = ctx.medical_files(served)
            held = f"; the folder holds {medical} medical files" if medical else ""
            out.findings.append(finding(
                "http_medical_folder_served", f"{label} serves what looks like DICOM or PACS data without a "
                f"login{held}", section.source, section.line,
                fix=[change(section.source, section.line, False, "    AuthType Basic\n    Require valid-user")],
                host=host, port=port,
            ))
    return out
